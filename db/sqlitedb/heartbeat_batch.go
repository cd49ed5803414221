package sqlitedb

import (
	"context"
	"database/sql"
)

// Written by hand, unlike the rest of the package but doc.go: the
// statement needs UPDATE ... FROM, which sqlc's SQLite grammar does not
// parse. It keeps sqlc's shapes, and runs through the same DBTX (the
// store's statement cache prepares it on first use).

const heartbeatLiveWorkers = `-- name: HeartbeatLiveWorkers :many
UPDATE ff_worker_registry
SET last_heartbeat_ms = ?1,
    report_in_flight  = coalesce(k.in_flight, report_in_flight),
    report_capacity   = coalesce(k.capacity, report_capacity),
    report_version    = coalesce(k.version, report_version)
FROM (
    SELECT json_extract(value, '$[0]') AS ns, json_extract(value, '$[1]') AS inst,
           json_extract(value, '$[2]') AS in_flight, json_extract(value, '$[3]') AS capacity,
           json_extract(value, '$[4]') AS version
    FROM json_each(?2)
) AS k
WHERE ff_worker_registry.namespace = k.ns
  AND ff_worker_registry.worker_instance_id = k.inst
  AND +(last_heartbeat_ms + liveness_ttl_ms) > ?1
RETURNING namespace, worker_instance_id, last_heartbeat_ms, liveness_ttl_ms, draining
`

type HeartbeatLiveWorkersParams struct {
	NowMs int64
	Keys  interface{}
}

type HeartbeatLiveWorkersRow struct {
	Namespace        string
	WorkerInstanceID string
	LastHeartbeatMs  int64
	LivenessTTLMs    int64
	Draining         bool
}

// HeartbeatLiveWorkers runs many heartbeats at one time as one statement,
// driven by the keys (each a probe of the primary key). Keys is a JSON
// array of [namespace, instance] pairs, or [namespace, instance, in_flight,
// capacity, version] for a heartbeat with a report; a report's nulls keep
// the stored one, as in HeartbeatLiveWorker. The keys must be distinct.
func (q *Queries) HeartbeatLiveWorkers(ctx context.Context, arg HeartbeatLiveWorkersParams) ([]HeartbeatLiveWorkersRow, error) {
	var rows *sql.Rows
	var err error
	if q.tx != nil {
		rows, err = q.tx.QueryContext(ctx, heartbeatLiveWorkers, arg.NowMs, arg.Keys)
	} else {
		rows, err = q.db.QueryContext(ctx, heartbeatLiveWorkers, arg.NowMs, arg.Keys)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := []HeartbeatLiveWorkersRow{}
	for rows.Next() {
		var i HeartbeatLiveWorkersRow
		if err := rows.Scan(&i.Namespace, &i.WorkerInstanceID, &i.LastHeartbeatMs, &i.LivenessTTLMs, &i.Draining); err != nil {
			return nil, err
		}
		items = append(items, i)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return items, rows.Err()
}
