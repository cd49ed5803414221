package registry_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// leaseFixture fills a registry with n expired leases: a hundred share each
// millisecond, partitions spread over 0-255, as in the worst case for the
// reference's text cursor.
func leaseFixture(b *testing.B, n int) (*registry.Registry, *sql.DB) {
	b.Helper()
	r, sqlDB := registrytest.Open(b)
	return fillLeases(b, r, sqlDB, n)
}

// adoptedLeaseFixture is leaseFixture on a FlowFabric database that the
// registry adopted: the engine's ff_exec_core and ff_attempt, rowid tables
// with their own indexes and columns, under the registry's lease index.
func adoptedLeaseFixture(b *testing.B, n int) (*registry.Registry, *sql.DB) {
	b.Helper()
	path := flowfabrictest.SQLite(b)
	r, err := registry.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	sqlDB, err := registry.OpenSQLiteDB(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sqlDB.Close() })
	return fillLeases(b, r, sqlDB, n)
}

func fillLeases(b *testing.B, r *registry.Registry, sqlDB *sql.DB, n int) (*registry.Registry, *sql.DB) {
	b.Helper()
	start := time.Now()
	registrytest.InsertLeasesFunc(b, sqlDB, n, benchLease(n), nil)
	settle(b, sqlDB)
	b.Logf("%d leases built in %v", n, time.Since(start).Round(time.Millisecond))
	return r, sqlDB
}

// benchLease makes the leases of leaseFixture's data set of n, the same on
// every engine.
func benchLease(n int) func(i int) registrytest.Lease {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	return func(i int) registrytest.Lease {
		return registrytest.Lease{
			ExecutionID:      randomExecutionID(rng),
			Namespace:        fmt.Sprintf("ns-%d", i%4),
			WorkerInstanceID: fmt.Sprintf("worker-%d", i%500),
			LeaseEpoch:       uint64(i % 7),
			ExpiresAt:        t0.Add(-time.Duration(n-i) / 100 * time.Millisecond),
		}
	}
}

// randomExecutionID draws an execution ID from rng: the UUID's bytes in
// order, then a partition in 0-255.
func randomExecutionID(rng *rand.Rand) registry.ExecutionID {
	var id registry.ExecutionID
	for j := range id.UUID {
		id.UUID[j] = byte(rng.IntN(256))
	}
	id.Partition = uint16(rng.IntN(256))
	return id
}

// cursorAt returns the cursor that starts a page at the lease in position
// pos of the walk.
func cursorAt(b *testing.B, r *registry.Registry, pos int) *registry.LeaseCursor {
	b.Helper()
	var after *registry.LeaseCursor
	for pos > 0 {
		res, err := r.ListExpiredLeases(context.Background(), registry.ListExpiredLeasesArgs{AsOf: t0, After: after, Limit: min(pos, registry.MaxLimit)})
		if err != nil {
			b.Fatal(err)
		}
		last := res.Leases[len(res.Leases)-1]
		after = &registry.LeaseCursor{ExpiresAt: last.ExpiresAt, ExecutionID: last.ExecutionID, AttemptIndex: last.AttemptIndex}
		pos -= len(res.Leases)
	}
	return after
}

// The reference's expired-lease query: a text cursor compared with the
// execution ID rebuilt as text per row, and an ORDER BY that its index on
// the expiry alone serves only in part, so that a page sorts the leases
// that share an expiry, and a page deep in the walk scans every lease
// before its cursor. INDEXED BY keeps it on that index, the only one the
// reference's schema has: on the registry's database the planner would
// otherwise walk the registry's own lease index for it, which orders by
// (expiry, partition, execution) and so makes the baseline this library's
// plan, not the reference's.
const (
	refLeaseIndex = `CREATE INDEX ref_attempt_lease_expiry_idx ON ff_attempt (lease_expires_at_ms)
		WHERE lease_expires_at_ms IS NOT NULL`
	refLeaseQuery = `SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
		a.worker_instance_id, a.lease_expires_at_ms, json_extract(c.raw_fields, '$.namespace') AS namespace
	FROM ff_attempt a INDEXED BY ref_attempt_lease_expiry_idx
	JOIN ff_exec_core c ON c.partition_key = a.partition_key AND c.execution_id = a.execution_id
	WHERE a.lease_expires_at_ms IS NOT NULL AND a.lease_expires_at_ms <= ?1 AND a.worker_instance_id IS NOT NULL
	  AND c.public_state IN ('claimed', 'running')
	  AND (?2 IS NULL OR json_extract(c.raw_fields, '$.namespace') = ?2)
	  AND (?3 IS NULL OR (a.lease_expires_at_ms > ?3) OR (a.lease_expires_at_ms = ?3 AND
	       ('{fp:' || a.partition_key || '}:' ||
	        substr(lower(hex(a.execution_id)), 1, 8) || '-' || substr(lower(hex(a.execution_id)), 9, 4) || '-' ||
	        substr(lower(hex(a.execution_id)), 13, 4) || '-' || substr(lower(hex(a.execution_id)), 17, 4) || '-' ||
	        substr(lower(hex(a.execution_id)), 21, 12)) > ?4))
	ORDER BY a.lease_expires_at_ms ASC, a.partition_key ASC, a.execution_id ASC
	LIMIT ?5`
)

// referencePage runs the reference's query for one page and returns the
// number of rows.
func referencePage(b *testing.B, stmt *sql.Stmt, after *registry.LeaseCursor, limit int) int {
	var expiry, text any
	if after != nil {
		expiry, text = after.ExpiresAt.UnixMilli(), after.ExecutionID.String()
	}
	rows, err := stmt.Query(t0.UnixMilli(), nil, expiry, text, limit)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var partition, attempt, epoch, expires int64
		var id []byte
		var worker string
		var ns sql.NullString
		if err := rows.Scan(&partition, &id, &attempt, &epoch, &worker, &expires, &ns); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkListExpiredLeases measures a 1000-lease page at the start of the
// walk and nine tenths in, at 10k, 100k and 1M expired leases, for this
// library and for the reference's query on the same database; and, at 1M,
// a full walk. Targets: at most 10 ms a page at 1M and at most 1.5x the
// 10k latency; the walk visits every lease exactly once.
func BenchmarkListExpiredLeases(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		// One level per size, so that -bench can pick a size and only its
		// data set is built.
		b.Run(fmt.Sprintf("leases=%d", n), func(b *testing.B) {
			r, sqlDB := leaseFixture(b, n)
			benchLeasePages(b, r, n, 1000, n == 1_000_000, referenceLeaseQuery(b, sqlDB))
		})
	}
}

// benchLeasePages measures the first page and one nine tenths in, for the
// registry, asked for pages of limit (0: DefaultLimit, also 1000), and then
// for the reference's query that reference prepares on the same database
// (after the registry's, since it adds the reference's index); with walk,
// also a full walk.
func benchLeasePages(b *testing.B, r *registry.Registry, n, limit int, walk bool, reference func() *sql.Stmt) {
	deep := cursorAt(b, r, n*9/10)
	pages := []struct {
		name  string
		after *registry.LeaseCursor
	}{{"first", nil}, {"deep", deep}}
	for _, page := range pages {
		b.Run("registry/page="+page.name, func(b *testing.B) {
			args := registry.ListExpiredLeasesArgs{AsOf: t0, After: page.after, Limit: limit}
			for b.Loop() {
				res, err := r.ListExpiredLeases(context.Background(), args)
				if err != nil || len(res.Leases) != 1000 {
					b.Fatalf("page of %d, %v", len(res.Leases), err)
				}
			}
		})
	}
	if walk {
		b.Run("registry/walk", func(b *testing.B) {
			for b.Loop() {
				walkAll(b, r, n)
			}
		})
	}
	stmt := reference()
	for _, page := range pages {
		b.Run("baseline=reference/page="+page.name, func(b *testing.B) {
			for b.Loop() {
				if got := referencePage(b, stmt, page.after, 1000); got != 1000 {
					b.Fatalf("reference page of %d", got)
				}
			}
		})
	}
}

// referenceLeaseQuery adds the reference's lease index to the SQLite
// database and returns its query prepared. On an adopted database the
// engine's own ff_attempt_lease_expiry_idx is (partition, expiry): the
// reference gets the expiry index it was written for either way.
func referenceLeaseQuery(b *testing.B, sqlDB *sql.DB) func() *sql.Stmt {
	return func() *sql.Stmt {
		if _, err := sqlDB.Exec(refLeaseIndex); err != nil {
			b.Fatal(err)
		}
		settle(b, sqlDB)
		return prepare(b, sqlDB, refLeaseQuery)
	}
}

// walkAll pages through every expired lease and checks that each comes
// back exactly once.
// BenchmarkListExpiredLeasesAdopted is the 1M-lease page on a FlowFabric
// database the registry adopted (issue: the targets hold there too), with
// the reference's query on the same file as the baseline.
func BenchmarkListExpiredLeasesAdopted(b *testing.B) {
	const n = 1_000_000
	r, sqlDB := adoptedLeaseFixture(b, n)
	benchLeasePages(b, r, n, 1000, false, referenceLeaseQuery(b, sqlDB))
}

func walkAll(b *testing.B, r *registry.Registry, n int) {
	seen := make(map[registry.ExecutionID]struct{}, n)
	var after *registry.LeaseCursor
	for {
		res, err := r.ListExpiredLeases(context.Background(), registry.ListExpiredLeasesArgs{AsOf: t0, After: after, Limit: 1000})
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range res.Leases {
			if _, dup := seen[l.ExecutionID]; dup {
				b.Fatalf("lease %v visited twice", l.ExecutionID)
			}
			seen[l.ExecutionID] = struct{}{}
		}
		if res.Next == nil {
			break
		}
		after = res.Next
	}
	if len(seen) != n {
		b.Fatalf("walk visited %d leases, want %d", len(seen), n)
	}
}

// settle brings a freshly built data set to the steady state of a running
// database: statistics gathered, and the write-ahead log checkpointed into
// the main file, as SQLite's auto-checkpoint keeps it. Reads of pages still
// in a large WAL go through its hash index and would skew the first runs.
func settle(b *testing.B, sqlDB *sql.DB) {
	b.Helper()
	for _, stmt := range []string{"ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := sqlDB.Exec(stmt); err != nil {
			b.Fatal(err)
		}
	}
}
