package main

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// column is a table column.
type column struct {
	name string
	max  int // cells longer are cut to this many characters, ending in "…"; 0: never
	min  int // width to start with, for a table whose rows come later
}

// table prints rows aligned under a header, two spaces between columns.
// Its widths are set by the header and the first rows it writes, and grow
// when later rows need more, so that a table written in batches (-follow)
// stays aligned as far as it can. An empty cell prints as "-", so that
// every row splits into as many fields as the header.
type table struct {
	w      io.Writer
	cols   []column
	widths []int // nil until the header is written
}

func newTable(w io.Writer, cols ...column) *table {
	return &table{w: w, cols: cols}
}

// write prints the header, the first time, and rows.
func (t *table) write(rows [][]string) error {
	cells := make([][]string, len(rows))
	for i, row := range rows {
		cells[i] = make([]string, len(t.cols))
		for j, col := range t.cols {
			cells[i][j] = cut(row[j], col.max)
		}
	}
	header := t.widths == nil
	if header {
		t.widths = make([]int, len(t.cols))
		for j, col := range t.cols {
			t.widths[j] = max(col.min, utf8.RuneCountInString(col.name))
		}
	}
	for _, row := range cells {
		for j, cell := range row {
			t.widths[j] = max(t.widths[j], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	if header {
		names := make([]string, len(t.cols))
		for j, col := range t.cols {
			names[j] = col.name
		}
		t.line(&b, names)
	}
	for _, row := range cells {
		t.line(&b, row)
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

func (t *table) line(b *strings.Builder, cells []string) {
	var l strings.Builder
	for j, cell := range cells {
		if j > 0 {
			l.WriteString("  ")
		}
		l.WriteString(cell + strings.Repeat(" ", t.widths[j]-utf8.RuneCountInString(cell)))
	}
	b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
}

// cut shortens s, shown visibly (see visible), to n characters, its last
// one "…"; "" becomes "-". It never cuts inside an escape: an escape that
// would not fit whole is left out with what follows it.
func cut(s string, n int) string {
	if s == "" {
		return "-"
	}
	units := visibleUnits(s)
	width := 0
	for _, u := range units {
		width += utf8.RuneCountInString(u)
	}
	if n <= 0 || width <= n {
		return strings.Join(units, "")
	}
	var b strings.Builder
	width = 0
	for _, u := range units {
		w := utf8.RuneCountInString(u)
		if width+w > n-1 {
			break
		}
		b.WriteString(u)
		width += w
	}
	return b.String() + "…"
}

// visible returns s as a terminal may show it: every character that could
// move the cursor, change the terminal's state, break a line or hide
// itself is written as an escape instead, so that a value from the
// database (which the engine, or anyone who can write to it, may have
// filled with anything) is shown, never obeyed. Escaped: control
// characters (Unicode Cc, so ESC, BEL, CSI and the rest of C0 and C1, and
// newlines) as \n, \r, \t or \xNN; format characters (Cf: bidi
// overrides, zero-width characters, soft hyphen, tags) and the line and
// paragraph separators (Zl, Zp), and every other character that Go does
// not count as printable (spaces other than U+0020, private use,
// unassigned), as \uNNNN or \UNNNNNNNN; bytes that are not UTF-8 as \xNN; and the backslash itself as \\, so that an escape is
// never ambiguous with text that looks like one.
func visible(s string) string { return strings.Join(visibleUnits(s), "") }

// visibleUnits splits s into what visible prints, one character or one
// escape a unit, so that a cut can fall between units only.
func visibleUnits(s string) []string {
	units := make([]string, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		units = append(units, visibleRune(r, size, s[i]))
		i += size
	}
	return units
}

func visibleRune(r rune, size int, first byte) string {
	switch {
	case r == utf8.RuneError && size == 1:
		return fmt.Sprintf(`\x%02x`, first)
	case r == '\\':
		return `\\`
	case r == '\n':
		return `\n`
	case r == '\r':
		return `\r`
	case r == '\t':
		return `\t`
	case r < 0x100 && unicode.Is(unicode.Cc, r):
		return fmt.Sprintf(`\x%02x`, r)
	case !unicode.IsPrint(r):
		if r > 0xffff {
			return fmt.Sprintf(`\U%08x`, r)
		}
		return fmt.Sprintf(`\u%04x`, r)
	}
	return string(r)
}

// relative says when t is relative to now: "4s ago", "in 26s".
func relative(t, now time.Time) string {
	if t.After(now) {
		return "in " + age(t.Sub(now))
	}
	return age(now.Sub(t)) + " ago"
}

// age is d in its two largest units, rounded down: 4s, 3m12s, 2h5m, 3d4h;
// under a second, <1s; from 100 days on, days only (339d). A glance at a
// table needs no more precision, and the column stays narrow: at most 7
// characters (106751d, the longest Duration), so a relative time is at
// most 11 ("106751d ago") and a table never has to cut one.
func age(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 1:
		return "<1s"
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return twoUnits(s/60, "m", s%60, "s")
	case s < 86400:
		return twoUnits(s/3600, "h", s%3600/60, "m")
	case s < 100*86400:
		return twoUnits(s/86400, "d", s%86400/3600, "h")
	}
	return fmt.Sprintf("%dd", s/86400)
}

func twoUnits(a int64, unitA string, b int64, unitB string) string {
	if b == 0 {
		return fmt.Sprintf("%d%s", a, unitA)
	}
	return fmt.Sprintf("%d%s%d%s", a, unitA, b, unitB)
}

// ttl is a duration as Go writes it, without its zero units: 30s, 1m30s,
// 1h, 1.5s, 250ms.
func ttl(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
