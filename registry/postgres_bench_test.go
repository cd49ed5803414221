package registry_test

// Benchmarks of the Postgres store, named as the SQLite ones in
// bench_test.go and leases_bench_test.go with a Postgres prefix, and
// compared the same way with baselines measured in the same run on the
// same database: the reference implementation's statements ported to
// Postgres, and the floor, one autocommit UPDATE of one row, both through
// a pgx pool configured as the registry's.
//
// They need REGISTRY_TEST_POSTGRES (scripts/pg-test-server starts a
// server) and skip without it; each builds its data in a schema of its
// own. `make bench-postgres` runs them. The sizes of the large data sets
// can be lowered with REGISTRY_BENCH_POSTGRES_WORKERS (the no-op sweep's
// registry, default 1000000) and REGISTRY_BENCH_POSTGRES_LEASES (the
// expired-lease data sets, default 10000,100000,1000000).

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// The reference's statements (see bench_test.go), ported to Postgres: $N
// placeholders, and ON CONFLICT DO NOTHING for INSERT OR IGNORE. Its schema
// is referenceSchema on both engines.
const (
	pgRefHeartbeatUpdate = `UPDATE ref_worker_registry SET last_heartbeat_ms = $3
		WHERE namespace = $1 AND worker_instance_id = $2 AND last_heartbeat_ms + liveness_ttl_ms > $3
		RETURNING liveness_ttl_ms`
	pgRefEventInsert = `INSERT INTO ref_worker_registry_event
		(namespace, worker_instance_id, event_kind, event_at_ms, reason) VALUES ($1, $2, $3, $4, NULL)
		ON CONFLICT DO NOTHING`
	pgRefRegisterSelect = `SELECT worker_id FROM ref_worker_registry WHERE namespace = $1 AND worker_instance_id = $2`
	pgRefRegisterUpsert = `INSERT INTO ref_worker_registry (namespace, worker_instance_id, worker_id, lanes,
		capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (namespace, worker_instance_id) DO UPDATE SET worker_id = excluded.worker_id,
		lanes = excluded.lanes, capabilities_csv = excluded.capabilities_csv,
		last_heartbeat_ms = excluded.last_heartbeat_ms, liveness_ttl_ms = excluded.liveness_ttl_ms`
	pgRefSweep = `DELETE FROM ref_worker_registry WHERE last_heartbeat_ms + liveness_ttl_ms < $1
		RETURNING namespace, worker_instance_id`
	pgFloorUpdate = `UPDATE ref_worker_registry SET last_heartbeat_ms = $1 WHERE namespace = $2 AND worker_instance_id = $3`
	// The reference's Postgres sweep (ttl_sweep_tick) deletes the expired
	// rows and inserts their events in one statement, a partition at a
	// time; on the reference's one table, one statement does it all.
	pgRefSweepAll = `WITH swept AS (
			DELETE FROM ref_worker_registry WHERE last_heartbeat_ms + liveness_ttl_ms < $1
			RETURNING namespace, worker_instance_id
		), ev AS (
			INSERT INTO ref_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
			SELECT namespace, worker_instance_id, 'ttl_swept', $1, NULL FROM swept
			ON CONFLICT DO NOTHING
			RETURNING 1
		) SELECT count(*) FROM swept`
)

// postgresBenchSchema returns the DSN of a fresh schema for b, or skips b
// when there is no server to benchmark.
func postgresBenchSchema(b *testing.B) string {
	b.Helper()
	skipWithoutPostgres(b)
	return postgresSchema(b)
}

// skipWithoutPostgres skips b when there is no server to benchmark, CI
// included: the benchmarks are not part of its test run.
func skipWithoutPostgres(b *testing.B) {
	b.Helper()
	if os.Getenv(registrytest.PostgresEnv) == "" {
		b.Skipf("%s is not set: no flowfabrictest.Postgres server to benchmark (scripts/pg-test-server starts one)", registrytest.PostgresEnv)
	}
}

// benchSizes reads comma-separated sizes from the environment variable
// name, or returns def.
func benchSizes(b *testing.B, name string, def ...int) []int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// openPostgresBench opens a registry on dsn, migrating its schema, with
// pool_max_conns set when maxConns > 0.
func openPostgresBench(b *testing.B, dsn string, maxConns int, opts ...registry.Option) *registry.Registry {
	b.Helper()
	if maxConns > 0 {
		u, err := url.Parse(dsn)
		if err != nil {
			b.Fatal(err)
		}
		q := u.Query()
		q.Set("pool_max_conns", strconv.Itoa(maxConns))
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	r, err := registry.Open(context.Background(), dsn, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// pgWorkerFixture is workerFixture on Postgres: n workers (namespace ns,
// instances w00000...), live for an hour from t0, in both the registry's
// table and the reference's, in a fresh schema. It returns the registry
// (its pool capped at maxConns when that is positive) and a second pool on
// the same schema for the baselines.
func pgWorkerFixture(b *testing.B, n, maxConns int, opts ...registry.Option) (*registry.Registry, *pgxpool.Pool) {
	b.Helper()
	ctx := context.Background()
	dsn := postgresBenchSchema(b)
	r := openPostgresBench(b, dsn, maxConns, opts...)
	base, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(base.Close)
	if _, err := base.Exec(ctx, referenceSchema); err != nil {
		b.Fatal(err)
	}
	for _, table := range []string{"ff_worker_registry", "ref_worker_registry"} {
		extra, extraValues, lanes := ", partition_key", ", ff_worker_registry_partition_key(id)", "'{build,default}'"
		if table == "ref_worker_registry" {
			extra, extraValues, lanes = "", "", "'build,default'"
		}
		_, err := base.Exec(ctx, `INSERT INTO `+table+` (namespace, worker_instance_id, worker_id, lanes,
				capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms`+extra+`)
			SELECT 'ns', id, 'pool', `+lanes+`, 'cuda', $1::bigint, 3600000, $1::bigint`+extraValues+`
			FROM generate_series(0, $2::integer - 1) AS s(i),
			     LATERAL (SELECT 'w' || lpad(i::text, greatest(5, length(i::text)), '0') AS id) AS k`,
			t0.UnixMilli(), n)
		if err != nil {
			b.Fatal(err)
		}
	}
	sqlDB := stdlib.OpenDBFromPool(base)
	defer sqlDB.Close()
	pgSettle(b, sqlDB, "ff_worker_registry", "ref_worker_registry")
	return r, base
}

// pgV5Fixture is pgWorkerFixture's workers in the Postgres store's tables
// as they were at schema version 5, before they took FlowFabric's
// partitioned shape: the baseline that the partitioned tables are measured
// against in the same run. It returns a pool on that schema.
func pgV5Fixture(b *testing.B, n int) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	dsn := postgresBenchSchema(b)
	base, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(base.Close)
	sqlDB := stdlib.OpenDBFromPool(base)
	defer sqlDB.Close()
	if _, err := registry.MigrateTo(ctx, sqlDB, 5); err != nil {
		b.Fatal(err)
	}
	_, err = base.Exec(ctx, `INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes,
			capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms)
		SELECT 'ns', 'w' || lpad(i::text, greatest(5, length(i::text)), '0'), 'pool', 'build,default', 'cuda',
			$1::bigint, 3600000, $1::bigint, $1::bigint + 3600000
		FROM generate_series(0, $2::integer - 1) AS s(i)`, t0.UnixMilli(), n)
	if err != nil {
		b.Fatal(err)
	}
	pgSettle(b, sqlDB, "ff_worker_registry")
	return base
}

// The version-5 store's statements: a heartbeat with an explicit time and
// events off (one autocommit statement), and a sweep (a transaction that
// takes the audit-log lock and deletes a batch, then a pruning batch).
const (
	pgV5Heartbeat = `UPDATE ff_worker_registry
		SET last_heartbeat_ms = $1, expires_at_ms = $1 + liveness_ttl_ms
		WHERE namespace = $2 AND worker_instance_id = $3 AND expires_at_ms > $1
		RETURNING expires_at_ms, draining`
	pgV5AuditLock = `SELECT pg_advisory_xact_lock(1717657458,
		('ff_worker_registry_event'::regclass::oid::bigint % 2147483647)::integer)`
	pgV5SweepBatch = `DELETE FROM ff_worker_registry AS w
		USING (SELECT old.namespace, old.worker_instance_id FROM ff_worker_registry AS old
		       WHERE old.expires_at_ms <= $1 ORDER BY old.expires_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED) AS expired
		WHERE w.namespace = expired.namespace AND w.worker_instance_id = expired.worker_instance_id
		  AND w.expires_at_ms <= $1
		RETURNING w.namespace, w.worker_instance_id`
	pgV5Prune = `DELETE FROM ff_worker_registry_event WHERE event_id IN (
		SELECT old.event_id FROM ff_worker_registry_event AS old
		WHERE old.event_at_ms < $1 ORDER BY old.event_at_ms LIMIT $2)`
)

// pgSettle is settle for Postgres: VACUUM sets the visibility map and the
// tuples' hint bits, so that the first runs do not pay for them; ANALYZE
// gives the planner statistics; a checkpoint, where the role may run one,
// writes the load out so that one does not land inside a measurement.
func pgSettle(b *testing.B, db *sql.DB, tables ...string) {
	b.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "VACUUM (ANALYZE) "+strings.Join(tables, ", ")); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		b.Logf("no checkpoint after the load: %v", err)
	}
}

// pgReferenceHeartbeat is the reference's heartbeat transaction.
func pgReferenceHeartbeat(ctx context.Context, base *pgxpool.Pool, instance string, now int64) error {
	return pgx.BeginFunc(ctx, base, func(tx pgx.Tx) error {
		var ttl int64
		if err := tx.QueryRow(ctx, pgRefHeartbeatUpdate, "ns", instance, now).Scan(&ttl); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, pgRefEventInsert, "ns", instance, "heartbeat", now)
		return err
	})
}

func BenchmarkPostgresHeartbeat(b *testing.B) {
	ctx := context.Background()
	for _, events := range []bool{false, true} {
		b.Run(fmt.Sprintf("registry/events=%v", events), func(b *testing.B) {
			r, _ := pgWorkerFixture(b, benchWorkers, 0, registry.WithHeartbeatEvents(events))
			var clock clockMS
			measure(b, 0, heartbeatOp(r, clock.heartbeat))
		})
	}
	// A zero Now: the registry reads its clock, and reads it again once it
	// holds the lock.
	b.Run("registry/events=false,now=clock", func(b *testing.B) {
		var clock clockMS
		r, _ := pgWorkerFixture(b, benchWorkers, 0, registry.WithClock(func() time.Time { return time.UnixMilli(clock.next()) }))
		measure(b, 0, heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
			return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i)}
		}))
	})
	b.Run("baseline=reference", func(b *testing.B) {
		_, base := pgWorkerFixture(b, benchWorkers, 0)
		var clock clockMS
		measure(b, 0, func(i int) error { return pgReferenceHeartbeat(ctx, base, instanceID(i), clock.next()) })
	})
	// The version-5 store's heartbeat, on its unpartitioned table: what
	// registry/events=false did before FlowFabric's shape.
	b.Run("baseline=v5", func(b *testing.B) {
		base := pgV5Fixture(b, benchWorkers)
		var clock clockMS
		measure(b, 0, func(i int) error {
			var expires int64
			var draining bool
			if err := base.QueryRow(ctx, pgV5Heartbeat, clock.next(), "ns", instanceID(i)).Scan(&expires, &draining); err != nil {
				return fmt.Errorf("v5 heartbeat: %w", err)
			}
			return nil
		})
	})
	b.Run("baseline=floor", func(b *testing.B) {
		_, base := pgWorkerFixture(b, benchWorkers, 0)
		var clock clockMS
		measure(b, 0, func(i int) error {
			tag, err := base.Exec(ctx, pgFloorUpdate, clock.next(), "ns", instanceID(i))
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("floor update: %v", tag)
			}
			return err
		})
	})
}

// BenchmarkPostgresHeartbeatWorkers reports ns per heartbeat, to compare
// with BenchmarkPostgresHeartbeat/registry/events=false.
func BenchmarkPostgresHeartbeatWorkers(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{10, 100} {
		b.Run(fmt.Sprintf("per_call=%d", size), func(b *testing.B) {
			r, _ := pgWorkerFixture(b, benchWorkers, 0)
			var clock clockMS
			batch := make([]registry.HeartbeatWorkerArgs, size)
			measure(b, 0, func(i int) error {
				now := time.UnixMilli(clock.next())
				for j := range batch {
					batch[j] = registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i*size + j), Now: now}
				}
				res, err := r.HeartbeatWorkers(ctx, batch)
				if err != nil {
					return err
				}
				for _, h := range res {
					if h.Outcome != registry.HeartbeatRefreshed {
						return fmt.Errorf("heartbeat: %+v", h)
					}
				}
				return nil
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/heartbeat")
		})
	}
}

// BenchmarkPostgresHeartbeatParallel runs 16 goroutines heartbeating
// distinct workers; its ns/op is per heartbeat across all of them, to
// compare with BenchmarkPostgresHeartbeat/registry/events=false (one
// goroutine). pool=default is the pool Open makes (pgxpool's default,
// max(4, NumCPU) connections), so that most goroutines wait for a
// connection; pool=16 gives each goroutine one.
func BenchmarkPostgresHeartbeatParallel(b *testing.B) {
	for _, pool := range []struct {
		name     string
		maxConns int
	}{{"pool=default", 0}, {"pool=16", 16}} {
		b.Run(pool.name, func(b *testing.B) {
			r, _ := pgWorkerFixture(b, benchWorkers, pool.maxConns)
			var clock clockMS
			parallel16(b, "heartbeats", heartbeatOp(r, clock.heartbeat))
		})
	}
}

func BenchmarkPostgresRegister(b *testing.B) {
	ctx := context.Background()
	b.Run("registry", func(b *testing.B) {
		r, _ := pgWorkerFixture(b, benchWorkers, 0)
		var clock clockMS
		measure(b, 0, func(i int) error {
			_, err := r.RegisterWorker(ctx, clock.register(i))
			return err
		})
	})
	b.Run("baseline=reference", func(b *testing.B) {
		_, base := pgWorkerFixture(b, benchWorkers, 0)
		var clock clockMS
		measure(b, 0, func(i int) error {
			now, id := clock.next(), instanceID(i)
			return pgx.BeginFunc(ctx, base, func(tx pgx.Tx) error {
				var worker string
				if err := tx.QueryRow(ctx, pgRefRegisterSelect, "ns", id).Scan(&worker); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, pgRefRegisterUpsert, "ns", id, "pool", "build,default", "cuda", now, 3600000, now); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, pgRefEventInsert, "ns", id, "registered", now)
				return err
			})
		})
	})
}

// BenchmarkPostgresRegisterParallel registers from 16 goroutines over a
// pool of 16 connections, each on workers of its own: the audit-log lock
// makes registers take turns, so this shows what that costs against
// BenchmarkPostgresRegister's one goroutine.
func BenchmarkPostgresRegisterParallel(b *testing.B) {
	r, _ := pgWorkerFixture(b, benchWorkers, 16)
	var clock clockMS
	parallel16(b, "registers", func(i int) error {
		_, err := r.RegisterWorker(context.Background(), clock.register(i))
		return err
	})
}

// parallel16 resets b's timer and calls op from 16 goroutines (at least
// one a CPU) with call numbers from 1 on, until b has run enough; then it
// fails b if any call failed, naming how many of what failed and the first
// error.
func parallel16(b *testing.B, what string, op func(i int) error) {
	b.Helper()
	var next, failures atomic.Int64
	var firstErr atomic.Value
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(int(next.Add(1))); err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}
	})
	if n := failures.Load(); n != 0 {
		b.Fatalf("%d %s failed, the first with %v", n, what, firstErr.Load())
	}
}

// BenchmarkPostgresSweepNothingExpired is the sweeper's steady state: a
// million live workers (REGISTRY_BENCH_POSTGRES_WORKERS) and nothing to
// remove.
func BenchmarkPostgresSweepNothingExpired(b *testing.B) {
	n := benchSizes(b, "REGISTRY_BENCH_POSTGRES_WORKERS", 1_000_000)[0]
	start := time.Now()
	r, base := pgWorkerFixture(b, n, 0)
	b.Logf("%d workers built in %v", n, time.Since(start).Round(time.Millisecond))
	now := t0.Add(time.Minute)
	b.Run(fmt.Sprintf("workers=%d/registry", n), func(b *testing.B) {
		// Once untimed first: a sweeper that has run before has its
		// statements planned and its prune of the audit log behind it.
		for first := true; first || b.Loop(); first = false {
			rep, err := r.SweepExpiredWorkers(context.Background(), now)
			if err != nil || rep.Swept != 0 {
				b.Fatalf("sweep: %+v, %v", rep, err)
			}
		}
	})
	b.Run(fmt.Sprintf("workers=%d/baseline=v5", n), func(b *testing.B) {
		ctx := context.Background()
		v5 := pgV5Fixture(b, n)
		cutoff := now.Add(-registry.DefaultEventRetention).UnixMilli()
		for b.Loop() {
			// The version-5 store's sweep with nothing expired: a
			// transaction that takes the audit-log lock and finds no
			// batch, then a pruning batch that finds nothing.
			err := pgx.BeginFunc(ctx, v5, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, pgV5AuditLock); err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, pgV5SweepBatch, now.UnixMilli(), 1000)
				if err == nil && tag.RowsAffected() != 0 {
					err = fmt.Errorf("v5 swept %d", tag.RowsAffected())
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := v5.Exec(ctx, pgV5Prune, cutoff, 1000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("workers=%d/baseline=reference", n), func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			// The reference's sweep transaction; with nothing expired it
			// writes no events.
			err := pgx.BeginFunc(ctx, base, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, pgRefSweep, now.UnixMilli())
				if err != nil {
					return err
				}
				swept := 0
				for rows.Next() {
					swept++
				}
				rows.Close()
				if swept != 0 {
					return fmt.Errorf("reference swept %d", swept)
				}
				return rows.Err()
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPostgresSweepExpired is BenchmarkSweepExpired on Postgres:
// 100k expired workers swept while another goroutine keeps heartbeating,
// against the reference's sweep statement. Each round starts from vacuumed
// tables, as autovacuum leaves them between real sweeps of that size: the
// previous round's dead rows would otherwise sit at the front of the
// expiry index.
func BenchmarkPostgresSweepExpired(b *testing.B) {
	const expired = 100_000
	ctx := context.Background()
	addExpired := func(b *testing.B, base *pgxpool.Pool, table string) {
		b.Helper()
		if _, err := base.Exec(ctx, "VACUUM "+table+", "+table+"_event"); err != nil {
			b.Fatal(err)
		}
		extra, extraValues := ", partition_key", ", ff_worker_registry_partition_key(id)"
		if table == "ref_worker_registry" {
			extra, extraValues = "", ""
		}
		_, err := base.Exec(ctx, `INSERT INTO `+table+` (namespace, worker_instance_id, worker_id, lanes,
				capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms`+extra+`)
			SELECT 'ns', id, 'pool', '{default}', '', $1::bigint, 1000, $1::bigint`+extraValues+`
			FROM generate_series(0, $2::integer - 1) AS s(i),
			     LATERAL (SELECT 'x' || lpad(i::text, 6, '0') AS id) AS k`,
			t0.Add(-time.Hour).UnixMilli(), expired)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("registry", func(b *testing.B) {
		r, base := pgWorkerFixture(b, benchWorkers, 0)
		var clock clockMS
		measureSweeps(b, expired, heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
			return registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(clock.next())}
		}), func(b *testing.B) { addExpired(b, base, "ff_worker_registry") }, func() (int, error) {
			rep, err := r.SweepExpiredWorkers(ctx, time.UnixMilli(clock.next()))
			return rep.Swept, err
		})
	})
	b.Run("baseline=reference", func(b *testing.B) {
		_, base := pgWorkerFixture(b, benchWorkers, 0)
		var clock clockMS
		measureSweeps(b, expired, func(i int) error {
			return pgReferenceHeartbeat(ctx, base, instanceID(i), clock.next())
		}, func(b *testing.B) { addExpired(b, base, "ref_worker_registry") }, func() (int, error) {
			var n int
			err := base.QueryRow(ctx, pgRefSweepAll, clock.next()).Scan(&n)
			return n, err
		})
	})
}

// pgLeaseFixture is leaseFixture on Postgres, with the same data set: n
// expired leases, a hundred to a millisecond, partitions spread over 0-255.
// registrytest writes them with COPY.
func pgLeaseFixture(b *testing.B, n int) (*registry.Registry, *sql.DB) {
	b.Helper()
	start := time.Now()
	skipWithoutPostgres(b)
	r, sqlDB := registrytest.OpenPostgres(b, registrytest.PostgresDSN(b))
	registrytest.InsertLeasesFunc(b, sqlDB, n, benchLease(n), nil)
	pgSettle(b, sqlDB, "ff_exec_core", "ff_attempt")
	b.Logf("%d leases built in %v", n, time.Since(start).Round(time.Millisecond))
	return r, sqlDB
}

// The reference's expired-lease query (see refLeaseQuery) ported to
// Postgres: its index on the expiry alone, its text cursor rebuilt per row,
// and an ORDER BY that the index cannot serve.
const (
	pgRefLeaseIndex = `CREATE INDEX ref_attempt_lease_expiry_idx ON ff_attempt (lease_expires_at_ms)
		WHERE lease_expires_at_ms IS NOT NULL`
	pgRefLeaseQuery = `SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
		a.worker_instance_id, a.lease_expires_at_ms, c.raw_fields ->> 'namespace' AS namespace
	FROM ff_attempt a JOIN ff_exec_core c ON c.partition_key = a.partition_key AND c.execution_id = a.execution_id
	WHERE a.lease_expires_at_ms IS NOT NULL AND a.lease_expires_at_ms <= $1 AND a.worker_instance_id IS NOT NULL
	  AND c.public_state IN ('claimed', 'running')
	  AND ($2::text IS NULL OR c.raw_fields ->> 'namespace' = $2::text)
	  AND ($3::bigint IS NULL OR (a.lease_expires_at_ms > $3::bigint) OR (a.lease_expires_at_ms = $3::bigint AND
	       ('{fp:' || a.partition_key || '}:' || a.execution_id::text) > $4::text))
	ORDER BY a.lease_expires_at_ms ASC, a.partition_key ASC, a.execution_id ASC
	LIMIT $5`
)

// BenchmarkPostgresListExpiredLeases measures a 1000-lease page at the
// start of the walk and nine tenths in, at 10k, 100k and 1M expired
// leases (REGISTRY_BENCH_POSTGRES_LEASES), for this library and for the
// reference's query on the same database. Each size is a level of its
// own, so that -bench can pick one and only its data set is built.
func BenchmarkPostgresListExpiredLeases(b *testing.B) {
	for _, n := range benchSizes(b, "REGISTRY_BENCH_POSTGRES_LEASES", 10_000, 100_000, 1_000_000) {
		b.Run(fmt.Sprintf("leases=%d", n), func(b *testing.B) {
			r, sqlDB := pgLeaseFixture(b, n)
			benchLeasePages(b, r, n, 0, false, func() *sql.Stmt {
				if _, err := sqlDB.Exec(pgRefLeaseIndex); err != nil {
					b.Fatal(err)
				}
				pgSettle(b, sqlDB, "ff_attempt")
				return prepare(b, sqlDB, pgRefLeaseQuery)
			})
		})
	}
}
