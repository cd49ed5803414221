package registry_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// leaseFixture fills a registry with n expired leases: a hundred share each
// millisecond, partitions spread over 0-255, as in the worst case for the
// reference's text cursor.
func leaseFixture(b *testing.B, n int) (*registry.Registry, *sql.DB) {
	b.Helper()
	start := time.Now()
	r, sqlDB := registrytest.Open(b)
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	registrytest.InsertLeasesFunc(b, sqlDB, n, func(i int) registrytest.Lease {
		var u uuid.UUID
		for j := range u {
			u[j] = byte(rng.IntN(256))
		}
		return registrytest.Lease{
			ExecutionID:      registry.ExecutionID{Partition: uint16(rng.IntN(256)), UUID: u},
			Namespace:        fmt.Sprintf("ns-%d", i%4),
			WorkerInstanceID: fmt.Sprintf("worker-%d", i%500),
			LeaseEpoch:       uint64(i % 7),
			ExpiresAt:        t0.Add(-time.Duration(n-i) / 100 * time.Millisecond),
		}
	}, nil)
	if _, err := sqlDB.Exec("ANALYZE"); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d leases built in %v", n, time.Since(start).Round(time.Millisecond))
	return r, sqlDB
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
		after = &registry.LeaseCursor{ExpiresAt: last.ExpiresAt, ExecutionID: last.ExecutionID}
		pos -= len(res.Leases)
	}
	return after
}

// BenchmarkListExpiredLeases measures a 1000-lease page at the start of the
// walk and nine tenths in, at 10k, 100k and 1M expired leases. The target
// is at most 10 ms a page at 1M and at most 1.5x the 10k latency.
func BenchmarkListExpiredLeases(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		// One level per size, so that -bench can pick a size and only its
		// data set is built.
		b.Run(fmt.Sprintf("leases=%d", n), func(b *testing.B) {
			r, _ := leaseFixture(b, n)
			deep := cursorAt(b, r, n*9/10)
			for _, page := range []struct {
				name  string
				after *registry.LeaseCursor
			}{{"first", nil}, {"deep", deep}} {
				b.Run("page="+page.name, func(b *testing.B) {
					args := registry.ListExpiredLeasesArgs{AsOf: t0, After: page.after, Limit: 1000}
					for b.Loop() {
						res, err := r.ListExpiredLeases(context.Background(), args)
						if err != nil || len(res.Leases) != 1000 {
							b.Fatalf("page of %d, %v", len(res.Leases), err)
						}
					}
				})
			}
		})
	}
}
