package dashboard

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// browserRequiredEnv, when set (as .ci/run sets it), makes a missing
// Chromium fail the browser tests instead of skipping them.
const browserRequiredEnv = "REGISTRY_TEST_BROWSER_REQUIRED"

// screenshotEnv names the PNG file that TestScreenshot writes (make
// screenshot sets it); without it the test skips.
const screenshotEnv = "DASHBOARD_SCREENSHOT"

// browser starts a headless Chromium (Debian's chromium package) for the
// test and returns a context of one tab. Without Chromium the test skips,
// unless $REGISTRY_TEST_BROWSER_REQUIRED is set.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv(browserRequiredEnv) != "" {
			t.Fatalf("no chromium on $PATH, and %s says the browser tests must run", browserRequiredEnv)
		}
		t.Skipf("no chromium on $PATH: install Debian's chromium package to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The first run starts the browser; a timeout on it would stop the
	// browser with it, so timeouts go on contexts derived afterwards.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// newBrowserServer serves the dashboard of reg to the browser until the
// test ends. The page's event stream stays open as long as the browser
// does, so the server drops its connections before it closes (Close
// waits for requests in flight).
func newBrowserServer(t *testing.T, reg *registry.Registry) *httptest.Server {
	srv := httptest.NewServer(New(reg, Options{}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// seedFleet registers a small fleet in two namespaces with some history:
// what the screenshot shows and the browser test drives.
func seedFleet(t testing.TB, reg *registry.Registry) {
	t.Helper()
	ctx := context.Background()
	type w struct {
		ns, pool, inst string
		lanes, caps    []string
		report         *registry.WorkerReport
	}
	rep := func(inFlight, capacity int, version string) *registry.WorkerReport {
		return &registry.WorkerReport{InFlight: inFlight, Capacity: capacity, Version: version}
	}
	fleet := []w{
		{"payments", "pay-pool", "pay-7f9c2-a", []string{"default", "priority"}, nil, rep(7, 8, "v2.14.1")},
		{"payments", "pay-pool", "pay-7f9c2-b", []string{"default", "priority"}, nil, rep(3, 8, "v2.14.1")},
		{"payments", "pay-pool", "pay-7f9c2-c", []string{"default"}, nil, rep(8, 8, "v2.13.0")},
		{"payments", "refunds", "refunds-41d0", []string{"refunds"}, []string{"pci"}, rep(0, 2, "v1.9.3")},
		{"ml", "gpu-pool-1", "gpu-1", []string{"gpu"}, []string{"cuda", "a100"}, rep(1, 1, "v0.31.0")},
		{"ml", "gpu-pool-1", "gpu-2", []string{"gpu"}, []string{"cuda", "a100"}, rep(1, 1, "v0.31.0")},
		{"ml", "gpu-pool-1", "gpu-3", []string{"gpu"}, []string{"cuda", "h100"}, rep(0, 1, "v0.31.0")},
		{"ml", "cpu-pool", "cpu-embed-1", []string{"embed", "default"}, nil, nil},
	}
	for _, x := range fleet {
		if _, err := reg.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: x.ns, WorkerID: x.pool, WorkerInstanceID: x.inst,
			Lanes: x.lanes, Capabilities: x.caps, LivenessTTL: 30 * time.Minute, Report: x.report}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ml", WorkerInstanceID: "gpu-3", Reason: "driver upgrade"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "payments", WorkerID: "pay-pool", WorkerInstanceID: "pay-stuck-9",
		Lanes: []string{"default"}, LivenessTTL: 30 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "payments", WorkerInstanceID: "pay-stuck-9", Reason: "hung on a DB lock"}); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserDrainsThroughThePage loads the fleet page in Chromium, sees a
// worker, drains it through its button and the confirmation dialog with
// a reason, and sees the drain_requested event arrive in the page's live
// event log without a reload.
func TestBrowserDrainsThroughThePage(t *testing.T) {
	ctx := browser(t)
	reg, _ := registrytest.Open(t)
	seedFleet(t, reg)
	srv := newBrowserServer(t, reg)

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	row := `tr.worker[data-namespace="ml"][data-instance="gpu-1"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(row)),
	); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row)))
	if err != nil || !strings.Contains(text, "gpu-1") || !strings.Contains(text, "live") {
		t.Fatalf("row %q, %v", text, err)
	}
	// A mark on the window: a reload would clear it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int]("window.notReloaded = 7")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` form[data-action="drain"] button`)),
		chromedp.WaitVisible(chromedp.ID("confirm-reason")),
		chromedp.SendKeys(chromedp.ID("confirm-reason"), "drained from the browser"),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(`#events tr.new[data-kind="drain_requested"]`)),
	); err != nil {
		t.Fatal(err)
	}
	logged, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#events tr.new[data-kind="drain_requested"]`)))
	if err != nil || !strings.Contains(logged, "gpu-1") || !strings.Contains(logged, "drained from the browser") {
		t.Fatalf("live event row %q, %v", logged, err)
	}
	if mark, err := chromedp.Run(ctx, chromedp.Evaluate[int]("window.notReloaded")); err != nil || mark != 7 {
		t.Fatalf("the page reloaded (mark %d, %v)", mark, err)
	}
	state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+` .state`)))
	if err != nil || state != "draining" {
		t.Fatalf("row state %q, %v", state, err)
	}
	res, err := reg.ListWorkerEvents(context.Background(), registry.ListWorkerEventsArgs{Namespace: "ml", WorkerInstanceID: "gpu-1", NewestFirst: true, Limit: 1})
	if err != nil || len(res.Events) != 1 || res.Events[0].Kind != "drain_requested" || res.Events[0].Reason != "drained from the browser" {
		t.Fatalf("audit log: %+v, %v", res.Events, err)
	}
}

// TestScreenshot writes the fleet page of a seeded fleet, as Chromium
// shows it, to $DASHBOARD_SCREENSHOT (make screenshot: docs/dashboard.png).
func TestScreenshot(t *testing.T) {
	out := os.Getenv(screenshotEnv)
	if out == "" {
		t.Skipf("%s is not set: make screenshot sets it", screenshotEnv)
	}
	ctx := browser(t)
	reg, sqlDB := registrytest.Open(t)
	seedFleet(t, reg)
	registrytest.InsertLeases(t, sqlDB,
		registrytest.Lease{Namespace: "payments", WorkerInstanceID: "pay-stuck-9", LeaseEpoch: 3, ExpiresAt: time.Now().Add(-4 * time.Minute)},
		registrytest.Lease{Namespace: "payments", WorkerInstanceID: "pay-stuck-9", LeaseEpoch: 1, ExpiresAt: time.Now().Add(2 * time.Minute)})
	srv := newBrowserServer(t, reg)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 1000),
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr.worker`)),
	); err != nil {
		t.Fatal(err)
	}
	// One event arrives live, highlighted as the page shows new ones.
	if _, err := reg.RegisterWorker(context.Background(), registry.RegisterWorkerArgs{Namespace: "ml", WorkerID: "cpu-pool",
		WorkerInstanceID: "cpu-embed-2", Lanes: []string{"embed"}, LivenessTTL: 30 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#events tr.new`))); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", out, len(png))
}
