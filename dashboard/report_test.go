package dashboard

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
)

// TestReportsShownAndVersionMismatchFlagged: the fleet page shows each
// worker's load and version, escaped, and flags the workers of a worker ID
// whose live workers report different versions; the worker page shows the
// report; the API has its words.
func TestReportsShownAndVersionMismatchFlagged(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		reg := func(instance, workerID string, rep *registry.WorkerReport) {
			t.Helper()
			if _, err := b.reg.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: workerID, WorkerInstanceID: instance,
				Lanes: []string{"default"}, LivenessTTL: time.Hour, Report: rep}); err != nil {
				t.Fatal(err)
			}
		}
		reg("a", "pool", &registry.WorkerReport{InFlight: 3, Capacity: 8, Version: "v1"})
		reg("b", "pool", &registry.WorkerReport{InFlight: 0, Capacity: 8, Version: "v2<script>alert(1)</script>"})
		reg("c", "pool", nil)
		reg("d", "other", &registry.WorkerReport{InFlight: 1, Capacity: 2, Version: "v9"})

		_, page := b.get(t, "/")
		if strings.Contains(page, "<script>alert(1)") {
			t.Fatal("the fleet page holds an unescaped version")
		}
		for _, want := range []string{"<th>Load</th><th>Version</th>", `<td class="load">3/8</td>`, `<td class="load">1/2</td>`,
			"v2&lt;script&gt;alert(1)&lt;/script&gt;", `<td class="version">v9</td>`,
			`<li class="mismatch">ns / pool: v1, v2&lt;script&gt;alert(1)&lt;/script&gt;</li>`} {
			if !strings.Contains(page, want) {
				t.Errorf("the fleet page lacks %q", want)
			}
		}
		if n := strings.Count(page, `<span class="badge warn">mismatch</span>`); n != 2 {
			t.Errorf("%d workers flagged, want 2 (a and b of pool; not c, which reported nothing, nor d)", n)
		}

		_, wp := b.get(t, "/workers/ns/b")
		if strings.Contains(wp, "<script>alert(1)") || !strings.Contains(wp, "0 in flight of 8") || !strings.Contains(wp, "v2&lt;script&gt;") {
			t.Errorf("the worker page does not show b's report as text")
		}
		if _, wp = b.get(t, "/workers/ns/c"); !strings.Contains(wp, "none sent") {
			t.Errorf("the worker page of a worker without a report does not say so")
		}

		_, body := b.get(t, "/api/workers/ns/a")
		w := decode[jsonshape.Worker](t, body)
		if w.InFlight == nil || *w.InFlight != 3 || w.Capacity == nil || *w.Capacity != 8 || w.Version == nil || *w.Version != "v1" {
			t.Errorf("API worker a: %s", body)
		}
		if _, body = b.get(t, "/api/workers/ns/c"); !strings.Contains(body, `"in_flight": null`) || !strings.Contains(body, `"version": null`) {
			t.Errorf("API worker c: %s", body)
		}
	})
}
