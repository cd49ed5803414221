package registry

import (
	"context"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// RequestDrainArgs are the arguments of RequestDrain.
type RequestDrainArgs struct {
	Namespace        string
	WorkerInstanceID string
	Reason           string    // at most 256 bytes; recorded in the event, "" for none
	Now              time.Time // zero: the registry's clock
}

// RequestDrain asks a live worker to finish its work in hand and take no
// more: its next heartbeats return DirectiveDrain, and ListWorkers shows it
// as Draining. The request is recorded for the instance, apart from its
// registration, so it outlives a lapse, a sweep and a new registration of
// the instance (which starts draining), until ResumeWorker withdraws it.
// Requesting again records another event and changes nothing else.
// The drain_requested event carries Reason, which an operator gives to say
// why; an empty Reason records none (NULL), as drains did before it existed.
func (r *Registry) RequestDrain(ctx context.Context, args RequestDrainArgs) (DrainOutcome, error) {
	ctx, c := r.begin(ctx, opRequestDrain)
	if err := r.check(); err != nil {
		return 0, c.end(ctx, r.opError(ctx, "request drain", err))
	}
	outcome, err := r.requestDrain(ctx, args)
	if err != nil {
		return 0, c.end(ctx, r.opError(ctx, "request drain", err))
	}
	return outcome, c.end(ctx, nil)
}

func (r *Registry) requestDrain(ctx context.Context, args RequestDrainArgs) (DrainOutcome, error) {
	if err := validateInstance(args.Namespace, args.WorkerInstanceID); err != nil {
		return 0, err
	}
	if err := validateReason(args.Reason); err != nil {
		return 0, err
	}
	var reason *string
	if args.Reason != "" {
		reason = &args.Reason
	}
	now, err := r.millis("now", args.Now)
	if err != nil {
		return 0, err
	}
	key := store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID}
	if w, ok := r.st.(store.OneStatementWriter); ok {
		// Postgres: the drain, its directive and its event in one statement.
		drained, done, err := w.RequestDrainWithEvent(ctx, key, r.lockedNow(args.Now, now), reason)
		switch {
		case err != nil:
			return 0, err
		case done && drained:
			return DrainRequested, nil
		case done:
			return DrainNotRegistered, nil
		}
	}
	outcome := DrainNotRegistered
	err = r.inTx(ctx, func(q store.Writer) error {
		now = r.lockedNow(args.Now, now)
		outcome = DrainNotRegistered // this run's, should an earlier one have failed
		ok, err := q.RequestDrain(ctx, key, now)
		if err != nil || !ok {
			return err
		}
		if err := q.SetDrainDirective(ctx, key, true, now); err != nil {
			return err
		}
		outcome = DrainRequested
		return insertEvent(ctx, q, args.Namespace, args.WorkerInstanceID, eventDrainRequested, now, reason)
	})
	if err != nil {
		return 0, err
	}
	return outcome, nil
}
