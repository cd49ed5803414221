package registry

import (
	"context"
	"math"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// Event kinds, as stored in ff_worker_registry_event.event_kind.
const (
	eventRegistered     = store.EventRegistered
	eventRefreshed      = store.EventRefreshed
	eventHeartbeat      = store.EventHeartbeat
	eventMarkedDead     = store.EventMarkedDead
	eventTTLSwept       = store.EventTTLSwept
	eventDrainRequested = store.EventDrainRequested
	eventDeregistered   = store.EventDeregistered
	eventResumed        = store.EventResumed
)

// insertEvent records an event in the caller's transaction, so that the
// event and the change it records commit or roll back together.
func insertEvent(ctx context.Context, q store.Writer, namespace, instanceID, kind string, atMS int64, reason *string) error {
	return q.InsertEvent(ctx, store.EventRow{
		Namespace:        namespace,
		WorkerInstanceID: instanceID,
		EventKind:        kind,
		EventAtMs:        atMS,
		Reason:           reason,
	})
}

// ListWorkerEventsArgs are the arguments of ListWorkerEvents.
type ListWorkerEventsArgs struct {
	Namespace        string // "" lists every namespace
	WorkerInstanceID string // "" lists every instance; set only with a Namespace
	After            int64  // event ID the page starts after; 0 starts at the beginning (or end, NewestFirst)
	Limit            int    // 0: DefaultLimit; above MaxLimit: MaxLimit
	NewestFirst      bool
}

// ListWorkerEventsResult is a page of audit events.
type ListWorkerEventsResult struct {
	Events []WorkerEvent
	// Next is the After of the following page, 0 when no more events
	// matched as of the call.
	Next int64
}

// WorkerEvent is an entry of the audit log.
type WorkerEvent struct {
	ID               int64 // increases with every event, never reused
	Namespace        string
	WorkerInstanceID string
	// Kind is registered, refreshed, heartbeat, marked_dead, ttl_swept,
	// drain_requested, resumed or deregistered.
	Kind   string
	Reason string // marked_dead's or drain_requested's reason; "" otherwise
	At     time.Time
}

// ListWorkerEvents returns a page of the audit log, oldest first unless
// NewestFirst: of one namespace, optionally of one worker instance, or with
// an empty Namespace of every namespace, for operators. A WorkerInstanceID
// without a Namespace is invalid, since instance IDs are unique only within
// a namespace.
func (r *Registry) ListWorkerEvents(ctx context.Context, args ListWorkerEventsArgs) (ListWorkerEventsResult, error) {
	ctx, c := r.begin(ctx, opListWorkerEvents)
	if err := r.check(); err != nil {
		return ListWorkerEventsResult{}, c.end(ctx, r.opError(ctx, "list worker events", err))
	}
	res, err := r.listWorkerEvents(ctx, args)
	if err != nil {
		return ListWorkerEventsResult{}, c.end(ctx, r.opError(ctx, "list worker events", err))
	}
	return res, c.end(ctx, nil)
}

func (r *Registry) listWorkerEvents(ctx context.Context, args ListWorkerEventsArgs) (ListWorkerEventsResult, error) {
	if args.Namespace != "" {
		if err := validateID("namespace", args.Namespace); err != nil {
			return ListWorkerEventsResult{}, err
		}
	} else if args.WorkerInstanceID != "" {
		return ListWorkerEventsResult{}, invalid("worker_instance_id", "needs a namespace")
	}
	if args.WorkerInstanceID != "" {
		if err := validateID("worker_instance_id", args.WorkerInstanceID); err != nil {
			return ListWorkerEventsResult{}, err
		}
	}
	if args.After < 0 {
		return ListWorkerEventsResult{}, invalid("after", "must not be negative (got %d)", args.After)
	}
	limit, err := pageLimit(args.Limit)
	if err != nil {
		return ListWorkerEventsResult{}, err
	}
	before := args.After
	if before == 0 {
		before = math.MaxInt64
	}
	rows, err := r.st.Reader().ListEvents(ctx, store.EventQuery{
		Namespace:   args.Namespace,
		Instance:    args.WorkerInstanceID,
		NewestFirst: args.NewestFirst,
		After:       args.After,
		Before:      before,
		RowLimit:    limit + 1,
	})
	if err != nil {
		return ListWorkerEventsResult{}, err
	}
	var res ListWorkerEventsResult
	if len(rows) > limit {
		rows = rows[:limit]
		res.Next = rows[limit-1].EventID
	}
	res.Events = make([]WorkerEvent, len(rows))
	for i, row := range rows {
		res.Events[i] = WorkerEvent{
			ID:               row.EventID,
			Namespace:        row.Namespace,
			WorkerInstanceID: row.WorkerInstanceID,
			Kind:             row.EventKind,
			Reason:           deref(row.Reason),
			At:               fromMillis(row.EventAtMs),
		}
	}
	return res, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
