-- name: InsertEvent :exec
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
VALUES (sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(event_kind), sqlc.arg(event_at_ms), sqlc.narg(reason));

-- name: InsertEvents :exec
-- Many events of one kind and time as one statement. keys is a JSON array
-- of [namespace, instance] pairs, recorded in array order.
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), sqlc.arg(event_kind), sqlc.arg(event_at_ms), NULL
FROM json_each(sqlc.arg(keys))
ORDER BY key;

-- name: DeleteEventsBefore :execrows
-- One pruning batch, oldest first through ff_worker_registry_event_at_idx.
DELETE FROM ff_worker_registry_event
WHERE event_id IN (
    SELECT old.event_id FROM ff_worker_registry_event AS old
    WHERE old.event_at_ms < sqlc.arg(before_ms)
    ORDER BY old.event_at_ms
    LIMIT sqlc.arg(batch_size)
);

-- name: ListEventsAsc :many
SELECT event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND event_id > sqlc.arg(after_id)
ORDER BY event_id
LIMIT sqlc.arg(row_limit);

-- name: ListEventsDesc :many
SELECT event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND event_id < sqlc.arg(before_id)
ORDER BY event_id DESC
LIMIT sqlc.arg(row_limit);

-- name: ListInstanceEventsAsc :many
SELECT event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND event_id > sqlc.arg(after_id)
ORDER BY event_id
LIMIT sqlc.arg(row_limit);

-- name: ListInstanceEventsDesc :many
SELECT event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND event_id < sqlc.arg(before_id)
ORDER BY event_id DESC
LIMIT sqlc.arg(row_limit);
