package registry_test

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/internal/sqlctest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

func TestLeaseIDVectors(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, sqlDB := setupLeases(t, s)
		vectors := []struct {
			execution string
			attempt   uint32
			epoch     uint64
			want      string
		}{
			{"11111111-2222-3333-4444-555555555555", 0, 1, "11111111-2222-3332-4444-555555555555"},
			{"11111111-2222-3333-4444-555555555555", 1, 2, "11111111-2222-3331-4444-555455555555"},
			{"550e8400-e29b-41d4-a716-446655440000", 3, 7, "550e8400-e29b-41d3-a716-446555440000"},
		}
		// The first two share an execution, which holds one lease at a time,
		// so they live in different partitions.
		for i, v := range vectors {
			registrytest.InsertLeases(t, sqlDB, registrytest.Lease{
				ExecutionID:      registry.ExecutionID{Partition: uint16(i), UUID: uuid.MustParse(v.execution)},
				AttemptIndex:     v.attempt,
				LeaseEpoch:       v.epoch,
				WorkerInstanceID: "w",
				ExpiresAt:        t0.Add(time.Duration(i) * time.Second),
			})
		}
		res, err := r.ListExpiredLeases(context.Background(), registry.ListExpiredLeasesArgs{AsOf: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "leases", len(res.Leases), len(vectors))
		for i, v := range vectors {
			l := res.Leases[i]
			equal(t, "lease id of "+v.execution, l.LeaseID.String(), v.want)
			equal(t, "attempt", l.AttemptIndex, v.attempt)
			equal(t, "epoch", l.LeaseEpoch, v.epoch)
		}
	})
}

func TestListExpiredLeasesSemantics(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, sqlDB := setupLeases(t, s)
		ctx := context.Background()
		id := func(p uint16, last byte) registry.ExecutionID {
			var u uuid.UUID
			u[15] = last
			return registry.ExecutionID{Partition: p, UUID: u}
		}
		registrytest.InsertLeases(t, sqlDB,
			registrytest.Lease{ExecutionID: id(1, 1), Namespace: "a", State: "active", WorkerInstanceID: "w1", ExpiresAt: t0, LeaseEpoch: 4, AttemptIndex: 2},
			registrytest.Lease{ExecutionID: id(1, 2), Namespace: "b", State: "claimed", WorkerInstanceID: "w2", ExpiresAt: t0.Add(-time.Second)},
			registrytest.Lease{ExecutionID: id(0, 3), Namespace: "a", State: "running", WorkerInstanceID: "w3", ExpiresAt: t0},
			// Not listed: expires after AsOf, no holder, no expiry, states that hold no lease.
			registrytest.Lease{ExecutionID: id(0, 4), Namespace: "a", WorkerInstanceID: "w4", ExpiresAt: t0.Add(time.Millisecond)},
			registrytest.Lease{ExecutionID: id(0, 5), Namespace: "a", ExpiresAt: t0.Add(-time.Hour)},
			registrytest.Lease{ExecutionID: id(0, 6), Namespace: "a", WorkerInstanceID: "w6"},
			registrytest.Lease{ExecutionID: id(0, 7), Namespace: "a", State: "completed", WorkerInstanceID: "w7", ExpiresAt: t0.Add(-time.Hour)},
			registrytest.Lease{ExecutionID: id(0, 8), Namespace: "a", State: "suspended", WorkerInstanceID: "w8", ExpiresAt: t0.Add(-time.Hour)},
			// Listed, with no namespace in its execution.
			registrytest.Lease{ExecutionID: id(2, 9), WorkerInstanceID: "w9", ExpiresAt: t0},
		)
		list := func(args registry.ListExpiredLeasesArgs) []string {
			t.Helper()
			res, err := r.ListExpiredLeases(ctx, args)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, l := range res.Leases {
				out = append(out, l.Namespace+":"+l.WorkerInstanceID)
			}
			return out
		}
		// AsOf is inclusive; order is expiry, then partition, then UUID bytes.
		equal(t, "all", list(registry.ListExpiredLeasesArgs{AsOf: t0}), []string{"b:w2", "a:w3", "a:w1", ":w9"})
		equal(t, "namespace a", list(registry.ListExpiredLeasesArgs{AsOf: t0, Namespace: "a"}), []string{"a:w3", "a:w1"})
		equal(t, "namespace c", list(registry.ListExpiredLeasesArgs{AsOf: t0, Namespace: "c"}), []string(nil))
		equal(t, "a millisecond earlier", list(registry.ListExpiredLeasesArgs{AsOf: t0.Add(-time.Millisecond)}), []string{"b:w2"})

		res, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: t0, Namespace: "a", Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "first lease", res.Leases[0], registry.ExpiredLease{
			ExecutionID:      id(0, 3),
			LeaseID:          id(0, 3).UUID,
			WorkerInstanceID: "w3",
			Namespace:        "a",
			ExpiresAt:        t0,
		})
		equal(t, "next", *res.Next, registry.LeaseCursor{ExpiresAt: t0, ExecutionID: id(0, 3)})

		// A cursor at the last row gives an empty page and no Next.
		res, err = r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{
			AsOf: t0, After: &registry.LeaseCursor{ExpiresAt: t0, ExecutionID: id(2, 9)},
		})
		if err != nil || len(res.Leases) != 0 || res.Next != nil {
			t.Fatalf("page after the last lease = %+v, %v; want empty with nil Next", res, err)
		}
		// A page that ends exactly at the last row has no Next either.
		res, err = r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: t0, Limit: 4})
		if err != nil || len(res.Leases) != 4 || res.Next != nil {
			t.Fatalf("exact page = %d leases, Next %v, %v", len(res.Leases), res.Next, err)
		}
	})
}

func TestListExpiredLeasesValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setupLeases(t, s)
		ctx := context.Background()
		for _, tc := range []struct {
			args  registry.ListExpiredLeasesArgs
			field string
		}{
			{registry.ListExpiredLeasesArgs{Namespace: "ns\x00"}, "namespace"},
			{registry.ListExpiredLeasesArgs{Limit: -1}, "limit"},
			{registry.ListExpiredLeasesArgs{AsOf: time.Unix(-1, 0)}, "as_of"},
			{registry.ListExpiredLeasesArgs{After: &registry.LeaseCursor{}}, "after.expires_at"},
		} {
			_, err := r.ListExpiredLeases(ctx, tc.args)
			wantValidation(t, err, tc.field)
		}
	})
}

// TestExpiredLeaseWalkThroughPreEpochExpiry pages past a lease the engine
// dated before 1970: its cursor must be accepted back.
func TestExpiredLeaseWalkThroughPreEpochExpiry(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, sqlDB := setupLeases(t, s)
		registrytest.InsertLeases(t, sqlDB,
			registrytest.Lease{WorkerInstanceID: "w1", ExpiresAt: time.UnixMilli(-5)},
			registrytest.Lease{WorkerInstanceID: "w2", ExpiresAt: time.UnixMilli(10)},
		)
		var got []string
		for _, l := range walkExpired(t, r, registry.ListExpiredLeasesArgs{AsOf: time.UnixMilli(100), Limit: 1}, 3) {
			got = append(got, l.WorkerInstanceID)
		}
		equal(t, "walk", got, []string{"w1", "w2"})
	})
}

// walkExpired pages through ListExpiredLeases from args.After to the end
// and returns every lease it listed; the walk fails t after maxPages pages.
func walkExpired(t *testing.T, r *registry.Registry, args registry.ListExpiredLeasesArgs, maxPages int) []registry.ExpiredLease {
	t.Helper()
	var out []registry.ExpiredLease
	for pages := 0; ; pages++ {
		if pages > maxPages {
			t.Fatalf("namespace %q, limit %d: walk does not end", args.Namespace, args.Limit)
		}
		res, err := r.ListExpiredLeases(context.Background(), args)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Leases...)
		if res.Next == nil {
			return out
		}
		args.After = res.Next
	}
}

// TestExpiredLeaseWalkVisitsEveryLeaseOnce is the property test for defect
// 2 of the reference, whose text cursor skipped and repeated leases when
// equal expiries spanned partitions of different digit counts.
func TestExpiredLeaseWalkVisitsEveryLeaseOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 0))
		r, sqlDB := setupLeases(t, s)

		namespaces := []string{"a", "b", "c"}
		states := []string{"active", "claimed", "running", "running", "completed", "suspended"}
		asOf := t0
		var leases []registrytest.Lease
		for range 3000 {
			l := registrytest.Lease{
				ExecutionID:      registry.ExecutionID{Partition: uint16(rng.IntN(256))},
				Namespace:        namespaces[rng.IntN(len(namespaces))],
				State:            states[rng.IntN(len(states))],
				AttemptIndex:     uint32(rng.IntN(5)),
				LeaseEpoch:       uint64(rng.IntN(10)),
				WorkerInstanceID: "w" + strings.Repeat("x", rng.IntN(3)),
			}
			l.ExecutionID.UUID = uuid.UUID(randomBytes(rng))
			switch rng.IntN(4) {
			case 0, 1: // half share one millisecond: the equal-expiry case
				l.ExpiresAt = asOf
			case 2:
				l.ExpiresAt = asOf.Add(-time.Duration(rng.IntN(5)) * time.Millisecond)
			case 3:
				l.ExpiresAt = asOf.Add(time.Duration(rng.IntN(3)-1) * time.Millisecond)
			}
			if rng.IntN(20) == 0 {
				l.WorkerInstanceID = ""
			}
			leases = append(leases, l)
		}
		registrytest.InsertLeases(t, sqlDB, leases...)

		for _, ns := range []string{"", "b"} {
			var want []registrytest.Lease
			for _, l := range leases {
				leased := l.State == "active" || l.State == "claimed" || l.State == "running"
				if leased && l.WorkerInstanceID != "" && !l.ExpiresAt.After(asOf) && (ns == "" || l.Namespace == ns) {
					want = append(want, l)
				}
			}
			slices.SortFunc(want, func(a, b registrytest.Lease) int {
				return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt),
					cmp.Compare(a.ExecutionID.Partition, b.ExecutionID.Partition),
					bytes.Compare(a.ExecutionID.UUID[:], b.ExecutionID.UUID[:]))
			})
			if len(want) < 1000 && ns == "" {
				t.Fatalf("only %d eligible leases; the test needs more", len(want))
			}
			for _, limit := range []int{1, 2, 3, 7, 1000} {
				var got []registry.ExecutionID
				for _, l := range walkExpired(t, r, registry.ListExpiredLeasesArgs{AsOf: asOf, Namespace: ns, Limit: limit}, len(want)+1) {
					got = append(got, l.ExecutionID)
				}
				if len(got) != len(want) {
					t.Fatalf("namespace %q, limit %d: walked %d leases, want %d", ns, limit, len(got), len(want))
				}
				for i := range want {
					if got[i] != want[i].ExecutionID {
						t.Fatalf("namespace %q, limit %d: lease %d is %v, want %v", ns, limit, i, got[i], want[i].ExecutionID)
					}
				}
			}
		}
	})
}

func randomBytes(rng *rand.Rand) (b [16]byte) {
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

// TestExpiredLeaseQueryPlan proves that a page is a walk of the expiry
// index from the cursor, with no temporary B-tree to sort the expired set
// (defect 3 of the reference).
func TestExpiredLeaseQueryPlan(t *testing.T) {
	_, sqlDB := setupLeases(t, sqliteStore)
	query := sqlctest.Query(t, "queries/sqlite/leases.sql", "ListExpiredLeases")
	rows, err := sqlDB.Query("EXPLAIN QUERY PLAN "+query,
		t0.UnixMilli(), t0.UnixMilli(), 3, make([]byte, 16), 0, "ns", 1001)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	t.Logf("plan:\n%s", text)
	if len(plan) != 2 ||
		!strings.HasPrefix(plan[0], "SEARCH a USING COVERING INDEX ff_worker_registry_lease_idx ((lease_expires_at_ms,partition_key,execution_id,attempt_index)>(?,?,?,?)") ||
		!strings.HasPrefix(plan[1], "SEARCH c USING PRIMARY KEY (partition_key=? AND execution_id=?)") {
		t.Fatalf("plan is not an index walk with a key lookup per lease:\n%s", text)
	}
	if strings.Contains(text, "TEMP B-TREE") {
		t.Fatalf("plan sorts:\n%s", text)
	}
}

// setupLeases is setup for tests that write leases: the registry and the
// database that registrytest writes them to.
func setupLeases(t *testing.T, s store) (*registry.Registry, *sql.DB) {
	t.Helper()
	r, b := setup(t, s)
	return r, b.raw.DB
}

// TestPostgresExpiredLeaseQueryPlan checks on Postgres, with statistics,
// that a page walks ff_worker_registry_lease_idx from the cursor and never
// sorts: not when a namespace filter makes the namespace index tempting,
// not deep in the walk.
func TestPostgresExpiredLeaseQueryPlan(t *testing.T) {
	t.Parallel()
	t.Run(postgresStore.name, func(t *testing.T) {
		_, b := setup(t, postgresStore)
		const n = 30000
		registrytest.InsertLeasesFunc(t, b.raw.DB, n, func(i int) registrytest.Lease {
			return registrytest.Lease{
				ExecutionID:      registry.ExecutionID{Partition: uint16(i % 256)},
				Namespace:        fmt.Sprintf("ns%d", i%3),
				WorkerInstanceID: "w",
				ExpiresAt:        t0.Add(time.Duration(i%5000) * time.Second),
			}
		}, nil)
		if _, err := b.raw.Exec("ANALYZE"); err != nil {
			t.Fatal(err)
		}
		query, params := sqlctest.QueryParams(t, "queries/postgres/leases.sql", "ListExpiredLeases")
		asOf := t0.Add(time.Hour).UnixMilli()
		// Once a prepared statement has run five times, Postgres may switch
		// it to a generic plan, made without the parameters' values: check
		// that one too.
		conn, err := b.raw.DB.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The connection goes back to a pool that later tests share.
		defer conn.ExecContext(context.Background(), "RESET plan_cache_mode")
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			if _, err := conn.ExecContext(context.Background(), "SET plan_cache_mode = "+mode); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name      string
				after     int64
				namespace string
			}{
				{"first page, all namespaces", math.MinInt64, ""},
				{"first page, one namespace", math.MinInt64, "ns1"},
				{"deep page, one namespace", t0.Add(50 * time.Minute).UnixMilli(), "ns2"},
			} {
				var plan string
				values := map[string]any{
					"namespace": tc.namespace, "as_of_ms": asOf, "after_expires_at_ms": tc.after,
					"after_partition": -1, "after_execution_id": uuid.Nil, "after_attempt_index": -1, "row_limit": 1001,
				}
				args := make([]any, len(params))
				for i, name := range params {
					args[i] = values[name]
				}
				err := conn.QueryRowContext(context.Background(), "EXPLAIN (FORMAT JSON) "+b.raw.rebind(query), args...).Scan(&plan)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(plan, `"Node Type": "Sort"`) || strings.Contains(plan, `"Node Type": "Incremental Sort"`) ||
					!strings.Contains(plan, `"Index Name": "ff_worker_registry_lease_idx"`) {
					t.Errorf("%s, %s: the plan is not a walk of the expiry index:\n%s", mode, tc.name, plan)
				}
			}
		}
	})
}
