package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRun builds benchmark output holding every benchmark the report needs,
// each taking ns nanoseconds except those overridden.
func fakeRun(ns float64, override map[string]string) string {
	var b strings.Builder
	b.WriteString("goos: linux\ngoarch: amd64\ncpu: Test CPU\n")
	names := map[string]bool{}
	for _, r := range rows() {
		names[r.bench], names[r.baseline] = true, true
	}
	for name := range names {
		line, ok := override[name]
		if !ok {
			line = fmt.Sprintf("%g ns/op\t%g ns/heartbeat\t1.5 max_writer_wait_ms", ns, ns)
		}
		fmt.Fprintf(&b, "Benchmark%s-2   \t     100\t%s\n", name, line)
	}
	return b.String()
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
