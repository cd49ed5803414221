package registrytest_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

func TestInsertLeasesAreListed(t *testing.T) {
	r, sqlDB := registrytest.Open(t)
	expiry := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fixed := registry.ExecutionID{Partition: 300, UUID: uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")}
	ids := registrytest.InsertLeases(t, sqlDB,
		registrytest.Lease{ExecutionID: fixed, Namespace: "ns", WorkerInstanceID: "w1", ExpiresAt: expiry, LeaseEpoch: 2},
		registrytest.Lease{Namespace: "ns", State: "claimed", WorkerInstanceID: "w2", ExpiresAt: expiry.Add(time.Second)},
		registrytest.Lease{Namespace: "ns", State: "completed", WorkerInstanceID: "w3", ExpiresAt: expiry},
	)
	if ids[0] != fixed || ids[1].UUID == uuid.Nil || ids[1] == ids[2] {
		t.Fatalf("ids = %v: want the given one kept and random ones filled in", ids)
	}
	res, err := r.ListExpiredLeases(context.Background(), registry.ListExpiredLeasesArgs{AsOf: expiry.Add(time.Hour), Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Leases) != 2 || res.Leases[0].ExecutionID != fixed || res.Leases[1].ExecutionID != ids[1] ||
		res.Leases[0].LeaseEpoch != 2 || res.Leases[1].WorkerInstanceID != "w2" {
		t.Fatalf("leases = %+v", res.Leases)
	}
}

func TestInsertLeasesFuncInBatches(t *testing.T) {
	r, sqlDB := registrytest.Open(t)
	expiry := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 25_001 // crosses batch boundaries
	seen := map[registry.ExecutionID]bool{}
	registrytest.InsertLeasesFunc(t, sqlDB, n, func(i int) registrytest.Lease {
		return registrytest.Lease{
			ExecutionID:      registry.ExecutionID{Partition: uint16(i % 7)},
			WorkerInstanceID: "w",
			ExpiresAt:        expiry,
		}
	}, func(i int, id registry.ExecutionID) { seen[id] = true })
	if len(seen) != n {
		t.Fatalf("%d distinct ids reported, want %d", len(seen), n)
	}
	var count int
	if err := sqlDB.QueryRow("SELECT count(*) FROM ff_attempt").Scan(&count); err != nil || count != n {
		t.Fatalf("attempts = %d, %v", count, err)
	}
	// The page limits (registry.DefaultLimit, MaxLimit): 0 is the default, above the maximum is
	// the maximum.
	for _, tc := range []struct{ limit, want int }{{0, registry.DefaultLimit}, {registry.MaxLimit, registry.MaxLimit}, {20_000, registry.MaxLimit}} {
		res, err := r.ListExpiredLeases(context.Background(), registry.ListExpiredLeasesArgs{AsOf: expiry, Limit: tc.limit})
		if err != nil || len(res.Leases) != tc.want || res.Next == nil {
			t.Fatalf("Limit %d: page of %d leases, next %v, %v; want %d", tc.limit, len(res.Leases), res.Next, err, tc.want)
		}
	}
}
