-- name: InsertEvent :exec
INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
VALUES (sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(event_kind), sqlc.arg(event_at_ms), sqlc.narg(reason));
