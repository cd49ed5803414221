package registry

import (
	"context"
	"database/sql"

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
