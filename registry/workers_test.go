package registry_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

func TestRegisterNewWorkerIsRegistered(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		args := registry.RegisterWorkerArgs{
			Namespace:        "ns",
			WorkerID:         "gpu-pool-1",
			WorkerInstanceID: "gpu-pool-1-a",
			Lanes:            []string{"gpu", "default", "gpu"},
			Capabilities:     []string{"fp16", "cuda", "fp16"},
			LivenessTTL:      10*time.Second + 999*time.Microsecond, // truncated to 10s
			Now:              t0.Add(123456 * time.Nanosecond),      // truncated to t0
		}
		equal(t, "outcome", mustRegister(t, r, args), registry.Registered)

		res := mustList(t, r, registry.ListWorkersArgs{Namespace: "ns", Now: t0})
		equal(t, "workers", res.Workers, []registry.WorkerInfo{{
			Namespace:        "ns",
			WorkerID:         "gpu-pool-1",
			WorkerInstanceID: "gpu-pool-1-a",
			Lanes:            []string{"default", "gpu"},
			Capabilities:     []string{"cuda", "fp16"},
			LastHeartbeat:    t0,
			RegisteredAt:     t0,
			ExpiresAt:        t0.Add(10 * time.Second),
			LivenessTTL:      10 * time.Second,
		}})
		if res.Next != nil {
			t.Errorf("Next = %+v, want nil", res.Next)
		}
		equal(t, "events", b.events(t), []event{{"ns", "gpu-pool-1-a", "registered", t0.UnixMilli(), nullString()}})
	})
}

func TestRegisterLiveWorkerIsRefreshed(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		mustRegister(t, r, registry.RegisterWorkerArgs{
			Namespace: "ns", WorkerID: "w", WorkerInstanceID: "i",
			Lanes: []string{"a"}, Capabilities: []string{"x"}, LivenessTTL: 10 * time.Second, Now: t0,
		})
		later := t0.Add(9 * time.Second)
		o := mustRegister(t, r, registry.RegisterWorkerArgs{
			Namespace: "ns", WorkerID: "w", WorkerInstanceID: "i",
			Lanes: []string{"b", "c"}, LivenessTTL: 30 * time.Second, Now: later,
		})
		equal(t, "outcome", o, registry.Refreshed)
		w := mustList(t, r, registry.ListWorkersArgs{Now: later}).Workers
		equal(t, "workers", w, []registry.WorkerInfo{{
			Namespace: "ns", WorkerID: "w", WorkerInstanceID: "i",
			Lanes:         []string{"b", "c"},
			LastHeartbeat: later,
			RegisteredAt:  t0, // kept
			ExpiresAt:     later.Add(30 * time.Second),
			LivenessTTL:   30 * time.Second,
		}})
		equal(t, "event kinds", b.eventKinds(t), []string{"registered", "refreshed"})
	})
}

// Defect 1 of the reference: a register over an expired, unswept row said
// Refreshed and kept the old RegisteredAt.
func TestRegisterOverExpiredRowIsRegistered(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		mustRegister(t, r, registerArgs("ns", "i", t0))
		expiry := t0.Add(10 * time.Second) // not live at exactly its expiry
		equal(t, "outcome", mustRegister(t, r, registerArgs("ns", "i", expiry)), registry.Registered)

		w := mustList(t, r, registry.ListWorkersArgs{Now: expiry}).Workers
		if len(w) != 1 || !w[0].RegisteredAt.Equal(expiry) {
			t.Fatalf("workers = %+v, want one registered at %v", w, expiry)
		}
		// The stale registration's end is recorded before the new one starts.
		equal(t, "event kinds", b.eventKinds(t), []string{"registered", "ttl_swept", "registered"})
	})
}

// Defect 1 of the reference: an expired row blocked its instance ID from
// registering under another worker ID.
func TestExpiredRowDoesNotBlockNewWorkerID(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		mustRegister(t, r, registerArgs("ns", "i", t0))
		args := registerArgs("ns", "i", t0.Add(10*time.Second))
		args.WorkerID = "another-pool"
		equal(t, "outcome", mustRegister(t, r, args), registry.Registered)
		w := mustList(t, r, registry.ListWorkersArgs{Now: args.Now}).Workers
		equal(t, "worker id", w[0].WorkerID, "another-pool")
	})
}

func TestRegisterLiveUnderOtherWorkerIDIsRejected(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		mustRegister(t, r, registerArgs("ns", "i", t0))
		before := b.snapshot(t)

		args := registerArgs("ns", "i", t0.Add(10*time.Second-time.Millisecond)) // last live millisecond
		args.WorkerID = "another-pool"
		_, err := r.RegisterWorker(context.Background(), args)
		if !errors.Is(err, registry.ErrInstanceReassigned) || !errors.Is(err, registry.ErrInvalidInput) {
			t.Fatalf("err = %v, want ErrInstanceReassigned matching ErrInvalidInput", err)
		}
		if want := `register worker: worker instance "i" is live under worker ID "pool-ns", not "another-pool"`; err.Error() != want {
			t.Errorf("err = %q, want %q: the operation, then what is wrong, once", err, want)
		}
		equal(t, "database", b.snapshot(t), before)
	})
}

func TestConcurrentRegistersNeverFail(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		// Defect 7 of the reference: deferred transactions made two concurrent
		// registers fail with SQLITE_BUSY. Two registries on one file stand in
		// for two processes.
		r1, b := setup(t, s)
		r2, err := registry.Open(context.Background(), b.path)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()

		const goroutines, rounds = 8, 25
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			outcomes = map[registry.RegisterOutcome]int{}
		)
		for g := range goroutines {
			reg := []*registry.Registry{r1, r2}[g%2]
			wg.Go(func() {
				for range rounds {
					// Every goroutine registers the same instance.
					o, err := reg.RegisterWorker(context.Background(), registerArgs("ns", "shared", t0))
					if err != nil {
						t.Errorf("RegisterWorker: %v", err)
						return
					}
					mu.Lock()
					outcomes[o]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		equal(t, "outcomes", outcomes, map[registry.RegisterOutcome]int{
			registry.Registered: 1,
			registry.Refreshed:  goroutines*rounds - 1,
		})
		if n := len(b.events(t)); n != goroutines*rounds {
			t.Errorf("events = %d, want %d", n, goroutines*rounds)
		}
	})
}

func TestHeartbeatRefreshesLiveWorker(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		mustRegister(t, r, registerArgs("ns", "i", t0))
		at := t0.Add(10*time.Second - time.Millisecond) // last live millisecond
		res := mustHeartbeat(t, r, "ns", "i", at)
		equal(t, "result", res, registry.HeartbeatResult{
			Outcome:    registry.HeartbeatRefreshed,
			NextExpiry: at.Add(10 * time.Second),
			Directive:  registry.DirectiveNone,
		})
		w := mustList(t, r, registry.ListWorkersArgs{Now: at}).Workers
		equal(t, "last heartbeat", w[0].LastHeartbeat, at)
		equal(t, "expires at", w[0].ExpiresAt, res.NextExpiry)
		equal(t, "registered at", w[0].RegisteredAt, t0)
		// Heartbeat events are off by default.
		equal(t, "event kinds", b.eventKinds(t), []string{"registered"})
	})
}

func TestHeartbeatAtExpiryIsNotRegistered(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		mustRegister(t, r, registerArgs("ns", "i", t0))
		before := b.snapshot(t)
		res := mustHeartbeat(t, r, "ns", "i", t0.Add(10*time.Second))
		equal(t, "result", res, registry.HeartbeatResult{Outcome: registry.HeartbeatNotRegistered})
		equal(t, "database", b.snapshot(t), before)

		res = mustHeartbeat(t, r, "ns", "never-registered", t0)
		equal(t, "outcome of unknown instance", res.Outcome, registry.HeartbeatNotRegistered)
	})
}

func TestHeartbeatEventsWhenEnabled(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s, registry.WithHeartbeatEvents(true))
		mustRegister(t, r, registerArgs("ns", "i", t0))
		mustHeartbeat(t, r, "ns", "i", t0.Add(time.Second))
		mustHeartbeat(t, r, "ns", "i", t0.Add(time.Second)) // same millisecond
		mustHeartbeat(t, r, "ns", "gone", t0.Add(time.Second))
		equal(t, "event kinds", b.eventKinds(t), []string{"registered", "heartbeat", "heartbeat"})
	})
}

// Defect 5 of the reference: events were keyed by timestamp, so a second
// event in the same millisecond was silently dropped. On SQLite the table
// is FlowFabric's, keyed by (instance, time, kind): a later event of a kind
// moves to the next free millisecond instead.
func TestSameMillisecondEventsAreAllKept(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		for range 3 {
			mustRegister(t, r, registerArgs("ns", "i", t0))
			mustRegister(t, r, registerArgs("ns", "i", t0))
			o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "i", Now: t0})
			if err != nil || o != registry.Marked {
				t.Fatalf("MarkWorkerDead = %v, %v", o, err)
			}
		}
		events := b.events(t)
		equal(t, "event count", len(events), 9)
		seen := map[string]int{}
		for _, e := range events {
			equal(t, e.Kind+" event time", e.AtMS, b.eventTime(t0.UnixMilli(), seen[e.Kind]))
			seen[e.Kind]++
		}
	})
}

func TestMarkWorkerDead(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "i", t0))
		mustRegister(t, r, registerArgs("ns", "other", t0))

		o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{
			Namespace: "ns", WorkerInstanceID: "i", Reason: "decommissioned", Now: t0.Add(time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "outcome", o, registry.Marked)
		equal(t, "listed", instances(mustList(t, r, registry.ListWorkersArgs{Now: t0.Add(time.Second)}).Workers), []string{"ns/other"})
		events := b.events(t)
		equal(t, "last event", events[len(events)-1], event{"ns", "i", "marked_dead", t0.Add(time.Second).UnixMilli(), nullString("decommissioned")})

		// Marked dead means gone: a second mark and a heartbeat find nothing.
		before := b.snapshot(t)
		o, err = r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "i", Now: t0.Add(2 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "second outcome", o, registry.MarkNotRegistered)
		equal(t, "heartbeat", mustHeartbeat(t, r, "ns", "i", t0.Add(2*time.Second)).Outcome, registry.HeartbeatNotRegistered)
		equal(t, "database", b.snapshot(t), before)
	})
}

// Defect 1 of the reference: mark-dead on an expired, unswept row said
// Marked.
func TestMarkDeadOnExpiredRowIsNotRegistered(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		mustRegister(t, r, registerArgs("ns", "i", t0))
		before := b.snapshot(t)
		o, err := r.MarkWorkerDead(context.Background(), registry.MarkWorkerDeadArgs{
			Namespace: "ns", WorkerInstanceID: "i", Reason: "late", Now: t0.Add(10 * time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "outcome", o, registry.MarkNotRegistered)
		// The row stays for the sweep, which records its end.
		equal(t, "database", b.snapshot(t), before)
	})
}

// Defect 8 of the reference: list_workers returned expired rows and refused
// to list across namespaces.
func TestListWorkersLiveOnlyAcrossNamespaces(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		short := registerArgs("b", "short", t0)
		short.LivenessTTL = time.Second
		mustRegister(t, r, short)
		mustRegister(t, r, registerArgs("b", "long", t0))
		mustRegister(t, r, registerArgs("a", "long", t0))

		equal(t, "at t0", instances(mustList(t, r, registry.ListWorkersArgs{Now: t0}).Workers),
			[]string{"a/long", "b/long", "b/short"})
		// At its expiry the short-lived row is no longer listed, though it is
		// still stored.
		equal(t, "at expiry", instances(mustList(t, r, registry.ListWorkersArgs{Now: t0.Add(time.Second)}).Workers),
			[]string{"a/long", "b/long"})
		equal(t, "rows stored", b.rowCount(t), 3)
		equal(t, "namespace b", instances(mustList(t, r, registry.ListWorkersArgs{Namespace: "b", Now: t0.Add(time.Second)}).Workers),
			[]string{"b/long"})
	})
}

func TestListWorkersByteOrderAndPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		// Byte order: upper case before lower case, "é" (0xC3...) after "z",
		// "a" before "a-1" before "aa".
		var want []string
		for _, ns := range []string{"NS", "ns", "nsé"} {
			for _, id := range []string{"a", "a-1", "aa", "B", "z", "é"} {
				mustRegister(t, r, registerArgs(ns, id, t0))
			}
		}
		for _, ns := range []string{"NS", "ns", "nsé"} {
			for _, id := range []string{"B", "a", "a-1", "aa", "z", "é"} {
				want = append(want, ns+"/"+id)
			}
		}
		equal(t, "one page", instances(mustList(t, r, registry.ListWorkersArgs{Now: t0}).Workers), want)

		for _, limit := range []int{1, 2, 5, 6, 17, 18, 19} {
			var got []string
			var after *registry.WorkerCursor
			pages := 0
			for {
				res := mustList(t, r, registry.ListWorkersArgs{After: after, Limit: limit, Now: t0})
				pages++
				got = append(got, instances(res.Workers)...)
				if res.Next == nil {
					break
				}
				if len(res.Workers) != limit {
					t.Fatalf("limit %d: page of %d with a Next cursor", limit, len(res.Workers))
				}
				after = res.Next
			}
			equal(t, "walk", got, want)
			// Next is nil as soon as nothing more exists: no empty last page.
			equal(t, "pages", pages, (len(want)+limit-1)/limit)
		}

		// Within one namespace.
		res := mustList(t, r, registry.ListWorkersArgs{Namespace: "ns", Limit: 4, Now: t0})
		equal(t, "ns page 1", instances(res.Workers), want[6:10])
		res = mustList(t, r, registry.ListWorkersArgs{Namespace: "ns", Limit: 4, After: res.Next, Now: t0})
		equal(t, "ns page 2", instances(res.Workers), want[10:12])
		if res.Next != nil {
			t.Errorf("Next = %+v after the last page", res.Next)
		}
	})
}

func TestListWorkersFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		reg := func(id string, lanes, caps []string) {
			mustRegister(t, r, registry.RegisterWorkerArgs{
				Namespace: "ns", WorkerID: "w", WorkerInstanceID: id,
				Lanes: lanes, Capabilities: caps, LivenessTTL: time.Minute, Now: t0,
			})
		}
		reg("w1", []string{"default", "build"}, []string{"cuda"})
		reg("w2", []string{"default", "gpu"}, []string{"fp16"})
		reg("w3", []string{"build", "gpu"}, []string{"cpu", "cuda-12"})
		reg("w4", []string{"gpu-2"}, nil)

		list := func(lane, capability string) []string {
			res := mustList(t, r, registry.ListWorkersArgs{Lane: lane, Capability: capability, Now: t0})
			return instances(res.Workers)
		}
		equal(t, "lane gpu", list("gpu", ""), []string{"ns/w2", "ns/w3"})
		equal(t, "lane build", list("build", ""), []string{"ns/w1", "ns/w3"})
		equal(t, "capability cuda", list("", "cuda"), []string{"ns/w1"}) // not cuda-12
		equal(t, "lane gpu, capability fp16", list("gpu", "fp16"), []string{"ns/w2"})
		equal(t, "lane gp", list("gp", ""), []string{})
		equal(t, "no filter", list("", ""), []string{"ns/w1", "ns/w2", "ns/w3", "ns/w4"})
	})
}

func TestListWorkersLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		// 10 001 rows written directly: registering them one by one would only
		// slow the test down.
		col, val := b.partitionColumn("'w' || (100000 + i)")
		_, err := b.raw.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001)
		INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
			last_heartbeat_ms, liveness_ttl_ms, registered_at_ms`+col+`)
		SELECT 'ns', 'w' || (100000 + i), 'w', `+b.lanesLiteral("default")+`, '', ?1, 60000, ?1`+val+` FROM n`, t0.UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ limit, want int }{{0, 1000}, {1, 1}, {10000, 10000}, {10001, 10000}, {1 << 40, 10000}} {
			res := mustList(t, r, registry.ListWorkersArgs{Limit: tc.limit, Now: t0})
			if len(res.Workers) != tc.want || res.Next == nil {
				t.Errorf("Limit %d: %d workers (Next %v), want %d and a Next cursor", tc.limit, len(res.Workers), res.Next, tc.want)
			}
		}
		_, err = r.ListWorkers(context.Background(), registry.ListWorkersArgs{Limit: -1})
		wantValidation(t, err, "limit")
	})
}

func TestNamespaceIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		a := registerArgs("tenant-a", "worker-1", t0)
		c := registerArgs("tenant-b", "worker-1", t0) // same instance ID, other pool
		equal(t, "tenant-a", mustRegister(t, r, a), registry.Registered)
		equal(t, "tenant-b", mustRegister(t, r, c), registry.Registered)

		o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "tenant-a", WorkerInstanceID: "worker-1", Now: t0})
		if err != nil || o != registry.Marked {
			t.Fatalf("MarkWorkerDead = %v, %v", o, err)
		}
		equal(t, "tenant-b heartbeat", mustHeartbeat(t, r, "tenant-b", "worker-1", t0.Add(time.Second)).Outcome, registry.HeartbeatRefreshed)
		equal(t, "tenant-a heartbeat", mustHeartbeat(t, r, "tenant-a", "worker-1", t0.Add(time.Second)).Outcome, registry.HeartbeatNotRegistered)
		equal(t, "tenant-a list", instances(mustList(t, r, registry.ListWorkersArgs{Namespace: "tenant-a", Now: t0}).Workers), []string{})
		equal(t, "tenant-b list", instances(mustList(t, r, registry.ListWorkersArgs{Namespace: "tenant-b", Now: t0}).Workers), []string{"tenant-b/worker-1"})

		// A cursor from one namespace does not page another.
		before := b.snapshot(t)
		_, err = r.ListWorkers(ctx, registry.ListWorkersArgs{
			Namespace: "tenant-a", After: &registry.WorkerCursor{Namespace: "tenant-b", WorkerInstanceID: "worker-1"},
		})
		wantValidation(t, err, "after.namespace")
		equal(t, "database", b.snapshot(t), before)
	})
}

func TestZeroNowUsesRegistryClock(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0
		r, _ := setup(t, s, registry.WithClock(func() time.Time { return now }))
		mustRegister(t, r, registerArgs("ns", "i", time.Time{}))
		now = t0.Add(5 * time.Second)
		res := mustHeartbeat(t, r, "ns", "i", time.Time{})
		equal(t, "next expiry", res.NextExpiry, t0.Add(15*time.Second))
		now = t0.Add(15 * time.Second)
		equal(t, "listed at expiry", len(mustList(t, r, registry.ListWorkersArgs{}).Workers), 0)
	})
}

func TestInMemoryRegistry(t *testing.T) {
	r, err := registry.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mustRegister(t, r, registerArgs("ns", "i", t0))
	equal(t, "listed", instances(mustList(t, r, registry.ListWorkersArgs{Now: t0}).Workers), []string{"ns/i"})
}

func nullString(s ...string) (n sql.NullString) {
	if len(s) == 1 {
		n.String, n.Valid = s[0], true
	}
	return n
}

// TestConcurrentFirstRegistrationsUnderTwoWorkerIDs races two processes'
// first registrations of one instance under different worker IDs: exactly
// one wins and the other gets ErrInstanceReassigned. Neither may silently
// overwrite the other, which a read-then-upsert without a lock does on
// Postgres: both read no row, and the later upsert wins.
func TestConcurrentFirstRegistrationsUnderTwoWorkerIDs(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r1, b := setup(t, s)
		regs := []*registry.Registry{r1, b.open(t)}
		const rounds = 50
		for round := range rounds {
			instance := fmt.Sprintf("w%d", round)
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				errs  [2]error
			)
			for i, reg := range regs {
				wg.Go(func() {
					args := registerArgs("ns", instance, t0)
					args.WorkerID = fmt.Sprintf("pool-%d", i)
					<-start
					_, errs[i] = reg.RegisterWorker(context.Background(), args)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil:
					if winner >= 0 {
						t.Fatalf("round %d: both registrations succeeded; one overwrote the other", round)
					}
					winner = i
				case !errors.Is(err, registry.ErrInstanceReassigned):
					t.Fatalf("round %d: registration %d: %v, want ErrInstanceReassigned", round, i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: neither registration succeeded: %v", round, errs)
			}
			res := mustList(t, r1, registry.ListWorkersArgs{Namespace: "ns", After: nil, Now: t0})
			var owner string
			for _, w := range res.Workers {
				if w.WorkerInstanceID == instance {
					owner = w.WorkerID
				}
			}
			equal(t, fmt.Sprintf("round %d owner", round), owner, fmt.Sprintf("pool-%d", winner))
		}
		// One registration event per round: the loser wrote nothing.
		kinds := b.eventKinds(t)
		equal(t, "events", len(kinds), rounds)
	})
}

func TestNewRefusesPostgres(t *testing.T) {
	sqlDB, err := sql.Open("pgx", "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "NewPostgres") {
			t.Fatalf("recover() = %v, want a panic pointing to NewPostgres", p)
		}
	}()
	registry.NewSQLite(sqlDB)
}

// TestClockIsReadAfterWaitingForWriters registers with a zero Now while
// another writer holds the lock the registration must wait for, and moves
// the clock past the old registration's expiry during the wait. The call
// must judge liveness at the time it got the lock, not the time it was
// made: the old registration has expired, so the outcome is Registered.
func TestClockIsReadAfterWaitingForWriters(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		var nowMS atomic.Int64
		nowMS.Store(t0.Add(5 * time.Second).UnixMilli())
		firstRead := make(chan struct{}, 1)
		clock := func() time.Time {
			select {
			case firstRead <- struct{}{}:
			default:
			}
			return time.UnixMilli(nowMS.Load())
		}
		r, b := setup(t, s, registry.WithClock(clock))
		mustRegister(t, r, registerArgs("ns", "w", t0)) // live until t0+10s; an explicit Now reads no clock

		release := b.holdWriteLock(t)
		done := make(chan registry.RegisterOutcome, 1)
		go func() {
			done <- mustRegister(t, r, registerArgs("ns", "w", time.Time{}))
		}()
		<-firstRead // the call has read the clock once: t0+5s
		// On Postgres a refresh first tries one statement that does not
		// wait for the row (RefreshLiveWorkerNoWait), at a time read just
		// before it, as a heartbeat does; the clock moves once the call
		// waits for the lock.
		b.waitForLockWaiter(t)
		nowMS.Store(t0.Add(20 * time.Second).UnixMilli())
		release()
		equal(t, "outcome", <-done, registry.Registered)
		equal(t, "events", b.eventKinds(t), []string{"registered", "ttl_swept", "registered"})
	})
}
