package registry_test

// Benchmarks of the Postgres store against FlowFabric's own statements,
// read verbatim from the engine's module (flowfabrictest.PGStatements) at
// bench time, each on an adopted FlowFabric database of its own with the
// same 10,000 workers, cycled as a fleet does. Heartbeats report the share of
// the run's updates of ff_worker_registry that were heap-only (HOT), from
// pg_stat_user_tables. A HOT update needs no index on a column that a
// heartbeat writes: version 8 dropped the registry's expiry index.

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
)

// pgEngineFixture is an adopted FlowFabric database with benchWorkers
// workers live for an hour from t0, the registry on it, and a pool for the
// engine's statements.
func pgEngineFixture(b *testing.B, opts ...registry.Option) (*registry.Registry, *pgxpool.Pool, *sql.DB) {
	b.Helper()
	skipWithoutPostgres(b)
	ctx := context.Background()
	s := flowfabrictest.Postgres(b)
	if _, err := s.DB.ExecContext(ctx, `INSERT INTO ff_worker_registry (partition_key, namespace, worker_instance_id,
			worker_id, lanes, capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms)
		SELECT ff_worker_registry_partition_key(id), 'ns', id, 'pool', '{build,default}', 'cuda', $1::bigint, 3600000, $1::bigint
		FROM generate_series(0, $2::integer - 1) AS s(i),
		     LATERAL (SELECT 'w' || lpad(i::text, 5, '0') AS id) AS k`, t0.UnixMilli(), benchWorkers); err != nil {
		b.Fatal(err)
	}
	pgSettle(b, s.DB, "ff_worker_registry", "ff_worker_registry_event")
	r := openPostgresBench(b, s.DSN, 0, opts...)
	engine, err := pgxpool.New(ctx, s.DSN)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(engine.Close)
	return r, engine, s.DB
}

// hotShare measures op's run, as steady runs it, and reports the share of
// its updates of ff_worker_registry's partitions that were HOT. (An idle
// backend sends its statistics to pg_stat_user_tables within a second or
// two.)
func hotShare(b *testing.B, db *sql.DB, op func(i int) error) {
	b.Helper()
	counts := func() (upd, hot int64) {
		b.Helper()
		if _, err := db.Exec("SELECT pg_stat_clear_snapshot()"); err != nil {
			b.Fatal(err)
		}
		err := db.QueryRow(`SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables
			WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'ff_worker_registry'::regclass)`).Scan(&upd, &hot)
		if err != nil {
			b.Fatal(err)
		}
		return upd, hot
	}
	for i := range warmupCalls {
		if err := op(i); err != nil {
			b.Fatalf("warm-up call %d: %v", i, err)
		}
	}
	time.Sleep(2500 * time.Millisecond) // the idle backends' statistics flushed
	upd0, hot0 := counts()
	measure(b, warmupCalls, op)
	b.StopTimer()
	time.Sleep(2500 * time.Millisecond)
	upd1, hot1 := counts()
	if upd1 > upd0 {
		b.ReportMetric(100*float64(hot1-hot0)/float64(upd1-upd0), "%hot")
	}
}

// engineTx runs fn in a transaction of the engine's, as the engine runs
// each operation, for benchmark call i's worker at the clock's next
// millisecond.
func engineTx(engine *pgxpool.Pool, clock *clockMS, i int, fn func(tx pgx.Tx, pk int16, id string, now int64) error) error {
	id, now := instanceID(i), clock.next()
	return pgx.BeginFunc(context.Background(), engine, func(tx pgx.Tx) error { return fn(tx, flowfabrictest.Partition(id), id, now) })
}

func BenchmarkPostgresEngine(b *testing.B) {
	ctx := context.Background()
	b.Run("heartbeat/registry", func(b *testing.B) {
		r, _, db := pgEngineFixture(b)
		var clock clockMS
		hotShare(b, db, heartbeatOp(r, clock.heartbeat))
	})
	b.Run("heartbeat/engine=update", func(b *testing.B) {
		_, engine, db := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var clock clockMS
		hotShare(b, db, func(i int) error {
			id := instanceID(i)
			var ttl int64
			return engine.QueryRow(ctx, q.Heartbeat, flowfabrictest.Partition(id), "ns", id, clock.next()).Scan(&ttl)
		})
	})
	b.Run("heartbeat,events/registry", func(b *testing.B) {
		r, _, db := pgEngineFixture(b, registry.WithHeartbeatEvents(true))
		var clock clockMS
		hotShare(b, db, heartbeatOp(r, clock.heartbeat))
	})
	b.Run("heartbeat,events/engine", func(b *testing.B) {
		_, engine, db := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var clock clockMS
		hotShare(b, db, func(i int) error {
			return engineTx(engine, &clock, i, func(tx pgx.Tx, pk int16, id string, now int64) error {
				var ttl int64
				if err := tx.QueryRow(ctx, q.Heartbeat, pk, "ns", id, now).Scan(&ttl); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, q.HeartbeatEvent, pk, "ns", id, now)
				return err
			})
		})
	})
	b.Run("register/registry", func(b *testing.B) {
		r, _, _ := pgEngineFixture(b)
		var clock clockMS
		steady(b, func(i int) error {
			o, err := r.RegisterWorker(ctx, clock.register(i))
			if err == nil && o != registry.Refreshed {
				err = fmt.Errorf("register: %v", o)
			}
			return err
		})
	})
	b.Run("register/engine", func(b *testing.B) {
		_, engine, _ := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var clock clockMS
		steady(b, func(i int) error {
			return engineTx(engine, &clock, i, func(tx pgx.Tx, pk int16, id string, now int64) error {
				var existing string
				if err := tx.QueryRow(ctx, q.RegisterSelect, pk, "ns", id).Scan(&existing); err != nil {
					return err
				}
				var one int64
				if err := tx.QueryRow(ctx, q.RegisterExists, pk, "ns", id).Scan(&one); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, q.RegisterUpsert, pk, "ns", id, "pool", []string{"build", "default"}, "cuda", now, int64(3600000), now); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, q.RegisterEvent, pk, "ns", id, now)
				return err
			})
		})
	})
	b.Run("drain/registry", func(b *testing.B) {
		r, _, _ := pgEngineFixture(b)
		var clock clockMS
		steady(b, func(i int) error {
			o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(clock.next())})
			if err == nil && o != registry.DrainRequested {
				err = fmt.Errorf("drain: %v", o)
			}
			return err
		})
	})
	// The engine has no drain; its nearest transaction is mark_worker_dead
	// (a write of the row and an event), here on a row that it then puts
	// back outside the measurement.
	b.Run("drain/engine=mark_dead", func(b *testing.B) {
		_, engine, _ := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var clock clockMS
		steady(b, func(i int) error {
			var pk int16
			var id string
			var now int64
			err := engineTx(engine, &clock, i, func(tx pgx.Tx, p int16, instance string, at int64) error {
				pk, id, now = p, instance, at
				var n int64
				if err := tx.QueryRow(ctx, q.MarkDead, pk, "ns", id).Scan(&n); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, q.MarkDeadEvent, pk, "ns", id, now, "bench")
				return err
			})
			if err != nil {
				return err
			}
			b.StopTimer()
			defer b.StartTimer()
			_, err = engine.Exec(ctx, q.RegisterUpsert, pk, "ns", id, "pool", []string{"build", "default"}, "cuda", now, int64(3600000), now)
			return err
		})
	})
}
