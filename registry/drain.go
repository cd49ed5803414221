package registry

import (
	"context"
	"strconv"
	"time"

	"github.com/flowfabric/workerregistry/db"
)

// DrainArgs are the arguments of RequestDrain.
type DrainArgs struct {
	Namespace        string
	WorkerInstanceID string
	Now              time.Time // zero: the registry's clock
}

// DrainOutcome says what RequestDrain did.
type DrainOutcome int

const (
	// DrainRequested: the live worker is marked as draining and a
	// drain_requested event recorded. Its heartbeats now return
	// DirectiveDrain until it registers again.
	DrainRequested DrainOutcome = iota + 1
	// DrainNotRegistered: no live registration; nothing was written.
	DrainNotRegistered
)

// String returns the outcome's snake_case name, as registryctl prints it.
func (o DrainOutcome) String() string {
	switch o {
	case DrainRequested:
		return "drain_requested"
	case DrainNotRegistered:
		return "not_registered"
	}
	return "DrainOutcome(" + strconv.Itoa(int(o)) + ")"
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
	err = r.inTx(ctx, func(q *db.Queries) error {
		n, err := q.RequestDrain(ctx, db.RequestDrainParams{
			Namespace:        args.Namespace,
			WorkerInstanceID: args.WorkerInstanceID,
			NowMs:            now,
		})
		if err != nil || n == 0 {
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
