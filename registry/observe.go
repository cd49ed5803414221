package registry

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/internal/store/pgstore"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// instrumentationName names the tracer and the meter.
const instrumentationName = "github.com/flowfabric/workerregistry/registry"

// Attribute keys of spans and metrics. db.system.name follows
// OpenTelemetry's database conventions; the others are this library's.
const (
	attrDBSystem  = attribute.Key("db.system.name")
	attrOperation = attribute.Key("workerregistry.operation")
	attrOutcome   = attribute.Key("workerregistry.outcome")
	attrNamespace = attribute.Key("workerregistry.namespace")
)

// operation is a public method that is traced and timed.
type operation int

const (
	opRegisterWorker operation = iota
	opHeartbeatWorker
	opHeartbeatWorkers
	opMarkWorkerDead
	opDeregisterWorker
	opResumeWorker
	opGetWorker
	opRequestDrain
	opListWorkers
	opListWorkersIncludingExpired
	opListWorkerEvents
	opListExpiredLeases
	opListOrphanedLeases
	opSweepExpiredWorkers
	opPruneEvents
	numOperations
)

var operationNames = [numOperations]string{
	"register_worker",
	"heartbeat_worker",
	"heartbeat_workers",
	"mark_worker_dead",
	"deregister_worker",
	"resume_worker",
	"get_worker",
	"request_drain",
	"list_workers",
	"list_workers_including_expired",
	"list_worker_events",
	"list_expired_leases",
	"list_orphaned_leases",
	"sweep_expired_workers",
	"prune_events",
}

// The stores, as db.system.name names them.
const (
	storeIdxSQLite = iota
	storeIdxPostgres
	numStoreIdx
)

var storeSystemNames = [numStoreIdx]string{"sqlite", "postgresql"}

// Call outcomes: the outcome attribute of spans and of the duration
// histogram.
const (
	outcomeOK = iota
	outcomeError
	numCallOutcomes
)

var callOutcomeNames = [numCallOutcomes]string{"ok", "error"}

// maxLeaseBacklog caps the count of expired leases the sweep makes for
// the workerregistry.leases.expired gauge: it reads at most this many rows
// of the lease index.
const maxLeaseBacklog = 10000

// liveCountPage is the page size of the walk over live registrations that
// refreshes the workerregistry.workers.live gauge.
const liveCountPage = 1000

// observer holds a registry's instruments. A registry with neither
// WithMeterProvider nor WithTracerProvider has none (config.obs is nil)
// and pays one nil check per call.
type observer struct {
	traced  bool
	metered bool
	tracer  trace.Tracer

	duration      metric.Float64Histogram
	registrations metric.Int64Counter
	heartbeats    metric.Int64Counter
	sweeps        metric.Int64Counter
	swept         metric.Int64Counter
	pruned        metric.Int64Counter
	callback      metric.Registration

	// Attribute sets made once, so that recording allocates nothing.
	callOpts      [numStoreIdx][numOperations][numCallOutcomes]metric.MeasurementOption
	spanOpts      [numStoreIdx][numOperations]trace.SpanStartOption
	spanNames     [numOperations]string
	outcomeAttrs  [numCallOutcomes]attribute.KeyValue
	storeOpts     [numStoreIdx]metric.MeasurementOption
	heartbeatOpts [numStoreIdx][3]metric.MeasurementOption // refreshed, not_registered, error
	registerOpts  [numStoreIdx][3]metric.MeasurementOption // registered, refreshed, error
	sweepOpts     [numStoreIdx][numCallOutcomes]metric.MeasurementOption

	// The gauges' values, refreshed by the sweep and read at collection.
	mu       sync.Mutex
	store    int
	gauged   bool // a sweep has refreshed live and backlog
	live     map[string]int64
	backlog  int64
	liveOpts map[string]metric.ObserveOption
}

// newObserver returns nil when neither provider is set.
func newObserver(mp metric.MeterProvider, tp trace.TracerProvider) *observer {
	if mp == nil && tp == nil {
		return nil
	}
	o := &observer{traced: tp != nil, metered: mp != nil}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	o.tracer = tp.Tracer(instrumentationName)
	meter := mp.Meter(instrumentationName)

	// Errors from instrument creation are reported by the SDK to its
	// error handler, and the instrument returned is a working no-op.
	o.duration, _ = meter.Float64Histogram("workerregistry.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of registry calls."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	o.registrations, _ = meter.Int64Counter("workerregistry.registrations",
		metric.WithUnit("{registration}"), metric.WithDescription("RegisterWorker calls, by outcome."))
	o.heartbeats, _ = meter.Int64Counter("workerregistry.heartbeats",
		metric.WithUnit("{heartbeat}"), metric.WithDescription("Heartbeats, single or batched, by outcome."))
	o.sweeps, _ = meter.Int64Counter("workerregistry.sweeps",
		metric.WithUnit("{sweep}"), metric.WithDescription("Sweeps, by outcome."))
	o.swept, _ = meter.Int64Counter("workerregistry.workers.swept",
		metric.WithUnit("{worker}"), metric.WithDescription("Expired registrations removed by sweeps."))
	o.pruned, _ = meter.Int64Counter("workerregistry.events.pruned",
		metric.WithUnit("{event}"), metric.WithDescription("Audit events deleted for their age."))
	liveGauge, _ := meter.Int64ObservableGauge("workerregistry.workers.live",
		metric.WithUnit("{worker}"), metric.WithDescription("Live registrations by namespace, as of the last sweep."))
	backlogGauge, _ := meter.Int64ObservableGauge("workerregistry.leases.expired",
		metric.WithUnit("{lease}"), metric.WithDescription("Expired leases awaiting reclaim as of the last sweep, counted up to 10000."))

	for s := range numStoreIdx {
		sys := attrDBSystem.String(storeSystemNames[s])
		o.storeOpts[s] = metric.WithAttributeSet(attribute.NewSet(sys))
		for op := range numOperations {
			opAttr := attrOperation.String(operationNames[op])
			o.spanOpts[s][op] = trace.WithAttributes(sys, opAttr)
			for oc := range numCallOutcomes {
				o.callOpts[s][op][oc] = metric.WithAttributeSet(attribute.NewSet(sys, opAttr, attrOutcome.String(callOutcomeNames[oc])))
			}
		}
		for i, name := range []string{"refreshed", "not_registered", "error"} {
			o.heartbeatOpts[s][i] = metric.WithAttributeSet(attribute.NewSet(sys, attrOutcome.String(name)))
		}
		for i, name := range []string{"registered", "refreshed", "error"} {
			o.registerOpts[s][i] = metric.WithAttributeSet(attribute.NewSet(sys, attrOutcome.String(name)))
		}
		for oc := range numCallOutcomes {
			o.sweepOpts[s][oc] = metric.WithAttributeSet(attribute.NewSet(sys, attrOutcome.String(callOutcomeNames[oc])))
		}
	}
	for op := range numOperations {
		o.spanNames[op] = "workerregistry." + operationNames[op]
	}
	for oc := range numCallOutcomes {
		o.outcomeAttrs[oc] = attrOutcome.String(callOutcomeNames[oc])
	}

	if o.metered {
		o.callback, _ = meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
			o.mu.Lock()
			defer o.mu.Unlock()
			if !o.gauged {
				return nil
			}
			for ns, n := range o.live {
				obs.ObserveInt64(liveGauge, n, o.liveOpts[ns])
			}
			obs.ObserveInt64(backlogGauge, o.backlog, metric.WithAttributeSet(attribute.NewSet(attrDBSystem.String(storeSystemNames[o.store]))))
			return nil
		}, liveGauge, backlogGauge)
	}
	return o
}

// close unregisters the gauges' callback.
func (o *observer) close() {
	if o != nil && o.callback != nil {
		_ = o.callback.Unregister()
	}
}

// storeIdx says which store r is on.
func (r *Registry) storeIdx() int {
	if _, ok := r.st.(*pgstore.Store); ok {
		return storeIdxPostgres
	}
	return storeIdxSQLite
}

// call is one public call being observed; the zero call observes nothing.
type call struct {
	o     *observer
	op    operation
	store int
	start time.Time
	span  trace.Span
}

// begin starts observing a call of op: a span when a tracer provider is
// set, a start time when a meter provider is. Every public method calls it
// first and passes its error, nil or not, through call.end.
func (r *Registry) begin(ctx context.Context, op operation) (context.Context, call) {
	if r == nil || r.cfg.obs == nil {
		return ctx, call{}
	}
	o := r.cfg.obs
	c := call{o: o, op: op, store: r.storeIdx()}
	if o.traced {
		ctx, c.span = o.tracer.Start(ctx, o.spanNames[op], trace.WithSpanKind(trace.SpanKindClient), o.spanOpts[c.store][op])
	}
	if o.metered {
		c.start = time.Now()
	}
	return ctx, c
}

// end records the call's duration and ends its span, with the error if
// there is one, and returns err.
func (c call) end(ctx context.Context, err error) error {
	if c.o == nil {
		return err
	}
	oc := outcomeOK
	if err != nil {
		oc = outcomeError
	}
	if c.o.metered {
		c.o.duration.Record(ctx, time.Since(c.start).Seconds(), c.o.callOpts[c.store][c.op][oc])
	}
	if c.span != nil {
		if err != nil {
			c.span.RecordError(err)
			c.span.SetStatus(codes.Error, err.Error())
		}
		c.span.SetAttributes(c.o.outcomeAttrs[oc])
		c.span.End()
	}
	return err
}

// metrics returns r's observer when a meter provider is set, else nil.
func (r *Registry) metrics() *observer {
	if r == nil || r.cfg.obs == nil || !r.cfg.obs.metered {
		return nil
	}
	return r.cfg.obs
}

// countRegistration counts a RegisterWorker call by its outcome.
func (r *Registry) countRegistration(ctx context.Context, outcome RegisterOutcome, err error) {
	o := r.metrics()
	if o == nil {
		return
	}
	i := 2
	switch {
	case err != nil:
	case outcome == Registered:
		i = 0
	case outcome == Refreshed:
		i = 1
	}
	o.registrations.Add(ctx, 1, o.registerOpts[r.storeIdx()][i])
}

// countHeartbeats counts heartbeats by outcome: the results of a call,
// or n heartbeats that failed with it.
func (r *Registry) countHeartbeats(ctx context.Context, results []HeartbeatResult, n int, err error) {
	o := r.metrics()
	if o == nil {
		return
	}
	s := r.storeIdx()
	if err != nil {
		if n > 0 {
			o.heartbeats.Add(ctx, int64(n), o.heartbeatOpts[s][2])
		}
		return
	}
	var refreshed, notRegistered int64
	for _, res := range results {
		if res.Outcome == HeartbeatRefreshed {
			refreshed++
		} else {
			notRegistered++
		}
	}
	if refreshed > 0 {
		o.heartbeats.Add(ctx, refreshed, o.heartbeatOpts[s][0])
	}
	if notRegistered > 0 {
		o.heartbeats.Add(ctx, notRegistered, o.heartbeatOpts[s][1])
	}
}

// countSwept counts registrations removed by a sweep.
func (r *Registry) countSwept(ctx context.Context, n int) {
	if o := r.metrics(); o != nil && n > 0 {
		o.swept.Add(ctx, int64(n), o.storeOpts[r.storeIdx()])
	}
}

// countPruned counts events deleted for their age.
func (r *Registry) countPruned(ctx context.Context, n int64) {
	if o := r.metrics(); o != nil && n > 0 {
		o.pruned.Add(ctx, n, o.storeOpts[r.storeIdx()])
	}
}

// countSweep counts a sweep by outcome.
func (r *Registry) countSweep(ctx context.Context, err error) {
	if o := r.metrics(); o != nil {
		oc := outcomeOK
		if err != nil {
			oc = outcomeError
		}
		o.sweeps.Add(ctx, 1, o.sweepOpts[r.storeIdx()][oc])
	}
}

// refreshGauges recounts, after a sweep at nowMS, the live registrations
// by namespace and the expired leases, for the gauges to report until the
// next sweep: collecting the gauges never queries the database. It costs
// a walk over the live registrations, in pages of liveCountPage in key
// order (bounded by the registry's size), and a read of at most
// maxLeaseBacklog rows of the expired-lease index. Without a meter
// provider it does nothing. On failure the gauges keep their values.
func (r *Registry) refreshGauges(ctx context.Context, nowMS int64) error {
	o := r.metrics()
	if o == nil {
		return nil
	}
	live := make(map[string]int64)
	q := store.WorkerQuery{NowMs: nowMS, RowLimit: liveCountPage}
	for {
		rows, err := r.st.Reader().ListWorkers(ctx, q)
		if err != nil {
			return err
		}
		for _, w := range rows {
			live[w.Namespace]++
		}
		if len(rows) < liveCountPage {
			break
		}
		last := rows[len(rows)-1]
		q.AfterNamespace, q.AfterInstance = last.Namespace, last.WorkerInstanceID
	}
	leases, err := r.st.Reader().ListExpiredLeases(ctx, store.LeaseQuery{
		AsOfMs:           nowMS,
		AfterExpiresAtMs: math.MinInt64,
		AfterPartition:   -1,
		AfterExecutionID: []byte{},
		RowLimit:         maxLeaseBacklog,
	})
	if err != nil {
		return err
	}
	s := r.storeIdx()
	sys := attrDBSystem.String(storeSystemNames[s])
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.liveOpts == nil {
		o.liveOpts = make(map[string]metric.ObserveOption)
	}
	for ns := range live {
		if _, ok := o.liveOpts[ns]; !ok {
			o.liveOpts[ns] = metric.WithAttributeSet(attribute.NewSet(sys, attrNamespace.String(ns)))
		}
	}
	for ns := range o.liveOpts {
		if _, ok := live[ns]; !ok {
			delete(o.liveOpts, ns)
		}
	}
	o.store, o.live, o.backlog, o.gauged = s, live, int64(len(leases)), true
	return nil
}
