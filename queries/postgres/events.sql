-- name: LockAuditLog :exec
-- Serialises the transactions that write events, until each ends. Event IDs
-- come from a sequence when an event is inserted, not when it commits; with
-- writers in parallel, ID 11 could commit before ID 10, and a reader paging
-- forward from 11 would never see 10. Under this lock IDs commit in order,
-- as they do in SQLite. It also serialises registrations, whose
-- read-then-upsert would otherwise let two first registrations of one
-- instance both succeed. Every such transaction takes it first, before any
-- row lock, so no lock order can deadlock. The two-key form keeps it apart
-- from an application's one-key advisory locks; the second key is the event
-- table's OID, so that registries in different schemas of one database do
-- not wait on each other.
SELECT pg_advisory_xact_lock(
    1717657458, -- 'ffwr'
    ('ff_worker_registry_event'::regclass::oid::bigint % 2147483647)::integer);

-- name: InsertEvent :exec
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
VALUES (sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(event_kind), sqlc.arg(event_at_ms), sqlc.narg(reason));

-- name: InsertEvents :exec
-- Many events of one kind and time as one statement, recorded in array order.
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT n.namespace, (sqlc.arg(instance_ids)::text[])[n.ord], sqlc.arg(event_kind), sqlc.arg(event_at_ms), NULL
FROM unnest(sqlc.arg(namespaces)::text[]) WITH ORDINALITY AS n(namespace, ord)
ORDER BY n.ord;

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

-- name: ListAllEventsAsc :many
-- Every namespace, for operators: a walk of the primary key.
SELECT event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE event_id > sqlc.arg(after_id)
ORDER BY event_id
LIMIT sqlc.arg(row_limit);

-- name: ListAllEventsDesc :many
SELECT event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE event_id < sqlc.arg(before_id)
ORDER BY event_id DESC
LIMIT sqlc.arg(row_limit);
