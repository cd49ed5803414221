-- The audit log is FlowFabric's ff_worker_registry_event. Its key is
-- (namespace, instance, time, kind), so an insert that finds its key taken
-- writes nothing and the caller moves the event to the next millisecond;
-- the event ID is the rowid, which orders events as they were written.

-- name: InsertEvent :execrows
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
VALUES (sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(event_kind), sqlc.arg(event_at_ms), sqlc.narg(reason))
ON CONFLICT DO NOTHING;

-- name: InsertEvents :many
-- Many events of one kind and time as one statement. keys is a JSON array
-- of [namespace, instance] pairs, recorded in array order; it returns the
-- pairs it recorded.
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), sqlc.arg(event_kind), sqlc.arg(event_at_ms), NULL
FROM json_each(sqlc.arg(keys))
WHERE true -- ends the SELECT, so that ON CONFLICT is not read as a join
ORDER BY key
ON CONFLICT DO NOTHING
RETURNING namespace, worker_instance_id;

-- name: InsertSweptEvents :execrows
-- A sweep batch's events, before DeleteExpiredWorkerRows deletes the same
-- rows in the same transaction: one event_kind event at event_at_ms for
-- each row of row_ids (a JSON array of rowids) expired at event_at_ms, in
-- the array's order. One statement, with no row handed to Go and back;
-- when it writes fewer events than the DELETE removes rows (an event's key
-- was taken), the sweep writes the batch again with DeleteExpiredWorkers
-- and InsertEvents, which move such an event to the next free millisecond.
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT w.namespace, w.worker_instance_id, sqlc.arg(event_kind), sqlc.arg(event_at_ms), NULL
FROM json_each(sqlc.arg(row_ids)) AS j
JOIN ff_worker_registry AS w ON w.rowid = j.value
WHERE w.last_heartbeat_ms + w.liveness_ttl_ms <= sqlc.arg(event_at_ms)
ORDER BY j.key
ON CONFLICT DO NOTHING;

-- name: DeleteEventsBefore :execrows
-- One pruning batch, oldest first through ff_worker_registry_event_at_idx.
-- The newest event always stays: a rowid table hands out max(rowid) + 1,
-- so deleting the newest would reuse its ID and a reader paging forward
-- would skip the events written after.
DELETE FROM ff_worker_registry_event
WHERE rowid IN (
    SELECT old.rowid FROM ff_worker_registry_event AS old
    WHERE old.event_at_ms < sqlc.arg(before_ms)
      AND old.rowid < (SELECT max(newest.rowid) FROM ff_worker_registry_event AS newest)
    ORDER BY old.event_at_ms
    LIMIT sqlc.arg(batch_size)
);

-- name: ListEventsAsc :many
SELECT rowid AS event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND rowid > cast(sqlc.arg(after_id) AS INTEGER)
ORDER BY rowid
LIMIT sqlc.arg(row_limit);

-- name: ListEventsDesc :many
SELECT rowid AS event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND rowid < cast(sqlc.arg(before_id) AS INTEGER)
ORDER BY rowid DESC
LIMIT sqlc.arg(row_limit);

-- name: ListInstanceEventsAsc :many
SELECT rowid AS event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND rowid > cast(sqlc.arg(after_id) AS INTEGER)
ORDER BY rowid
LIMIT sqlc.arg(row_limit);

-- name: ListInstanceEventsDesc :many
SELECT rowid AS event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND rowid < cast(sqlc.arg(before_id) AS INTEGER)
ORDER BY rowid DESC
LIMIT sqlc.arg(row_limit);

-- name: ListAllEventsAsc :many
-- Every namespace, for operators: a walk of the rowid. The empty namespace
-- holds no event, only version 3's placeholder of a pruned ID (see
-- schema/sqlite/00003).
SELECT rowid AS event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE rowid > cast(sqlc.arg(after_id) AS INTEGER) AND namespace <> ''
ORDER BY rowid
LIMIT sqlc.arg(row_limit);

-- name: ListAllEventsDesc :many
SELECT rowid AS event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE rowid < cast(sqlc.arg(before_id) AS INTEGER) AND namespace <> ''
ORDER BY rowid DESC
LIMIT sqlc.arg(row_limit);
