// Command benchreport turns the output of the registry's benchmark suite
// into BENCHMARKS.md and the chart it shows, so that every figure there
// comes from one run:
//
//	go test -run='^$' -bench=. -count=3 -timeout=90m ./registry/ | tee bench.txt
//	go run ./scripts/benchreport -in bench.txt -md BENCHMARKS.md -svg docs/expired-lease-pages.svg
//
// `make bench` does both. The soak test's figures are a section of their
// own, which `make soak` replaces (-soak soak.md, without -in) and a
// benchmark report keeps.
//
// With -postgres it writes BENCHMARKS-postgres.md instead, from two runs
// of the Postgres benchmarks side by side: -in with fsync off, -durable
// with durable commits (`make bench-postgres` makes both; see
// postgres.go).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	in := flag.String("in", "bench.txt", "benchmark output to read")
	md := flag.String("md", "BENCHMARKS.md", "report to write")
	svg := flag.String("svg", "docs/expired-lease-pages.svg", "chart to write")
	soak := flag.String("soak", "", "the soak test's figures (REGISTRY_SOAK_REPORT) to put in the report's soak section instead")
	postgres := flag.Bool("postgres", false, "report the Postgres benchmarks: -in is the fsync-off run, -durable the durable one")
	durable := flag.String("durable", "bench-postgres-durable.txt", "with -postgres: the run with durable commits")
	flag.Parse()
	var err error
	switch {
	case *postgres:
		err = runPostgresReport(*in, *durable, *md)
	case *soak != "":
		err = spliceSoak(*soak, *md)
	default:
		err = runReport(*in, *md, *svg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func runReport(in, md, svg string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	res, err := parse(strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	chart, err := chartSVG(res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(svg, []byte(chart), 0o644); err != nil {
		return err
	}
	report, err := markdown(res, string(raw), svg)
	if err != nil {
		return err
	}
	// Keep the soak section of the report being replaced.
	section := soakPlaceholder
	if old, err := os.ReadFile(md); err == nil {
		if _, sec, _, ok := cutSoak(string(old)); ok {
			section = sec
		}
	}
	report = strings.Replace(report, soakStart+soakPlaceholder+soakEnd, soakStart+section+soakEnd, 1)
	return os.WriteFile(md, []byte(report), 0o644)
}

// The soak section's bounds in the report.
const (
	soakStart       = "<!-- soak: written by make soak -->\n"
	soakEnd         = "<!-- /soak -->\n"
	soakPlaceholder = "No soak run yet: run `make soak`.\n"
)

// faultSoakHeading starts the fault soak's part of the soak section.
const faultSoakHeading = "## Fault soak\n"

// cutSoak splits a report around its soak section.
func cutSoak(report string) (before, section, after string, ok bool) {
	before, rest, ok := strings.Cut(report, soakStart)
	if !ok {
		return "", "", "", false
	}
	section, after, ok = strings.Cut(rest, soakEnd)
	return before, section, after, ok
}

// spliceSoak puts the soak figures in file in into the report md.
func spliceSoak(in, md string) error {
	figures, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	report, err := os.ReadFile(md)
	if err != nil {
		return err
	}
	before, old, after, ok := cutSoak(string(report))
	if !ok {
		return fmt.Errorf("%s has no soak section (%q)", md, strings.TrimSpace(soakStart))
	}
	// The fault soak's figures, pasted by hand from make soak-faults, stay.
	var faults string
	if i := strings.Index(old, faultSoakHeading); i >= 0 {
		faults = "\n" + old[i:]
	}
	return os.WriteFile(md, []byte(before+soakStart+string(figures)+faults+soakEnd+after), 0o644)
}

// results maps a benchmark's name, without the -N suffix, to its metrics
// by unit ("ns/op", "ns/heartbeat", ...): the median of its runs when it
// ran more than once (-count). header holds goos, goarch, cpu.
type results struct {
	metrics map[string]map[string]float64
	runs    map[string]int
	header  map[string]string
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func parse(r io.Reader) (results, error) {
	res := results{metrics: map[string]map[string]float64{}, runs: map[string]int{}, header: map[string]string{}}
	samples := map[string]map[string][]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		for _, key := range []string{"goos", "goarch", "cpu", "pkg", "postgres", "settings"} {
			if v, ok := strings.CutPrefix(line, key+": "); ok {
				res.header[key] = v
			}
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		fields := strings.Fields(m[2])
		if samples[m[1]] == nil {
			samples[m[1]] = map[string][]float64{}
		}
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return res, fmt.Errorf("%s: %q is not a number", m[1], fields[i])
			}
			samples[m[1]][fields[i+1]] = append(samples[m[1]][fields[i+1]], v)
		}
		res.runs[m[1]]++
	}
	if len(samples) == 0 {
		return res, errors.New("no benchmark results in the input")
	}
	for name, units := range samples {
		res.metrics[name] = map[string]float64{}
		for unit, vs := range units {
			res.metrics[name][unit] = median(vs)
		}
	}
	return res, sc.Err()
}

// countText says how many times a run measured each benchmark.
func countText(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times (-count=%d)", n, n)
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func (r results) get(name, unit string) (float64, error) {
	m, ok := r.metrics["Benchmark"+name]
	if !ok {
		return 0, fmt.Errorf("benchmark %s is missing from the input", name)
	}
	v, ok := m[unit]
	if !ok {
		return 0, fmt.Errorf("benchmark %s has no %s", name, unit)
	}
	return v, nil
}

// row is one line of the report: a measurement, the baseline it is
// compared with in the same run, and the target for the ratio.
type row struct {
	what            string
	bench, unit     string
	baseline, bunit string
	// ratio is baseline/bench (a speed-up) unless inverse, then bench/baseline.
	inverse bool
	target  string
	ok      func(ratio, value float64) bool
	// share, when set, is a percentage metric (such as "%hot") shown after
	// each benchmark's figure where it reported one. With shareMin above 0
	// the target also needs this library's share to be at least shareMin:
	// a share it did not report misses it.
	share    string
	shareMin float64
	// bshare is the baseline's share metric, when it is not share.
	bshare string
}

const (
	leasePage = "ListExpiredLeases/leases=%d/%s/page=%s"
)

// atLeast is the test of a speed-up target of x.
func atLeast(x float64) func(ratio, _ float64) bool {
	return func(ratio, _ float64) bool { return ratio >= x }
}

// writeRows are the rows of the write path, for the benchmarks named with
// prefix (the store's): heartbeats with and without events against the
// reference (whose name is ref) and the floor, batches against single
// heartbeats, then parallel, rows of heartbeats from many goroutines
// (what and bench set) against one goroutine, and register against the
// reference's.
func writeRows(prefix, ref string, parallel ...row) []row {
	single := prefix + "Heartbeat/registry/events=false"
	out := []row{
		{what: "Heartbeat, events off, vs " + ref + " heartbeat transaction", bench: single, unit: "ns/op",
			baseline: prefix + "Heartbeat/baseline=reference", bunit: "ns/op", target: "≥ 1.5×", ok: atLeast(1.5)},
		{what: "Heartbeat, events off, vs the floor (one autocommit UPDATE)", bench: single, unit: "ns/op",
			baseline: prefix + "Heartbeat/baseline=floor", bunit: "ns/op", target: "≥ 0.75×", ok: atLeast(0.75)},
		{what: "Heartbeat, events on, vs " + ref + " heartbeat transaction", bench: prefix + "Heartbeat/registry/events=true", unit: "ns/op",
			baseline: prefix + "Heartbeat/baseline=reference", bunit: "ns/op", target: "≥ 1.0×", ok: atLeast(1)},
		{what: "HeartbeatWorkers, 10 a call, per heartbeat, vs single heartbeats", bench: prefix + "HeartbeatWorkers/per_call=10", unit: "ns/heartbeat",
			baseline: single, bunit: "ns/op"},
		{what: "HeartbeatWorkers, 100 a call, per heartbeat, vs single heartbeats", bench: prefix + "HeartbeatWorkers/per_call=100", unit: "ns/heartbeat",
			baseline: single, bunit: "ns/op", target: "≥ 3×", ok: atLeast(3)},
	}
	for _, p := range parallel {
		p.unit, p.baseline, p.bunit, p.target, p.ok = "ns/op", single, "ns/op", "≥ 0.8×", atLeast(0.8)
		out = append(out, p)
	}
	return append(out, row{what: "Register (refresh of a live worker) vs " + ref + " register", bench: prefix + "Register/registry", unit: "ns/op",
		baseline: prefix + "Register/baseline=reference", bunit: "ns/op", target: "≥ 1.0×", ok: atLeast(1)})
}

func rows() []row {
	page := func(n int, who, which string) string { return fmt.Sprintf(leasePage, n, who, which) }
	var out []row
	add := func(r row) { out = append(out, r) }
	out = append(out, writeRows("", "the reference's", row{what: "16 goroutines heartbeating, aggregate throughput vs one goroutine", bench: "HeartbeatParallel"})...)
	// What the registry's own indexes cost the writes: the same calls on a
	// database without them, which gives up what they guarantee. No target:
	// these rows explain the write rows above.
	out = append(out,
		row{what: "Without the three event indexes: heartbeat, events on, vs the reference's heartbeat transaction", bench: "Heartbeat/registry/events=true,without=event_indexes", unit: "ns/op",
			baseline: "Heartbeat/baseline=reference", bunit: "ns/op"},
		row{what: "Without the three event indexes: register vs the reference's register", bench: "Register/registry/without=registry_indexes", unit: "ns/op",
			baseline: "Register/baseline=reference", bunit: "ns/op"},
		row{what: "Without the three event indexes: sweep of 100k expired workers vs the reference's sweep", bench: "SweepExpired/registry/without=event_indexes", unit: "ns/op",
			baseline: "SweepExpired/baseline=reference", bunit: "ns/op"},
	)
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		for _, which := range []string{"first", "deep"} {
			add(row{what: fmt.Sprintf("Expired-lease page of 1000, %s, %s leases, vs the reference's query", which, human(n)),
				bench: page(n, "registry", which), unit: "ns/op", baseline: page(n, "baseline=reference", which), bunit: "ns/op",
				target: "≥ 1.0×", ok: atLeast(1)})
		}
	}
	for _, which := range []string{"first", "deep"} {
		add(row{what: fmt.Sprintf("Expired-lease page, %s, at 1M leases vs at 10k (growth)", which),
			bench: page(1_000_000, "registry", which), unit: "ns/op", baseline: page(10_000, "registry", which), bunit: "ns/op",
			inverse: true, target: "≤ 1.5× and ≤ 10 ms", ok: func(r, v float64) bool { return r <= 1.5 && v <= 10e6 }})
	}
	for _, which := range []string{"first", "deep"} {
		add(row{what: fmt.Sprintf("Expired-lease page of 1000, %s, 1M leases on an adopted FlowFabric database, vs the reference's query", which),
			bench: "ListExpiredLeasesAdopted/registry/page=" + which, unit: "ns/op", baseline: "ListExpiredLeasesAdopted/baseline=reference/page=" + which, bunit: "ns/op",
			target: "≤ 10 ms", ok: func(_, v float64) bool { return v <= 10e6 }})
	}
	add(row{what: "Full walk of 1M expired leases (every lease once, checked) vs 1000 first pages", bench: "ListExpiredLeases/leases=1000000/registry/walk", unit: "ns/op",
		baseline: page(1_000_000, "registry", "first"), bunit: "ns/op", inverse: true})
	for _, which := range []string{"first", "deep"} {
		add(row{what: fmt.Sprintf("Orphaned-lease page of 1000, %s, 1M held leases over 1,000 holders (10 dead), vs the naive anti-join", which),
			bench: "ListOrphanedLeases/registry/page=" + which, unit: "ns/op", baseline: "ListOrphanedLeases/baseline=antijoin/page=" + which, bunit: "ns/op",
			target: "≤ 10 ms", ok: func(_, v float64) bool { return v <= 10e6 }})
	}
	add(row{what: "Sweep with nothing expired among 1M live workers vs the reference's full-scan sweep (it takes no write turn: TestSweepNothingExpiredTakesNoWriteTurn)", bench: "SweepNothingExpired/registry", unit: "ns/op",
		baseline: "SweepNothingExpired/baseline=reference", bunit: "ns/op", target: "≥ 1.0×", ok: atLeast(1)})
	add(row{what: "Sweep of 100k expired workers vs the reference's sweep", bench: "SweepExpired/registry", unit: "ns/op",
		baseline: "SweepExpired/baseline=reference", bunit: "ns/op", target: "≥ 1.0×", ok: atLeast(1)})
	add(row{what: "Longest wait of a concurrent writer during that sweep vs the reference's", bench: "SweepExpired/registry", unit: "max_writer_wait_ms",
		baseline: "SweepExpired/baseline=reference", bunit: "max_writer_wait_ms", target: "≤ ~50 ms", ok: func(_, v float64) bool { return v <= 60 }})
	return out
}

// figures are a row's cells from one run: this library's figure, the
// baseline's, the ratio, and whether the target is met ("" when the row
// has none).
func (r row) figures(res results) ([]string, error) {
	v, err := res.get(r.bench, r.unit)
	if err != nil {
		return nil, err
	}
	base, err := res.get(r.baseline, r.bunit)
	if err != nil {
		return nil, err
	}
	ratio := base / v
	if r.inverse {
		ratio = v / base
	}
	met := ""
	if r.ok != nil {
		met = "yes"
		if !r.ok(ratio, v) {
			met = "**no**"
		}
	}
	vs, bs := format(v, r.unit), format(base, r.bunit)
	if r.share != "" {
		share, err := res.get(r.bench, r.share)
		if err == nil {
			vs += ", " + format(share, r.share)
		} else if r.shareMin > 0 {
			_, name, _ := strings.Cut(r.share, "%")
			vs += ", no " + strings.ToUpper(name) + " share"
		}
		if r.ok != nil && r.shareMin > 0 && (err != nil || share < r.shareMin) {
			met = "**no**"
		}
		bshare := r.share
		if r.bshare != "" {
			bshare = r.bshare
		}
		if share, err := res.get(r.baseline, bshare); err == nil {
			bs += ", " + format(share, r.share)
		}
	}
	return []string{vs, bs, fmt.Sprintf("%.2f×", ratio), met}, nil
}

func human(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

func format(v float64, unit string) string {
	if unit == "max_writer_wait_ms" {
		return fmt.Sprintf("%.1f ms", v)
	}
	// A share, "%hot" or one side's of a pair ("registry-%hot").
	if _, share, ok := strings.Cut(unit, "%"); ok {
		return fmt.Sprintf("%.1f%% %s", v, strings.ToUpper(share))
	}
	d := time.Duration(v)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1f µs", float64(d)/1e3)
}

func markdown(res results, raw, svg string) (string, error) {
	count := 0
	for _, n := range res.runs {
		count = max(count, n)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Benchmarks

Every figure below comes from one run of the suite on one machine, which
measures each benchmark %[5]s; a figure is the median of those counts.
Every comparison is a ratio against a baseline measured in that same run:
absolute times on shared machines drift, ratios much less. Baselines are (a) statements
that behave like the reference implementation's (FlowFabric's SQLite worker
registry: its heartbeat transaction, register transaction, expired-lease query
with its text cursor and its expiry index, and its full-scan sweep), run with
database/sql on the same database file, and (b) the floor, a single autocommit
UPDATE of one row.

These are the SQLite store's; the Postgres store's are in
[BENCHMARKS-postgres.md](BENCHMARKS-postgres.md).

Reproduce (about five minutes a count on two cores):

	make bench

which runs

	REGISTRY_TEST_POSTGRES= go test -run='^$' -bench=. -count=%[6]d -timeout=90m ./registry/ | tee bench.txt
	go run ./scripts/benchreport -in bench.txt -md BENCHMARKS.md -svg %[1]s

Machine: %[2]s/%[3]s, %[4]s, %[7]d logical CPUs as seen by the report generator.
A ratio is the baseline's time over this library's (higher is better), except
where marked "growth", "walk" or "wait", which divide this library's time by
the baseline's.

| Measurement | This library | Baseline | Ratio | Target | Met |
|---|---|---|---|---|---|
`, svg, res.header["goos"], res.header["goarch"], res.header["cpu"], countText(count), count, runtime.NumCPU())
	for _, r := range rows() {
		c, err := r.figures(res)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.what, c[0], c[1], c[2], r.target, c[3])
	}
	fmt.Fprintf(&b, "\n![Expired-lease page latency against data size](%s)\n", svg)
	b.WriteString(soakHeading + soakStart + soakPlaceholder + soakEnd)
	b.WriteString(notes)
	fmt.Fprintf(&b, "\n## Raw output\n\n```\n%s```\n", raw)
	return b.String(), nil
}

const soakHeading = `
## Soak: a long run, held flat

TestSoak (registry/soak_test.go) alternates stretches of 5,000 mixed calls
(single and batch heartbeats, registers, pauses past the TTL, listings,
lease walks, sweeps, event pages, drains, kills) with stretches of 5,000
single heartbeats alone, on two registries sharing one file, one with
heartbeat events on. It asserts that the WAL stays under 32 MB at every
point and that the heap and each stretch's p99 latency stay flat. The
README's test command runs 40,000 calls; ` + "`make soak`" + ` runs a million:

`

// notes explain what the table measures and why some ratios are what they
// are; they hold for any run, so they live here rather than in an edit of
// the generated file.
const notes = `
## Reading the table

- **Steady state.** Every write benchmark first makes 10,000 calls of its
  own on the same database (registry and baselines alike), then measures:
  the WAL has filled and been checkpointed, B-tree pages have split, the
  audit log is not empty. Runs on this shared two-core machine move single
  figures by tens of percent; ratios less, but not nothing, which is why
  make bench measures each benchmark more than once (BENCH_COUNT, three
  unless set) and the table shows medians.
- **Pages written per commit.** The write path's cost is mostly WAL
  frames: each page a commit changes is written to the WAL (two system
  calls and a checksum) and later checkpointed (with two fsyncs per
  checkpoint). Until schema version 8 a heartbeat wrote three pages: the
  registration's row and two of the registry's expiry index (the old
  entry's page and the newest), measured for issue 16 as 3.0 WAL frames a
  heartbeat against the floor's 1.0. Version 8 dropped that index: no
  registry index includes a column a heartbeat writes
  (TestNoIndexFollowsHeartbeats), so a heartbeat with events off changes
  one page, as the floor does, and a sweep finds expired rows by a scan on
  a read connection instead (the sweep rows).
- **Events cost writes.** An event is five B-tree inserts: the engine's
  table and its (namespace, instance, time, kind) key, which the reference
  writes too, and the registry's namespace, instance and time indexes,
  which the reference does not have. Each of those serves one guarantee:
  pages of one namespace and of one instance in event-ID order without a
  sort (TestQueryPlansSurviveAnalyze), and pruning in bounded batches,
  oldest first. The reference pays none of them and gets none of them: it
  cannot page its log in order, and never prunes it. Register and a
  heartbeat with events thus write about nine pages where the reference
  writes three or four, which keeps them at about half its speed.
  Register's common case, a live registration refreshed, is one UPDATE
  and the event's INSERT.
- **What the indexes cost, measured.** The rows "Without ..." run the same
  calls on a database from which the benchmark dropped the registry's
  three event indexes, giving up what they guarantee: a heartbeat with
  events then writes as many WAL frames as the reference's, and the rest
  of the gap is CPU spread over the call.
- **Expired-lease pages.** The reference's query runs on its expiry index
  (INDEXED BY: on this database the planner would otherwise walk the
  registry's lease index for it, and the baseline would be this library's
  plan). With every page in the cache (10k leases), its walk of a few
  expiry groups with a sort of each is about as fast as ours; as the set
  grows, its lookups into ff_attempt and its sorts cost more, and its text
  cursor cannot seek, so that a deep page scans every lease before it
  (and skips and repeats leases, defect 2). Ours seeks to the cursor with
  a row value and walks the registry's covering lease index, so deep
  pages cost what first pages cost.
- **Growth from 10k to 1M.** A page is a thousand primary-key lookups into
  ff_exec_core for the state and namespace, which the engine keeps there. At
  1M rows that table is some 60 MB and the lookups miss the CPU caches; the
  growth is that memory latency, not an algorithmic term (the walk is a range
  scan and no plan sorts; see TestQueryPlansSurviveAnalyze).
- **Adopted databases.** FlowFabric's ff_exec_core and ff_attempt are rowid
  tables with indexes of their own, so a lease page pays a second lookup
  per lease; the registry's lease index still drives the walk.
- **Sweeps.** No index orders workers by expiry (schema version 8, issue
  29): a read connection scans for the expired rows, off the writer's
  path, so a sweep with nothing expired takes no write turn
  (TestSweepNothingExpiredTakesNoWriteTurn). With 100k expired the writer
  deletes them by rowid in batches sized to hold it about 10 ms (64 to
  4,000 rows), each two set-based statements that never bring the rows'
  keys out of SQLite (the events are inserted from the expired rows, then
  the same rows deleted, the expiry checked again); a write that queued
  during a batch goes before the next, and WAL checkpoints run off the
  writer (internal/store/sqlitestore/sweep.go). So no other writer waits
  for more than a batch, where the reference blocks every writer for the
  whole sweep. That is also why the 100k sweep can be slower than the
  reference's: the concurrent writer's heartbeats get their turns inside
  the sweep's timed window, where the reference's wait until it ends; and
  its 100k events pay the three event indexes like every other event (the
  row "Without the three event indexes" is the same sweep without them).
  Measured: 0.83× in this report (the median of three counts; 0.87×
  without the event indexes), 0.86× and 0.92× in the two reports before,
  0.96× to 1.06× on a quiet machine in a profile of the batches; not met.
`

// chartSVG draws page latency (first page) against data size, both axes
// logarithmic, for this library and the reference's query.
func chartSVG(res results) (string, error) {
	sizes := []int{10_000, 100_000, 1_000_000}
	series := []struct {
		name, who, color string
	}{
		{"this library, first page", "registry", "#1f77b4"},
		{"this library, deep page", "registry", "#7fb3e0"},
		{"reference query, first page", "baseline=reference", "#d62728"},
		{"reference query, deep page", "baseline=reference", "#f4a6a6"},
	}
	const w, h, left, right, top, bottom = 640.0, 400.0, 70.0, 40.0, 40.0, 50.0
	var vals [][]float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range series {
		which := "first"
		if i%2 == 1 {
			which = "deep"
		}
		var ys []float64
		for _, n := range sizes {
			v, err := res.get(fmt.Sprintf(leasePage, n, s.who, which), "ns/op")
			if err != nil {
				return "", err
			}
			ms := v / 1e6
			ys = append(ys, ms)
			lo, hi = math.Min(lo, ms), math.Max(hi, ms)
		}
		vals = append(vals, ys)
	}
	ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yhi == ylo {
		yhi++
	}
	x := func(i int) float64 { return left + float64(i)*(w-left-right)/float64(len(sizes)-1) }
	y := func(ms float64) float64 {
		return top + (yhi-math.Log10(ms))/(yhi-ylo)*(h-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="20" font-size="14">Expired-lease page of 1000: latency (ms, log) against expired leases</text>`+"\n", left)
	for p := ylo; p <= yhi; p++ {
		ms := math.Pow(10, p)
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(ms), y(ms))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%g</text>`+"\n", left-6, y(ms)+4, ms)
	}
	for i, n := range sizes {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x(i), h-bottom+20, human(n))
	}
	for si, s := range series {
		var pts []string
		for i, ms := range vals[si] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(ms)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(i), y(ms), s.color)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), s.color)
		fmt.Fprintf(&b, `<text x="%g" y="%g" fill="%s">%s</text>`+"\n", left+10, top+15+float64(si)*15, s.color, s.name)
	}
	b.WriteString("</svg>\n")
	return b.String(), nil
}
