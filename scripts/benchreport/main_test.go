package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeRun builds benchmark output holding every benchmark the report needs,
// each taking ns nanoseconds except those overridden.
func fakeRun(ns float64, override map[string]string) string {
	var b strings.Builder
	b.WriteString("goos: linux\ngoarch: amd64\ncpu: Test CPU\n")
	var names []string
	for _, r := range rows() {
		names = append(names, r.bench, r.baseline)
	}
	slices.Sort(names)
	fakeLines(&b, slices.Compact(names), ns, override)
	return b.String()
}

// fakeLines writes a result line for each of names, taking ns nanoseconds
// unless override has the line's metrics.
func fakeLines(b *strings.Builder, names []string, ns float64, override map[string]string) {
	for _, name := range names {
		line, ok := override[name]
		if !ok {
			line = fmt.Sprintf("%g ns/op\t%g ns/heartbeat\t1.5 max_writer_wait_ms", ns, ns)
		}
		fmt.Fprintf(b, "Benchmark%s-2   \t     100\t%s\n", name, line)
	}
}

func TestReportComputesRatiosFromOneRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.txt")
	run := fakeRun(1e6, map[string]string{
		"Heartbeat/registry/events=false": "50000 ns/op",
		"Heartbeat/baseline=reference":    "100000 ns/op",
	})
	if err := os.WriteFile(in, []byte(run), 0o644); err != nil {
		t.Fatal(err)
	}
	md, svg := filepath.Join(dir, "B.md"), filepath.Join(dir, "c.svg")
	if err := runReport(in, md, svg); err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(md)
	want := "| Heartbeat, events off, vs the reference's heartbeat transaction | 50.0 µs | 100.0 µs | 2.00× | ≥ 1.5× | yes |"
	if !strings.Contains(string(report), want) {
		t.Fatalf("report lacks %q:\n%s", want, report)
	}
	if !strings.Contains(string(report), "linux/amd64, Test CPU") || !strings.Contains(string(report), run[:20]) {
		t.Fatal("report lacks the machine or the raw output")
	}
	chart, _ := os.ReadFile(svg)
	if !strings.HasPrefix(string(chart), "<svg") || strings.Count(string(chart), "<polyline") != 4 {
		t.Fatalf("chart is not an SVG with four series:\n%s", chart)
	}
}

func TestReportSaysHowManyCounts(t *testing.T) {
	for _, tc := range []struct {
		runs int
		want []string
	}{
		{1, []string{"measures each benchmark once;", "-count=1 "}},
		{3, []string{"measures each benchmark 3 times (-count=3);", "-count=3 "}},
	} {
		dir := t.TempDir()
		in := filepath.Join(dir, "bench.txt")
		run := fakeRun(1e6, nil)
		if err := os.WriteFile(in, []byte(strings.Repeat(run, tc.runs)), 0o644); err != nil {
			t.Fatal(err)
		}
		md := filepath.Join(dir, "B.md")
		if err := runReport(in, md, filepath.Join(dir, "c.svg")); err != nil {
			t.Fatal(err)
		}
		report, _ := os.ReadFile(md)
		for _, want := range tc.want {
			if !strings.Contains(string(report), want) {
				t.Errorf("%d runs: report lacks %q", tc.runs, want)
			}
		}
	}
}

func TestReportFailsOnMissingBenchmark(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.txt")
	if err := os.WriteFile(in, []byte("BenchmarkHeartbeat/baseline=floor-2 10 5 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := runReport(in, filepath.Join(dir, "B.md"), filepath.Join(dir, "c.svg"))
	if err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("runReport = %v, want a missing-benchmark error", err)
	}
}

func TestRepeatedRunsReportTheMedian(t *testing.T) {
	res, err := parse(strings.NewReader("BenchmarkX/y-2 10 30 ns/op\nBenchmarkX/y-2 10 10 ns/op\nBenchmarkX/y-2 10 20 ns/op\nBenchmarkZ 1 4 ns/op\nBenchmarkZ 1 6 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := res.get("X/y", "ns/op"); v != 20 {
		t.Errorf("median of 30, 10, 20 = %g, want 20", v)
	}
	if v, _ := res.get("Z", "ns/op"); v != 5 {
		t.Errorf("median of 4, 6 = %g, want 5", v)
	}
}

// fakePostgresRun is benchmark output with every Postgres benchmark the
// report reads, each taking ns nanoseconds except those overridden, and
// the lease sets and the no-op sweep's registry at the sizes given.
func fakePostgresRun(ns float64, leases []int, workers int, override map[string]string) string {
	var b strings.Builder
	b.WriteString("postgres: postgres (PostgreSQL) 15.14\nsettings: test settings\ngoos: linux\ngoarch: amd64\ncpu: Test CPU\n")
	names := []string{
		"PostgresHeartbeat/registry/events=false", "PostgresHeartbeat/registry/events=true",
		"PostgresHeartbeat/baseline=reference", "PostgresHeartbeat/baseline=floor",
		"PostgresHeartbeatWorkers/per_call=10", "PostgresHeartbeatWorkers/per_call=100",
		"PostgresHeartbeatParallel/pool=default", "PostgresHeartbeatParallel/pool=16",
		"PostgresRegister/registry", "PostgresRegister/baseline=reference", "PostgresRegisterParallel",
		fmt.Sprintf("PostgresSweepNothingExpired/workers=%d/registry", workers),
		fmt.Sprintf("PostgresSweepNothingExpired/workers=%d/baseline=reference", workers),
		"PostgresListOrphanedLeases/registry/page=first", "PostgresListOrphanedLeases/registry/page=deep",
		"PostgresListOrphanedLeases/baseline=antijoin/page=first", "PostgresListOrphanedLeases/baseline=antijoin/page=deep",
	}
	for _, n := range leases {
		for _, who := range []string{"registry", "baseline=reference"} {
			for _, page := range []string{"first", "deep"} {
				names = append(names, fmt.Sprintf("PostgresListExpiredLeases/leases=%d/%s/page=%s", n, who, page))
			}
		}
	}
	fakeLines(&b, names, ns, override)
	return b.String()
}

func TestPostgresReportPutsBothRunsSideBySide(t *testing.T) {
	dir := t.TempDir()
	off, durable := filepath.Join(dir, "off.txt"), filepath.Join(dir, "durable.txt")
	write := func(name, run string) {
		if err := os.WriteFile(name, []byte(run), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(off, fakePostgresRun(1e6, []int{10_000, 1_000_000}, 1_000_000, map[string]string{
		"PostgresRegister/registry":           "200000 ns/op",
		"PostgresRegister/baseline=reference": "300000 ns/op",
	}))
	write(durable, fakePostgresRun(2e6, []int{10_000, 1_000_000}, 1_000_000, map[string]string{
		"PostgresRegister/registry":           "600000 ns/op",
		"PostgresRegister/baseline=reference": "300000 ns/op",
	}))
	md := filepath.Join(dir, "B.md")
	if err := runPostgresReport(off, durable, md); err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(md)
	for _, want := range []string{
		"| Register (refresh of a live worker) vs the ported reference register | ≥ 1.0× | 200.0 µs | 300.0 µs | 1.50× | yes | 600.0 µs | 300.0 µs | 0.50× | **no** |",
		"| Expired-lease page, first, at 1M leases vs at 10k (growth) | ≤ 1.5× and ≤ 10 ms |",
		"| Sweep with nothing expired among 1M live workers vs the reference's sweep | ≥ 1.0× | 1.00 ms | 1.00 ms | 1.00× | yes |",
		// No PostgresSweepExpired in either run.
		"| Sweep of 100k expired workers vs the reference's sweep | ≥ 1.0× | — | — | — | not run | — | — | — | not run |",
		"Server, fsync off: postgres (PostgreSQL) 15.14; test settings.",
		"## Raw output, durable",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", report)
	}
}

func TestPostgresReportRefusesARunWithoutPostgres(t *testing.T) {
	dir := t.TempDir()
	off := filepath.Join(dir, "off.txt")
	// What go test prints when REGISTRY_TEST_POSTGRES is unset: skips only,
	// and the SQLite benchmarks if -bench matched them.
	if err := os.WriteFile(off, []byte("BenchmarkHeartbeat/baseline=floor-2 10 5 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := runPostgresReport(off, off, filepath.Join(dir, "B.md"))
	if err == nil || !strings.Contains(err.Error(), "no Postgres benchmark ran") {
		t.Fatalf("runPostgresReport = %v, want a refusal", err)
	}
}

// The rows against FlowFabric's engine statements on an adopted FlowFabric
// database: ratios of the engine's time over the registry's, the HOT share
// that the heartbeat's target needs as well, and the sweep sizes that ran.
func TestPostgresReportComparesWithTheEngine(t *testing.T) {
	dir := t.TempDir()
	off, durable := filepath.Join(dir, "off.txt"), filepath.Join(dir, "durable.txt")
	run := func(name string, extra map[string]string) {
		var b strings.Builder
		b.WriteString(fakePostgresRun(1e6, []int{10_000}, 1_000_000, nil))
		names := slices.Sorted(maps.Keys(extra))
		fakeLines(&b, names, 1e6, extra)
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(off, map[string]string{
		"PostgresEngine/heartbeat":                                                "9 ns/op\t40000 registry-ns/op\t80000 engine-ns/op\t95.5 registry-%hot\t100 engine-%hot",
		"PostgresEngine/heartbeat,events":                                         "9 ns/op\t500000 registry-ns/op\t400000 engine-ns/op\t80 registry-%hot\t90 engine-%hot",
		"PostgresEngine/register":                                                 "9 ns/op\t200000 registry-ns/op\t300000 engine-ns/op",
		"PostgresEngine/drain":                                                    "9 ns/op\t300000 registry-ns/op\t300000 engine-ns/op",
		"PostgresFlowFabricSweep/nothing_expired/workers=200000/registry":         "100000 ns/op",
		"PostgresFlowFabricSweep/nothing_expired/workers=200000/baseline=engine":  "5000000 ns/op",
		"PostgresFlowFabricSweep/nothing_expired/workers=1000000/registry":        "100000 ns/op",
		"PostgresFlowFabricSweep/nothing_expired/workers=1000000/baseline=engine": "50000000 ns/op",
		"PostgresFlowFabricSweep/expired=20000":                                   "9000000000 ns/op\t1000000000 registry-ns/sweep\t2000000000 engine-ns/sweep",
		"PostgresFlowFabricSweep/expired=100000":                                  "9000000000 ns/op\t8000000000 registry-ns/sweep\t4000000000 engine-ns/sweep",
		"PostgresFlowFabricListOrphanedLeases/registry/page=first":                "3000000000 ns/op",
		"PostgresFlowFabricListOrphanedLeases/baseline=antijoin/page=first":       "4000000000 ns/op",
		"PostgresFlowFabricListOrphanedLeases/registry/page=deep":                 "5000000 ns/op",
		"PostgresFlowFabricListOrphanedLeases/baseline=antijoin/page=deep":        "50000000 ns/op",
	})
	// The durable run: the heartbeat fast enough but not HOT, one without
	// its share, and no drain, sweep of 100k or orphan pages.
	run(durable, map[string]string{
		"PostgresEngine/heartbeat":                                                "9 ns/op\t40000 registry-ns/op\t80000 engine-ns/op\t50 registry-%hot",
		"PostgresEngine/heartbeat,events":                                         "9 ns/op\t400000 registry-ns/op\t400000 engine-ns/op",
		"PostgresEngine/register":                                                 "9 ns/op\t300000 registry-ns/op\t150000 engine-ns/op",
		"PostgresFlowFabricSweep/nothing_expired/workers=1000000/registry":        "100000 ns/op",
		"PostgresFlowFabricSweep/nothing_expired/workers=1000000/baseline=engine": "50000 ns/op",
		"PostgresFlowFabricSweep/expired=20000":                                   "9000000000 ns/op\t1000000000 registry-ns/sweep\t1000000000 engine-ns/sweep",
	})
	md := filepath.Join(dir, "B.md")
	if err := runPostgresReport(off, durable, md); err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(md)
	notRun := "— | — | — | not run"
	for _, want := range []string{
		"| Heartbeat, events off, vs the engine's heartbeat (one UPDATE), on an adopted FlowFabric database; share of HOT updates | ≥ 1.5× and ≥ 90% HOT | " +
			"40.0 µs, 95.5% HOT | 80.0 µs, 100.0% HOT | 2.00× | yes | 40.0 µs, 50.0% HOT | 80.0 µs | 2.00× | **no** |",
		"| Heartbeat, events on, vs the engine's heartbeat transaction with its event, on an adopted FlowFabric database | ≥ 1.0× | " +
			"500.0 µs, 80.0% HOT | 400.0 µs, 90.0% HOT | 0.80× | **no** | 400.0 µs | 400.0 µs | 1.00× | yes |",
		"| Register (refresh of a live worker) vs the engine's register transaction, on an adopted FlowFabric database | ≥ 1.0× | " +
			"200.0 µs | 300.0 µs | 1.50× | yes | 300.0 µs | 150.0 µs | 0.50× | **no** |",
		"| Drain request vs the engine's mark_worker_dead transaction (it has no drain), on an adopted FlowFabric database | ≥ 1.0× | " +
			"300.0 µs | 300.0 µs | 1.00× | yes | " + notRun + " |",
		// The largest number of workers that ran.
		"| Sweep with nothing expired among 1M live workers vs the engine's tick of every partition, on an adopted FlowFabric database | ≥ 1.0× | " +
			"100.0 µs | 50.00 ms | 500.00× | yes | 100.0 µs | 50.0 µs | 0.50× | **no** |",
		"| Sweep of 20k expired workers vs the engine's tick of every partition, on an adopted FlowFabric database | ≥ 1.0× | " +
			"1.00 s | 2.00 s | 2.00× | yes | 1.00 s | 1.00 s | 1.00× | yes |",
		"| Sweep of 100k expired workers vs the engine's tick of every partition, on an adopted FlowFabric database | ≥ 1.0× | " +
			"8.00 s | 4.00 s | 0.50× | **no** | " + notRun + " |",
		"| Orphaned-lease page of 1000, first, held leases over 1,000 holders (10 dead) on an adopted FlowFabric database, vs the naive anti-join | ≤ 10 ms | " +
			"3.00 s | 4.00 s | 1.33× | **no** | " + notRun + " |",
		"| Orphaned-lease page of 1000, deep, held leases over 1,000 holders (10 dead) on an adopted FlowFabric database, vs the naive anti-join | ≤ 10 ms | " +
			"5.00 ms | 50.00 ms | 10.00× | yes | " + notRun + " |",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(string(report), "among 200k live workers") {
		t.Error("report has a row for the smaller no-op sweep")
	}
	if t.Failed() {
		t.Logf("report:\n%s", report)
	}
}

// A heartbeat that did not report its HOT share misses the target that
// needs it, however fast; a run without the engine's benchmarks shows them
// not run, at the sizes the benchmark runs by default.
func TestPostgresReportEngineRowsWithoutFigures(t *testing.T) {
	var b strings.Builder
	b.WriteString(fakePostgresRun(1e6, nil, 1_000_000, nil))
	fakeLines(&b, []string{"PostgresEngine/heartbeat"}, 0, map[string]string{
		"PostgresEngine/heartbeat": "9 ns/op\t40000 registry-ns/op\t80000 engine-ns/op\t0 engine-%hot",
	})
	withHeartbeat, err := parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	without, err := parse(strings.NewReader(fakePostgresRun(1e6, nil, 1_000_000, nil)))
	if err != nil {
		t.Fatal(err)
	}
	report, err := postgresMarkdown([2]results{withHeartbeat, without}, [2]string{"", ""})
	if err != nil {
		t.Fatal(err)
	}
	notRun := "— | — | — | not run"
	for _, want := range []string{
		"| ≥ 1.5× and ≥ 90% HOT | 40.0 µs, no HOT share | 80.0 µs, 0.0% HOT | 2.00× | **no** | " + notRun + " |",
		"| Register (refresh of a live worker) vs the engine's register transaction, on an adopted FlowFabric database | ≥ 1.0× | " + notRun + " | " + notRun + " |",
		"| Sweep with nothing expired among 1M live workers vs the engine's tick of every partition, on an adopted FlowFabric database | ≥ 1.0× | " + notRun + " | " + notRun + " |",
		"| Sweep of 20k expired workers vs the engine's tick of every partition, on an adopted FlowFabric database | ≥ 1.0× | " + notRun + " | " + notRun + " |",
		"| Sweep of 100k expired workers vs the engine's tick of every partition, on an adopted FlowFabric database | ≥ 1.0× | " + notRun + " | " + notRun + " |",
		"on an adopted FlowFabric database, vs the naive anti-join | ≤ 10 ms | " + notRun + " | " + notRun + " |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", report)
	}
}

// TestPostgresReportKeepsTheHandWrittenSection: a new report keeps what
// the one it replaces has between the kept markers.
func TestPostgresReportKeepsTheHandWrittenSection(t *testing.T) {
	dir := t.TempDir()
	off, durable, md := filepath.Join(dir, "off.txt"), filepath.Join(dir, "durable.txt"), filepath.Join(dir, "B.md")
	for _, name := range []string{off, durable} {
		if err := os.WriteFile(name, []byte(fakePostgresRun(1e6, []int{10_000}, 1_000_000, nil)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := runPostgresReport(off, durable, md); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(md)
	if !strings.Contains(string(first), keptStart+keptPlaceholder+keptEnd) {
		t.Fatalf("a first report has no empty kept section:\n%s", first)
	}
	const storm = "## The storm\n\nNo worker seen expired.\n"
	edited := strings.Replace(string(first), keptPlaceholder, storm, 1)
	if err := os.WriteFile(md, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runPostgresReport(off, durable, md); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(md)
	if string(second) != edited {
		t.Errorf("the second report differs from the edited first; it has the kept section: %v",
			strings.Contains(string(second), keptStart+storm+keptEnd))
	}
}
