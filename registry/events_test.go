package registry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

func TestListWorkerEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		ctx := context.Background()
		// Same millisecond throughout: order comes from the event ID alone.
		mustRegister(t, r, registerArgs("ns", "a", t0))
		mustRegister(t, r, registerArgs("ns", "b", t0))
		mustRegister(t, r, registerArgs("other", "a", t0))
		mustRegister(t, r, registerArgs("ns", "a", t0))
		if _, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "a", Reason: "oom", Now: t0}); err != nil {
			t.Fatal(err)
		}

		describe := func(es []registry.WorkerEvent) []string {
			var out []string
			for _, e := range es {
				s := e.WorkerInstanceID + ":" + e.Kind
				if e.Reason != "" {
					s += ":" + e.Reason
				}
				out = append(out, s)
			}
			return out
		}

		all := mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "ns"})
		equal(t, "namespace, oldest first", describe(all.Events), []string{"a:registered", "b:registered", "a:refreshed", "a:marked_dead:oom"})
		equal(t, "next", all.Next, int64(0))
		for i := 1; i < len(all.Events); i++ {
			if all.Events[i].ID <= all.Events[i-1].ID {
				t.Fatalf("event IDs not increasing: %+v", all.Events)
			}
		}
		equal(t, "time", all.Events[0].At, t0)
		equal(t, "namespace", all.Events[0].Namespace, "ns")

		equal(t, "newest first", describe(mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "ns", NewestFirst: true}).Events),
			[]string{"a:marked_dead:oom", "a:refreshed", "b:registered", "a:registered"})
		equal(t, "one instance", describe(mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "ns", WorkerInstanceID: "a"}).Events),
			[]string{"a:registered", "a:refreshed", "a:marked_dead:oom"})
		equal(t, "one instance, newest first", describe(mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "ns", WorkerInstanceID: "a", NewestFirst: true}).Events),
			[]string{"a:marked_dead:oom", "a:refreshed", "a:registered"})
		equal(t, "other namespace", describe(mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "other"}).Events), []string{"a:registered"})

		// Paging in both directions visits every event once.
		for _, newest := range []bool{false, true} {
			for _, instance := range []string{"", "a"} {
				var got []int64
				after := int64(0)
				for pages := 0; pages < 10; pages++ {
					res := mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "ns", WorkerInstanceID: instance, After: after, Limit: 1, NewestFirst: newest})
					for _, e := range res.Events {
						got = append(got, e.ID)
					}
					if res.Next == 0 {
						break
					}
					equal(t, "next is the last ID", res.Next, res.Events[0].ID)
					after = res.Next
				}
				want := mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "ns", WorkerInstanceID: instance, NewestFirst: newest}).Events
				if len(got) != len(want) {
					t.Fatalf("newest=%v instance=%q: paged %v, want %d events", newest, instance, got, len(want))
				}
				for i := range want {
					equal(t, "paged ID", got[i], want[i].ID)
				}
			}
		}

		for _, tc := range []struct {
			args  registry.ListWorkerEventsArgs
			field string
		}{
			{registry.ListWorkerEventsArgs{Namespace: " ns"}, "namespace"},
			{registry.ListWorkerEventsArgs{WorkerInstanceID: "a"}, "worker_instance_id"}, // an instance needs its namespace
			{registry.ListWorkerEventsArgs{Namespace: "ns", WorkerInstanceID: "a\n"}, "worker_instance_id"},
			{registry.ListWorkerEventsArgs{Namespace: "ns", After: -1}, "after"},
			{registry.ListWorkerEventsArgs{Namespace: "ns", Limit: -1}, "limit"},
		} {
			_, err := r.ListWorkerEvents(ctx, tc.args)
			wantValidation(t, err, tc.field)
		}
	})
}

func TestEventIDsAreNotReusedAfterPruning(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "a", t0))
		first, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns"})
		if err != nil {
			t.Fatal(err)
		}
		// On SQLite the newest event stays: its rowid is what keeps the next
		// ID from going back to 1. Postgres's sequence needs no row.
		want := int64(1)
		if b.engine == engineSQLite {
			want = 0
		}
		if n, err := r.PruneEvents(ctx, t0.Add(time.Millisecond)); err != nil || n != want {
			t.Fatalf("PruneEvents = %d, %v; want %d", n, err, want)
		}
		mustRegister(t, r, registerArgs("ns", "b", t0.Add(time.Second)))
		// A reader holding the old cursor still sees the new event.
		res, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", After: first.Events[0].ID})
		if err != nil || len(res.Events) != 1 || res.Events[0].WorkerInstanceID != "b" {
			t.Fatalf("events after the pruned cursor = %+v, %v", res.Events, err)
		}
	})
}

func TestListWorkerEventsLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		col, val := b.partitionColumn("'w'")
		if _, err := b.raw.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 10001)
		INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms`+col+`)
		SELECT 'ns', 'w', 'heartbeat', CAST(?1 AS BIGINT) + i`+val+` FROM s`, t0.UnixMilli()); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ limit, want int }{{0, registry.DefaultLimit}, {10_000, registry.MaxLimit}, {50_000, registry.MaxLimit}} {
			res, err := r.ListWorkerEvents(context.Background(), registry.ListWorkerEventsArgs{Namespace: "ns", Limit: tc.limit})
			if err != nil || len(res.Events) != tc.want || res.Next != res.Events[tc.want-1].ID {
				t.Fatalf("Limit %d: %d events, next %d, %v; want %d and a cursor", tc.limit, len(res.Events), res.Next, err, tc.want)
			}
		}
	})
}

// TestTailingReaderMissesNoEvent pages the audit log forward while many
// writers add to it, the way a consumer tails it, and checks that it saw
// every event. On Postgres, event IDs come from a sequence when the event
// is inserted: unless ID order is commit order, the reader can pass an ID
// whose transaction has not committed yet, and never come back for it.
func TestTailingReaderMissesNoEvent(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		const writers, perWriter = 8, 40
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				reg := r
				if g%2 == 1 {
					reg = b.open(t) // another pool, as another process
				}
				for i := range perWriter {
					instance := fmt.Sprintf("w%d-%d", g, i)
					if _, err := reg.RegisterWorker(ctx, registerArgs("ns", instance, t0)); err != nil {
						t.Error(err)
						return
					}
					if _, err := reg.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{
						Namespace: "ns", WorkerInstanceID: instance, Reason: "done", Now: t0,
					}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()

		seen := map[int64]bool{}
		var after int64
		tail := func() {
			for {
				res, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", After: after, Limit: 50})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range res.Events {
					seen[e.ID] = true
					after = e.ID
				}
				if res.Next == 0 {
					return
				}
			}
		}
		for running := true; running; {
			select {
			case <-done:
				running = false
			default:
			}
			tail()
		}
		tail()
		all, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", Limit: registry.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "events written", len(all.Events), 2*writers*perWriter)
		var missed []int64
		for _, e := range all.Events {
			if !seen[e.ID] {
				missed = append(missed, e.ID)
			}
		}
		if len(missed) > 0 {
			t.Fatalf("the tailing reader never saw %d events: IDs %v", len(missed), missed)
		}
	})
}
