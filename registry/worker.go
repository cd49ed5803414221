package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"sync"
	"time"
)

// ErrMarkedDead ends a Worker whose registration MarkWorkerDead removed:
// an operator (or the engine) declared the process dead, so it must not
// register again, and should exit. Worker.Err returns it, with the reason
// the kill gave.
var ErrMarkedDead = errors.New("worker was marked dead")

// stopTimeout bounds the deregistration that a Worker makes when its
// context ends, since that context can no longer bound it.
const stopTimeout = 10 * time.Second

// WorkerConfig configures StartWorker: the registration, as in
// RegisterWorkerArgs, and how often the worker heartbeats.
type WorkerConfig struct {
	Namespace        string
	WorkerID         string // pool identity, shared by many processes
	WorkerInstanceID string // this process; unique per boot
	Lanes            []string
	Capabilities     []string
	LivenessTTL      time.Duration // 1ms to 24h; truncated to the millisecond
	// HeartbeatInterval is the time between heartbeats, each moved by up
	// to 10% either way so that workers started together spread out. It
	// must leave that 10% within the TTL. Zero: LivenessTTL/3, which rides
	// out one lost heartbeat.
	HeartbeatInterval time.Duration
	// OnStateChange, if set, is called with each change of the worker's
	// State, in order, one call at a time, on a goroutine of the
	// worker's (never on the loop's, so a slow callback delays neither
	// heartbeats nor the report of a lapse behind it). The worker starts
	// WorkerLive, which is not reported; WorkerEnded is the last call,
	// and may come after Done is closed.
	OnStateChange func(WorkerState)
	// Report, if set, is called on the loop's goroutine before each
	// heartbeat and registration, and what it returns is sent with it
	// (WorkerInfo.Report shows the last one). It should return at once.
	// An invalid report fails StartWorker; later, the loop logs it and
	// heartbeats without one (the stored report stays), so that a bad
	// report never costs the worker its registration.
	Report func() WorkerReport
}

// Worker is the loop of one worker process: it heartbeats its
// registration, registers again when a pause let it lapse, and reports
// drains. StartWorker starts it; Stop ends it. Its methods are safe for
// concurrent use.
type Worker struct {
	r        *Registry
	args     RegisterWorkerArgs
	interval time.Duration
	log      *slog.Logger
	report   func() WorkerReport // nil: the worker sends no reports

	draining  chan struct{} // closed at the first drain directive
	drainOnce sync.Once
	done      chan struct{} // closed when the loop has ended
	stop      chan struct{} // closed by the first Stop
	stopOnce  sync.Once
	cancel    context.CancelFunc // ends the loop's calls

	// Set by the loop before it closes done.
	err            error
	needDeregister bool // the loop ended on Stop, which deregisters

	turn chan struct{} // one Stop deregisters at a time; guards needDeregister after done

	// The loop's own, read and written by it alone.
	failures   int  // calls failed in a row
	timeouts   int  // calls that their deadline ended, in a row
	clockAlarm bool // the clock warning was logged

	// What the worker knows of its registration.
	mu        sync.Mutex
	liveUntil time.Time   // registry clock: the expiry of the last success
	state     WorkerState // never WorkerLive at or after liveUntil once checked
	lapse     *time.Timer // real time: fires at liveUntil (see checkLapse)
	onState   func(WorkerState)
	pending   []WorkerState // changes for onState not yet delivered
	changed   chan struct{} // wakes the goroutine that calls onState
}

// StartWorker registers a worker and starts its heartbeat loop, the loop
// that a worker process would otherwise write: it returns once the
// registration is written, or with RegisterWorker's error (ErrInvalidInput
// for a bad config, ErrInstanceReassigned when the instance is live under
// another worker ID), or ErrMarkedDead when MarkWorkerDead killed the
// instance before, having started nothing.
//
// The loop then heartbeats every HeartbeatInterval at the registry's clock
// (see WithClock); the interval itself is measured in real time. It keeps
// going through storage errors, which it logs with the registry's logger
// and retries at the next tick. When a heartbeat finds the registration
// gone (the process was paused past its TTL, and perhaps swept), it
// registers again, unless the instance was killed: MarkWorkerDead keeps a
// record of each kill that outlives the pruning of its marked_dead event
// (and the loop also takes a latest event marked_dead, which the engine
// may write, for a kill). Then the loop ends with ErrMarkedDead. It also
// ends if registering again is refused (ErrInstanceReassigned). Draining
// is closed at the first heartbeat that returns DirectiveDrain; a drain
// outlives a lapse and the registration that follows it (see
// RequestDrain).
//
// When ctx ends, the loop stops and deregisters the worker, within
// 10 seconds, and Err returns ctx's error. Stop does the same with a
// context of the caller's. A worker process needs little more:
//
//	w, err := reg.StartWorker(ctx, cfg)
//	...
//	<-w.Draining() // or a signal: finish the work in hand
//	err = w.Stop(ctx)
func (r *Registry) StartWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if err := r.check(); err != nil {
		return nil, opError(ctx, "start worker", err)
	}
	w, err := r.startWorker(ctx, cfg)
	if err != nil {
		return nil, opError(ctx, "start worker", err)
	}
	return w, nil
}

func (r *Registry) startWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	ttlMS, err := validateLivenessTTL(cfg.LivenessTTL)
	if err != nil {
		return nil, err
	}
	ttl := time.Duration(ttlMS) * time.Millisecond
	interval := cfg.HeartbeatInterval
	switch {
	case interval == 0:
		interval = ttl / 3
	case interval < 0:
		return nil, invalid("heartbeat_interval", "must not be negative (got %s)", interval)
	case interval+interval/10 >= ttl:
		return nil, invalid("heartbeat_interval", "must be shorter than the liveness TTL by more than its 10%% jitter (got %s for %s)", interval, ttl)
	}
	args := RegisterWorkerArgs{
		Namespace:        cfg.Namespace,
		WorkerID:         cfg.WorkerID,
		WorkerInstanceID: cfg.WorkerInstanceID,
		Lanes:            cfg.Lanes,
		Capabilities:     cfg.Capabilities,
		LivenessTTL:      cfg.LivenessTTL,
	}
	if cfg.Report != nil {
		rep := cfg.Report()
		args.Report = &rep
	}
	// The expiry is at least a TTL after a time read before the call
	// (the registration stamps a time it reads once it holds its lock,
	// which is no earlier): LiveUntil errs early, never late.
	before := r.cfg.clock()
	if _, err := r.registerWorker(ctx, args, true); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(ctx)
	w := &Worker{
		r:        r,
		args:     args,
		interval: interval,
		log:      r.cfg.logger.With("namespace", cfg.Namespace, "worker_instance_id", cfg.WorkerInstanceID),
		report:   cfg.Report,
		draining: make(chan struct{}),
		done:     make(chan struct{}),
		stop:     make(chan struct{}),
		cancel:   cancel,
		turn:     make(chan struct{}, 1),
		state:    WorkerLive,
		onState:  cfg.OnStateChange,
		changed:  make(chan struct{}, 1),
	}
	w.mu.Lock()
	w.lapse = time.AfterFunc(time.Hour, w.checkLapse)
	w.renewLocked(expiryAfter(before, ttl))
	w.mu.Unlock()
	// Labelled from its creation, so that a goroutine profile tells whose
	// loop it is.
	pprof.Do(loopCtx, pprof.Labels("workerregistry.worker", cfg.Namespace+"/"+cfg.WorkerInstanceID), func(ctx context.Context) {
		if w.onState != nil {
			go w.reportStates()
		}
		go w.run(ctx)
	})
	return w, nil
}

// expiryAfter is the expiry of a registration stamped at t (or later).
func expiryAfter(t time.Time, ttl time.Duration) time.Time {
	return time.UnixMilli(t.UnixMilli()).Add(ttl).UTC()
}

// State returns what the worker knows of its registration: WorkerLive
// while the registry's clock (see WithClock; on Postgres, the server's) is
// before LiveUntil,
// WorkerLapsed from then on (or from a heartbeat that found the
// registration gone) until a heartbeat or a registration succeeds again,
// and WorkerEnded once the loop has ended. It reads the clock, so it never
// says live after LiveUntil, whatever the loop is doing. Code that starts
// a job checks that State is WorkerLive first: once the registration has
// lapsed, the engine may give the worker's leases to others.
func (w *Worker) State() WorkerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lapseDueLocked()
	return w.state
}

// LiveUntil returns the expiry, on the registry's clock, that the last
// successful heartbeat or registration returned. (A registration returns
// none: its expiry is taken from a time read before the call, so it errs
// early.) On Postgres without WithClock it is earlier by how far the
// registry's reading of the server's clock may be off: half a round trip,
// well under a millisecond on a LAN.
func (w *Worker) LiveUntil() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.liveUntil
}

// renewLocked records a successful heartbeat or registration: the worker
// is live until expiry (unless that has passed already), and the lapse
// timer is set for it.
func (w *Worker) renewLocked(expiry time.Time) {
	if w.state == WorkerEnded {
		return
	}
	// Early by the clock's uncertainty (see pgstore.ServerClock): the worker must
	// never say live once the store's clock has passed its expiry.
	expiry = expiry.Add(-w.r.cfg.slack())
	w.liveUntil = expiry
	if left := expiry.Sub(w.r.cfg.clock()); left > 0 {
		w.setStateLocked(WorkerLive)
		w.lapse.Reset(left)
		return
	}
	w.setStateLocked(WorkerLapsed)
}

// lapseDueLocked turns a live worker lapsed once the registry's clock has
// reached liveUntil, and otherwise returns the real time left until then.
func (w *Worker) lapseDueLocked() (left time.Duration, lapsed bool) {
	if w.state != WorkerLive {
		return 0, false
	}
	if left = w.liveUntil.Sub(w.r.cfg.clock()); left > 0 {
		return left, false
	}
	w.setStateLocked(WorkerLapsed)
	return 0, true
}

// checkLapse is the lapse timer's function. The timer runs in real time
// for the difference between liveUntil and the registry's clock when it
// was set; a clock that is not real time (WithClock) may not have reached
// liveUntil yet, and then the timer is set again for what is left. (A
// worker made live again set it already; setting it twice is harmless.)
func (w *Worker) checkLapse() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if left, _ := w.lapseDueLocked(); left > 0 {
		w.lapse.Reset(max(left, time.Millisecond))
	}
}

// lapsedNow records that a call found the registration gone, before
// liveUntil: someone else removed it (a kill, a deregistration, a sweep
// by a clock ahead of the registry's).
func (w *Worker) lapsedNow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == WorkerLive {
		w.setStateLocked(WorkerLapsed)
	}
}

// ended records that the loop has ended.
func (w *Worker) ended() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setStateLocked(WorkerEnded)
	w.lapse.Stop()
}

// setStateLocked changes the state and queues the change for onState.
// WorkerEnded is final.
func (w *Worker) setStateLocked(s WorkerState) {
	if w.state == s || w.state == WorkerEnded {
		return
	}
	w.state = s
	if w.onState == nil {
		return
	}
	w.pending = append(w.pending, s)
	select {
	case w.changed <- struct{}{}:
	default: // already woken: it takes every pending change
	}
}

// reportStates calls onState with each change, in order, until it has
// reported WorkerEnded.
func (w *Worker) reportStates() {
	for range w.changed {
		w.mu.Lock()
		changes := w.pending
		w.pending = nil
		w.mu.Unlock()
		for _, s := range changes {
			w.onState(s)
			if s == WorkerEnded {
				return
			}
		}
	}
}

// Draining returns a channel that is closed once a heartbeat has returned
// DirectiveDrain: the worker should finish its work in hand, take no more,
// and Stop. It stays closed if the drain is withdrawn (ResumeWorker).
func (w *Worker) Draining() <-chan struct{} { return w.draining }

// Done returns a channel that is closed when the loop has ended: after
// Stop, after the context given to StartWorker ended, or on ErrMarkedDead
// or another error that Err returns.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Err returns why the loop ended: nil while it runs and after Stop,
// ErrMarkedDead (wrapped, with the kill's reason), the error of the
// context given to StartWorker, or an error with which registering again
// was refused, such as ErrInstanceReassigned.
func (w *Worker) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

// Stop ends the heartbeats and deregisters the worker (a deregistered
// event), waiting for both as long as ctx allows. Stopping a worker whose
// loop has already ended (see Err) deregisters nothing: it is not
// registered, or not as this worker. Stop may be called many times and
// concurrently: once one has deregistered the worker, the others return
// nil; after a failed deregistration, the next Stop tries again. The
// deregistration also has the deadline of the loop's calls (see
// callFloor): past the registration's expiry, nothing is left to remove.
func (w *Worker) Stop(ctx context.Context) error {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.cancel()
	})
	select {
	case <-w.done:
	case <-ctx.Done():
		return opError(ctx, "stop worker", ctx.Err())
	}
	select {
	case w.turn <- struct{}{}:
	case <-ctx.Done():
		return opError(ctx, "stop worker", ctx.Err())
	}
	defer func() { <-w.turn }()
	if !w.needDeregister {
		return nil
	}
	if err := w.call(ctx, w.deregister); err != nil {
		return fmt.Errorf("stop worker: %w", err)
	}
	w.needDeregister = false
	return nil
}

func (w *Worker) deregister(ctx context.Context) error {
	_, err := w.r.DeregisterWorker(ctx, DeregisterWorkerArgs{Namespace: w.args.Namespace, WorkerInstanceID: w.args.WorkerInstanceID})
	return err
}

// The loop's calls carry deadlines so that nothing holds it past a lapse
// (a lock held by another process, a stalled server, a silent network,
// which TCP takes minutes to give up on). A call's deadline is the
// registration's expiry, and at least callFloor later than the call's
// start: before the expiry, a call that runs into it has lost the race
// anyway, and its retry, on another connection, has a chance; after it
// (the worker has lapsed, and said so), the deadline only tells a stuck
// call from a slow one. 250 ms is a hundred times a heartbeat on either
// store (microseconds on SQLite, a round trip on Postgres) and a few
// times the longest write the registry lets hold SQLite's lock (about
// 50 ms), and short against any TTL worth having. Each timeout in a row
// doubles the floor, up to the TTL, so that a store that is slow rather
// than stuck (a new connection over a long link) is given the time it
// needs.
const callFloor = 250 * time.Millisecond

// immediateRetries is how many failed calls in a row are retried at once
// rather than at the next tick: a connection the server dropped fails
// only the call that finds it so (its pool then opens another), so one
// retry cures it. Timeouts are always retried at once: their deadline
// paces them.
const immediateRetries = 3

// callContext returns a context for one call of the loop's: ctx with a
// deadline at the registration's expiry, and at least the floor away. A
// deadline on the registry's clock is turned into real time by the
// difference, as the lapse timer is.
func (w *Worker) callContext(ctx context.Context, timeouts int) (context.Context, context.CancelFunc) {
	floor := min(callFloor<<min(timeouts, 16), max(callFloor, w.args.LivenessTTL))
	w.mu.Lock()
	left := w.liveUntil.Sub(w.r.cfg.clock())
	w.mu.Unlock()
	return context.WithTimeout(ctx, max(left, floor))
}

// run is the loop. Ticks are real time; each heartbeat's time is the
// registry's clock. The next tick is an interval (jittered) after the
// previous one started, so a slow heartbeat does not stretch the period,
// and one that took longer than an interval is followed at once. A call
// that failed is retried at once (see immediateRetries) instead.
func (w *Worker) run(ctx context.Context) {
	defer close(w.done)
	defer w.ended()
	defer w.cancel()
	w.checkClock()
	first := w.nextDelay()
	if w.State() != WorkerLive {
		first = 0 // StartWorker's registration took longer than its TTL
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			w.end(ctx)
			return
		case <-timer.C:
		}
		started := time.Now()
		retryNow, err := w.beat(ctx)
		if err != nil {
			w.err = err
			w.log.Error("worker loop ended", "err", err)
			return
		}
		if retryNow {
			timer.Reset(0)
			continue
		}
		timer.Reset(w.nextDelay() - time.Since(started))
	}
}

// checkClock logs a warning, once, when the host's clock and the
// registry's differ by more than a tenth of the TTL: the registry judges
// liveness by its clock, so a process that schedules by its own would
// misjudge how long it has (and, on Postgres, hosts whose clocks differ
// would disagree about who is live).
func (w *Worker) checkClock() {
	if w.clockAlarm {
		return
	}
	host := w.r.cfg.hostNow()
	reg := w.r.cfg.clock()
	offset := host.Sub(reg)
	if offset.Abs() <= w.args.LivenessTTL/10 {
		return
	}
	w.clockAlarm = true
	w.log.Warn("worker's host clock and the registry's clock differ by more than a tenth of its liveness TTL",
		"host_clock", host, "registry_clock", reg, "offset", offset, "liveness_ttl", w.args.LivenessTTL)
}

// end finishes the loop when ctx is done: on Stop, Stop deregisters with
// its caller's context; when StartWorker's context ended, the loop
// deregisters here, within stopTimeout and the call deadline.
func (w *Worker) end(ctx context.Context) {
	select {
	case <-w.stop:
		w.needDeregister = true
		return
	default:
	}
	w.err = ctx.Err()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := w.call(dctx, w.deregister); err != nil {
		w.log.Warn("worker deregistration failed; its registration will lapse", "err", err)
	}
}

func (w *Worker) nextDelay() time.Duration {
	return jitter(w.interval-w.interval/10, w.interval+w.interval/10)
}

// beat heartbeats once and reacts to the answer. It returns an error only
// for a reason to end the loop; what a retry may cure is logged, and
// retryNow says whether to retry at once rather than at the next tick.
func (w *Worker) beat(ctx context.Context) (retryNow bool, err error) {
	w.checkClock()
	var hb HeartbeatResult
	report := w.currentReport()
	err = w.call(ctx, func(ctx context.Context) (err error) {
		hb, err = w.r.HeartbeatWorker(ctx, HeartbeatWorkerArgs{Namespace: w.args.Namespace, WorkerInstanceID: w.args.WorkerInstanceID, Report: report})
		return err
	})
	if errors.Is(err, ErrClosed) {
		return false, err // the Registry was closed under the loop: no retry can cure that
	}
	if err != nil {
		return w.retry(ctx, "heartbeat", err), nil
	}
	if hb.Directive == DirectiveDrain {
		w.drainOnce.Do(func() {
			w.log.Info("worker asked to drain")
			close(w.draining)
		})
	}
	if hb.Outcome == HeartbeatRefreshed {
		w.succeeded(hb.NextExpiry)
		return false, nil
	}
	// The registration lapsed. Unless it was killed, the process was only
	// paused (or its heartbeats failed) for longer than its TTL.
	w.lapsedNow()
	var last ListWorkerEventsResult
	err = w.call(ctx, func(ctx context.Context) (err error) {
		last, err = w.r.ListWorkerEvents(ctx, ListWorkerEventsArgs{
			Namespace: w.args.Namespace, WorkerInstanceID: w.args.WorkerInstanceID, Limit: 1, NewestFirst: true,
		})
		return err
	})
	if err != nil {
		return w.retry(ctx, "read of the latest event", err), nil
	}
	if len(last.Events) > 0 && last.Events[0].Kind == eventMarkedDead {
		return false, fmt.Errorf("%w (%q)", ErrMarkedDead, last.Events[0].Reason)
	}
	var before time.Time
	args := w.args
	args.Report = w.currentReport()
	err = w.call(ctx, func(ctx context.Context) (err error) {
		before = w.r.cfg.clock()
		_, err = w.r.register(ctx, args, true)
		return err
	})
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, ErrInvalidInput) || errors.Is(err, ErrMarkedDead)) {
			return false, err // refused, not failed: killed, or another worker ID holds the instance
		}
		return w.retry(ctx, "registration", err), nil
	}
	w.succeeded(expiryAfter(before, w.args.LivenessTTL))
	w.log.Info("worker registered again after its registration lapsed")
	return false, nil
}

// currentReport calls the config's Report, if any, for the next call: nil
// (send none, keep the stored one) when there is none or it is invalid,
// which is logged.
func (w *Worker) currentReport() *WorkerReport {
	if w.report == nil {
		return nil
	}
	rep := w.report()
	if _, err := validateReport(&rep); err != nil {
		w.log.Warn("worker report is invalid; heartbeating without it", "err", err)
		return nil
	}
	return &rep
}

// call runs one of the loop's calls with its deadline (see callContext).
// A call that its own deadline ended returns an error that is
// errTimedOut.
func (w *Worker) call(ctx context.Context, f func(ctx context.Context) error) error {
	cctx, cancel := w.callContext(ctx, w.timeouts)
	defer cancel()
	err := f(cctx)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		w.timeouts++
		return &callTimeoutError{err}
	}
	return err
}

// succeeded records a successful heartbeat or registration.
func (w *Worker) succeeded(expiry time.Time) {
	if w.failures > 0 {
		w.log.Info("worker calls succeed again", "failed_in_a_row", w.failures)
	}
	w.failures, w.timeouts = 0, 0
	w.mu.Lock()
	defer w.mu.Unlock()
	w.renewLocked(expiry)
}

// callTimeoutError is a call of the loop's that its deadline ended.
type callTimeoutError struct{ err error }

func (e *callTimeoutError) Error() string {
	return "no answer by the call's deadline: " + e.err.Error()
}

func (e *callTimeoutError) Unwrap() error { return e.err }

// retry logs a failed call, unless the loop is ending anyway, and says
// whether to try again at once: after a timeout, and after the first
// failures in a row; otherwise the next tick tries again.
func (w *Worker) retry(ctx context.Context, what string, err error) (now bool) {
	if ctx.Err() != nil {
		return false
	}
	w.failures++
	var timeout *callTimeoutError
	now = errors.As(err, &timeout) || w.failures <= immediateRetries
	when := "at the next tick"
	if now {
		when = "at once"
	}
	w.log.Warn("worker "+what+" failed; retrying "+when, "err", err, "failed_in_a_row", w.failures)
	return now
}
