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
	eachStore(t, func(t *testing.T) {
		r, _ := setup(t)
		ctx := context.Background()
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
		list := func(args registry.ListWorkerEventsArgs) registry.ListWorkerEventsResult {
			t.Helper()
			res, err := r.ListWorkerEvents(ctx, args)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}

		all := list(registry.ListWorkerEventsArgs{})
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
				page := list(args)
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
		equal(t, "namespace a", names(list(registry.ListWorkerEventsArgs{Namespace: "a"}).Events), []string{"a/w1", "a/w2"})
	})
}
