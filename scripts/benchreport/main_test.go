package main

import (
	"fmt"
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
		"| Sweep with nothing expired among 1M live workers vs the reference's sweep | ≤ 0.5 ms | 1.00 ms | 1.00 ms | 1.00× | **no** |",
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
