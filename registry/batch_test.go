package registry_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

func TestHeartbeatWorkersMatchesSingleCalls(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		// The same script against two registries: one batch call, and single
		// calls in order. Results and stored rows must agree.
		batch := []registry.HeartbeatWorkerArgs{
			{Namespace: "ns", WorkerInstanceID: "live-1", Now: t0.Add(5 * time.Second)},
			{Namespace: "ns", WorkerInstanceID: "gone", Now: t0.Add(5 * time.Second)},
			{Namespace: "ns", WorkerInstanceID: "expired", Now: t0.Add(5 * time.Second)},
			{Namespace: "ns", WorkerInstanceID: "live-2", Now: t0.Add(6 * time.Second)}, // a second time group
			{Namespace: "other", WorkerInstanceID: "live-1", Now: t0.Add(5 * time.Second)},
			{Namespace: "ns", WorkerInstanceID: "draining", Now: t0.Add(5 * time.Second)},
		}
		prepare := func(r *registry.Registry) {
			for _, id := range []string{"live-1", "live-2", "draining"} {
				mustRegister(t, r, registerArgs("ns", id, t0))
			}
			short := registerArgs("ns", "expired", t0)
			short.LivenessTTL = 5 * time.Second
			mustRegister(t, r, short)
			mustRegister(t, r, registerArgs("other", "live-1", t0))
			if _, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "draining", Now: t0}); err != nil {
				t.Fatal(err)
			}
		}
		for _, events := range []bool{false, true} {
			t.Run(fmt.Sprintf("events=%v", events), func(t *testing.T) {
				rb, bb := setup(t, s, registry.WithHeartbeatEvents(events))
				rs, bs := setup(t, s, registry.WithHeartbeatEvents(events))
				prepare(rb)
				prepare(rs)
				got, err := rb.HeartbeatWorkers(ctx, batch)
				if err != nil {
					t.Fatal(err)
				}
				var want []registry.HeartbeatResult
				for _, args := range batch {
					want = append(want, mustHeartbeat(t, rs, args.Namespace, args.WorkerInstanceID, args.Now))
				}
				equal(t, "results", got, want)
				equal(t, "outcomes", []registry.HeartbeatOutcome{got[0].Outcome, got[1].Outcome, got[2].Outcome, got[3].Outcome},
					[]registry.HeartbeatOutcome{registry.HeartbeatRefreshed, registry.HeartbeatNotRegistered, registry.HeartbeatNotRegistered, registry.HeartbeatRefreshed})
				equal(t, "next expiry of the second group", got[3].NextExpiry, t0.Add(16*time.Second))
				equal(t, "directive", got[5].Directive, registry.DirectiveDrain)
				equal(t, "rows", registryRows(bb.snapshot(t)), registryRows(bs.snapshot(t)))
				// Heartbeats that share a time are written together, so the
				// events match as a set, not in ID order.
				equal(t, "events", sortedEvents(bb.events(t)), sortedEvents(bs.events(t)))
			})
		}
	})
}

func sortedEvents(es []event) []event {
	slices.SortStableFunc(es, func(a, b event) int {
		return cmp.Or(cmp.Compare(a.AtMS, b.AtMS), cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Kind, b.Kind))
	})
	return es
}

// registryRows keeps the ff_worker_registry lines of a snapshot: events are
// compared separately, and goose's timestamps differ between databases.
func registryRows(snapshot string) []string {
	var rows []string
	for _, line := range strings.Split(snapshot, "\n") {
		if strings.HasPrefix(line, "ff_worker_registry ") {
			rows = append(rows, line)
		}
	}
	return rows
}

func TestHeartbeatWorkersWithRepeatedInstance(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		mustRegister(t, r, registerArgs("ns", "w", t0)) // expires at t0+10s
		// The second heartbeat only succeeds because the first refreshed the
		// registration: the batch runs in order.
		got, err := r.HeartbeatWorkers(context.Background(), []registry.HeartbeatWorkerArgs{
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(9 * time.Second)},
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(15 * time.Second)},
		})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "outcomes", []registry.HeartbeatOutcome{got[0].Outcome, got[1].Outcome},
			[]registry.HeartbeatOutcome{registry.HeartbeatRefreshed, registry.HeartbeatRefreshed})
		equal(t, "final expiry", got[1].NextExpiry, t0.Add(25*time.Second))
	})
}

func TestHeartbeatWorkersRejectsWholeBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s, registry.WithHeartbeatEvents(true))
		mustRegister(t, r, registerArgs("ns", "w", t0))
		before := b.snapshot(t)
		_, err := r.HeartbeatWorkers(context.Background(), []registry.HeartbeatWorkerArgs{
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second)},
			{Namespace: "ns", WorkerInstanceID: "bad\x00id", Now: t0.Add(time.Second)},
		})
		wantValidation(t, err, "[1].worker_instance_id")
		equal(t, "database", b.snapshot(t), before)

		big := make([]registry.HeartbeatWorkerArgs, registry.MaxLimit+1)
		_, err = r.HeartbeatWorkers(context.Background(), big)
		wantValidation(t, err, "batch")

		res, err := r.HeartbeatWorkers(context.Background(), nil)
		if err != nil || len(res) != 0 {
			t.Fatalf("empty batch = %v, %v", res, err)
		}
	})
}

func TestHeartbeatWorkersUsesClockOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		calls := 0
		r, _ := setup(t, s, registry.WithClock(func() time.Time { calls++; return t0.Add(time.Duration(calls) * time.Millisecond) }))
		mustRegister(t, r, registerArgs("ns", "a", t0))
		mustRegister(t, r, registerArgs("ns", "b", t0))
		calls = 0
		got, err := r.HeartbeatWorkers(context.Background(), []registry.HeartbeatWorkerArgs{
			{Namespace: "ns", WorkerInstanceID: "a"},
			{Namespace: "ns", WorkerInstanceID: "b"},
		})
		if err != nil {
			t.Fatal(err)
		}
		// Once to validate the batch, once more under the chunk's locks.
		equal(t, "clock reads", calls, 2)
		equal(t, "same expiry", got[0].NextExpiry, got[1].NextExpiry)
		equal(t, "expiry", got[0].NextExpiry, t0.Add(2*time.Millisecond+10*time.Second))
	})
}

// TestOverlappingBatchesDoNotDeadlock runs batches over the same workers in
// opposite orders from several goroutines, while another goroutine marks
// workers dead and registers them again. A store with parallel writers
// must lock a batch's rows in one order, and write no row that appeared
// after that, or two such batches deadlock.
func TestOverlappingBatchesDoNotDeadlock(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		r2 := b.open(t)
		const n = 40
		forward := make([]registry.HeartbeatWorkerArgs, n)
		for i := range n {
			instance := fmt.Sprintf("w%02d", i)
			mustRegister(t, r, registerArgs("ns", instance, t0))
			forward[i] = registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instance}
		}
		backward := slices.Clone(forward)
		slices.Reverse(backward)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		churn := sync.WaitGroup{}
		churn.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				instance := fmt.Sprintf("w%02d", (i*7)%n)
				if _, err := r2.MarkWorkerDead(context.Background(), registry.MarkWorkerDeadArgs{
					Namespace: "ns", WorkerInstanceID: instance, Reason: "churn", Now: t0,
				}); err != nil {
					t.Errorf("MarkWorkerDead: %v", err)
					return
				}
				if _, err := r2.RegisterWorker(context.Background(), registerArgs("ns", instance, t0)); err != nil {
					t.Errorf("RegisterWorker: %v", err)
					return
				}
			}
		})
		for g := range 4 {
			reg, batch := r, forward
			if g%2 == 1 {
				reg, batch = r2, backward
			}
			wg.Go(func() {
				for i := range 25 {
					// Two times per batch: two statements, as with a batch
					// gathered over a few milliseconds.
					batch := slices.Clone(batch)
					for j := range batch {
						batch[j].Now = t0.Add(time.Duration(i*10+j%2) * time.Millisecond)
					}
					res, err := reg.HeartbeatWorkers(context.Background(), batch)
					if err != nil {
						t.Errorf("HeartbeatWorkers: %v", err)
						return
					}
					for _, hb := range res {
						if hb.Outcome != registry.HeartbeatRefreshed && hb.Outcome != registry.HeartbeatNotRegistered {
							t.Errorf("outcome %v", hb.Outcome)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		churn.Wait()
	})
}
