package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"time"

	"github.com/flowfabric/workerregistry/db"
)

// Event kinds, as stored in ff_worker_registry_event.event_kind.
const (
	eventRegistered     = "registered"
	eventRefreshed      = "refreshed"
	eventHeartbeat      = "heartbeat"
	eventMarkedDead     = "marked_dead"
	eventTTLSwept       = "ttl_swept"
	eventDrainRequested = "drain_requested"
)

// insertEvent records an event in the caller's transaction, so that the
// event and the change it records commit or roll back together.
func insertEvent(ctx context.Context, q *db.Queries, namespace, instanceID, kind string, atMS int64, reason *string) error {
	var r sql.NullString
	if reason != nil {
		r = sql.NullString{String: *reason, Valid: true}
	}
	return q.InsertEvent(ctx, db.InsertEventParams{
		Namespace:        namespace,
		WorkerInstanceID: instanceID,
		EventKind:        kind,
		EventAtMs:        atMS,
		Reason:           r,
	})
}

// insertEvents records events of one kind and time for many instances in
// one statement, in the order of keys.
func insertEvents(ctx context.Context, q *db.Queries, kind string, atMS int64, keys [][2]string) error {
	keysJSON, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	return q.InsertEvents(ctx, db.InsertEventsParams{EventKind: kind, EventAtMs: atMS, Keys: string(keysJSON)})
}

// ListWorkerEventsArgs are the arguments of ListWorkerEvents.
type ListWorkerEventsArgs struct {
	Namespace        string
	WorkerInstanceID string // "" lists every instance of the namespace
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
	// Kind is registered, refreshed, heartbeat, marked_dead, ttl_swept or
	// drain_requested.
	Kind   string
	Reason string // marked_dead's reason; "" otherwise
	At     time.Time
}

// ListWorkerEvents returns a page of a namespace's audit log, oldest first
// unless NewestFirst, optionally of one worker instance.
func (r *Registry) ListWorkerEvents(ctx context.Context, args ListWorkerEventsArgs) (ListWorkerEventsResult, error) {
	res, err := r.listWorkerEvents(ctx, args)
	if err != nil {
		return ListWorkerEventsResult{}, opError(ctx, "list worker events", err)
	}
	return res, nil
}

func (r *Registry) listWorkerEvents(ctx context.Context, args ListWorkerEventsArgs) (ListWorkerEventsResult, error) {
	if err := validateID("namespace", args.Namespace); err != nil {
		return ListWorkerEventsResult{}, err
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
	rowLimit := int64(limit) + 1
	before := args.After
	if before == 0 {
		before = math.MaxInt64
	}
	var rows []db.FfWorkerRegistryEvent
	switch {
	case args.WorkerInstanceID == "" && !args.NewestFirst:
		rows, err = r.r.ListEventsAsc(ctx, db.ListEventsAscParams{Namespace: args.Namespace, AfterID: args.After, RowLimit: rowLimit})
	case args.WorkerInstanceID == "":
		rows, err = r.r.ListEventsDesc(ctx, db.ListEventsDescParams{Namespace: args.Namespace, BeforeID: before, RowLimit: rowLimit})
	case !args.NewestFirst:
		rows, err = r.r.ListInstanceEventsAsc(ctx, db.ListInstanceEventsAscParams{
			Namespace: args.Namespace, WorkerInstanceID: args.WorkerInstanceID, AfterID: args.After, RowLimit: rowLimit})
	default:
		rows, err = r.r.ListInstanceEventsDesc(ctx, db.ListInstanceEventsDescParams{
			Namespace: args.Namespace, WorkerInstanceID: args.WorkerInstanceID, BeforeID: before, RowLimit: rowLimit})
	}
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
			Reason:           row.Reason.String,
			At:               fromMillis(row.EventAtMs),
		}
	}
	return res, nil
}
