package dashboard

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// BenchmarkFleetPage renders the fleet page (server side: its ListWorkers
// page, the summary over every worker, the newest events, the template)
// over 10,000 live workers, beside its baselines in the same run: the
// one ListWorkers call of the page's rows alone, and the walk of all
// 10,000 workers that the summary makes. DESIGN's target is 200 ms a page.
//
//	go test -run='^$' -bench=FleetPage ./dashboard/
func BenchmarkFleetPage(b *testing.B) {
	reg, _ := registrytest.Open(b)
	ctx := context.Background()
	const workers = 10000
	batch := make([]registry.RegisterWorkerArgs, 0, workers)
	for i := range workers {
		batch = append(batch, registry.RegisterWorkerArgs{Namespace: fmt.Sprintf("ns-%d", i%4), WorkerID: "pool",
			WorkerInstanceID: fmt.Sprintf("worker-%05d", i), Lanes: []string{"default", fmt.Sprintf("lane-%d", i%8)},
			Capabilities: []string{"cuda"}, LivenessTTL: time.Hour})
	}
	for _, a := range batch {
		if _, err := reg.RegisterWorker(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	h := New(reg, Options{})

	b.Run("baseline=ListWorkers-page", func(b *testing.B) {
		for b.Loop() {
			res, err := reg.ListWorkers(ctx, registry.ListWorkersArgs{Limit: fleetPageSize})
			if err != nil || len(res.Workers) != fleetPageSize {
				b.Fatal(len(res.Workers), err)
			}
		}
	})
	b.Run("baseline=ListWorkers-all", func(b *testing.B) {
		for b.Loop() {
			res, err := reg.ListWorkers(ctx, registry.ListWorkersArgs{Limit: registry.MaxLimit})
			if err != nil || len(res.Workers) != workers {
				b.Fatal(len(res.Workers), err)
			}
		}
	})
	for _, path := range []string{"/", "/?limit=1000"} {
		b.Run("page="+path, func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				start := time.Now()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					b.Fatal(rec.Code, rec.Body.String())
				}
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
			// The target is the default page's; a page of 1000 rows is
			// reported, not held to it.
			if worst > 200*time.Millisecond && path == "/" {
				b.Errorf("a fleet page over %d workers took %v, over the 200 ms target", workers, worst)
			}
		})
	}
}
