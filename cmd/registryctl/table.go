package main

import (
	"fmt"
	"io"
	"strings"
	"time"
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

// cut shortens s to n characters, its last one "…"; "" becomes "-".
func cut(s string, n int) string {
	if s == "" {
		return "-"
	}
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

// relative says when t is relative to now: "4s ago", "in 26s".
func relative(t, now time.Time) string {
	if t.After(now) {
		return "in " + age(t.Sub(now))
	}
	return age(now.Sub(t)) + " ago"
}

// age is d in its two largest units, rounded down: 4s, 3m12s, 2h5m, 3d4h;
// under a second, <1s. A glance at a table needs no more precision, and
// the column stays narrow.
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
	}
	return twoUnits(s/86400, "d", s%86400/3600, "h")
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
