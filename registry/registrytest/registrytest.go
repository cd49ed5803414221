// Package registrytest provides fixtures for tests of code that uses the
// registry, as net/http/httptest does for handlers: a registry on a fresh
// database file, and executions with attempts holding leases, written the
// way the engine writes them:
//
//	func TestReclaim(t *testing.T) {
//		reg, sqlDB := registrytest.Open(t)
//		registrytest.InsertLeases(t, sqlDB, registrytest.Lease{
//			Namespace: "demo", WorkerInstanceID: "worker-1", ExpiresAt: past,
//		})
//		res, err := reg.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{Namespace: "demo"})
//		...
//	}
package registrytest

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/db"
	"github.com/flowfabric/workerregistry/registry"
)

// Lease describes an execution with one attempt. With a holder and an
// expiry the attempt holds a lease.
type Lease struct {
	// ExecutionID is the execution; a zero UUID gets a random one.
	ExecutionID registry.ExecutionID
	// Namespace is stored in the execution's raw_fields; "" stores none.
	Namespace string
	// State is the execution's public_state; "" means "running".
	State            string
	AttemptIndex     uint32
	LeaseEpoch       uint64
	WorkerInstanceID string    // the holder; "" for none
	ExpiresAt        time.Time // the lease's expiry; zero for none
}

// Open opens a registry on a new database file in tb.TempDir, and a second
// connection to the same file for fixtures and inspection. Both are closed
// when the test ends.
func Open(tb testing.TB, opts ...registry.Option) (*registry.Registry, *sql.DB) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "registry.db")
	r, err := registry.Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	sqlDB, err := registry.OpenDB(path)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	tb.Cleanup(func() { sqlDB.Close() })
	return r, sqlDB
}

// InsertLeases writes each lease's execution and attempt and returns the
// execution IDs, random UUIDs filled in. sqlDB must hold the registry's
// schema (see registry.Migrate).
func InsertLeases(tb testing.TB, sqlDB *sql.DB, leases ...Lease) []registry.ExecutionID {
	tb.Helper()
	ids := make([]registry.ExecutionID, len(leases))
	InsertLeasesFunc(tb, sqlDB, len(leases), func(i int) Lease {
		return leases[i]
	}, func(i int, id registry.ExecutionID) { ids[i] = id })
	return ids
}

// batchSize bounds a bulk insert's transactions, so that a million leases
// do not pile up in one WAL.
const batchSize = 10000

// InsertLeasesFunc writes n leases made by lease(0) to lease(n-1), for data
// sets too large to hold as a slice, and reports each one's execution ID to
// written if it is not nil.
func InsertLeasesFunc(tb testing.TB, sqlDB *sql.DB, n int, lease func(i int) Lease, written func(i int, id registry.ExecutionID)) {
	tb.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += batchSize {
		tx, err := sqlDB.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
		q, err := db.Prepare(ctx, tx)
		if err != nil {
			tx.Rollback()
			tb.Fatalf("registrytest: %v", err)
		}
		// Key order makes the inserts appends to the primary key's B-tree
		// rather than random probes: several times faster at a million.
		batch := make([]Lease, 0, batchSize)
		for i := start; i < min(n, start+batchSize); i++ {
			l := lease(i)
			if l.ExecutionID.UUID == uuid.Nil {
				l.ExecutionID.UUID = uuid.New()
			}
			if written != nil {
				written(i, l.ExecutionID)
			}
			batch = append(batch, l)
		}
		slices.SortFunc(batch, func(a, b Lease) int {
			return cmp.Or(cmp.Compare(a.ExecutionID.Partition, b.ExecutionID.Partition),
				bytes.Compare(a.ExecutionID.UUID[:], b.ExecutionID.UUID[:]))
		})
		for _, l := range batch {
			if err := insertLease(ctx, q, l); err != nil {
				tx.Rollback()
				tb.Fatalf("registrytest: lease %v: %v", l.ExecutionID, err)
			}
		}
		q.Close()
		if err := tx.Commit(); err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
	}
}

func insertLease(ctx context.Context, q *db.Queries, l Lease) error {
	id := l.ExecutionID
	state := l.State
	if state == "" {
		state = "running"
	}
	fields := map[string]string{}
	if l.Namespace != "" {
		fields["namespace"] = l.Namespace
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	if err := q.InsertExecution(ctx, db.InsertExecutionParams{
		PartitionKey: int64(id.Partition),
		ExecutionID:  id.UUID[:],
		PublicState:  state,
		RawFields:    string(raw),
	}); err != nil {
		return err
	}
	attempt := db.InsertAttemptParams{
		PartitionKey:     int64(id.Partition),
		ExecutionID:      id.UUID[:],
		AttemptIndex:     int64(l.AttemptIndex),
		WorkerInstanceID: sql.NullString{String: l.WorkerInstanceID, Valid: l.WorkerInstanceID != ""},
		LeaseEpoch:       int64(l.LeaseEpoch),
	}
	if !l.ExpiresAt.IsZero() {
		attempt.LeaseExpiresAtMs = sql.NullInt64{Int64: l.ExpiresAt.UnixMilli(), Valid: true}
	}
	return q.InsertAttempt(ctx, attempt)
}
