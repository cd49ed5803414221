package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
)

// BenchmarkPostgresFlowFabricSweep measures the registry's sweep on an
// adopted FlowFabric database against the engine's own: its ttl_sweep_tick
// statement, read verbatim from FlowFabric's module at bench time, run for
// each of the 256 partition keys, as the engine's scanner does. Both sweep
// the same database: with nothing expired among a million live workers
// (REGISTRY_BENCH_POSTGRES_WORKERS), and 20k and 100k expired among 10k
// live ones, put in place (and the tables vacuumed, as autovacuum leaves
// them between sweeps) before each timed sweep. Each case sweeps once
// untimed first; the expired cases take turns (see below).
func BenchmarkPostgresFlowFabricSweep(b *testing.B) {
	skipWithoutPostgres(b)
	ctx := context.Background()
	tickSQL := flowfabrictest.PGStatements(b).Sweep
	engineTick := func(b *testing.B, pool *pgxpool.Pool, nowMS int64) int {
		var total int
		for pk := range int16(256) {
			var n int64
			if err := pool.QueryRow(ctx, tickSQL, pk, nowMS).Scan(&n); err != nil {
				b.Fatal(err)
			}
			total += int(n)
		}
		return total
	}
	fixture := func(b *testing.B, live int) (*registry.Registry, *pgxpool.Pool) {
		b.Helper()
		p := flowfabrictest.Postgres(b)
		addPGWorkers(b, p.Pool, "w", live, t0.UnixMilli(), 3_600_000)
		if _, err := p.Pool.Exec(ctx, "ANALYZE ff_worker_registry"); err != nil {
			b.Fatal(err)
		}
		return registry.NewPostgres(p.Pool), p.Pool
	}
	n := benchSizes(b, "REGISTRY_BENCH_POSTGRES_WORKERS", 1_000_000)[0]
	b.Run(fmt.Sprintf("nothing_expired/workers=%d", n), func(b *testing.B) {
		r, pool := fixture(b, n)
		now := t0.Add(time.Minute)
		// Each first sweeps once untimed: a sweeper that has run before
		// has its statements planned on its connections.
		b.Run("registry", func(b *testing.B) {
			for first := true; first || b.Loop(); first = false {
				rep, err := r.SweepExpiredWorkers(ctx, now)
				if err != nil || rep.Swept != 0 {
					b.Fatalf("sweep: %+v, %v", rep, err)
				}
			}
		})
		b.Run("baseline=engine", func(b *testing.B) {
			for first := true; first || b.Loop(); first = false {
				if n := engineTick(b, pool, now.UnixMilli()); n != 0 {
					b.Fatalf("engine swept %d", n)
				}
			}
		})
	})
	for _, expired := range []int{20_000, 100_000} {
		// The two sweeps take turns, round by round, and each reports
		// the median of its rounds' times (registry-ns/sweep,
		// engine-ns/sweep): a sweep of this size runs one to three times a
		// second, too few for two separate runs to see the same
		// autovacuum, checkpoints and page cache.
		b.Run(fmt.Sprintf("expired=%d", expired), func(b *testing.B) {
			r, pool := fixture(b, benchWorkers)
			var clock clockMS
			round := func(sweep func(nowMS int64) (int, error)) time.Duration {
				// The audit log as retention keeps it: the events of
				// earlier rounds would make later sweeps' inserts slower.
				if _, err := pool.Exec(ctx, "TRUNCATE ff_worker_registry_event"); err != nil {
					b.Fatal(err)
				}
				if _, err := pool.Exec(ctx, "VACUUM ff_worker_registry, ff_worker_registry_event"); err != nil {
					b.Fatal(err)
				}
				// VACUUM and TRUNCATE invalidate every backend's cached
				// catalog entries and plans of the partitions: a sweep
				// that finds nothing rebuilds the probe's, untimed. (At
				// the run's next time: an earlier one would set the
				// registry's minutely prune of the audit log back, and the
				// timed sweep would run it.)
				if n, err := sweep(clock.next()); err != nil || n != 0 {
					b.Fatalf("warm-up sweep: %d, %v", n, err)
				}
				addPGWorkers(b, pool, "x", expired, t0.Add(-time.Hour).UnixMilli(), 1000)
				start := time.Now()
				n, err := sweep(clock.next())
				took := time.Since(start)
				if err != nil || n != expired {
					b.Fatalf("swept %d of %d: %v", n, expired, err)
				}
				return took
			}
			registrySweep := func(nowMS int64) (int, error) {
				rep, err := r.SweepExpiredWorkers(ctx, time.UnixMilli(nowMS))
				return rep.Swept, err
			}
			engineSweep := func(nowMS int64) (int, error) { return engineTick(b, pool, nowMS), nil }
			// One untimed round each first: a sweeper that has run before
			// has its statements prepared on its connections.
			round(registrySweep)
			round(engineSweep)
			var ours, engine []time.Duration
			for b.Loop() {
				for i := range sweepRounds {
					// Who goes first alternates too.
					if i%2 == 0 {
						ours = append(ours, round(registrySweep))
						engine = append(engine, round(engineSweep))
					} else {
						engine = append(engine, round(engineSweep))
						ours = append(ours, round(registrySweep))
					}
				}
			}
			b.ReportMetric(float64(median(ours)), "registry-ns/sweep")
			b.ReportMetric(float64(median(engine)), "engine-ns/sweep")
		})
	}
}

// sweepRounds is how many times each side sweeps in an iteration of
// BenchmarkPostgresFlowFabricSweep's expired cases.
const sweepRounds = 6

// addPGWorkers writes n workers prefix000000... to FlowFabric's table, in
// the engine's partitions, with the given heartbeat and TTL.
func addPGWorkers(b *testing.B, pool *pgxpool.Pool, prefix string, n int, heartbeatMS, ttlMS int64) {
	b.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO ff_worker_registry (partition_key, namespace, worker_instance_id, worker_id,
			lanes, capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms)
		SELECT ff_worker_registry_partition_key(id), 'ns', id, 'pool', '{build,default}', 'cuda', $1::bigint, $3::bigint, $1::bigint
		FROM generate_series(0, $2::integer - 1) AS s(i),
		     LATERAL (SELECT $4::text || lpad(i::text, 6, '0') AS id) AS k`, heartbeatMS, n, ttlMS, prefix); err != nil {
		b.Fatal(err)
	}
}
