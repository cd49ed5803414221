package registry_test

// Benchmarks of the registry against baselines measured in the same run:
// statements that behave like the reference implementation's (FlowFabric's
// SQLite worker registry), run with database/sql on the same database file,
// and the floor, one autocommit UPDATE of one row. BENCHMARKS.md has the
// command, the results and the ratios.

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// The reference's schema: no stored expiry, and an event table keyed by
// timestamp (which is why it drops same-millisecond events). Both engines
// take it as it is: BIGINT is Postgres's 64-bit integer, and on SQLite it
// has the same INTEGER affinity as the reference's INTEGER.
const referenceSchema = `
CREATE TABLE ref_worker_registry (
    namespace TEXT NOT NULL, worker_instance_id TEXT NOT NULL, worker_id TEXT NOT NULL,
    lanes TEXT NOT NULL, capabilities_csv TEXT NOT NULL DEFAULT '',
    last_heartbeat_ms BIGINT NOT NULL, liveness_ttl_ms BIGINT NOT NULL, registered_at_ms BIGINT NOT NULL,
    PRIMARY KEY (namespace, worker_instance_id));
CREATE TABLE ref_worker_registry_event (
    namespace TEXT NOT NULL, worker_instance_id TEXT NOT NULL, event_kind TEXT NOT NULL,
    event_at_ms BIGINT NOT NULL, reason TEXT,
    PRIMARY KEY (namespace, worker_instance_id, event_at_ms));`

// The reference's statements, verbatim in shape.
const (
	refHeartbeatUpdate = `UPDATE ref_worker_registry SET last_heartbeat_ms = ?3
		WHERE namespace = ?1 AND worker_instance_id = ?2 AND last_heartbeat_ms + liveness_ttl_ms > ?3
		RETURNING liveness_ttl_ms`
	refEventInsert = `INSERT OR IGNORE INTO ref_worker_registry_event
		(namespace, worker_instance_id, event_kind, event_at_ms, reason) VALUES (?, ?, ?, ?, NULL)`
	refRegisterSelect = `SELECT worker_id FROM ref_worker_registry WHERE namespace = ? AND worker_instance_id = ?`
	refRegisterUpsert = `INSERT INTO ref_worker_registry (namespace, worker_instance_id, worker_id, lanes,
		capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(namespace, worker_instance_id) DO UPDATE SET worker_id = excluded.worker_id,
		lanes = excluded.lanes, capabilities_csv = excluded.capabilities_csv,
		last_heartbeat_ms = excluded.last_heartbeat_ms, liveness_ttl_ms = excluded.liveness_ttl_ms`
	refSweep = `DELETE FROM ref_worker_registry WHERE last_heartbeat_ms + liveness_ttl_ms < ?
		RETURNING namespace, worker_instance_id`
	floorUpdate = `UPDATE ref_worker_registry SET last_heartbeat_ms = ? WHERE namespace = ? AND worker_instance_id = ?`
)

// benchWorkers is the registry size for the per-call benchmarks.
const benchWorkers = 10_000

// baselineDB opens the reference's kind of connection to path: one
// connection, deferred transactions (sqlx's default), WAL.
func baselineDB(b *testing.B, path string) *sql.DB {
	b.Helper()
	sqlDB, err := sql.Open(registry.SQLiteDriverName, "file:"+path+
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	b.Cleanup(func() { sqlDB.Close() })
	return sqlDB
}

// workerFixture registers n workers (namespace ns, instances w00000...) in
// both the registry and the reference's table, all live for an hour from
// t0, and returns the registry, a baseline connection and the file path.
func workerFixture(b *testing.B, n int, opts ...registry.Option) (*registry.Registry, *sql.DB) {
	b.Helper()
	r, raw := registrytest.Open(b, opts...)
	if _, err := raw.Exec(referenceSchema); err != nil {
		b.Fatal(err)
	}
	for _, table := range []string{"ff_worker_registry", "ref_worker_registry"} {
		_, err := raw.Exec(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?2 - 1)
			INSERT INTO `+table+` (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
				last_heartbeat_ms, liveness_ttl_ms, registered_at_ms)
			SELECT 'ns', printf('w%05d', i), 'pool', 'build,default', 'cuda', ?1, 3600000, ?1 FROM s`,
			t0.UnixMilli(), n)
		if err != nil {
			b.Fatal(err)
		}
	}
	settle(b, raw)
	var path string
	if err := raw.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		b.Fatal(err)
	}
	return r, baselineDB(b, path)
}

func instanceID(i int) string { return fmt.Sprintf("w%05d", i%benchWorkers) }

// warmupCalls is how many calls a write benchmark makes before it starts
// measuring: a fresh file hides the costs of the steady state (a WAL that
// fills and is checkpointed, B-tree pages split, an audit log that is not
// empty), so every write benchmark first drives this many of its own
// calls through the same database, then measures.
const warmupCalls = 10_000

// steady runs op warmupCalls times, for calls 0 to warmupCalls-1, and then
// for every iteration of b's loop, for calls from warmupCalls on.
func steady(b *testing.B, op func(i int) error) {
	b.Helper()
	for i := range warmupCalls {
		if err := op(i); err != nil {
			b.Fatalf("warm-up call %d: %v", i, err)
		}
	}
	measure(b, warmupCalls, op)
}

// measure runs op for every iteration of b's loop, for calls from first on.
// Its calls carry the profiler label phase=measure, so that a CPU profile
// of a benchmark can leave out its fixture and warm-up
// (go tool pprof -tagfocus=phase=measure).
func measure(b *testing.B, first int, op func(i int) error) {
	b.Helper()
	pprof.Do(context.Background(), pprof.Labels("phase", "measure"), func(context.Context) {
		for i := first; b.Loop(); i++ {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// heartbeatOp is one registry heartbeat of benchmark call i, which must
// refresh a live worker.
func heartbeatOp(r *registry.Registry, args func(i int) registry.HeartbeatWorkerArgs) func(i int) error {
	return func(i int) error {
		res, err := r.HeartbeatWorker(context.Background(), args(i))
		if err == nil && res.Outcome != registry.HeartbeatRefreshed {
			err = fmt.Errorf("heartbeat: %+v", res)
		}
		return err
	}
}

// heartbeat is benchmark call i's heartbeat, at the clock's next
// millisecond.
func (c *clockMS) heartbeat(i int) registry.HeartbeatWorkerArgs {
	return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(c.next())}
}

// register is benchmark call i's registration: a refresh of a live row,
// the steady state of a fleet.
func (c *clockMS) register(i int) registry.RegisterWorkerArgs {
	return registry.RegisterWorkerArgs{
		Namespace: "ns", WorkerID: "pool", WorkerInstanceID: instanceID(i),
		Lanes: []string{"default", "build"}, Capabilities: []string{"cuda"},
		LivenessTTL: time.Hour, Now: time.UnixMilli(c.next()),
	}
}

// clockMS hands out strictly increasing milliseconds from t0, so that every
// heartbeat is a real change and every reference event a new key.
type clockMS struct{ ms atomic.Int64 }

func (c *clockMS) next() int64 { return t0.UnixMilli() + c.ms.Add(1) }

func BenchmarkHeartbeat(b *testing.B) {
	for _, events := range []bool{false, true} {
		b.Run(fmt.Sprintf("registry/events=%v", events), func(b *testing.B) {
			r, _ := workerFixture(b, benchWorkers, registry.WithHeartbeatEvents(events))
			var clock clockMS
			steady(b, heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
				return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(clock.next())}
			}))
		})
	}
	// What the registry's own indexes cost a heartbeat: the same calls on a
	// database without them (which breaks what they guarantee; see
	// registryIndexes).
	for _, v := range []struct {
		events  bool
		without string
	}{{true, "event_indexes"}} {
		b.Run(fmt.Sprintf("registry/events=%v,without=%s", v.events, v.without), func(b *testing.B) {
			r, base := workerFixture(b, benchWorkers, registry.WithHeartbeatEvents(v.events))
			dropIndexes(b, base, v.without)
			var clock clockMS
			steady(b, heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
				return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(clock.next())}
			}))
		})
	}
	// A zero Now: the registry reads its clock, and reads it again once it
	// holds the lock.
	b.Run("registry/events=false,now=clock", func(b *testing.B) {
		var clock clockMS
		r, _ := workerFixture(b, benchWorkers, registry.WithClock(func() time.Time { return time.UnixMilli(clock.next()) }))
		steady(b, heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
			return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i)}
		}))
	})
	b.Run("baseline=reference", func(b *testing.B) {
		_, base := workerFixture(b, benchWorkers)
		update, insert := prepare(b, base, refHeartbeatUpdate), prepare(b, base, refEventInsert)
		var clock clockMS
		steady(b, func(i int) error { return referenceHeartbeat(base, update, insert, instanceID(i), clock.next()) })
	})
	b.Run("baseline=floor", func(b *testing.B) {
		_, base := workerFixture(b, benchWorkers)
		update := prepare(b, base, floorUpdate)
		var clock clockMS
		steady(b, func(i int) error {
			_, err := update.Exec(clock.next(), "ns", instanceID(i))
			return err
		})
	})
}

// registryIndexes are the indexes the registry adds to the engine's worker
// tables, by what they guarantee: the event indexes give pages of one
// namespace's and one instance's events in ID order without a sort, and
// pruning in bounded batches, oldest first. (Version 8 dropped the expiry
// index: no index of the registry's follows a heartbeat.)
var registryIndexes = map[string][]string{
	"event_indexes": {"ff_worker_registry_event_namespace_idx", "ff_worker_registry_event_instance_idx",
		"ff_worker_registry_event_at_idx"},
}

func init() {
	registryIndexes["registry_indexes"] = slices.Clone(registryIndexes["event_indexes"])
}

// registryWithout runs bench as "registry" on a worker fixture, and as
// "registry/without=W" on one without each registryIndexes group W.
func registryWithout(b *testing.B, without []string, bench func(b *testing.B, r *registry.Registry, base *sql.DB)) {
	for _, w := range append([]string{""}, without...) {
		name := "registry"
		if w != "" {
			name += "/without=" + w
		}
		b.Run(name, func(b *testing.B) {
			r, base := workerFixture(b, benchWorkers)
			if w != "" {
				dropIndexes(b, base, w)
			}
			bench(b, r, base)
		})
	}
}

// dropIndexes drops the registryIndexes group named which, for benchmarks
// that measure what those indexes cost the writes.
func dropIndexes(b *testing.B, sqlDB *sql.DB, which string) {
	b.Helper()
	for _, index := range registryIndexes[which] {
		if _, err := sqlDB.Exec("DROP INDEX " + index); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, sqlDB)
}

// referenceHeartbeat is the reference's heartbeat transaction.
func referenceHeartbeat(base *sql.DB, update, insert *sql.Stmt, instance string, now int64) error {
	tx, err := base.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var ttl int64
	if err := tx.Stmt(update).QueryRow("ns", instance, now).Scan(&ttl); err != nil {
		return err
	}
	if _, err := tx.Stmt(insert).Exec("ns", instance, "heartbeat", now); err != nil {
		return err
	}
	return tx.Commit()
}

func prepare(b *testing.B, sqlDB *sql.DB, query string) *sql.Stmt {
	b.Helper()
	stmt, err := sqlDB.Prepare(query)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stmt.Close() })
	return stmt
}

// BenchmarkHeartbeatWorkers reports ns per heartbeat, to compare with
// BenchmarkHeartbeat/registry/events=false.
func BenchmarkHeartbeatWorkers(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{10, 100} {
		b.Run(fmt.Sprintf("per_call=%d", size), func(b *testing.B) {
			r, _ := workerFixture(b, benchWorkers)
			var clock clockMS
			batch := make([]registry.HeartbeatWorkerArgs, size)
			// The warm-up is in single heartbeats, as many as steady's,
			// so that the batches start where BenchmarkHeartbeat does.
			warm := heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
				return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(clock.next())}
			})
			for i := range warmupCalls {
				if err := warm(i); err != nil {
					b.Fatal(err)
				}
			}
			for i := 0; b.Loop(); i++ {
				now := time.UnixMilli(clock.next())
				for j := range batch {
					batch[j] = registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i*size + j), Now: now}
				}
				if _, err := r.HeartbeatWorkers(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/heartbeat")
		})
	}
}

// BenchmarkHeartbeatParallel runs 16 goroutines heartbeating distinct
// workers; its ns/op is per heartbeat across all of them, to compare with
// BenchmarkHeartbeat/registry/events=false (one goroutine).
func BenchmarkHeartbeatParallel(b *testing.B) {
	r, _ := workerFixture(b, benchWorkers)
	var clock clockMS
	var next, failures atomic.Int64
	warm := heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
		return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(clock.next())}
	})
	for range warmupCalls {
		if err := warm(int(next.Add(1))); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			res, err := r.HeartbeatWorker(context.Background(), registry.HeartbeatWorkerArgs{
				Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(clock.next()),
			})
			if err != nil || res.Outcome != registry.HeartbeatRefreshed {
				failures.Add(1)
			}
		}
	})
	if n := failures.Load(); n != 0 {
		b.Fatalf("%d heartbeats failed", n)
	}
}

func BenchmarkRegister(b *testing.B) {
	ctx := context.Background()
	registryWithout(b, []string{"registry_indexes"}, func(b *testing.B, r *registry.Registry, _ *sql.DB) {
		var clock clockMS
		steady(b, func(i int) error {
			// Refreshes of live rows, the steady state of a fleet.
			outcome, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{
				Namespace: "ns", WorkerID: "pool", WorkerInstanceID: instanceID(i),
				Lanes: []string{"default", "build"}, Capabilities: []string{"cuda"},
				LivenessTTL: time.Hour, Now: time.UnixMilli(clock.next()),
			})
			if err == nil && outcome != registry.Refreshed {
				err = fmt.Errorf("register: %v", outcome)
			}
			return err
		})
	})
	b.Run("baseline=reference", func(b *testing.B) {
		_, base := workerFixture(b, benchWorkers)
		sel, upsert, event := prepare(b, base, refRegisterSelect), prepare(b, base, refRegisterUpsert), prepare(b, base, refEventInsert)
		var clock clockMS
		steady(b, func(i int) error {
			now, id := clock.next(), instanceID(i)
			tx, err := base.Begin()
			if err != nil {
				return err
			}
			defer tx.Rollback()
			var worker string
			if err := tx.Stmt(sel).QueryRow("ns", id).Scan(&worker); err != nil {
				return err
			}
			if _, err := tx.Stmt(upsert).Exec("ns", id, "pool", "build,default", "cuda", now, 3600000, now); err != nil {
				return err
			}
			if _, err := tx.Stmt(event).Exec("ns", id, "registered", now); err != nil {
				return err
			}
			return tx.Commit()
		})
	})
}

// BenchmarkSweepNothingExpired is the sweeper's steady state: a million
// live workers and nothing to remove. Target: at least as fast as the
// reference's full-scan sweep, holding the writer at most 1 ms (it holds
// it not at all).
func BenchmarkSweepNothingExpired(b *testing.B) {
	r, base := workerFixture(b, 1_000_000)
	now := t0.Add(time.Minute)
	// The first sweep prunes the audit log (once a minute): not the
	// steady state.
	if _, err := r.SweepExpiredWorkers(context.Background(), now); err != nil {
		b.Fatal(err)
	}
	sweeps := func(b *testing.B) {
		for b.Loop() {
			rep, err := r.SweepExpiredWorkers(context.Background(), now)
			if err != nil || rep.Swept != 0 {
				b.Fatalf("sweep: %+v, %v", rep, err)
			}
		}
	}
	b.Run("registry", sweeps)
	// The same while heartbeats are written back to back: the sweep takes
	// no write lock (TestSweepNothingExpiredTakesNoWriteTurn), so a
	// heartbeat's longest wait is its own (a WAL checkpoint, two busy
	// cores), not the sweep's.
	b.Run("registry/heartbeats=concurrent", func(b *testing.B) {
		var clock clockMS
		stop := concurrentWriter(heartbeatOp(r, clock.heartbeat))
		sweeps(b)
		reportWaits(b, stop(b))
	})
	b.Run("baseline=reference", func(b *testing.B) {
		sweep := prepare(b, base, refSweep)
		for b.Loop() {
			if n := referenceSweep(b, base, sweep, nil, now.UnixMilli()); n != 0 {
				b.Fatalf("reference swept %d", n)
			}
		}
	})
}

// referenceSweep is the reference's sweep: one transaction that deletes
// every expired row by scanning the table, then writes an event per row.
func referenceSweep(b *testing.B, base *sql.DB, sweep, event *sql.Stmt, nowMS int64) int {
	tx, err := base.Begin()
	if err != nil {
		b.Fatal(err)
	}
	rows, err := tx.Stmt(sweep).Query(nowMS)
	if err != nil {
		b.Fatal(err)
	}
	var keys [][2]string
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		if _, err := tx.Stmt(event).Exec(k[0], k[1], "ttl_swept", nowMS); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return len(keys)
}

// BenchmarkSweepExpired removes 100k expired workers while another
// goroutine keeps heartbeating through the same connection pool. The
// longest wait of that writer bounds the longest write transaction of the
// sweep, which is to stay under 50 ms: the SQLite store's batches hold
// the writer about 10 ms each, a heartbeat that queues during one goes
// before the next, and the WAL is checkpointed off the writer
// (internal/store/sqlitestore/sweep.go).
func BenchmarkSweepExpired(b *testing.B) {
	const expired = 100_000
	addExpired := func(b *testing.B, raw *sql.DB, table string) {
		b.Helper()
		_, err := raw.Exec(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?2 - 1)
			INSERT INTO `+table+` (namespace, worker_instance_id, worker_id, lanes, capabilities_csv, last_heartbeat_ms,
				liveness_ttl_ms, registered_at_ms)
			SELECT 'ns', printf('x%06d', i), 'pool', 'default', '', ?1, 1000, ?1 FROM s`,
			t0.Add(-time.Hour).UnixMilli(), expired)
		if err != nil {
			b.Fatal(err)
		}
		// Settled, as workerFixture leaves the first round.
		if _, err := raw.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
	}
	sweeps := func(b *testing.B, r *registry.Registry, base *sql.DB) {
		var clock clockMS
		measureSweeps(b, expired, heartbeatOp(r, clock.heartbeat), func(b *testing.B) { addExpired(b, base, "ff_worker_registry") }, func() (int, error) {
			rep, err := r.SweepExpiredWorkers(context.Background(), time.UnixMilli(clock.next()))
			return rep.Swept, err
		})
	}
	// Also on a database without the event indexes (which breaks what they
	// guarantee; see registryIndexes): what they cost the sweep's 100k
	// event inserts.
	registryWithout(b, []string{"event_indexes"}, sweeps)
	// The concurrent heartbeats with their events, as the reference's
	// always are: they and the sweep's ttl_swept events go to the same
	// indexes.
	b.Run("registry/heartbeat_events=true", func(b *testing.B) {
		r, base := workerFixture(b, benchWorkers, registry.WithHeartbeatEvents(true))
		sweeps(b, r, base)
	})
	b.Run("baseline=reference", func(b *testing.B) {
		_, base := workerFixture(b, benchWorkers)
		sweep, event := prepare(b, base, refSweep), prepare(b, base, refEventInsert)
		update, insert := prepare(b, base, refHeartbeatUpdate), prepare(b, base, refEventInsert)
		var clock clockMS
		measureSweeps(b, expired, func(i int) error {
			return referenceHeartbeat(base, update, insert, instanceID(i), clock.next())
		}, func(b *testing.B) { addExpired(b, base, "ref_worker_registry") }, func() (int, error) {
			return referenceSweep(b, base, sweep, event, clock.next()), nil
		})
	})
}

// measureSweeps makes warmupCalls writes, then times a sweep a round: add
// puts expired rows in place and write writes once (untimed), and sweep,
// which must remove all of them, runs while write keeps writing on
// another goroutine. The first round is untimed: a sweeper that has run
// before has its statements prepared and its prune of the audit log (once
// a minute) behind it. It reports the longest single write as
// max_writer_wait_ms, and the 99th percentile as p99_writer_wait_ms: on
// a busy machine the longest is a stall that any write may meet.
func measureSweeps(b *testing.B, expired int, write func(i int) error, add func(b *testing.B), sweep func() (int, error)) {
	b.Helper()
	for i := range warmupCalls {
		if err := write(i); err != nil {
			b.Fatal(err)
		}
	}
	var waits []time.Duration
	for first := true; first || b.Loop(); first = false {
		if !first {
			b.StopTimer()
		}
		add(b)
		// On SQLite the first write after add's, on another connection,
		// starts the WAL over, which syncs it: an fsync, up to 250 ms on
		// a busy disk, that is the fixture's and not the sweep's.
		if err := write(warmupCalls); err != nil {
			b.Fatal(err)
		}
		if !first {
			b.StartTimer()
		}
		stop := concurrentWriter(write)
		n, err := sweep()
		w := stop(b)
		if err != nil || n != expired {
			b.Fatalf("swept %d of %d: %v", n, expired, err)
		}
		if !first {
			waits = append(waits, w...)
		}
	}
	reportWaits(b, waits)
}

// concurrentWriter calls write in a loop on another goroutine until the
// returned stop is called, which returns how long each call took.
func concurrentWriter(write func(i int) error) (stop func(b *testing.B) []time.Duration) {
	type result struct {
		waits []time.Duration
		err   error
	}
	done := make(chan struct{})
	out := make(chan result)
	go func() {
		var res result
		for i := 0; res.err == nil; i++ {
			select {
			case <-done:
				out <- res
				return
			default:
			}
			start := time.Now()
			res.err = write(i)
			res.waits = append(res.waits, time.Since(start))
		}
		<-done
		out <- res
	}()
	return func(b *testing.B) []time.Duration {
		close(done)
		res := <-out
		if res.err != nil {
			b.Fatal(res.err)
		}
		return res.waits
	}
}

// reportWaits reports the longest of a concurrent writer's waits as
// max_writer_wait_ms and their 99th percentile as p99_writer_wait_ms.
func reportWaits(b *testing.B, waits []time.Duration) {
	if len(waits) == 0 {
		return
	}
	slices.Sort(waits)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(waits[len(waits)-1]), "max_writer_wait_ms")
	b.ReportMetric(ms(waits[len(waits)*99/100]), "p99_writer_wait_ms")
}
