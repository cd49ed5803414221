-- name: GetWorker :one
-- Reads a registration whether or not it is live, and locks it so that a
-- concurrent sweep cannot also record its end.
SELECT worker_id, registered_at_ms, expires_at_ms
FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
FOR UPDATE;

-- name: UpsertWorker :exec
-- Writes a registration over whatever row is there. Registering always clears
-- a pending drain: the new process has not been asked to stop.
INSERT INTO ff_worker_registry (
    namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
    last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms, draining
) VALUES (
    sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(worker_id),
    sqlc.arg(lanes), sqlc.arg(capabilities_csv),
    sqlc.arg(now_ms), sqlc.arg(liveness_ttl_ms), sqlc.arg(registered_at_ms),
    sqlc.arg(expires_at_ms), false
)
ON CONFLICT (namespace, worker_instance_id) DO UPDATE SET
    worker_id         = excluded.worker_id,
    lanes             = excluded.lanes,
    capabilities_csv  = excluded.capabilities_csv,
    last_heartbeat_ms = excluded.last_heartbeat_ms,
    liveness_ttl_ms   = excluded.liveness_ttl_ms,
    registered_at_ms  = excluded.registered_at_ms,
    expires_at_ms     = excluded.expires_at_ms,
    draining          = false;

-- name: HeartbeatLiveWorker :one
-- Refreshes a live row only; an expired row is left for the sweep.
UPDATE ff_worker_registry
SET last_heartbeat_ms = sqlc.arg(now_ms),
    expires_at_ms     = sqlc.arg(now_ms) + liveness_ttl_ms
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND expires_at_ms > sqlc.arg(now_ms)
RETURNING expires_at_ms, draining;

-- name: DeleteLiveWorker :execrows
DELETE FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND expires_at_ms > sqlc.arg(now_ms);

-- name: ListLiveWorkers :many
-- All namespaces. The cursor is a row value over the primary key, so a page
-- is a range walk of the key in (namespace, instance) byte order.
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms, draining
FROM ff_worker_registry
WHERE (namespace, worker_instance_id) > (sqlc.arg(after_namespace)::text, sqlc.arg(after_instance_id)::text)
  AND expires_at_ms > sqlc.arg(now_ms)
  AND (sqlc.arg(lane)::text = '' OR strpos(',' || lanes || ',', ',' || sqlc.arg(lane)::text || ',') > 0)
  AND (sqlc.arg(capability)::text = '' OR strpos(',' || capabilities_csv || ',', ',' || sqlc.arg(capability)::text || ',') > 0)
ORDER BY namespace, worker_instance_id
LIMIT sqlc.arg(row_limit);

-- name: ListLiveWorkersInNamespace :many
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms, draining
FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id > sqlc.arg(after_instance_id)::text
  AND expires_at_ms > sqlc.arg(now_ms)
  AND (sqlc.arg(lane)::text = '' OR strpos(',' || lanes || ',', ',' || sqlc.arg(lane)::text || ',') > 0)
  AND (sqlc.arg(capability)::text = '' OR strpos(',' || capabilities_csv || ',', ',' || sqlc.arg(capability)::text || ',') > 0)
ORDER BY worker_instance_id
LIMIT sqlc.arg(row_limit);

-- name: HeartbeatLiveWorkers :many
-- Many heartbeats at one time as one statement; the keys arrive as two
-- parallel arrays. (sqlc does not know the two-array unnest, hence the
-- subscript.)
UPDATE ff_worker_registry AS w
SET last_heartbeat_ms = sqlc.arg(now_ms),
    expires_at_ms     = sqlc.arg(now_ms) + w.liveness_ttl_ms
FROM (
    SELECT n.namespace, (sqlc.arg(instance_ids)::text[])[n.ord] AS worker_instance_id
    FROM unnest(sqlc.arg(namespaces)::text[]) WITH ORDINALITY AS n(namespace, ord)
) AS k
WHERE w.namespace = k.namespace
  AND w.worker_instance_id = k.worker_instance_id
  AND w.expires_at_ms > sqlc.arg(now_ms)
RETURNING w.namespace, w.worker_instance_id, w.expires_at_ms, w.draining;

-- name: RequestDrain :execrows
UPDATE ff_worker_registry
SET draining = true
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND expires_at_ms > sqlc.arg(now_ms);

-- name: DeleteExpiredWorkers :many
-- One sweep batch, the oldest expiries first through
-- ff_worker_registry_expires_idx. SKIP LOCKED lets concurrent sweepers split
-- the work instead of queueing on each other's rows, and leaves a row that
-- a registration holds to that registration. The outer expiry test is
-- checked again on a row a heartbeat refreshed meanwhile, so a worker that
-- just came back is not swept.
DELETE FROM ff_worker_registry AS w
USING (
    SELECT old.namespace, old.worker_instance_id
    FROM ff_worker_registry AS old
    WHERE old.expires_at_ms <= sqlc.arg(now_ms)
    ORDER BY old.expires_at_ms
    LIMIT sqlc.arg(batch_size)
    FOR UPDATE SKIP LOCKED
) AS expired
WHERE w.namespace = expired.namespace
  AND w.worker_instance_id = expired.worker_instance_id
  AND w.expires_at_ms <= sqlc.arg(now_ms)
RETURNING w.namespace, w.worker_instance_id;

-- name: LockWorkers :many
-- Locks a batch's live rows in key order before the batch writes them, and
-- returns their keys: the batch writes no other row. Without it, two
-- batches that share workers lock them in whatever order each one meets
-- them, and can deadlock. (A locking SELECT locks after its sort.) A row
-- expired at the batch's earliest time is left alone: no heartbeat of the
-- batch can refresh it, and a lock would hold off its sweep.
SELECT namespace, worker_instance_id FROM ff_worker_registry
WHERE (namespace, worker_instance_id) IN (
    SELECT n.namespace, (sqlc.arg(instance_ids)::text[])[n.ord]
    FROM unnest(sqlc.arg(namespaces)::text[]) WITH ORDINALITY AS n(namespace, ord))
  AND expires_at_ms > sqlc.arg(min_now_ms)
ORDER BY namespace, worker_instance_id
FOR UPDATE;

-- name: HeartbeatLiveWorkerNoWait :one
-- HeartbeatLiveWorker for a caller that read its time just before: rather
-- than wait for another transaction's lock on the row, after which that
-- time would be stale, it fails with lock_not_available (55P03), and the
-- caller locks the row first and reads the time again.
WITH target AS (
    SELECT cur.namespace, cur.worker_instance_id
    FROM ff_worker_registry AS cur
    WHERE cur.namespace = sqlc.arg(namespace)
      AND cur.worker_instance_id = sqlc.arg(worker_instance_id)
      AND cur.expires_at_ms > sqlc.arg(now_ms)
    FOR NO KEY UPDATE NOWAIT
)
UPDATE ff_worker_registry AS w
SET last_heartbeat_ms = sqlc.arg(now_ms),
    expires_at_ms     = sqlc.arg(now_ms) + w.liveness_ttl_ms
FROM target
WHERE w.namespace = target.namespace
  AND w.worker_instance_id = target.worker_instance_id
RETURNING w.expires_at_ms, w.draining;

-- name: GetLiveWorker :one
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms, draining
FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND expires_at_ms > sqlc.arg(now_ms);

-- name: ResumeWorker :execrows
UPDATE ff_worker_registry
SET draining = false
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND expires_at_ms > sqlc.arg(now_ms);
