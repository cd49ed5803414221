package registry

import (
	"context"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// DeregisterWorkerArgs are the arguments of DeregisterWorker.
type DeregisterWorkerArgs struct {
	Namespace        string
	WorkerInstanceID string
	Now              time.Time // zero: the registry's clock
}

// ResumeWorkerArgs are the arguments of ResumeWorker.
type ResumeWorkerArgs struct {
	Namespace        string
	WorkerInstanceID string
	Now              time.Time // zero: the registry's clock
}

// GetWorkerArgs are the arguments of GetWorker.
type GetWorkerArgs struct {
	Namespace        string
	WorkerInstanceID string
	Now              time.Time // zero: the registry's clock
}

// DeregisterOutcome says what DeregisterWorker did.
type DeregisterOutcome int

const (
	// Deregistered: the live registration was removed and a deregistered
	// event recorded.
	Deregistered DeregisterOutcome = iota + 1
	// DeregisterNotRegistered: no live registration; nothing was written.
	DeregisterNotRegistered
)

// String returns the outcome's snake_case name, as registryctl prints it.
func (o DeregisterOutcome) String() string { return deregisterOutcomes.name(int(o)) }

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (o DeregisterOutcome) MarshalText() ([]byte, error) { return deregisterOutcomes.marshal(int(o)) }

// UnmarshalText sets o from its name; an unknown name is an error.
func (o *DeregisterOutcome) UnmarshalText(text []byte) error {
	v, err := deregisterOutcomes.unmarshal(text)
	if err == nil {
		*o = DeregisterOutcome(v)
	}
	return err
}

var deregisterOutcomes = enum{"DeregisterOutcome", 1, []string{"deregistered", "not_registered"}}

// ResumeOutcome says what ResumeWorker did.
type ResumeOutcome int

const (
	// Resumed: the live worker is no longer draining and a resumed event
	// was recorded. Its heartbeats return DirectiveNone again.
	Resumed ResumeOutcome = iota + 1
	// ResumeNotRegistered: no live registration; nothing was written.
	ResumeNotRegistered
)

// String returns the outcome's snake_case name, as registryctl prints it.
func (o ResumeOutcome) String() string { return resumeOutcomes.name(int(o)) }

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (o ResumeOutcome) MarshalText() ([]byte, error) { return resumeOutcomes.marshal(int(o)) }

// UnmarshalText sets o from its name; an unknown name is an error.
func (o *ResumeOutcome) UnmarshalText(text []byte) error {
	v, err := resumeOutcomes.unmarshal(text)
	if err == nil {
		*o = ResumeOutcome(v)
	}
	return err
}

var resumeOutcomes = enum{"ResumeOutcome", 1, []string{"resumed", "not_registered"}}

// DeregisterWorker removes a live registration because its worker is
// shutting down, and records a deregistered event: a clean exit, which the
// audit log keeps apart from an operator's marked_dead. A registration
// that is absent or already expired gets DeregisterNotRegistered and
// nothing is written. Worker.Stop calls it.
func (r *Registry) DeregisterWorker(ctx context.Context, args DeregisterWorkerArgs) (DeregisterOutcome, error) {
	ctx, c := r.begin(ctx, opDeregisterWorker)
	if err := r.check(); err != nil {
		return 0, c.end(ctx, r.opError(ctx, "deregister worker", err))
	}
	outcome, err := r.deregisterWorker(ctx, args)
	if err != nil {
		return 0, c.end(ctx, r.opError(ctx, "deregister worker", err))
	}
	return outcome, c.end(ctx, nil)
}

func (r *Registry) deregisterWorker(ctx context.Context, args DeregisterWorkerArgs) (DeregisterOutcome, error) {
	ok, err := r.changeLiveWorker(ctx, args.Namespace, args.WorkerInstanceID, args.Now, eventDeregistered, store.Writer.DeleteLiveWorker)
	if err != nil {
		return 0, err
	}
	if !ok {
		return DeregisterNotRegistered, nil
	}
	return Deregistered, nil
}

// ResumeWorker withdraws a drain request: the live worker's next
// heartbeats return DirectiveNone, ListWorkers no longer shows it as
// Draining, and its later registrations start without a drain. It records a resumed event, whether or not a drain was
// pending, as RequestDrain records every request. A registration that is
// absent or expired gets ResumeNotRegistered and nothing is written.
func (r *Registry) ResumeWorker(ctx context.Context, args ResumeWorkerArgs) (ResumeOutcome, error) {
	ctx, c := r.begin(ctx, opResumeWorker)
	if err := r.check(); err != nil {
		return 0, c.end(ctx, r.opError(ctx, "resume worker", err))
	}
	outcome, err := r.resumeWorker(ctx, args)
	if err != nil {
		return 0, c.end(ctx, r.opError(ctx, "resume worker", err))
	}
	return outcome, c.end(ctx, nil)
}

func (r *Registry) resumeWorker(ctx context.Context, args ResumeWorkerArgs) (ResumeOutcome, error) {
	ok, err := r.changeLiveWorker(ctx, args.Namespace, args.WorkerInstanceID, args.Now, eventResumed,
		func(q store.Writer, ctx context.Context, k store.InstanceKey, now int64) (bool, error) {
			ok, err := q.ResumeWorker(ctx, k, now)
			if err != nil || !ok {
				return ok, err
			}
			return true, q.SetDrainDirective(ctx, k, false, now)
		})
	if err != nil {
		return 0, err
	}
	if !ok {
		return ResumeNotRegistered, nil
	}
	return Resumed, nil
}

// changeLiveWorker applies change to a live registration and records an
// event of kind in the same transaction; it reports whether the
// registration was live.
func (r *Registry) changeLiveWorker(ctx context.Context, namespace, instanceID string, at time.Time, kind string,
	change func(store.Writer, context.Context, store.InstanceKey, int64) (bool, error)) (bool, error) {
	if err := validateInstance(namespace, instanceID); err != nil {
		return false, err
	}
	now, err := r.millis("now", at)
	if err != nil {
		return false, err
	}
	live := false
	err = r.inTx(ctx, func(q store.Writer) error {
		now = r.lockedNow(at, now)
		live = false // this run's, should an earlier one have failed
		ok, err := change(q, ctx, store.InstanceKey{Namespace: namespace, InstanceID: instanceID}, now)
		if err != nil || !ok {
			return err
		}
		live = true
		return insertEvent(ctx, q, namespace, instanceID, kind, now, nil)
	})
	return live, err
}

// GetWorker returns one registration live at Now, and false when there
// is none (absent, or expired and not yet swept).
func (r *Registry) GetWorker(ctx context.Context, args GetWorkerArgs) (WorkerInfo, bool, error) {
	ctx, c := r.begin(ctx, opGetWorker)
	if err := r.check(); err != nil {
		return WorkerInfo{}, false, c.end(ctx, r.opError(ctx, "get worker", err))
	}
	info, ok, err := r.getWorker(ctx, args)
	if err != nil {
		return WorkerInfo{}, false, c.end(ctx, r.opError(ctx, "get worker", err))
	}
	return info, ok, c.end(ctx, nil)
}

func (r *Registry) getWorker(ctx context.Context, args GetWorkerArgs) (WorkerInfo, bool, error) {
	if err := validateInstance(args.Namespace, args.WorkerInstanceID); err != nil {
		return WorkerInfo{}, false, err
	}
	now, err := r.millis("now", args.Now)
	if err != nil {
		return WorkerInfo{}, false, err
	}
	row, ok, err := r.st.Reader().GetLiveWorker(ctx, store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID}, now)
	if err != nil || !ok {
		return WorkerInfo{}, false, err
	}
	info, err := decodeWorker(row)
	if err != nil {
		return WorkerInfo{}, false, err
	}
	return info, true, nil
}
