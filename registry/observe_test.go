package registry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// dbSystem is the db.system.name that s reports.
func dbSystem(s store) string {
	if s.engine == enginePostgres {
		return "postgresql"
	}
	return "sqlite"
}

// collect reads every metric of the registry's meter.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]metricdata.Aggregation)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// attrs renders an attribute set as "k=v,k=v" in key order.
func attrs(set attribute.Set) string {
	var parts []string
	for _, kv := range set.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(parts, ",")
}

// int64Points returns an Int64 sum's or gauge's points by their attributes.
func int64Points(t *testing.T, data metricdata.Aggregation, name string) map[string]int64 {
	t.Helper()
	out := make(map[string]int64)
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] = p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] = p.Value
		}
	case nil: // no points: a gauge with no namespace to report
	default:
		t.Fatalf("%s: unexpected aggregation %T", name, data)
	}
	return out
}

func TestObservabilityMetrics(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		r, b := setup(t, s, registry.WithMeterProvider(mp), registry.WithEventRetention(time.Second))
		ctx := context.Background()
		sys := "db.system.name=" + dbSystem(s)

		// Before any sweep the gauges report nothing: collecting them
		// never queries.
		if got := collect(t, reader); got["workerregistry.workers.live"] != nil || got["workerregistry.leases.expired"] != nil {
			t.Fatalf("gauges before a sweep: %v, %v", got["workerregistry.workers.live"], got["workerregistry.leases.expired"])
		}

		mustRegister(t, r, registerArgs("b", "w3", t0))
		mustRegister(t, r, registerArgs("a", "w1", t0.Add(5*time.Second)))
		mustRegister(t, r, registerArgs("a", "w2", t0.Add(5*time.Second)))
		equal(t, "re-register", mustRegister(t, r, registerArgs("a", "w1", t0.Add(6*time.Second))), registry.Refreshed)
		mustHeartbeat(t, r, "a", "w1", t0.Add(7*time.Second))
		equal(t, "unknown heartbeat", mustHeartbeat(t, r, "a", "nobody", t0.Add(7*time.Second)).Outcome, registry.HeartbeatNotRegistered)
		if _, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "a"}); !errors.Is(err, registry.ErrInvalidInput) {
			t.Fatalf("heartbeat without instance: %v", err)
		}
		if _, err := r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
			{Namespace: "a", WorkerInstanceID: "w1", Now: t0.Add(8 * time.Second)},
			{Namespace: "a", WorkerInstanceID: "w2", Now: t0.Add(8 * time.Second)},
			{Namespace: "a", WorkerInstanceID: "gone", Now: t0.Add(8 * time.Second)},
		}); err != nil {
			t.Fatal(err)
		}
		// Three expired leases and one that is not.
		registrytest.InsertLeases(t, b.raw.DB,
			registrytest.Lease{WorkerInstanceID: "w1", Namespace: "a", ExpiresAt: t0},
			registrytest.Lease{WorkerInstanceID: "w1", Namespace: "a", ExpiresAt: t0.Add(time.Second)},
			registrytest.Lease{WorkerInstanceID: "w3", Namespace: "b", ExpiresAt: t0.Add(2 * time.Second)},
			registrytest.Lease{WorkerInstanceID: "w2", Namespace: "a", ExpiresAt: t0.Add(time.Hour)},
		)
		rep, err := r.SweepExpiredWorkers(ctx, t0.Add(12*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "swept", rep.Swept, 1) // b/w3
		if rep.PrunedEvents == 0 {
			t.Fatal("the sweep pruned no events; the test needs some")
		}

		got := collect(t, reader)
		equal(t, "registrations", int64Points(t, got["workerregistry.registrations"], "registrations"), map[string]int64{
			sys + ",workerregistry.outcome=registered": 3,
			sys + ",workerregistry.outcome=refreshed":  1,
		})
		equal(t, "heartbeats", int64Points(t, got["workerregistry.heartbeats"], "heartbeats"), map[string]int64{
			sys + ",workerregistry.outcome=refreshed":      3,
			sys + ",workerregistry.outcome=not_registered": 2,
			sys + ",workerregistry.outcome=error":          1,
		})
		equal(t, "sweeps", int64Points(t, got["workerregistry.sweeps"], "sweeps"), map[string]int64{
			sys + ",workerregistry.outcome=ok": 1,
		})
		equal(t, "swept", int64Points(t, got["workerregistry.workers.swept"], "swept"), map[string]int64{sys: 1})
		equal(t, "pruned", int64Points(t, got["workerregistry.events.pruned"], "pruned"), map[string]int64{sys: int64(rep.PrunedEvents)})
		equal(t, "live", int64Points(t, got["workerregistry.workers.live"], "live"), map[string]int64{
			sys + ",workerregistry.namespace=a": 2,
		})
		equal(t, "expired leases", int64Points(t, got["workerregistry.leases.expired"], "expired leases"), map[string]int64{sys: 3})

		hist, ok := got["workerregistry.operation.duration"].(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("duration: %T", got["workerregistry.operation.duration"])
		}
		counts := make(map[string]uint64)
		for _, p := range hist.DataPoints {
			counts[attrs(p.Attributes)] = p.Count
			if p.Sum <= 0 {
				t.Errorf("duration %s: sum %v", attrs(p.Attributes), p.Sum)
			}
		}
		op := func(name, outcome string) string {
			return sys + ",workerregistry.operation=" + name + ",workerregistry.outcome=" + outcome
		}
		equal(t, "durations", counts, map[string]uint64{
			op("register_worker", "ok"):       4,
			op("heartbeat_worker", "ok"):      2,
			op("heartbeat_worker", "error"):   1,
			op("heartbeat_workers", "ok"):     1,
			op("sweep_expired_workers", "ok"): 1,
		})

		// A later sweep replaces the gauges' values.
		if _, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got = collect(t, reader)
		equal(t, "live after all expired", int64Points(t, got["workerregistry.workers.live"], "live"), map[string]int64{})
		equal(t, "expired leases later", int64Points(t, got["workerregistry.leases.expired"], "expired leases"), map[string]int64{sys: 4})
	})
}

func TestObservabilitySpans(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		r, _ := setup(t, s, registry.WithTracerProvider(tp))

		ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
		if _, err := r.RegisterWorker(ctx, registerArgs("a", "w1", t0)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "a", WorkerInstanceID: "w1", Now: t0.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		_, _, getErr := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "a"})
		if !errors.Is(getErr, registry.ErrInvalidInput) {
			t.Fatalf("GetWorker without instance: %v", getErr)
		}
		parent.End()

		spans := rec.Ended()
		equal(t, "spans", len(spans), 4)
		want := []struct{ name, op, outcome string }{
			{"workerregistry.register_worker", "register_worker", "ok"},
			{"workerregistry.heartbeat_worker", "heartbeat_worker", "ok"},
			{"workerregistry.get_worker", "get_worker", "error"},
		}
		system := dbSystem(s)
		for i, w := range want {
			s := spans[i]
			equal(t, "span name", s.Name(), w.name)
			equal(t, w.name+" parent", s.Parent().SpanID(), parent.SpanContext().SpanID())
			got := make(map[string]string)
			for _, kv := range s.Attributes() {
				got[string(kv.Key)] = kv.Value.String()
			}
			equal(t, w.name+" attributes", got, map[string]string{
				"db.system.name":           system,
				"workerregistry.operation": w.op,
				"workerregistry.outcome":   w.outcome,
			})
			if w.outcome == "error" {
				equal(t, w.name+" status", s.Status().Code, codes.Error)
				equal(t, w.name+" status description", s.Status().Description, getErr.Error())
				if len(s.Events()) != 1 || s.Events()[0].Name != "exception" {
					t.Fatalf("%s events: %+v, want the recorded error", w.name, s.Events())
				}
			} else {
				equal(t, w.name+" status", s.Status().Code, codes.Unset)
				equal(t, w.name+" events", len(s.Events()), 0)
			}
		}
		equal(t, "last span", spans[3].Name(), "parent")
	})
}

// TestObservabilityWithoutProviders: nil providers, or none, change nothing;
// a tracer provider alone leaves the sweep's gauges alone.
func TestObservabilityWithoutProviders(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		for _, opts := range [][]registry.Option{
			nil,
			{registry.WithMeterProvider(nil), registry.WithTracerProvider(nil)},
			{registry.WithTracerProvider(tp)},
		} {
			r, _ := setup(t, s, opts...)
			ctx := context.Background()
			equal(t, "register", mustRegister(t, r, registerArgs("a", "w1", t0)), registry.Registered)
			equal(t, "heartbeat", mustHeartbeat(t, r, "a", "w1", t0.Add(time.Second)).Outcome, registry.HeartbeatRefreshed)
			rep, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "swept", rep.Swept, 1)
			if _, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{}); !errors.Is(err, registry.ErrInvalidInput) {
				t.Fatalf("invalid heartbeat: %v", err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "a", WorkerInstanceID: "w1"}); !errors.Is(err, registry.ErrClosed) {
				t.Fatalf("heartbeat after close: %v", err)
			}
		}
		// Only the third registry traced: its five calls.
		equal(t, "spans", len(rec.Ended()), 5)
	})
}

// TestRunSweeperObserved: each sweep of RunSweeper is a span and refreshes
// the gauges; a sweep that removed nothing logs at DEBUG, one that
// removed something at INFO.
func TestRunSweeperObserved(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		var mu sync.Mutex
		now := t0
		clock := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
		logs := &syncBuffer{}
		logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		r, _ := setup(t, s, registry.WithClock(clock), registry.WithLogger(logger),
			registry.WithMeterProvider(mp), registry.WithTracerProvider(tp))
		mustRegister(t, r, registerArgs("ns", "w", t0)) // TTL 10 s
		sys := "db.system.name=" + dbSystem(s)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.RunSweeper(ctx, registry.SweeperConfig{Interval: time.Millisecond}) }()
		defer func() {
			cancel()
			<-done
		}()
		waitForLogged(t, logs, "an idle sweep at DEBUG", func() bool {
			return strings.Contains(logs.String(), `level=DEBUG msg="worker registry sweep" swept=0 pruned_events=0`)
		})
		if strings.Contains(logs.String(), "level=INFO") {
			t.Fatalf("an idle sweep logged at INFO:\n%s", logs.String())
		}
		live := int64Points(t, collect(t, reader)["workerregistry.workers.live"], "live")
		equal(t, "live", live, map[string]int64{sys + ",workerregistry.namespace=ns": 1})

		mu.Lock()
		now = t0.Add(11 * time.Second)
		mu.Unlock()
		waitForLogged(t, logs, "a sweep at INFO", func() bool {
			return strings.Contains(logs.String(), `level=INFO msg="worker registry sweep" swept=1`)
		})
		waitForLogged(t, logs, "the gauge to drop", func() bool {
			return len(int64Points(t, collect(t, reader)["workerregistry.workers.live"], "live")) == 0
		})
		var sweeps int
		for _, s := range rec.Ended() {
			if s.Name() == "workerregistry.sweep_expired_workers" {
				sweeps++
			}
		}
		if sweeps < 2 {
			t.Fatalf("%d sweep spans, want one per sweep (at least 2)", sweeps)
		}
	})
}

// BenchmarkHeartbeatObserved: a heartbeat with no provider, and with the
// SDK's meter and tracer providers (a ManualReader, and every span sampled
// and batched to an exporter that drops it), in the same run.
func BenchmarkHeartbeatObserved(b *testing.B) {
	for _, observed := range []bool{false, true} {
		b.Run(fmt.Sprintf("provider=%v", observed), func(b *testing.B) {
			var opts []registry.Option
			if observed {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opts = append(opts, registry.WithMeterProvider(mp), registry.WithTracerProvider(tp))
			}
			r, _ := workerFixture(b, benchWorkers, opts...)
			var clock clockMS
			b.ReportAllocs()
			measure(b, 0, heartbeatOp(r, clock.heartbeat))
		})
	}
}
