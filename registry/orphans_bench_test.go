package registry_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// The orphaned-lease benchmark's data set: held leases spread over
// holders, a few of them dead, every lease unexpired at t0.
const (
	orphanBenchLeases  = 1_000_000
	orphanBenchHolders = 1000
	orphanBenchDead    = 10
)

// The databases an orphaned-lease fixture can be built on.
type orphanDB int

const (
	orphanSQLite     orphanDB = iota
	orphanPostgres            // a fresh schema that the registry made: ff_attempt is one table
	orphanFlowFabric          // an adopted FlowFabric database: all three tables in 256 partitions
)

// orphanFixture fills a registry, on SQLite, on a fresh Postgres schema or
// on an adopted FlowFabric database, with n unexpired leases over the
// given number of holders, dead of them not live: half never registered,
// half killed. Dead holders are spread over the holders' order.
func orphanFixture(b *testing.B, on orphanDB, n, holders, dead int) (*registry.Registry, *sql.DB) {
	b.Helper()
	start := time.Now()
	var r *registry.Registry
	var sqlDB *sql.DB
	switch on {
	case orphanSQLite:
		r, sqlDB = registrytest.Open(b)
	case orphanPostgres:
		r, sqlDB = registrytest.OpenPostgres(b, registrytest.PostgresDSN(b))
	case orphanFlowFabric:
		p := flowfabrictest.Postgres(b)
		r, sqlDB = registry.NewPostgres(p.Pool), p.DB
	}
	postgres := on != orphanSQLite
	rng := rand.New(rand.NewPCG(uint64(n), 2))
	holder := func(i int) string { return fmt.Sprintf("worker-%04d", i) }
	registrytest.InsertLeasesFunc(b, sqlDB, n, func(i int) registrytest.Lease {
		return registrytest.Lease{
			ExecutionID:      randomExecutionID(rng),
			Namespace:        fmt.Sprintf("ns-%d", i%4),
			WorkerInstanceID: holder(i % holders),
			LeaseEpoch:       uint64(i % 7),
			ExpiresAt:        t0.Add(time.Duration(1+rng.IntN(3_600_000)) * time.Millisecond),
		}
	}, nil)
	ctx := context.Background()
	for i := range holders {
		isDead := i%(holders/dead) == 0
		if isDead && i%2 == 0 {
			continue // never registered
		}
		if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: fmt.Sprintf("ns-%d", i%4), WorkerID: "pool",
			WorkerInstanceID: holder(i), Lanes: []string{"default"}, LivenessTTL: 2 * time.Hour, Now: t0.Add(-time.Minute)}); err != nil {
			b.Fatal(err)
		}
		if isDead {
			if _, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: fmt.Sprintf("ns-%d", i%4), WorkerInstanceID: holder(i), Now: t0.Add(-time.Minute)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if postgres {
		pgSettle(b, sqlDB, "ff_exec_core", "ff_attempt", "ff_worker_registry")
	} else {
		settle(b, sqlDB)
	}
	b.Logf("%d leases over %d holders (%d dead) built in %v", n, holders, dead, time.Since(start).Round(time.Millisecond))
	return r, sqlDB
}

// antiJoinQuery is the naive orphaned-lease page: walk every held,
// unexpired lease in page order and keep those whose holder has no live
// registration. It reads held leases until it has found a page of orphans:
// about a hundred per orphan when one lease in a hundred is orphaned.
// pgAntiJoinQuery is the same on Postgres.
const (
	antiJoinQuery = `SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
		a.worker_instance_id, a.lease_expires_at_ms, json_extract(c.raw_fields, '$.namespace')
	FROM ff_attempt a JOIN ff_exec_core c ON c.partition_key = a.partition_key AND c.execution_id = a.execution_id
	WHERE a.lease_expires_at_ms IS NOT NULL AND a.worker_instance_id IS NOT NULL
	  AND a.lease_expires_at_ms > ?1
	  AND (a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index) > (?2, ?3, ?4, ?5)
	  AND c.public_state IN ('active', 'claimed', 'running')
	  AND NOT EXISTS (SELECT 1 FROM ff_worker_registry w
	                  WHERE w.worker_instance_id = a.worker_instance_id AND w.last_heartbeat_ms + w.liveness_ttl_ms > ?1)
	ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index
	LIMIT ?6`
	pgAntiJoinQuery = `SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
		a.worker_instance_id, a.lease_expires_at_ms, c.raw_fields ->> 'namespace'
	FROM ff_attempt a JOIN ff_exec_core c ON c.partition_key = a.partition_key AND c.execution_id = a.execution_id
	WHERE a.lease_expires_at_ms IS NOT NULL AND a.worker_instance_id IS NOT NULL
	  AND a.lease_expires_at_ms > $1
	  AND (a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index) > ($2, $3, $4, $5)
	  AND c.public_state IN ('active', 'claimed', 'running')
	  AND NOT EXISTS (SELECT 1 FROM ff_worker_registry w
	                  WHERE w.worker_instance_id = a.worker_instance_id AND w.last_heartbeat_ms + w.liveness_ttl_ms > $1)
	ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index
	LIMIT $6`
)

// antiJoinPage runs the naive query for one page and returns the
// executions it listed.
func antiJoinPage(b *testing.B, stmt *sql.Stmt, postgres bool, after *registry.LeaseCursor, limit int) []registry.ExecutionID {
	var id registry.ExecutionID
	expiry, partition, attempt := int64(0), int64(-1), int64(0)
	if after != nil {
		id, expiry, partition, attempt = after.ExecutionID, after.ExpiresAt.UnixMilli(), int64(after.ExecutionID.Partition), int64(after.AttemptIndex)
	}
	var execution any = id.UUID[:]
	if postgres {
		execution = id.UUID.String()
	}
	rows, err := stmt.Query(t0.UnixMilli(), expiry, partition, execution, attempt, limit)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out []registry.ExecutionID
	for rows.Next() {
		var p, attemptIndex, epoch, expires int64
		var u uuid.UUID
		var holder string
		var ns sql.NullString
		if err := rows.Scan(&p, &u, &attemptIndex, &epoch, &holder, &expires, &ns); err != nil {
			b.Fatal(err)
		}
		out = append(out, registry.ExecutionID{Partition: uint16(p), UUID: u})
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkListOrphanedLeases measures a 1000-lease page of orphaned
// leases, at the start of the walk and nine tenths in, among 1M held
// leases over 1,000 holders of which 10 are dead (10,000 orphans), for
// this library and for the naive anti-join on the same database; and a
// full walk of the orphans, checked. Target: at most 10 ms a page.
func BenchmarkListOrphanedLeases(b *testing.B) {
	r, sqlDB := orphanFixture(b, orphanSQLite, orphanBenchLeases, orphanBenchHolders, orphanBenchDead)
	b.Logf("anti-join plan:\n%s", explain(b, sqlDB, antiJoinQuery))
	benchOrphanPages(b, r, prepare(b, sqlDB, antiJoinQuery), false, orphanBenchLeases)
}

// BenchmarkPostgresListOrphanedLeases is BenchmarkListOrphanedLeases on
// Postgres; REGISTRY_BENCH_POSTGRES_LEASES lowers the number of leases
// (its largest size is taken).
func BenchmarkPostgresListOrphanedLeases(b *testing.B) {
	skipWithoutPostgres(b)
	n := slices.Max(benchSizes(b, "REGISTRY_BENCH_POSTGRES_LEASES", orphanBenchLeases))
	r, sqlDB := orphanFixture(b, orphanPostgres, n, orphanBenchHolders, orphanBenchDead)
	benchOrphanPages(b, r, prepare(b, sqlDB, pgAntiJoinQuery), true, n)
}

// BenchmarkPostgresFlowFabricListOrphanedLeases is
// BenchmarkPostgresListOrphanedLeases on an adopted FlowFabric database,
// where ff_attempt, ff_exec_core and ff_worker_registry are each 256
// hash partitions: every walk of an ff_attempt index is then a merge of
// the partitions' walks.
func BenchmarkPostgresFlowFabricListOrphanedLeases(b *testing.B) {
	skipWithoutPostgres(b)
	n := slices.Max(benchSizes(b, "REGISTRY_BENCH_POSTGRES_LEASES", orphanBenchLeases))
	r, sqlDB := orphanFixture(b, orphanFlowFabric, n, orphanBenchHolders, orphanBenchDead)
	benchOrphanPages(b, r, prepare(b, sqlDB, pgAntiJoinQuery), true, n)
}

// benchOrphanPages runs the page benchmarks on a fixture of n leases,
// after checking that the registry and the anti-join list the same pages.
func benchOrphanPages(b *testing.B, r *registry.Registry, antiJoin *sql.Stmt, postgres bool, n int) {
	ctx := context.Background()
	orphans := n / orphanBenchHolders * orphanBenchDead
	var deep *registry.LeaseCursor
	for pos := 0; pos < orphans*9/10; {
		res, err := r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{AsOf: t0, After: deep, Limit: min(orphans*9/10-pos, registry.MaxLimit)})
		if err != nil {
			b.Fatal(err)
		}
		pos += len(res.Leases)
		last := res.Leases[len(res.Leases)-1]
		deep = &registry.LeaseCursor{ExpiresAt: last.ExpiresAt, ExecutionID: last.ExecutionID, AttemptIndex: last.AttemptIndex}
	}
	pages := []struct {
		name  string
		after *registry.LeaseCursor
		size  int
	}{{"first", nil, min(1000, orphans)}, {"deep", deep, min(1000, orphans-orphans*9/10)}}
	for _, page := range pages {
		// Both list the same page.
		res, err := r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{AsOf: t0, After: page.after, Limit: 1000})
		if err != nil {
			b.Fatal(err)
		}
		var ours []registry.ExecutionID
		for _, l := range res.Leases {
			ours = append(ours, l.ExecutionID)
		}
		if theirs := antiJoinPage(b, antiJoin, postgres, page.after, 1000); len(ours) != page.size || !slices.Equal(ours, theirs) {
			b.Fatalf("page %s: %d leases, and the anti-join's differ", page.name, len(ours))
		}
	}
	for _, page := range pages {
		b.Run("registry/page="+page.name, func(b *testing.B) {
			args := registry.ListOrphanedLeasesArgs{AsOf: t0, After: page.after, Limit: 1000}
			for b.Loop() {
				if _, err := r.ListOrphanedLeases(ctx, args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("registry/walk", func(b *testing.B) {
		for b.Loop() {
			seen := map[registry.ExecutionID]bool{}
			var after *registry.LeaseCursor
			for {
				res, err := r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{AsOf: t0, After: after, Limit: 1000})
				if err != nil {
					b.Fatal(err)
				}
				for _, l := range res.Leases {
					if seen[l.ExecutionID] {
						b.Fatalf("lease %v visited twice", l.ExecutionID)
					}
					seen[l.ExecutionID] = true
				}
				if after = res.Next; after == nil {
					break
				}
			}
			if len(seen) != orphans {
				b.Fatalf("walk visited %d orphans, want %d", len(seen), orphans)
			}
		}
	})
	for _, page := range pages {
		b.Run("baseline=antijoin/page="+page.name, func(b *testing.B) {
			for b.Loop() {
				antiJoinPage(b, antiJoin, postgres, page.after, 1000)
			}
		})
	}
}

// explain returns SQLite's plan for query.
func explain(b *testing.B, sqlDB *sql.DB, query string) string {
	rows, err := sqlDB.Query("EXPLAIN QUERY PLAN "+query, 0, 0, 0, []byte{}, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			b.Fatal(err)
		}
		plan += detail + "\n"
	}
	return plan
}
