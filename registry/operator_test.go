package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// TestEventsOfEveryNamespace lists the audit log with an empty Namespace:
// every namespace's events in ID order, paged both ways without a skip or
// a repeat.
func TestEventsOfEveryNamespace(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		var want []string
		for i, k := range [][2]string{{"b", "w1"}, {"a", "w1"}, {"c", "w9"}, {"a", "w2"}, {"b", "w1"}} {
			mustRegister(t, r, registerArgs(k[0], k[1], t0.Add(time.Duration(i)*time.Second)))
			want = append(want, k[0]+"/"+k[1])
		}
		names := func(events []registry.WorkerEvent) []string {
			var out []string
			for _, e := range events {
				out = append(out, e.Namespace+"/"+e.WorkerInstanceID)
			}
			return out
		}

		all := mustListEvents(t, r, registry.ListWorkerEventsArgs{})
		equal(t, "every namespace", names(all.Events), want)
		equal(t, "next", all.Next, int64(0))
		for i := 1; i < len(all.Events); i++ {
			if all.Events[i].ID <= all.Events[i-1].ID {
				t.Fatalf("IDs out of order: %d after %d", all.Events[i].ID, all.Events[i-1].ID)
			}
		}
		equal(t, "kinds", []string{all.Events[0].Kind, all.Events[4].Kind}, []string{"registered", "refreshed"})

		for _, newest := range []bool{false, true} {
			var got []string
			args := registry.ListWorkerEventsArgs{Limit: 2, NewestFirst: newest}
			for range 10 {
				page := mustListEvents(t, r, args)
				got = append(got, names(page.Events)...)
				if page.Next == 0 {
					break
				}
				args.After = page.Next
			}
			wantPaged := want
			if newest {
				wantPaged = nil
				for i := len(want) - 1; i >= 0; i-- {
					wantPaged = append(wantPaged, want[i])
				}
			}
			equal(t, "paged", got, wantPaged)
		}
		// A namespace still narrows the log.
		equal(t, "namespace a", names(mustListEvents(t, r, registry.ListWorkerEventsArgs{Namespace: "a"}).Events), []string{"a/w1", "a/w2"})
	})
}

// TestListWorkersIncludingExpired lists registrations whose TTL ran out
// before the sweep removed them, with ListWorkers' filters and paging;
// ListWorkers leaves them out, and after a sweep both agree.
func TestListWorkersIncludingExpired(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		ctx := context.Background()
		now := t0.Add(time.Minute)
		mustRegister(t, r, registerArgs("a", "live", now))
		mustRegister(t, r, registerArgs("a", "expired", t0)) // 10 s TTL
		mustRegister(t, r, registerArgs("b", "expired", t0))
		gpu := registerArgs("b", "live-gpu", now)
		gpu.Lanes = []string{"gpu"}
		mustRegister(t, r, gpu)
		if o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "a", WorkerInstanceID: "live", Now: now}); err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		list := func(args registry.ListWorkersArgs) registry.ListWorkersResult {
			t.Helper()
			res, err := r.ListWorkersIncludingExpired(ctx, args)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}

		all := list(registry.ListWorkersArgs{Now: now})
		equal(t, "including expired", instances(all.Workers), []string{"a/expired", "a/live", "b/expired", "b/live-gpu"})
		equal(t, "expiry of the expired", all.Workers[0].ExpiresAt, t0.Add(10*time.Second))
		equal(t, "draining", all.Workers[1].Draining, true)
		equal(t, "live only", instances(mustList(t, r, registry.ListWorkersArgs{Now: now}).Workers), []string{"a/live", "b/live-gpu"})

		equal(t, "namespace b", instances(list(registry.ListWorkersArgs{Namespace: "b"}).Workers), []string{"b/expired", "b/live-gpu"})
		equal(t, "lane default", instances(list(registry.ListWorkersArgs{Lane: "default"}).Workers), []string{"a/expired", "a/live", "b/expired"})
		var paged []string
		args := registry.ListWorkersArgs{Limit: 3}
		for range 5 {
			page := list(args)
			paged = append(paged, instances(page.Workers)...)
			if page.Next == nil {
				break
			}
			args.After = page.Next
		}
		equal(t, "paged", paged, instances(all.Workers))

		_, err := r.ListWorkersIncludingExpired(ctx, registry.ListWorkersArgs{Limit: -1})
		wantValidation(t, err, "limit")

		if _, err := r.SweepExpiredWorkers(ctx, now); err != nil {
			t.Fatal(err)
		}
		equal(t, "after the sweep", instances(list(registry.ListWorkersArgs{}).Workers), []string{"a/live", "b/live-gpu"})
	})
}
