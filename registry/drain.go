package registry

import (
	"context"
	"time"
)

// DrainArgs are the arguments of RequestDrain.
type DrainArgs struct {
	Namespace        string
	WorkerInstanceID string
	Now              time.Time // zero: the registry's clock
}

// RequestDrain asks a live worker to finish its work in hand and take no
// more: its next heartbeats return DirectiveDrain, and ListWorkers shows it
// as Draining. A new registration of the instance clears the request.
// Requesting again records another event and changes nothing else.
func (r *Registry) RequestDrain(ctx context.Context, args DrainArgs) (DrainOutcome, error) {
	outcome, err := r.requestDrain(ctx, args)
	if err != nil {
		return 0, opError(ctx, "request drain", err)
	}
	return outcome, nil
}

func (r *Registry) requestDrain(ctx context.Context, args DrainArgs) (DrainOutcome, error) {
	if err := validateInstance(args.Namespace, args.WorkerInstanceID); err != nil {
		return 0, err
	}
	now, err := r.millis("now", args.Now)
	if err != nil {
		return 0, err
	}
	outcome := DrainNotRegistered
	err = r.inEventTx(ctx, func(q storeWriter) error {
		now = r.lockedNow(args.Now, now)
		outcome = DrainNotRegistered // this run's, should an earlier one have failed
		ok, err := q.requestDrain(ctx, instanceKey{args.Namespace, args.WorkerInstanceID}, now)
		if err != nil || !ok {
			return err
		}
		outcome = DrainRequested
		return insertEvent(ctx, q, args.Namespace, args.WorkerInstanceID, eventDrainRequested, now, nil)
	})
	if err != nil {
		return 0, err
	}
	return outcome, nil
}
