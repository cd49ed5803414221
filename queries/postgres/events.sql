-- The audit log is FlowFabric's ff_worker_registry_event, keyed by
-- (partition, namespace, instance, time, kind): an insert that finds its
-- key taken writes nothing and the caller moves the event to the next
-- millisecond, as on SQLite. The event ID is the column's default, drawn
-- under the audit-log lock (schema/postgres/00007_registry_additions.sql),
-- so IDs commit in order whoever inserts.

-- name: InsertEvent :execrows
INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason)
VALUES (sqlc.arg(partition_key), sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(event_kind), sqlc.arg(event_at_ms), sqlc.narg(reason))
ON CONFLICT DO NOTHING;

-- name: InsertEvents :many
-- Many events of one kind and time as one statement, recorded in array
-- order; it returns the keys it recorded.
INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT (sqlc.arg(partition_keys)::smallint[])[n.ord], n.namespace, (sqlc.arg(instance_ids)::text[])[n.ord],
       sqlc.arg(event_kind), sqlc.arg(event_at_ms), NULL
FROM unnest(sqlc.arg(namespaces)::text[]) WITH ORDINALITY AS n(namespace, ord)
ORDER BY n.ord
ON CONFLICT DO NOTHING
RETURNING namespace, worker_instance_id;

-- name: DeleteEventsBefore :execrows
-- One pruning batch, oldest first through ff_worker_registry_event_at_idx.
-- IDs come from a sequence, so deleting the newest reuses none.
DELETE FROM ff_worker_registry_event AS e
USING (
    SELECT old.partition_key, old.namespace, old.worker_instance_id, old.event_at_ms, old.event_kind
    FROM ff_worker_registry_event AS old
    WHERE old.event_at_ms < sqlc.arg(before_ms)
    ORDER BY old.event_at_ms
    LIMIT sqlc.arg(batch_size)::bigint
) AS doomed
WHERE e.partition_key = doomed.partition_key
  AND e.namespace = doomed.namespace
  AND e.worker_instance_id = doomed.worker_instance_id
  AND e.event_at_ms = doomed.event_at_ms
  AND e.event_kind = doomed.event_kind;

-- name: ListEventsAsc :many
SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason, event_id
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND event_id > sqlc.arg(after_id)
ORDER BY event_id
LIMIT sqlc.arg(row_limit)::bigint;

-- name: ListEventsDesc :many
SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason, event_id
FROM ff_worker_registry_event
WHERE namespace = sqlc.arg(namespace) AND event_id < sqlc.arg(before_id)
ORDER BY event_id DESC
LIMIT sqlc.arg(row_limit)::bigint;

-- name: ListInstanceEventsAsc :many
SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason, event_id
FROM ff_worker_registry_event
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND event_id > sqlc.arg(after_id)
ORDER BY event_id
LIMIT sqlc.arg(row_limit)::bigint;

-- name: ListInstanceEventsDesc :many
SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason, event_id
FROM ff_worker_registry_event
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND event_id < sqlc.arg(before_id)
ORDER BY event_id DESC
LIMIT sqlc.arg(row_limit)::bigint;

-- name: ListAllEventsAsc :many
-- Every namespace, for operators: a merge of the partitions' walks of
-- ff_worker_registry_event_id_idx.
SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason, event_id
FROM ff_worker_registry_event
WHERE event_id > sqlc.arg(after_id)
ORDER BY event_id
LIMIT sqlc.arg(row_limit)::bigint;

-- name: ListAllEventsDesc :many
SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason, event_id
FROM ff_worker_registry_event
WHERE event_id < sqlc.arg(before_id)
ORDER BY event_id DESC
LIMIT sqlc.arg(row_limit)::bigint;

-- name: AnyEventBefore :one
-- Whether a prune has work: one probe of ff_worker_registry_event_at_idx
-- per partition.
SELECT EXISTS (
    SELECT 1 FROM ff_worker_registry_event
    WHERE event_at_ms < sqlc.arg(before_ms)::bigint
) AS found;
