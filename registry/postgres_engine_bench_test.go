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
	"runtime/pprof"
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

// hotUpdates returns the counts of updates and of heap-only (HOT) updates
// of db's ff_worker_registry partitions that pg_stat_user_tables has.
func hotUpdates(b *testing.B, db *sql.DB) (upd, hot int64) {
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

// pairedSide is one side of a paired benchmark: the call it times, an
// untimed call after each (nil for none), and with db, the database whose
// share of HOT updates it reports.
type pairedSide struct {
	name  string
	db    *sql.DB
	op    func(i int) error
	after func(i int) error
}

// pairBlock is how many calls a side makes in one turn of a paired
// benchmark.
const pairBlock = 500

// minPairRounds is how many blocks each side of a paired benchmark runs
// at least, before b's loop runs more.
const minPairRounds = 8

// paired measures the registry and the engine in turns, each on its own
// database: warmupCalls calls each, then rounds of one block of pairBlock
// calls each (who goes first alternates), minPairRounds rounds and then
// one per iteration of b's loop. Each side reports the median of its
// blocks' times per call (name-ns/op) and, with a db, the share of the
// measured calls' updates that were HOT (name-%hot). Run one after the
// other, the two sides met different load on a shared machine: the
// heartbeat's ratio was 1.10 in one run and 1.66 in another, with no
// change between them.
func paired(b *testing.B, sides ...pairedSide) {
	b.Helper()
	call := func(s pairedSide, i int) time.Duration {
		start := time.Now()
		if err := s.op(i); err != nil {
			b.Fatalf("%s, call %d: %v", s.name, i, err)
		}
		took := time.Since(start)
		if s.after != nil {
			if err := s.after(i); err != nil {
				b.Fatalf("%s, after call %d: %v", s.name, i, err)
			}
		}
		return took
	}
	block := func(s pairedSide, first int) time.Duration {
		var took time.Duration
		for i := first; i < first+pairBlock; i++ {
			took += call(s, i)
		}
		return took / pairBlock
	}
	for i := 0; i < warmupCalls; i += pairBlock {
		for _, s := range sides {
			block(s, i)
		}
	}
	counts := func() [][2]int64 {
		out := make([][2]int64, len(sides))
		for k, s := range sides {
			if s.db != nil {
				out[k][0], out[k][1] = hotUpdates(b, s.db)
			}
		}
		return out
	}
	time.Sleep(2500 * time.Millisecond) // the idle backends' statistics flushed
	before := counts()
	per := make([][]time.Duration, len(sides))
	next := warmupCalls
	pprof.Do(context.Background(), pprof.Labels("phase", "measure"), func(context.Context) {
		for round := 0; round < minPairRounds || b.Loop(); round++ {
			for j := range sides {
				k := (j + round) % len(sides)
				per[k] = append(per[k], block(sides[k], next))
			}
			next += pairBlock
		}
	})
	b.StopTimer()
	time.Sleep(2500 * time.Millisecond)
	after := counts()
	for k, s := range sides {
		b.ReportMetric(float64(median(per[k])), s.name+"-ns/op")
		if upd := after[k][0] - before[k][0]; s.db != nil && upd > 0 {
			b.ReportMetric(100*float64(after[k][1]-before[k][1])/float64(upd), s.name+"-%hot")
		}
	}
}

// engineTx runs fn in a transaction of the engine's, as the engine runs
// each operation, for benchmark call i's worker at the clock's next
// millisecond.
func engineTx(engine *pgxpool.Pool, clock *clockMS, i int, fn func(tx pgx.Tx, pk int16, id string, now int64) error) error {
	id, now := instanceID(i), clock.next()
	return pgx.BeginFunc(context.Background(), engine, func(tx pgx.Tx) error { return fn(tx, flowfabrictest.Partition(id), id, now) })
}

// BenchmarkPostgresEngine measures each of the registry's calls against
// the engine's transaction for the same work, in turns (see paired).
func BenchmarkPostgresEngine(b *testing.B) {
	ctx := context.Background()
	engineHeartbeat := func(engine *pgxpool.Pool, q flowfabrictest.PGSQL, clock *clockMS) func(i int) error {
		return func(i int) error {
			id := instanceID(i)
			var ttl int64
			return engine.QueryRow(ctx, q.Heartbeat, flowfabrictest.Partition(id), "ns", id, clock.next()).Scan(&ttl)
		}
	}
	b.Run("heartbeat", func(b *testing.B) {
		r, _, rdb := pgEngineFixture(b)
		_, engine, edb := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var rclock, eclock clockMS
		paired(b, pairedSide{name: "registry", db: rdb, op: heartbeatOp(r, rclock.heartbeat)},
			pairedSide{name: "engine", db: edb, op: engineHeartbeat(engine, q, &eclock)})
	})
	b.Run("heartbeat,events", func(b *testing.B) {
		r, _, rdb := pgEngineFixture(b, registry.WithHeartbeatEvents(true))
		_, engine, edb := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var rclock, eclock clockMS
		paired(b, pairedSide{name: "registry", db: rdb, op: heartbeatOp(r, rclock.heartbeat)},
			pairedSide{name: "engine", db: edb, op: func(i int) error {
				return engineTx(engine, &eclock, i, func(tx pgx.Tx, pk int16, id string, now int64) error {
					var ttl int64
					if err := tx.QueryRow(ctx, q.Heartbeat, pk, "ns", id, now).Scan(&ttl); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, q.HeartbeatEvent, pk, "ns", id, now)
					return err
				})
			}})
	})
	b.Run("register", func(b *testing.B) {
		r, _, _ := pgEngineFixture(b)
		_, engine, _ := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var rclock, eclock clockMS
		paired(b, pairedSide{name: "registry", op: func(i int) error {
			o, err := r.RegisterWorker(ctx, rclock.register(i))
			if err == nil && o != registry.Refreshed {
				err = fmt.Errorf("register: %v", o)
			}
			return err
		}}, pairedSide{name: "engine", op: func(i int) error {
			return engineTx(engine, &eclock, i, func(tx pgx.Tx, pk int16, id string, now int64) error {
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
		}})
	})
	// The engine has no drain; its nearest transaction is mark_worker_dead
	// (a write of the row and an event), here on a row that it then puts
	// back, untimed.
	b.Run("drain", func(b *testing.B) {
		r, _, _ := pgEngineFixture(b)
		_, engine, _ := pgEngineFixture(b)
		q := flowfabrictest.PGStatements(b)
		var rclock, eclock clockMS
		var pk int16
		var id string
		var now int64
		paired(b, pairedSide{name: "registry", op: func(i int) error {
			o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: instanceID(i), Now: time.UnixMilli(rclock.next())})
			if err == nil && o != registry.DrainRequested {
				err = fmt.Errorf("drain: %v", o)
			}
			return err
		}}, pairedSide{name: "engine", op: func(i int) error {
			return engineTx(engine, &eclock, i, func(tx pgx.Tx, p int16, instance string, at int64) error {
				pk, id, now = p, instance, at
				var n int64
				if err := tx.QueryRow(ctx, q.MarkDead, pk, "ns", id).Scan(&n); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, q.MarkDeadEvent, pk, "ns", id, now, "bench")
				return err
			})
		}, after: func(int) error {
			_, err := engine.Exec(ctx, q.RegisterUpsert, pk, "ns", id, "pool", []string{"build", "default"}, "cuda", now, int64(3600000), now)
			return err
		}})
	})
}
