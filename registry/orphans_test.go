package registry_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// listOrphans walks every page of ListOrphanedLeases with the given page
// size, checking that Next is set exactly when a page is full and more
// follow, and returns what it visited.
func listOrphans(t *testing.T, r *registry.Registry, args registry.ListOrphanedLeasesArgs) []registry.ExpiredLease {
	t.Helper()
	var out []registry.ExpiredLease
	for pages := 0; ; pages++ {
		res, err := r.ListOrphanedLeases(context.Background(), args)
		if err != nil {
			t.Fatalf("ListOrphanedLeases(%+v): %v", args, err)
		}
		out = append(out, res.Leases...)
		if res.Next == nil {
			return out
		}
		limit := cmp.Or(args.Limit, registry.DefaultLimit)
		if len(res.Leases) != limit {
			t.Fatalf("page of %d with a Next, limit %d", len(res.Leases), limit)
		}
		if pages > 10000 {
			t.Fatal("the walk does not end")
		}
		args.After = res.Next
	}
}

func holdersOf(leases []registry.ExpiredLease) []string {
	out := []string{}
	for _, l := range leases {
		out = append(out, l.Namespace+":"+l.WorkerInstanceID)
	}
	return out
}

func TestListOrphanedLeasesSemantics(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		asOf := t0.Add(time.Minute)
		at := func(d time.Duration) time.Time { return asOf.Add(d) }
		// live heartbeats on; killed was marked dead, quit deregistered,
		// lapsed's TTL ran out (unswept), elsewhere is live in another
		// namespace than its lease's, ghost never registered.
		for _, w := range []string{"live", "killed", "quit", "elsewhere"} {
			args := registerArgs("a", w, t0)
			args.LivenessTTL = time.Hour
			if w == "elsewhere" {
				args.Namespace = "b"
			}
			mustRegister(t, r, args)
		}
		mustRegister(t, r, registerArgs("a", "lapsed", t0)) // 10 s
		if o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "a", WorkerInstanceID: "killed", Now: t0}); err != nil || o != registry.Marked {
			t.Fatalf("MarkWorkerDead = %v, %v", o, err)
		}
		if o, err := r.DeregisterWorker(ctx, registry.DeregisterWorkerArgs{Namespace: "a", WorkerInstanceID: "quit", Now: t0}); err != nil || o != registry.Deregistered {
			t.Fatalf("DeregisterWorker = %v, %v", o, err)
		}
		id := func(p uint16, last byte) registry.ExecutionID {
			var u uuid.UUID
			u[15] = last
			return registry.ExecutionID{Partition: p, UUID: u}
		}
		registrytest.InsertLeases(t, b.raw.DB,
			registrytest.Lease{ExecutionID: id(1, 1), Namespace: "a", State: "active", WorkerInstanceID: "killed", ExpiresAt: at(time.Second), LeaseEpoch: 3, AttemptIndex: 2},
			registrytest.Lease{ExecutionID: id(0, 2), Namespace: "a", State: "claimed", WorkerInstanceID: "quit", ExpiresAt: at(time.Second)},
			registrytest.Lease{ExecutionID: id(0, 3), Namespace: "b", WorkerInstanceID: "lapsed", ExpiresAt: at(time.Millisecond)},
			registrytest.Lease{ExecutionID: id(2, 4), WorkerInstanceID: "ghost", ExpiresAt: at(time.Hour)}, // no namespace
			// Not listed: a live holder, one live elsewhere, expired at AsOf
			// (ListExpiredLeases' to list), no holder, no expiry, states
			// that hold no lease.
			registrytest.Lease{ExecutionID: id(0, 5), Namespace: "a", WorkerInstanceID: "live", ExpiresAt: at(time.Second)},
			registrytest.Lease{ExecutionID: id(0, 6), Namespace: "a", WorkerInstanceID: "elsewhere", ExpiresAt: at(time.Second)},
			registrytest.Lease{ExecutionID: id(0, 7), Namespace: "a", WorkerInstanceID: "killed", ExpiresAt: asOf},
			registrytest.Lease{ExecutionID: id(0, 8), Namespace: "a", ExpiresAt: at(time.Second)},
			registrytest.Lease{ExecutionID: id(0, 9), Namespace: "a", WorkerInstanceID: "ghost"},
			registrytest.Lease{ExecutionID: id(0, 10), Namespace: "a", State: "completed", WorkerInstanceID: "killed", ExpiresAt: at(time.Second)},
			registrytest.Lease{ExecutionID: id(0, 11), Namespace: "a", State: "suspended", WorkerInstanceID: "ghost", ExpiresAt: at(time.Second)},
		)
		list := func(args registry.ListOrphanedLeasesArgs) []string {
			t.Helper()
			return holdersOf(listOrphans(t, r, args))
		}
		// Order: expiry, partition, UUID bytes.
		equal(t, "all", list(registry.ListOrphanedLeasesArgs{AsOf: asOf}), []string{"b:lapsed", "a:quit", "a:killed", ":ghost"})
		equal(t, "a page at a time", list(registry.ListOrphanedLeasesArgs{AsOf: asOf, Limit: 1}), []string{"b:lapsed", "a:quit", "a:killed", ":ghost"})
		equal(t, "namespace a", list(registry.ListOrphanedLeasesArgs{AsOf: asOf, Namespace: "a"}), []string{"a:quit", "a:killed"})
		equal(t, "namespace c", list(registry.ListOrphanedLeasesArgs{AsOf: asOf, Namespace: "c"}), []string{})
		// lapsed was live until t0+10s; killed's lease at AsOf had expired.
		equal(t, "as of t0+5s", list(registry.ListOrphanedLeasesArgs{AsOf: t0.Add(5 * time.Second)}), []string{"a:killed", "a:quit", "a:killed", ":ghost"})
		// The clock: a registry whose clock reads AsOf.
		clocked := b.open(t, registry.WithClock(func() time.Time { return asOf }))
		equal(t, "AsOf from the clock", holdersOf(listOrphans(t, clocked, registry.ListOrphanedLeasesArgs{})), []string{"b:lapsed", "a:quit", "a:killed", ":ghost"})

		res, err := r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{AsOf: asOf, Namespace: "a", Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "first lease of a", res.Leases, []registry.ExpiredLease{{
			ExecutionID:      id(0, 2),
			LeaseID:          id(0, 2).UUID,
			WorkerInstanceID: "quit",
			Namespace:        "a",
			ExpiresAt:        at(time.Second),
		}})
		equal(t, "next", *res.Next, registry.LeaseCursor{ExpiresAt: at(time.Second), ExecutionID: id(0, 2)})
		res, err = r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{AsOf: asOf, Namespace: "a", After: res.Next})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "second page", holdersOf(res.Leases), []string{"a:killed"})
		equal(t, "its lease", []any{res.Leases[0].AttemptIndex, res.Leases[0].LeaseEpoch, res.Leases[0].LeaseID.String()},
			[]any{uint32(2), uint64(3), "00000000-0000-0003-0000-000200000001"})
		equal(t, "no next", res.Next, (*registry.LeaseCursor)(nil))

		// The holder coming back takes its lease out of the listing.
		if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "z", WorkerID: "p", WorkerInstanceID: "ghost",
			Lanes: []string{"l"}, LivenessTTL: time.Hour, Now: asOf}); err != nil {
			t.Fatal(err)
		}
		equal(t, "after ghost registered", list(registry.ListOrphanedLeasesArgs{AsOf: asOf}), []string{"b:lapsed", "a:quit", "a:killed"})
	})
}

func TestListOrphanedLeasesValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		ctx := context.Background()
		for _, c := range []struct {
			args  registry.ListOrphanedLeasesArgs
			field string
		}{
			{registry.ListOrphanedLeasesArgs{Limit: -1}, "limit"},
			{registry.ListOrphanedLeasesArgs{Namespace: " a"}, "namespace"},
			{registry.ListOrphanedLeasesArgs{AsOf: time.Unix(-1, 0)}, "as_of"},
			{registry.ListOrphanedLeasesArgs{After: &registry.LeaseCursor{}}, "after.expires_at"},
		} {
			_, err := r.ListOrphanedLeases(ctx, c.args)
			wantValidation(t, err, c.field)
		}
		// A cursor before 1970 is a valid position.
		res, err := r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{AsOf: t0, After: &registry.LeaseCursor{ExpiresAt: time.Unix(-5, 0)}})
		if err != nil || len(res.Leases) != 0 || res.Next != nil {
			t.Fatalf("empty registry = %+v, %v", res, err)
		}
	})
}

// TestOrphanedLeasesOfOneExecution: the engine's SQLite tables allow two
// held attempts of one execution with one expiry; the cursor's attempt
// keeps them apart.
func TestOrphanedLeasesOfOneExecution(t *testing.T) {
	for _, s := range []store{sqliteStore, flowfabricStore} {
		t.Run(s.name, func(t *testing.T) {
			r, b := setup(t, s)
			ids := registrytest.InsertLeases(t, b.raw.DB,
				registrytest.Lease{Namespace: "a", WorkerInstanceID: "dead", ExpiresAt: t0.Add(time.Second), AttemptIndex: 0})
			if _, err := b.raw.Exec(`INSERT INTO ff_attempt (partition_key, execution_id, attempt_index, worker_instance_id, lease_epoch, lease_expires_at_ms)
				SELECT partition_key, execution_id, 1, 'dead2', 1, lease_expires_at_ms FROM ff_attempt`); err != nil {
				t.Fatal(err)
			}
			for _, limit := range []int{1, 2, 3} {
				leases := listOrphans(t, r, registry.ListOrphanedLeasesArgs{AsOf: t0, Limit: limit})
				var got []string
				for _, l := range leases {
					if l.ExecutionID != ids[0] {
						t.Fatalf("lease of %v, want %v", l.ExecutionID, ids[0])
					}
					got = append(got, fmt.Sprint(l.WorkerInstanceID, "/", l.AttemptIndex))
				}
				equal(t, fmt.Sprintf("attempts in pages of %d", limit), got, []string{"dead/0", "dead2/1"})
			}
		})
	}
}

// TestOrphanedLeasesOfOneHolderFillPages: one dead holder holds most of
// every page, beside many that hold one lease each, so that its walk reads
// again and again within a page.
func TestOrphanedLeasesOfOneHolderFillPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		const big, small = 300, 12
		registrytest.InsertLeasesFunc(t, b.raw.DB, big+small, func(i int) registrytest.Lease {
			holder := "big"
			if i >= big {
				holder = fmt.Sprintf("small-%d", i)
			}
			return registrytest.Lease{Namespace: "a", WorkerInstanceID: holder, ExpiresAt: t0.Add(time.Duration(i%97) * time.Second)}
		}, nil)
		for _, limit := range []int{1, 7, 50, 299, 0} {
			leases := listOrphans(t, r, registry.ListOrphanedLeasesArgs{AsOf: t0, Limit: limit})
			if want := big + small - 4; len(leases) != want { // 0, 97, 194, 291 expire at t0
				t.Fatalf("pages of %d: %d leases, want %d", limit, len(leases), want)
			}
			seen := map[registry.ExecutionID]bool{}
			for i, l := range leases {
				if seen[l.ExecutionID] {
					t.Fatalf("pages of %d: %v twice", limit, l.ExecutionID)
				}
				seen[l.ExecutionID] = true
				if i > 0 {
					prev := leases[i-1]
					if c := cmp.Or(prev.ExpiresAt.Compare(l.ExpiresAt), cmp.Compare(prev.ExecutionID.Partition, l.ExecutionID.Partition),
						bytes.Compare(prev.ExecutionID.UUID[:], l.ExecutionID.UUID[:])); c >= 0 {
						t.Fatalf("pages of %d: %v before %v", limit, prev, l)
					}
				}
			}
		}
	})
}

// TestOrphanedLeasesMatchModel checks ListOrphanedLeases against a brute
// force over every lease, as holders register, heartbeat, lapse, die and
// leave, and leases move between holders, expire, are renewed and
// released: every page size and namespace filter must walk exactly the
// model's leases, in the model's order.
func TestOrphanedLeasesMatchModel(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 7))

		// Holders whose names sort as prefixes of each other, and one that
		// is not a registered shape at all.
		holders := []string{"w", "w1", "w10", "w2", "W", "x", "é", "ghost"}
		namespaces := []string{"a", "b", ""} // "": the execution has none
		states := []string{"active", "claimed", "running", "running", "completed", "suspended"}
		type lease struct {
			id             registry.ExecutionID
			ns, state      string
			holder         string // "" for none
			expiresMS      int64  // 0 for none
			epoch, attempt uint64
		}
		pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
		// Half the leases go to w, so that its part of a page outgrows its
		// first read.
		pickHolder := func() string {
			if rng.IntN(2) == 0 {
				return "w"
			}
			return pick(holders)
		}
		now := t0
		// Expiries on a coarse grid around now, so that many tie.
		expiry := func() int64 { return now.Add(time.Duration(rng.IntN(12)-3) * 500 * time.Millisecond).UnixMilli() }
		leases := make([]lease, 150)
		fixtures := make([]registrytest.Lease, len(leases))
		for i := range leases {
			var u uuid.UUID
			u[0], u[15] = byte(rng.IntN(3)), byte(i+1) // shared leading bytes; never the nil UUID
			l := lease{id: registry.ExecutionID{Partition: uint16(rng.IntN(3)), UUID: u}, ns: pick(namespaces), state: pick(states),
				holder: pickHolder(), expiresMS: expiry(), epoch: uint64(rng.IntN(4)), attempt: uint64(rng.IntN(3))}
			leases[i] = l
			fixtures[i] = registrytest.Lease{ExecutionID: l.id, Namespace: l.ns, State: l.state, WorkerInstanceID: l.holder,
				ExpiresAt: time.UnixMilli(l.expiresMS), LeaseEpoch: l.epoch, AttemptIndex: uint32(l.attempt)}
		}
		registrytest.InsertLeases(t, b.raw.DB, fixtures...)
		execArg := func(id registry.ExecutionID) any {
			if b.engine == enginePostgres {
				return id.UUID.String()
			}
			return id.UUID[:]
		}
		nullable := func(s string, v int64) (any, any) {
			if s == "" {
				return nil, nil
			}
			return s, v
		}

		type key struct{ ns, instance string }
		type registration struct{ expiresMS, ttlMS int64 }
		live := map[key]registration{} // the stored registrations, as the model sees them
		for round := range 25 {
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			nowMS := now.UnixMilli()
			for _, h := range holders[:len(holders)-1] { // ghost never registers
				k := key{pick(namespaces[:2]), h}
				reg, isLive := live[k]
				isLive = isLive && reg.expiresMS > nowMS
				switch rng.IntN(6) {
				case 0:
					ttl := time.Duration(1+rng.IntN(4)) * time.Second
					args := registry.RegisterWorkerArgs{Namespace: k.ns, WorkerID: "pool", WorkerInstanceID: h, Lanes: []string{"l"}, LivenessTTL: ttl, Now: now}
					if _, err := r.RegisterWorker(ctx, args); err != nil {
						t.Fatal(err)
					}
					live[k] = registration{nowMS + ttl.Milliseconds(), ttl.Milliseconds()}
				case 1:
					hb := mustHeartbeat(t, r, k.ns, h, now)
					equal(t, "heartbeat", hb.Outcome == registry.HeartbeatRefreshed, isLive)
					if isLive {
						live[k] = registration{nowMS + reg.ttlMS, reg.ttlMS}
					}
				case 2:
					o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: k.ns, WorkerInstanceID: h, Now: now})
					if err != nil || (o == registry.Marked) != isLive {
						t.Fatalf("MarkWorkerDead = %v, %v; live %v", o, err, isLive)
					}
					if isLive {
						delete(live, k)
					}
				case 3:
					o, err := r.DeregisterWorker(ctx, registry.DeregisterWorkerArgs{Namespace: k.ns, WorkerInstanceID: h, Now: now})
					if err != nil || (o == registry.Deregistered) != isLive {
						t.Fatalf("DeregisterWorker = %v, %v; live %v", o, err, isLive)
					}
					if isLive {
						delete(live, k)
					}
				}
			}
			if rng.IntN(4) == 0 {
				if _, err := r.SweepExpiredWorkers(ctx, now); err != nil {
					t.Fatal(err)
				}
				for k, reg := range live {
					if reg.expiresMS <= nowMS {
						delete(live, k)
					}
				}
			}
			// The engine moves, renews and releases leases, and finishes
			// executions.
			for range 20 {
				l := &leases[rng.IntN(len(leases))]
				switch rng.IntN(4) {
				case 0, 1:
					l.holder, l.expiresMS, l.epoch = pickHolder(), expiry(), l.epoch+1
				case 2:
					l.holder = ""
				case 3:
					l.state = pick(states)
					if _, err := b.raw.Exec(`UPDATE ff_exec_core SET public_state = ? WHERE partition_key = ? AND execution_id = ?`,
						l.state, int64(l.id.Partition), execArg(l.id)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				holder, expires := nullable(l.holder, l.expiresMS)
				if _, err := b.raw.Exec(`UPDATE ff_attempt SET worker_instance_id = ?, lease_expires_at_ms = ?, lease_epoch = ?
					WHERE partition_key = ? AND execution_id = ?`, holder, expires, int64(l.epoch), int64(l.id.Partition), execArg(l.id)); err != nil {
					t.Fatal(err)
				}
			}

			asOf := now.Add(time.Duration(rng.IntN(3000)-1000) * time.Millisecond)
			asOfMS := asOf.UnixMilli()
			liveAnywhere := func(holder string) bool {
				for k, reg := range live {
					if k.instance == holder && reg.expiresMS > asOfMS {
						return true
					}
				}
				return false
			}
			for _, ns := range []string{"", "a", "b"} {
				var want []string
				var model []lease
				for _, l := range leases {
					if l.holder != "" && l.expiresMS > asOfMS && slices.Contains([]string{"active", "claimed", "running"}, l.state) &&
						(ns == "" || l.ns == ns) && !liveAnywhere(l.holder) {
						model = append(model, l)
					}
				}
				slices.SortFunc(model, func(x, y lease) int {
					return cmp.Or(cmp.Compare(x.expiresMS, y.expiresMS), cmp.Compare(x.id.Partition, y.id.Partition),
						bytes.Compare(x.id.UUID[:], y.id.UUID[:]), cmp.Compare(x.attempt, y.attempt))
				})
				for _, l := range model {
					want = append(want, fmt.Sprint(l.id, l.attempt, l.epoch, l.holder, l.ns, l.expiresMS))
				}
				// Small pages, and pages large enough that a holder's
				// first read cannot fill its part of them.
				limit := []int{1, 2, 3, 5, 17, 40, 0}[rng.IntN(7)]
				var got []string
				for _, l := range listOrphans(t, r, registry.ListOrphanedLeasesArgs{AsOf: asOf, Namespace: ns, Limit: limit}) {
					got = append(got, fmt.Sprint(l.ExecutionID, l.AttemptIndex, l.LeaseEpoch, l.WorkerInstanceID, l.Namespace, l.ExpiresAt.UnixMilli()))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("round %d, namespace %q, pages of %d (seed %d):\n got %s\nwant %s", round, ns, limit, seed,
						strings.Join(got, "\n     "), strings.Join(want, "\n     "))
				}
			}
		}
	})
}
