package main

import (
	"context"
	"database/sql"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flowfabric/workerregistry/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestWorkersTableGolden pins the layout of workers list, default, -wide
// and -all, on a clock fixed at 12:00:04: relative ages, the STATUS of a
// live, a draining, an expired and a skewed worker, and long values cut to
// keep the default table within 120 columns. Run with -update to rewrite.
func TestWorkersTableGolden(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		now := t0.Add(4 * time.Second)
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			register(t, reg, "prod", "gpu-pool-1-7f3a", "gpu-pool-1", []string{"default", "gpu"}, []string{"cuda", "fp16"}, 30*time.Second, t0)
			register(t, reg, "prod", "gpu-pool-1-8c21", "gpu-pool-1", []string{"gpu"}, []string{"cuda"}, 2*time.Hour, t0.Add(-time.Hour))
			if _, err := reg.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "prod", WorkerInstanceID: "gpu-pool-1-8c21", Now: t0.Add(-2 * time.Second)}); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "prod", WorkerInstanceID: "gpu-pool-1-8c21", Reason: "retire", Now: t0}); err != nil {
				t.Fatal(err)
			}
			register(t, reg, "prod", "cpu-7", "cpu", []string{"default"}, nil, 10*time.Second, t0.Add(-20*time.Second))
			register(t, reg, "prod", "clock-skew", "cpu", []string{"default"}, nil, time.Minute, t0.Add(10*time.Second))
			register(t, reg, "staging-eu-west-1-reporting", "batch-worker-with-a-very-long-instance-name-0001", "batch",
				[]string{"default", "batch", "reports", "exports", "imports"}, []string{"avx512", "bigmem", "ssd", "tpu-v5e"},
				1500*time.Millisecond, t0.Add(3*time.Second))
			register(t, reg, "ops", "sweeper-0", "ops", []string{"maintenance"}, nil, 24*time.Hour, t0.Add(-26*time.Hour-5*time.Minute))
			// Reports: a short one, and the longest a table must cut.
			for _, rep := range []struct {
				ns, instance string
				r            registry.WorkerReport
				at           time.Time
			}{
				{"prod", "gpu-pool-1-7f3a", registry.WorkerReport{InFlight: 3, Capacity: 8, Version: "v1.42.0"}, t0},
				{"staging-eu-west-1-reporting", "batch-worker-with-a-very-long-instance-name-0001",
					registry.WorkerReport{InFlight: 2147483647, Capacity: 2147483647, Version: "2026.01.01-rc.7+build.4411"}, t0.Add(3 * time.Second)},
			} {
				if _, err := reg.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: rep.ns, WorkerInstanceID: rep.instance, Report: &rep.r,
					Now: rep.at}); err != nil {
					t.Fatal(err)
				}
			}
		})
		for _, tc := range []struct {
			golden string
			args   []string
		}{
			{"workers-list.golden", nil},
			{"workers-list-wide.golden", []string{"-wide"}},
			{"workers-list-all.golden", []string{"-all"}},
		} {
			res := ctlAt(t, path, now, 0, append([]string{"workers", "list"}, tc.args...)...)
			file := filepath.Join("testdata", tc.golden)
			if *update && strings.HasSuffix(t.Name(), "/sqlite") {
				if err := os.WriteFile(file, []byte(res.Stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if res.Stdout != string(want) {
				t.Errorf("workers list %q differs from %s:\n%s\nwant:\n%s", tc.args, file, res.Stdout, want)
			}
			if tc.args == nil || tc.args[0] == "-all" {
				for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
					if n := utf8.RuneCountInString(line); n > 120 {
						t.Errorf("workers list %q: a line of %d columns, want at most 120:\n%s", tc.args, n, line)
					}
				}
			}
		}
	})
}

func TestAges(t *testing.T) {
	now := t0
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{now, "<1s ago"},
		{now.Add(-999 * time.Millisecond), "<1s ago"},
		{now.Add(500 * time.Millisecond), "in <1s"},
		{now.Add(-time.Second), "1s ago"},
		{now.Add(-4 * time.Second), "4s ago"},
		{now.Add(26500 * time.Millisecond), "in 26s"},
		{now.Add(-59 * time.Second), "59s ago"},
		{now.Add(-time.Minute), "1m ago"},
		{now.Add(-192 * time.Second), "3m12s ago"},
		{now.Add(time.Hour - time.Second), "in 59m59s"},
		{now.Add(-2*time.Hour - 5*time.Minute - 30*time.Second), "2h5m ago"},
		{now.Add(24 * time.Hour), "in 1d"},
		{now.Add(-76 * time.Hour), "3d4h ago"},
		{now.Add(-(99*24 + 23) * time.Hour), "99d23h ago"},
		{now.Add(-(339*24 + 20) * time.Hour), "339d ago"},
		{now.Add(-time.Duration(1<<63 - 1)), "106751d ago"},
	} {
		if got := relative(tc.at, now); got != tc.want {
			t.Errorf("relative(now%+v) = %q, want %q", tc.at.Sub(now), got, tc.want)
		}
	}
	for d, want := range map[time.Duration]string{
		30 * time.Second:                 "30s",
		90 * time.Second:                 "1m30s",
		time.Hour:                        "1h",
		90 * time.Minute:                 "1h30m",
		24 * time.Hour:                   "24h",
		1500 * time.Millisecond:          "1.5s",
		250 * time.Millisecond:           "250ms",
		time.Hour + 500*time.Millisecond: "1h0m0.5s",
	} {
		if got := ttl(d); got != want {
			t.Errorf("ttl(%v) = %q, want %q", d, got, want)
		}
	}
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 5, "-"}, {"abc", 5, "abc"}, {"abcde", 5, "abcde"}, {"abcdef", 5, "abcd…"}, {"ünïcödé", 4, "ünï…"}, {"abcdef", 0, "abcdef"},
		// Escaped, never cut inside an escape.
		{"a\x1bb", 0, `a\x1bb`}, {"\u202eab\n", 0, `\u202eab\n`}, {"abcdefghijklm\x1b[31m", 16, "abcdefghijklm…"},
		{"ab\x1b[31m", 7, `ab\x1b…`}, {"ab\x1b", 5, "ab…"}, {`a\b`, 0, `a\\b`}, {"\xffok", 0, `\xffok`}, {"日本\U000E0001", 0, `日本\U000e0001`},
	} {
		if got := cut(tc.s, tc.n); got != tc.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
