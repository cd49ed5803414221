package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// reportOf reads a live worker's report.
func reportOf(t *testing.T, r *registry.Registry, ns, instance string, now time.Time) *registry.WorkerReport {
	t.Helper()
	w, ok, err := r.GetWorker(context.Background(), registry.GetWorkerArgs{Namespace: ns, WorkerInstanceID: instance, Now: now})
	if err != nil || !ok {
		t.Fatalf("GetWorker(%s/%s) = %v, %v", ns, instance, ok, err)
	}
	return w.Report
}

func heartbeatReport(t *testing.T, r *registry.Registry, ns, instance string, now time.Time, rep *registry.WorkerReport) {
	t.Helper()
	res, err := r.HeartbeatWorker(context.Background(), registry.HeartbeatWorkerArgs{Namespace: ns, WorkerInstanceID: instance, Now: now, Report: rep})
	if err != nil || res.Outcome != registry.HeartbeatRefreshed {
		t.Fatalf("HeartbeatWorker(%s/%s) = %+v, %v", ns, instance, res, err)
	}
}

// TestWorkerReportNilKeepsNewReplaces: a report sent with a registration
// or a heartbeat is stored on the row and returned by GetWorker and
// ListWorkers; nil keeps it (heartbeat, refresh); a new one replaces it; a
// new registration without one has none, whatever an expired row held.
func TestWorkerReportNilKeepsNewReplaces(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		for _, events := range []bool{false, true} {
			t.Run(fmt.Sprintf("heartbeat events %v", events), func(t *testing.T) {
				r, _ := setup(t, s, registry.WithHeartbeatEvents(events))
				ctx := context.Background()
				mustRegister(t, r, registerArgs("ns", "plain", t0))
				if got := reportOf(t, r, "ns", "plain", t0); got != nil {
					t.Fatalf("report of a worker that sent none = %+v, want nil", got)
				}
				heartbeatReport(t, r, "ns", "plain", t0.Add(time.Second), nil)
				if got := reportOf(t, r, "ns", "plain", t0.Add(time.Second)); got != nil {
					t.Fatalf("report after a heartbeat without one = %+v, want nil", got)
				}

				args := registerArgs("ns", "w", t0)
				args.Report = &registry.WorkerReport{InFlight: 2, Capacity: 8, Version: "v1.2.0"}
				mustRegister(t, r, args)
				equal(t, "report after registering", reportOf(t, r, "ns", "w", t0), &registry.WorkerReport{InFlight: 2, Capacity: 8, Version: "v1.2.0"})

				heartbeatReport(t, r, "ns", "w", t0.Add(time.Second), nil)
				equal(t, "report after a heartbeat without one", reportOf(t, r, "ns", "w", t0.Add(time.Second)), &registry.WorkerReport{InFlight: 2, Capacity: 8, Version: "v1.2.0"})

				heartbeatReport(t, r, "ns", "w", t0.Add(2*time.Second), &registry.WorkerReport{InFlight: 0, Capacity: 8, Version: ""})
				equal(t, "report after a heartbeat with one", reportOf(t, r, "ns", "w", t0.Add(2*time.Second)), &registry.WorkerReport{Capacity: 8})

				// A heartbeat at the registry's clock takes the other path
				// (HeartbeatAt).
				clockArgs := registerArgs("ns", "clock", time.Time{})
				clockArgs.Report = &registry.WorkerReport{Version: "v0"}
				mustRegister(t, r, clockArgs)
				res, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "clock",
					Report: &registry.WorkerReport{InFlight: 5, Capacity: 6, Version: "v1.3.0"}})
				if err != nil || res.Outcome != registry.HeartbeatRefreshed {
					t.Fatalf("heartbeat at the clock = %+v, %v", res, err)
				}
				list := mustList(t, r, registry.ListWorkersArgs{Namespace: "ns"})
				if len(list.Workers) != 1 || list.Workers[0].Report == nil || *list.Workers[0].Report != (registry.WorkerReport{InFlight: 5, Capacity: 6, Version: "v1.3.0"}) {
					t.Fatalf("listed after a heartbeat at the clock: %+v", list.Workers)
				}
				heartbeatReport(t, r, "ns", "w", t0.Add(3*time.Second), &registry.WorkerReport{InFlight: 5, Capacity: 6, Version: "v1.3.0"})
				now := t0.Add(3 * time.Second)

				// A refresh without a report keeps it; with one, replaces it.
				args.Now = now.Add(time.Second)
				args.Report = nil
				if o := mustRegister(t, r, args); o != registry.Refreshed {
					t.Fatalf("refresh = %v", o)
				}
				equal(t, "report after a refresh without one", reportOf(t, r, "ns", "w", args.Now), &registry.WorkerReport{InFlight: 5, Capacity: 6, Version: "v1.3.0"})
				args.Report = &registry.WorkerReport{InFlight: 1, Capacity: 1, Version: "日本-β"}
				mustRegister(t, r, args)
				equal(t, "report after a refresh with one", reportOf(t, r, "ns", "w", args.Now), &registry.WorkerReport{InFlight: 1, Capacity: 1, Version: "日本-β"})

				// Expired, not swept: a new registration starts without one.
				args.Now = args.Now.Add(time.Hour)
				args.Report = nil
				if o := mustRegister(t, r, args); o != registry.Registered {
					t.Fatalf("register over an expired row = %v", o)
				}
				if got := reportOf(t, r, "ns", "w", args.Now); got != nil {
					t.Fatalf("report of a new registration without one, over an expired row = %+v, want nil", got)
				}
			})
		}
	})
}

// TestWorkerReportInBatches: HeartbeatWorkers carries reports per entry,
// below and above the size at which Postgres runs one statement for the
// batch, nil entries keeping what is stored.
func TestWorkerReportInBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		for _, n := range []int{5, 40} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				r, _ := setup(t, s)
				ctx := context.Background()
				batch := make([]registry.HeartbeatWorkerArgs, n)
				for i := range batch {
					args := registerArgs("ns", fmt.Sprintf("w%03d", i), t0)
					args.Report = &registry.WorkerReport{InFlight: 1, Capacity: 2, Version: "old"}
					mustRegister(t, r, args)
					batch[i] = registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: args.WorkerInstanceID, Now: t0.Add(time.Second)}
					if i%2 == 0 {
						batch[i].Report = &registry.WorkerReport{InFlight: i, Capacity: 100, Version: fmt.Sprintf("v%d", i)}
					}
				}
				res, err := r.HeartbeatWorkers(ctx, batch)
				if err != nil {
					t.Fatal(err)
				}
				for i, hb := range res {
					if hb.Outcome != registry.HeartbeatRefreshed {
						t.Fatalf("[%d] outcome %v", i, hb.Outcome)
					}
				}
				list := mustList(t, r, registry.ListWorkersArgs{Namespace: "ns", Now: t0.Add(time.Second)})
				for i, w := range list.Workers {
					want := registry.WorkerReport{InFlight: 1, Capacity: 2, Version: "old"}
					if i%2 == 0 {
						want = registry.WorkerReport{InFlight: i, Capacity: 100, Version: fmt.Sprintf("v%d", i)}
					}
					if w.Report == nil || *w.Report != want || !w.LastHeartbeat.Equal(t0.Add(time.Second)) {
						t.Fatalf("%s after the batch: report %+v, heartbeat %v; want %+v", w.WorkerInstanceID, w.Report, w.LastHeartbeat, want)
					}
				}
				// A batch with no report at all keeps every one.
				for i := range batch {
					batch[i].Report, batch[i].Now = nil, t0.Add(2*time.Second)
				}
				if _, err := r.HeartbeatWorkers(ctx, batch); err != nil {
					t.Fatal(err)
				}
				list = mustList(t, r, registry.ListWorkersArgs{Namespace: "ns", Now: t0.Add(2 * time.Second)})
				if w := list.Workers[0]; w.Report == nil || w.Report.Version != "v0" {
					t.Fatalf("after a batch without reports: %+v", w.Report)
				}
			})
		}
	})
}

// TestWorkerReportValidation: a bad report is refused with the field named
// ("report.version", "[1].report.in_flight" in a batch), and nothing is
// written.
func TestWorkerReportValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		before := b.snapshot(t)
		for _, tc := range []struct {
			rep   registry.WorkerReport
			field string
		}{
			{registry.WorkerReport{InFlight: -1}, "report.in_flight"},
			{registry.WorkerReport{InFlight: math.MaxInt32 + 1}, "report.in_flight"},
			{registry.WorkerReport{Capacity: -5}, "report.capacity"},
			{registry.WorkerReport{Capacity: math.MaxInt32 + 1}, "report.capacity"},
			{registry.WorkerReport{Version: strings.Repeat("v", 129)}, "report.version"},
			{registry.WorkerReport{Version: "v1\n"}, "report.version"},
			{registry.WorkerReport{Version: "v1\x1b[31m"}, "report.version"},
			{registry.WorkerReport{Version: "v1\u202e"}, "report.version"},
			{registry.WorkerReport{Version: "v1\u200b"}, "report.version"},
			{registry.WorkerReport{Version: "v\xff"}, "report.version"},
		} {
			rep := tc.rep
			args := registerArgs("ns", "w", t0.Add(time.Second))
			args.Report = &rep
			_, err := r.RegisterWorker(ctx, args)
			wantValidation(t, err, tc.field)
			_, err = r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second), Report: &rep})
			wantValidation(t, err, tc.field)
			_, err = r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
				{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second), Report: &registry.WorkerReport{Version: "ok"}},
				{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second), Report: &rep},
			})
			wantValidation(t, err, "[1]."+tc.field)
		}
		if got := b.snapshot(t); got != before {
			t.Fatalf("refused reports wrote:\n%s\nwant:\n%s", got, before)
		}
		// The bounds themselves are valid.
		args := registerArgs("ns", "w", t0.Add(time.Second))
		args.Report = &registry.WorkerReport{InFlight: math.MaxInt32, Capacity: math.MaxInt32, Version: strings.Repeat("é", 64)}
		mustRegister(t, r, args)
		equal(t, "report at the bounds", reportOf(t, r, "ns", "w", args.Now), args.Report)
	})
}

// TestWorkerLoopSendsReport: the loop calls WorkerConfig.Report before its
// registration and each heartbeat and sends what it returns; an invalid
// report fails StartWorker, and later one is logged and left out.
func TestWorkerLoopSendsReport(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		clock := newManualClock()
		logs := &syncBuffer{}
		r, _ := setup(t, s, registry.WithClock(clock.Now), registry.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		var calls, inFlight atomic.Int64
		var bad atomic.Bool
		cfg := workerConfig(t, "w")
		cfg.Report = func() registry.WorkerReport {
			calls.Add(1)
			if bad.Load() {
				return registry.WorkerReport{InFlight: -1}
			}
			return registry.WorkerReport{InFlight: int(inFlight.Load()), Capacity: 4, Version: "v9"}
		}
		startWorker(t, r, cfg)
		equal(t, "report at registration", reportOf(t, r, "ns", cfg.WorkerInstanceID, clock.Now()), &registry.WorkerReport{Capacity: 4, Version: "v9"})
		inFlight.Store(3)
		clock.Advance(time.Second)
		info := heartbeatAt(t, r, clock, cfg.WorkerInstanceID)
		equal(t, "report after a heartbeat", info.Report, &registry.WorkerReport{InFlight: 3, Capacity: 4, Version: "v9"})
		if calls.Load() < 2 {
			t.Fatalf("Report called %d times", calls.Load())
		}
		bad.Store(true)
		clock.Advance(time.Second)
		info = heartbeatAt(t, r, clock, cfg.WorkerInstanceID)
		equal(t, "report after an invalid one", info.Report, &registry.WorkerReport{InFlight: 3, Capacity: 4, Version: "v9"})
		waitForLogged(t, logs, "the invalid report logged", func() bool { return strings.Contains(logs.String(), "report.in_flight") })

		cfg2 := workerConfig(t, "bad")
		cfg2.Report = func() registry.WorkerReport { return registry.WorkerReport{Version: "a\nb"} }
		if _, err := r.StartWorker(context.Background(), cfg2); err == nil {
			t.Fatal("StartWorker with an invalid report succeeded")
		} else {
			wantValidation(t, err, "report.version")
		}
	})
}
