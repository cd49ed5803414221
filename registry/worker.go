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
}

// StartWorker registers a worker and starts its heartbeat loop, the loop
// that a worker process would otherwise write: it returns once the
// registration is written, or with RegisterWorker's error (ErrInvalidInput
// for a bad config, ErrInstanceReassigned when the instance is live under
// another worker ID), having started nothing.
//
// The loop then heartbeats every HeartbeatInterval at the registry's clock
// (see WithClock); the interval itself is measured in real time. It keeps
// going through storage errors, which it logs with the registry's logger
// and retries at the next tick. When a heartbeat finds the registration
// gone (the process was paused past its TTL, and perhaps swept), it
// registers again, unless the instance's latest event is marked_dead:
// then the loop ends with ErrMarkedDead. It also ends if registering again
// is refused (ErrInstanceReassigned). Draining is closed at the first
// heartbeat that returns DirectiveDrain.
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
	if _, err := r.registerWorker(ctx, args); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(ctx)
	w := &Worker{
		r:        r,
		args:     args,
		interval: interval,
		log:      r.cfg.logger.With("namespace", cfg.Namespace, "worker_instance_id", cfg.WorkerInstanceID),
		draining: make(chan struct{}),
		done:     make(chan struct{}),
		stop:     make(chan struct{}),
		cancel:   cancel,
		turn:     make(chan struct{}, 1),
	}
	// Labelled from its creation, so that a goroutine profile tells whose
	// loop it is.
	pprof.Do(loopCtx, pprof.Labels("workerregistry.worker", cfg.Namespace+"/"+cfg.WorkerInstanceID), func(ctx context.Context) {
		go w.run(ctx)
	})
	return w, nil
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
// nil; after a failed deregistration, the next Stop tries again.
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
	if err := w.deregister(ctx); err != nil {
		return fmt.Errorf("stop worker: %w", err)
	}
	w.needDeregister = false
	return nil
}

func (w *Worker) deregister(ctx context.Context) error {
	_, err := w.r.DeregisterWorker(ctx, DeregisterWorkerArgs{Namespace: w.args.Namespace, WorkerInstanceID: w.args.WorkerInstanceID})
	return err
}

// run is the loop. Ticks are real time; each heartbeat's time is the
// registry's clock. The next tick is an interval (jittered) after the
// previous one started, so a slow heartbeat does not stretch the period,
// and one that took longer than an interval is followed at once.
func (w *Worker) run(ctx context.Context) {
	defer close(w.done)
	defer w.cancel()
	timer := time.NewTimer(w.nextDelay())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			w.end(ctx)
			return
		case <-timer.C:
		}
		started := time.Now()
		if err := w.beat(ctx); err != nil {
			w.err = err
			w.log.Error("worker loop ended", "err", err)
			return
		}
		timer.Reset(w.nextDelay() - time.Since(started))
	}
}

// end finishes the loop when ctx is done: on Stop, Stop deregisters with
// its caller's context; when StartWorker's context ended, the loop
// deregisters here, within stopTimeout.
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
	if err := w.deregister(dctx); err != nil {
		w.log.Warn("worker deregistration failed; its registration will lapse", "err", err)
	}
}

func (w *Worker) nextDelay() time.Duration {
	return jitter(w.interval-w.interval/10, w.interval+w.interval/10)
}

// beat heartbeats once and reacts to the answer. It returns an error only
// for a reason to end the loop; what the next tick may cure is logged.
func (w *Worker) beat(ctx context.Context) error {
	hb, err := w.r.HeartbeatWorker(ctx, HeartbeatWorkerArgs{Namespace: w.args.Namespace, WorkerInstanceID: w.args.WorkerInstanceID})
	if errors.Is(err, ErrClosed) {
		return err // the Registry was closed under the loop: no tick can cure that
	}
	if err != nil {
		w.retryLater(ctx, "heartbeat", err)
		return nil
	}
	if hb.Directive == DirectiveDrain {
		w.drainOnce.Do(func() {
			w.log.Info("worker asked to drain")
			close(w.draining)
		})
	}
	if hb.Outcome == HeartbeatRefreshed {
		return nil
	}
	// The registration lapsed. Unless it was killed, the process was only
	// paused (or its heartbeats failed) for longer than its TTL.
	last, err := w.r.ListWorkerEvents(ctx, ListWorkerEventsArgs{
		Namespace: w.args.Namespace, WorkerInstanceID: w.args.WorkerInstanceID, Limit: 1, NewestFirst: true,
	})
	if err != nil {
		w.retryLater(ctx, "read of the latest event", err)
		return nil
	}
	if len(last.Events) > 0 && last.Events[0].Kind == eventMarkedDead {
		return fmt.Errorf("%w (%q)", ErrMarkedDead, last.Events[0].Reason)
	}
	if _, err := w.r.RegisterWorker(ctx, w.args); err != nil {
		if ctx.Err() == nil && errors.Is(err, ErrInvalidInput) {
			return err // refused, not failed: another worker ID holds the instance
		}
		w.retryLater(ctx, "registration", err)
		return nil
	}
	w.log.Info("worker registered again after its registration lapsed")
	return nil
}

// retryLater logs a failed call that the next tick tries again, unless
// the loop is ending anyway.
func (w *Worker) retryLater(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	w.log.Warn("worker "+what+" failed; retrying at the next tick", "err", err)
}
