package main

// The Postgres report: BENCHMARKS-postgres.md from two runs of the
// Postgres benchmarks (registry/postgres_bench_test.go,
// BenchmarkPostgresListOrphanedLeases and, on an adopted FlowFabric
// database, BenchmarkPostgresFlowFabricListOrphanedLeases,
// BenchmarkPostgresEngine and BenchmarkPostgresFlowFabricSweep), one on a
// server with fsync off and one with durable commits, side by side, with
// the parity rows of BENCHMARKS.md against the reference's statements
// ported to Postgres and rows against FlowFabric's own engine statements.
// `make bench-postgres` (scripts/bench-postgres) starts both servers, runs
// both and calls this.
//
// The names it reads, after "Benchmark" and without the -N suffix (a
// benchmark that is missing from a run shows as not run; a run without
// any Postgres benchmark is an error):
//
//	PostgresHeartbeat/registry/events=false                 ns/op
//	PostgresHeartbeat/registry/events=true                  ns/op
//	PostgresHeartbeat/baseline=reference                    ns/op
//	PostgresHeartbeat/baseline=floor                        ns/op
//	PostgresHeartbeatWorkers/per_call=10                    ns/heartbeat
//	PostgresHeartbeatWorkers/per_call=100                   ns/heartbeat
//	PostgresHeartbeatParallel/pool=default                  ns/op (per heartbeat)
//	PostgresHeartbeatParallel/pool=16                       ns/op (per heartbeat)
//	PostgresRegister/registry                               ns/op
//	PostgresRegister/baseline=reference                     ns/op
//	PostgresRegisterParallel                                ns/op (per register)
//	PostgresSweepNothingExpired/workers=N/registry          ns/op (any N; the largest)
//	PostgresSweepNothingExpired/workers=N/baseline=reference
//	PostgresSweepNothingExpired/workers=N/baseline=v5
//	PostgresHeartbeat/baseline=v5                           ns/op
//	PostgresSweepExpired/registry                           ns/op, max_writer_wait_ms
//	PostgresSweepExpired/baseline=reference                 ns/op, max_writer_wait_ms
//	PostgresListExpiredLeases/leases=N/registry/page=first  ns/op (every N run)
//	PostgresListExpiredLeases/leases=N/registry/page=deep
//	PostgresListExpiredLeases/leases=N/baseline=reference/page=first
//	PostgresListExpiredLeases/leases=N/baseline=reference/page=deep
//	PostgresListOrphanedLeases/registry/page=first          ns/op
//	PostgresListOrphanedLeases/registry/page=deep
//	PostgresListOrphanedLeases/baseline=antijoin/page=first
//	PostgresListOrphanedLeases/baseline=antijoin/page=deep
//	PostgresFlowFabricListOrphanedLeases/registry/page=first ns/op
//	PostgresFlowFabricListOrphanedLeases/registry/page=deep
//	PostgresFlowFabricListOrphanedLeases/baseline=antijoin/page=first
//	PostgresFlowFabricListOrphanedLeases/baseline=antijoin/page=deep
//	PostgresEngine/heartbeat             registry-ns/op, engine-ns/op, registry-%hot, engine-%hot
//	PostgresEngine/heartbeat,events      registry-ns/op, engine-ns/op, registry-%hot, engine-%hot
//	PostgresEngine/register              registry-ns/op, engine-ns/op
//	PostgresEngine/drain                 registry-ns/op, engine-ns/op
//	PostgresFlowFabricSweep/nothing_expired/workers=N/registry         ns/op (any N; the largest)
//	PostgresFlowFabricSweep/nothing_expired/workers=N/baseline=engine
//	PostgresFlowFabricSweep/expired=M    registry-ns/sweep, engine-ns/sweep (every M run)
//
// Header lines "postgres: <server version>" and "settings: <...>", which
// scripts/bench-postgres writes before each run's output, name the server.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

func runPostgresReport(in, durable, md string) error {
	var runs [2]results
	var raws [2]string
	for i, name := range []string{in, durable} {
		raw, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		res, err := parse(strings.NewReader(string(raw)))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !slices.ContainsFunc(slices.Collect(maps.Keys(res.metrics)), func(k string) bool { return strings.HasPrefix(k, "BenchmarkPostgres") }) {
			return fmt.Errorf("%s: no Postgres benchmark ran (is REGISTRY_TEST_POSTGRES set?)", name)
		}
		runs[i], raws[i] = res, string(raw)
	}
	report, err := postgresMarkdown(runs, raws)
	if err != nil {
		return err
	}
	// Keep what was written by hand between the kept markers: the storm,
	// profiles, the misses' explanations.
	if old, err := os.ReadFile(md); err == nil {
		if _, rest, ok := strings.Cut(string(old), keptStart); ok {
			if section, _, ok := strings.Cut(rest, keptEnd); ok {
				report = strings.Replace(report, keptStart+keptPlaceholder+keptEnd, keptStart+section+keptEnd, 1)
			}
		}
	}
	return os.WriteFile(md, []byte(report), 0o644)
}

// The bounds of the Postgres report's section that a new report keeps
// from the one it replaces.
const (
	keptStart       = "<!-- kept: written by hand, kept by make bench-postgres -->\n"
	keptEnd         = "<!-- /kept -->\n"
	keptPlaceholder = "Nothing written here yet.\n"
)

// sizes returns the sizes N, ascending, for which name (a pattern with
// one %d) ran.
func (r results) sizes(pattern string) []int {
	re := regexp.MustCompile("^Benchmark" + strings.Replace(regexp.QuoteMeta(pattern), "%d", `(\d+)`, 1) + "$")
	var out []int
	for name := range r.metrics {
		if m := re.FindStringSubmatch(name); m != nil {
			n, _ := strconv.Atoi(m[1])
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

const (
	pgLeasePage     = "PostgresListExpiredLeases/leases=%d/%s/page=%s"
	pgSweepNothing  = "PostgresSweepNothingExpired/workers=%d/%s"
	pgSweepNothingN = "PostgresSweepNothingExpired/workers=%d/registry"
	pgLeaseSizes    = "PostgresListExpiredLeases/leases=%d/registry/page=first"

	pgEngine          = "PostgresEngine/"
	pgFFSweepNothing  = "PostgresFlowFabricSweep/nothing_expired/workers=%d/%s"
	pgFFSweepNothingN = "PostgresFlowFabricSweep/nothing_expired/workers=%d/registry"
	pgFFSweepExpired  = "PostgresFlowFabricSweep/expired=%d"
)

// postgresRows are BENCHMARKS.md's rows for the Postgres benchmarks of
// runs, whose sizes (lease sets, the no-op sweep's registry) are those of
// the first run that has them.
func postgresRows(runs [2]results) []row {
	var out []row
	add := func(r row) { out = append(out, r) }
	var parallel []row
	for _, pool := range []struct{ name, what string }{{"default", "default pool"}, {"16", "pool of 16"}} {
		parallel = append(parallel, row{what: "16 goroutines heartbeating, " + pool.what + ", aggregate throughput vs one goroutine",
			bench: "PostgresHeartbeatParallel/pool=" + pool.name})
	}
	out = append(out, writeRows("Postgres", "the ported reference", parallel...)...)
	add(row{what: "Register from 16 goroutines (pool of 16), aggregate throughput vs one goroutine", bench: "PostgresRegisterParallel", unit: "ns/op",
		baseline: "PostgresRegister/registry", bunit: "ns/op"})
	leases := firstSizes(runs, pgLeaseSizes)
	page := func(n int, who, which string) string { return fmt.Sprintf(pgLeasePage, n, who, which) }
	for _, n := range leases {
		for _, which := range []string{"first", "deep"} {
			add(row{what: fmt.Sprintf("Expired-lease page of 1000, %s, %s leases, vs the ported reference query", which, human(n)),
				bench: page(n, "registry", which), unit: "ns/op", baseline: page(n, "baseline=reference", which), bunit: "ns/op",
				target: "≥ 1.0×", ok: atLeast(1)})
		}
	}
	if len(leases) > 1 {
		lo, hi := leases[0], leases[len(leases)-1]
		for _, which := range []string{"first", "deep"} {
			add(row{what: fmt.Sprintf("Expired-lease page, %s, at %s leases vs at %s (growth)", which, human(hi), human(lo)),
				bench: page(hi, "registry", which), unit: "ns/op", baseline: page(lo, "registry", which), bunit: "ns/op",
				inverse: true, target: "≤ 1.5× and ≤ 10 ms", ok: func(r, v float64) bool { return r <= 1.5 && v <= 10e6 }})
		}
	}
	for _, which := range []string{"first", "deep"} {
		add(row{what: fmt.Sprintf("Orphaned-lease page of 1000, %s, held leases over 1,000 holders (10 dead), vs the naive anti-join", which),
			bench: "PostgresListOrphanedLeases/registry/page=" + which, unit: "ns/op", baseline: "PostgresListOrphanedLeases/baseline=antijoin/page=" + which, bunit: "ns/op",
			target: "≤ 10 ms", ok: func(_, v float64) bool { return v <= 10e6 }})
	}
	for _, which := range []string{"first", "deep"} {
		add(row{what: fmt.Sprintf("Orphaned-lease page of 1000, %s, held leases over 1,000 holders (10 dead) on an adopted FlowFabric database, vs the naive anti-join", which),
			bench: "PostgresFlowFabricListOrphanedLeases/registry/page=" + which, unit: "ns/op", baseline: "PostgresFlowFabricListOrphanedLeases/baseline=antijoin/page=" + which, bunit: "ns/op",
			target: "≤ 10 ms", ok: func(_, v float64) bool { return v <= 10e6 }})
	}
	workers := firstSizes(runs, pgSweepNothingN)
	if len(workers) > 0 {
		n := workers[len(workers)-1]
		add(row{what: fmt.Sprintf("Sweep with nothing expired among %s live workers vs the reference's sweep", human(n)),
			bench: fmt.Sprintf(pgSweepNothing, n, "registry"), unit: "ns/op", baseline: fmt.Sprintf(pgSweepNothing, n, "baseline=reference"), bunit: "ns/op",
			target: "≥ 1.0×", ok: atLeast(1)})
	} else {
		add(row{what: "Sweep with nothing expired among the live workers vs the reference's sweep",
			bench: fmt.Sprintf(pgSweepNothing, 1_000_000, "registry"), unit: "ns/op", baseline: fmt.Sprintf(pgSweepNothing, 1_000_000, "baseline=reference"), bunit: "ns/op",
			target: "≥ 1.0×", ok: atLeast(1)})
	}
	// FlowFabric's partitioned tables against the store's own unpartitioned
	// ones of schema version 5, in the same run (issue 17's bound: within
	// 1.25x).
	add(row{what: "Heartbeat, events off, on FlowFabric's partitioned tables vs the version-5 store's unpartitioned table",
		bench: "PostgresHeartbeat/registry/events=false", unit: "ns/op", baseline: "PostgresHeartbeat/baseline=v5", bunit: "ns/op",
		target: "≥ 0.8× (within 1.25×)", ok: atLeast(0.8)})
	if len(workers) > 0 {
		n := workers[len(workers)-1]
		// No target: version 5 found expired rows through the expiry
		// index that version 8 dropped (issue 29), so this is the index
		// probe against the scan that replaced it.
		add(row{what: fmt.Sprintf("Sweep with nothing expired among %s live workers, partitioned tables vs the version-5 store (its expiry index, dropped in version 8)", human(n)),
			bench: fmt.Sprintf(pgSweepNothing, n, "registry"), unit: "ns/op", baseline: fmt.Sprintf(pgSweepNothing, n, "baseline=v5"), bunit: "ns/op"})
	}
	add(row{what: "Sweep of 100k expired workers vs the reference's sweep", bench: "PostgresSweepExpired/registry", unit: "ns/op",
		baseline: "PostgresSweepExpired/baseline=reference", bunit: "ns/op", target: "≥ 1.0×", ok: atLeast(1)})
	add(row{what: "Longest wait of a concurrent writer during that sweep vs the reference's", bench: "PostgresSweepExpired/registry", unit: "max_writer_wait_ms",
		baseline: "PostgresSweepExpired/baseline=reference", bunit: "max_writer_wait_ms", target: "≤ ~50 ms", ok: func(_, v float64) bool { return v <= 60 }})
	return append(out, engineRows(runs)...)
}

// engineRows compare the registry with FlowFabric's own engine statements
// on an adopted FlowFabric database (BenchmarkPostgresEngine,
// BenchmarkPostgresFlowFabricSweep), at issue 29's targets, which are the
// fsync-off run's.
func engineRows(runs [2]results) []row {
	// Each pair took turns in one benchmark, each side reporting the
	// median of its blocks of calls (see registry's paired).
	pair := func(what, bench, target string, min float64, hot bool) row {
		r := row{what: what, bench: pgEngine + bench, unit: "registry-ns/op", baseline: pgEngine + bench, bunit: "engine-ns/op",
			target: target, ok: atLeast(min)}
		if hot {
			r.share, r.bshare = "registry-%hot", "engine-%hot"
		}
		return r
	}
	hb := pair("Heartbeat, events off, vs the engine's heartbeat (one UPDATE), on an adopted FlowFabric database; share of HOT updates",
		"heartbeat", "≥ 1.5× and ≥ 90% HOT", 1.5, true)
	hb.shareMin = 90
	out := []row{
		hb,
		pair("Heartbeat, events on, vs the engine's heartbeat transaction with its event, on an adopted FlowFabric database",
			"heartbeat,events", "≥ 1.0×", 1, true),
		pair("Register (refresh of a live worker) vs the engine's register transaction, on an adopted FlowFabric database",
			"register", "≥ 1.0×", 1, false),
		pair("Drain request vs the engine's mark_worker_dead transaction (it has no drain), on an adopted FlowFabric database",
			"drain", "≥ 1.0×", 1, false),
	}
	// The sizes that ran, or the benchmark's own when none did.
	n := 1_000_000
	if workers := firstSizes(runs, pgFFSweepNothingN); len(workers) > 0 {
		n = workers[len(workers)-1]
	}
	out = append(out, row{what: fmt.Sprintf("Sweep with nothing expired among %s live workers vs the engine's tick of every partition, on an adopted FlowFabric database", human(n)),
		bench: fmt.Sprintf(pgFFSweepNothing, n, "registry"), unit: "ns/op", baseline: fmt.Sprintf(pgFFSweepNothing, n, "baseline=engine"), bunit: "ns/op",
		target: "≥ 1.0×", ok: atLeast(1)})
	expired := firstSizes(runs, pgFFSweepExpired)
	if len(expired) == 0 {
		expired = []int{20_000, 100_000}
	}
	for _, m := range expired {
		out = append(out, row{what: fmt.Sprintf("Sweep of %s expired workers vs the engine's tick of every partition, on an adopted FlowFabric database", human(m)),
			// The two took turns in one benchmark, each reporting the
			// median of its rounds.
			bench: fmt.Sprintf(pgFFSweepExpired, m), unit: "registry-ns/sweep", baseline: fmt.Sprintf(pgFFSweepExpired, m), bunit: "engine-ns/sweep",
			target: "≥ 1.0×", ok: atLeast(1)})
	}
	return out
}

// firstSizes are the sizes (see results.sizes) of pattern in the first of
// runs that has any.
func firstSizes(runs [2]results, pattern string) []int {
	for _, r := range runs {
		if sizes := r.sizes(pattern); len(sizes) > 0 {
			return sizes
		}
	}
	return nil
}

// cells are figures, or dashes and "not run" where a benchmark of the
// row is missing from res.
func (r row) cells(res results) []string {
	c, err := r.figures(res)
	if err != nil {
		return []string{"—", "—", "—", "not run"}
	}
	return c
}

func postgresMarkdown(runs [2]results, raws [2]string) (string, error) {
	rows := postgresRows(runs)
	ran := false
	for _, r := range rows {
		for _, res := range runs {
			if r.cells(res)[3] != "not run" {
				ran = true
			}
		}
	}
	if !ran {
		return "", errors.New("none of the report's Postgres benchmarks is in either run")
	}
	var b strings.Builder
	server := func(res results) string {
		s := res.header["postgres"]
		if s == "" {
			s = "PostgreSQL (version not recorded)"
		}
		if set := res.header["settings"]; set != "" {
			s += "; " + set
		}
		return s
	}
	h := runs[0].header
	fmt.Fprintf(&b, `# Benchmarks: the Postgres store

The same suite as [BENCHMARKS.md](BENCHMARKS.md), for the Postgres store
(registry/postgres_bench_test.go and BenchmarkPostgresListOrphanedLeases),
compared with baselines measured in the same run on the same database,
through a pgx pool configured as the registry's: the reference
implementation's statements ported to Postgres, and the floor, one
autocommit UPDATE of one row. The rows "on an adopted FlowFabric
database" (BenchmarkPostgresFlowFabricListOrphanedLeases,
BenchmarkPostgresEngine, BenchmarkPostgresFlowFabricSweep) run on the
engine's own 256-way partitioned schema, against FlowFabric's own engine
statements, read from its module at bench time; their targets (issue 29)
are the fsync-off run's, and "HOT" is the share of the run's updates of
ff_worker_registry that were heap-only. The engine rows and the sweeps of
expired workers there run the registry and the engine in turns (blocks
of calls, rounds of sweeps) and report each side's median: run one after
the other, the two sides met different load on this shared machine.
Each figure is from one of two runs on
servers that the make target starts on this machine, client and server
sharing its CPUs over loopback: one with fsync, synchronous_commit and
full_page_writes off, which leaves durability's cost out, and one with
durable commits (PG_DURABLE=1), which puts a WAL flush in every commit.

Reproduce:

	make bench-postgres

which runs scripts/bench-postgres: a server with fsync off on port
$PG_BENCH_PORT (default 54341), then a durable one on $PG_BENCH_DURABLE_PORT
(default 54342), each started by scripts/pg-test-server, running

	go test -run='^$' -bench=Postgres -count=$BENCH_COUNT -timeout=90m ./registry/

into bench-postgres.txt and bench-postgres-durable.txt, and then

	go run ./scripts/benchreport -postgres -in bench-postgres.txt -durable bench-postgres-durable.txt -md BENCHMARKS-postgres.md

Machine: %s/%s, %s, %d logical CPUs as seen by the report generator.
Server, fsync off: %s. Server, durable: %s.
A figure is the median of the run's counts (-count) where it ran more
than once. A ratio is the baseline's time over this library's (higher is
better), except where marked "growth" or "wait", which divide this
library's time by the baseline's. "Not run" marks a benchmark missing
from a run.

| Measurement | Target | fsync off: this library | baseline | ratio | met | durable: this library | baseline | ratio | met |
|---|---|---|---|---|---|---|---|---|---|
`, h["goos"], h["goarch"], h["cpu"], runtime.NumCPU(), server(runs[0]), server(runs[1]))
	for _, r := range rows {
		cells := append(r.cells(runs[0]), r.cells(runs[1])...)
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.what, r.target, strings.Join(cells, " | "))
	}
	b.WriteString("\n" + keptStart + keptPlaceholder + keptEnd)
	b.WriteString(postgresNotes)
	for i, name := range []string{"fsync off", "durable"} {
		fmt.Fprintf(&b, "\n## Raw output, %s\n\n```\n%s```\n", name, raws[i])
	}
	return b.String(), nil
}

// postgresNotes explain the Postgres figures; they hold for any run.
const postgresNotes = `
## Reading the table

- A single heartbeat is one round trip of one UPDATE, as the floor is,
  on FlowFabric's 256-way partitioned table. A statement that names the
  parent table is planned for each call's partition key (measured before
  routing: 91 µs of bind against 59 µs of execute, and a generic plan over
  every partition built once per connection in 29 ms to 0.5 s). The
  registry's statements about one worker name the worker's partition
  instead (sqlc's text with the table rewritten, prepared once per
  partition per connection), so they plan in microseconds.
- Since schema version 8 no registry index includes a column a heartbeat
  writes, so heartbeats are HOT updates: the HOT column is the share over
  the run, from pg_stat_user_tables.
- A heartbeat with events on, and a register that refreshes a live
  registration, are one statement with their event (the transaction when
  the row is held or the event's key taken); other registrations are a
  transaction of a few round trips.
- With durable commits every writing call waits for a WAL flush, which
  this machine's disk makes the largest single cost: ratios between calls
  that each commit once move towards 1, and batches gain the most.
- Unlike SQLite, Postgres runs writers in parallel: 16 goroutines get more
  done than one, and more so with a pool as large as the goroutine count
  (` + "`pool_max_conns=16`" + ` in the URL).
- Register and heartbeats with events on take the audit-log lock (see the
  package documentation) and an extra round trip or two; the lock also
  makes event-writing transactions wait for each other across processes.
- The expired-lease walk is an index-only walk of the registry's lease
  index from the cursor with a primary-key lookup per lease and no sort
  (TestPostgresExpiredLeaseQueryPlan). The reference's query, ported with
  its expiry-only index and text cursor, keeps only the top 1000 of the
  expired set on the first page and sorts everything after the cursor
  deep in the walk.
- The sweep of 100k expired workers on a registry-made database is
  compared with the reference's one statement on its one unpartitioned
  table. The registry's table has FlowFabric's 256 partitions, and its
  sweep runs as on FlowFabric's own database: a probe of every partition
  for an expired row, then per partition a statement that locks up to a
  batch of expired rows (SKIP LOCKED), deletes them by ctid and writes
  their events, at most 1,000 rows a transaction. Against the engine's
  tick on FlowFabric's schema, the comparison the third stage set, see the
  rows "on an adopted FlowFabric database" and why they miss above; this
  row was not profiled again.
`
