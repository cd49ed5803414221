-- The registry's table is FlowFabric's ff_worker_registry, hash-partitioned
-- by partition_key, which the caller computes from the instance ID as the
-- engine does (partitionKey in internal/store/pgstore/store.go). A statement
-- about one instance names its partition_key, so that Postgres touches one
-- partition. A row is live while now < last_heartbeat_ms + liveness_ttl_ms,
-- the expression of ff_worker_registry_expiry_idx, whoever wrote the row.
-- Byte order (COLLATE "C") orders pages whatever the database's collation.

-- name: LockWorkerKey :exec
-- Holds a key, whether or not a row has it, until the transaction ends: a
-- row lock cannot hold off a second first registration of a key that has no
-- row yet. A statement of its own, so that the read after it takes its
-- snapshot once the lock is held, and sees what the holder committed.
SELECT pg_advisory_xact_lock(
    ('ff_worker_registry'::regclass::oid::bigint % 2147483647)::integer,
    hashtext(sqlc.arg(namespace)::text || chr(31) || sqlc.arg(worker_instance_id)::text));

-- name: GetWorker :one
-- Reads a registration whether or not it is live, and locks it so that a
-- concurrent sweep cannot also record its end.
SELECT worker_id, registered_at_ms, (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms
FROM ff_worker_registry
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
FOR UPDATE;

-- name: UpsertWorker :exec
-- Writes a registration over whatever row is there. Registering always clears
-- a pending drain: the new process has not been asked to stop.
INSERT INTO ff_worker_registry (
    partition_key, namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
    last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, draining
) VALUES (
    sqlc.arg(partition_key), sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(worker_id),
    sqlc.arg(lanes), sqlc.arg(capabilities_csv),
    sqlc.arg(now_ms), sqlc.arg(liveness_ttl_ms), sqlc.arg(registered_at_ms), false
)
ON CONFLICT (partition_key, namespace, worker_instance_id) DO UPDATE SET
    worker_id         = excluded.worker_id,
    lanes             = excluded.lanes,
    capabilities_csv  = excluded.capabilities_csv,
    last_heartbeat_ms = excluded.last_heartbeat_ms,
    liveness_ttl_ms   = excluded.liveness_ttl_ms,
    registered_at_ms  = excluded.registered_at_ms,
    draining          = false;

-- name: HeartbeatLiveWorker :one
-- Refreshes a live row only; an expired row is left for the sweep.
UPDATE ff_worker_registry
SET last_heartbeat_ms = sqlc.arg(now_ms)
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND last_heartbeat_ms + liveness_ttl_ms > sqlc.arg(now_ms)
RETURNING (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms, draining;

-- name: DeleteLiveWorker :execrows
DELETE FROM ff_worker_registry
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND last_heartbeat_ms + liveness_ttl_ms > sqlc.arg(now_ms);

-- name: ListLiveWorkers :many
-- All namespaces. The cursor is a row value over ff_worker_registry_list_idx,
-- so a page is a merge of the partitions' range walks in (namespace,
-- instance) byte order.
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms,
       (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms, draining
FROM ff_worker_registry
WHERE (namespace COLLATE "C", worker_instance_id COLLATE "C")
      > (sqlc.arg(after_namespace)::text COLLATE "C", sqlc.arg(after_instance_id)::text COLLATE "C")
  AND last_heartbeat_ms + liveness_ttl_ms > sqlc.arg(now_ms)
  AND (sqlc.arg(lane)::text = '' OR sqlc.arg(lane)::text = ANY (lanes))
  AND (sqlc.arg(capability)::text = '' OR strpos(',' || capabilities_csv || ',', ',' || sqlc.arg(capability)::text || ',') > 0)
ORDER BY namespace COLLATE "C", worker_instance_id COLLATE "C"
LIMIT sqlc.arg(row_limit)::bigint;

-- name: ListLiveWorkersInNamespace :many
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms,
       (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms, draining
FROM ff_worker_registry
WHERE namespace COLLATE "C" = sqlc.arg(namespace)::text COLLATE "C"
  AND worker_instance_id COLLATE "C" > sqlc.arg(after_instance_id)::text COLLATE "C"
  AND last_heartbeat_ms + liveness_ttl_ms > sqlc.arg(now_ms)
  AND (sqlc.arg(lane)::text = '' OR sqlc.arg(lane)::text = ANY (lanes))
  AND (sqlc.arg(capability)::text = '' OR strpos(',' || capabilities_csv || ',', ',' || sqlc.arg(capability)::text || ',') > 0)
ORDER BY worker_instance_id COLLATE "C"
LIMIT sqlc.arg(row_limit)::bigint;

-- name: RequestDrain :execrows
UPDATE ff_worker_registry
SET draining = true
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND last_heartbeat_ms + liveness_ttl_ms > sqlc.arg(now_ms);

-- name: SweepExpiredWorkers :one
-- One sweep batch as one statement, so atomic without a transaction: the
-- oldest expiries first through ff_worker_registry_expiry_idx, deleted, each
-- with its ttl_swept event. SKIP LOCKED lets concurrent sweepers split the
-- work instead of queueing on each other's rows, and leaves a row that a
-- registration holds to that registration. The outer expiry test is
-- checked again on a row a heartbeat refreshed meanwhile, so a worker that
-- just came back is not swept. An event whose key (instance, time, kind)
-- is taken moves to the next free millisecond. With nothing expired it is
-- one probe of the index per partition.
WITH expired AS (
    SELECT old.partition_key, old.namespace, old.worker_instance_id
    FROM ff_worker_registry AS old
    WHERE old.last_heartbeat_ms + old.liveness_ttl_ms <= sqlc.arg(now_ms)
    ORDER BY old.last_heartbeat_ms + old.liveness_ttl_ms
    LIMIT sqlc.arg(batch_size)::bigint
    FOR UPDATE SKIP LOCKED
), swept AS (
    DELETE FROM ff_worker_registry AS w
    USING expired
    WHERE w.partition_key = expired.partition_key
      AND w.namespace = expired.namespace
      AND w.worker_instance_id = expired.worker_instance_id
      AND w.last_heartbeat_ms + w.liveness_ttl_ms <= sqlc.arg(now_ms)
    RETURNING w.partition_key, w.namespace, w.worker_instance_id
), recorded AS (
    INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind, event_at_ms)
    SELECT swept.partition_key, swept.namespace, swept.worker_instance_id, 'ttl_swept', free.at
    FROM swept
    CROSS JOIN LATERAL (
        -- now_ms if free, else one past the end of the run of taken
        -- milliseconds that starts at now_ms: one key probe in the common
        -- case.
        SELECT CASE WHEN NOT EXISTS (
                   SELECT 1 FROM ff_worker_registry_event AS e
                   WHERE e.partition_key = swept.partition_key AND e.namespace = swept.namespace
                     AND e.worker_instance_id = swept.worker_instance_id
                     AND e.event_at_ms = sqlc.arg(now_ms) AND e.event_kind = 'ttl_swept')
               THEN sqlc.arg(now_ms)::bigint
               ELSE (SELECT min(e.event_at_ms) + 1 FROM ff_worker_registry_event AS e
                     WHERE e.partition_key = swept.partition_key AND e.namespace = swept.namespace
                       AND e.worker_instance_id = swept.worker_instance_id
                       AND e.event_kind = 'ttl_swept' AND e.event_at_ms >= sqlc.arg(now_ms)
                       AND NOT EXISTS (
                           SELECT 1 FROM ff_worker_registry_event AS taken
                           WHERE taken.partition_key = e.partition_key AND taken.namespace = e.namespace
                             AND taken.worker_instance_id = e.worker_instance_id
                             AND taken.event_kind = 'ttl_swept' AND taken.event_at_ms = e.event_at_ms + 1))
               END AS at
    ) AS free
    ORDER BY swept.namespace COLLATE "C", swept.worker_instance_id COLLATE "C"
    RETURNING 1
)
SELECT (SELECT count(*) FROM swept)::bigint AS swept, (SELECT count(*) FROM recorded)::bigint AS recorded;

-- name: HeartbeatLiveWorkerNoWait :one
-- HeartbeatLiveWorker for a caller that read its time just before: rather
-- than wait for another transaction's lock on the row, after which that
-- time would be stale, it fails with lock_not_available (55P03), and the
-- caller locks the row first and reads the time again.
WITH target AS (
    SELECT cur.partition_key, cur.namespace, cur.worker_instance_id
    FROM ff_worker_registry AS cur
    WHERE cur.partition_key = sqlc.arg(partition_key)
      AND cur.namespace = sqlc.arg(namespace)
      AND cur.worker_instance_id = sqlc.arg(worker_instance_id)
      AND cur.last_heartbeat_ms + cur.liveness_ttl_ms > sqlc.arg(now_ms)
    FOR NO KEY UPDATE NOWAIT
)
UPDATE ff_worker_registry AS w
SET last_heartbeat_ms = sqlc.arg(now_ms)
FROM target
-- The key again as constants, so that the planner prunes the UPDATE's
-- partitions too, not only the CTE's.
WHERE w.partition_key = sqlc.arg(partition_key)
  AND w.namespace = sqlc.arg(namespace)
  AND w.worker_instance_id = sqlc.arg(worker_instance_id)
  AND w.partition_key = target.partition_key
  AND w.namespace = target.namespace
  AND w.worker_instance_id = target.worker_instance_id
RETURNING (w.last_heartbeat_ms + w.liveness_ttl_ms)::bigint AS expires_at_ms, w.draining;

-- name: GetLiveWorker :one
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms,
       (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms, draining
FROM ff_worker_registry
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND last_heartbeat_ms + liveness_ttl_ms > sqlc.arg(now_ms);

-- name: ResumeWorker :execrows
UPDATE ff_worker_registry
SET draining = false
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND last_heartbeat_ms + liveness_ttl_ms > sqlc.arg(now_ms);

-- name: AnyExpiredWorker :one
-- Whether a sweep has work: one probe of ff_worker_registry_expiry_idx per
-- partition, which a sweep with nothing expired costs and no more.
SELECT EXISTS (
    SELECT 1 FROM ff_worker_registry
    WHERE last_heartbeat_ms + liveness_ttl_ms <= sqlc.arg(now_ms)::bigint
) AS expired;

-- name: LockWorkersInPartition :batchmany
-- LockWorkers for the keys of one partition, which the statement names
-- (see HeartbeatLiveWorkersInPartition). The caller queues one a
-- partition, partitions in ascending order, all in one round trip: every
-- batch locks its rows in (partition, namespace, instance) order, so two
-- batches that share workers cannot deadlock. (A locking SELECT locks
-- after its sort.) A row expired at the batch's earliest time is left
-- alone: no heartbeat of the batch can refresh it, and a lock would hold
-- off its sweep. It returns the keys it locked: the batch writes no other
-- row.
SELECT w.namespace, w.worker_instance_id
FROM (
    SELECT n.namespace, (sqlc.arg(instance_ids)::text[])[n.ord] AS worker_instance_id
    FROM unnest(sqlc.arg(namespaces)::text[]) WITH ORDINALITY AS n(namespace, ord)
) AS k
JOIN ff_worker_registry AS w
  ON w.partition_key = sqlc.arg(partition_key)
 AND w.namespace = k.namespace
 AND w.worker_instance_id = k.worker_instance_id
WHERE w.last_heartbeat_ms + w.liveness_ttl_ms > sqlc.arg(min_now_ms)
ORDER BY w.namespace COLLATE "C", w.worker_instance_id COLLATE "C"
FOR UPDATE OF w;

-- name: HeartbeatLiveWorkersInPartition :batchmany
-- Many heartbeats of one partition at one time, as one statement that
-- names the partition: the router runs it on the partition itself, a
-- plain table's statement, prepared once. A batch queues one a partition.
UPDATE ff_worker_registry AS w
SET last_heartbeat_ms = sqlc.arg(now_ms)
FROM (
    SELECT n.namespace, (sqlc.arg(instance_ids)::text[])[n.ord] AS worker_instance_id
    FROM unnest(sqlc.arg(namespaces)::text[]) WITH ORDINALITY AS n(namespace, ord)
) AS k
WHERE w.partition_key = sqlc.arg(partition_key)
  AND w.namespace = k.namespace
  AND w.worker_instance_id = k.worker_instance_id
  AND w.last_heartbeat_ms + w.liveness_ttl_ms > sqlc.arg(now_ms)
RETURNING w.namespace, w.worker_instance_id, (w.last_heartbeat_ms + w.liveness_ttl_ms)::bigint AS expires_at_ms, w.draining;

-- name: HeartbeatWithEventNoWait :one
-- HeartbeatLiveWorkerNoWait and its heartbeat event in one statement: one
-- round trip, atomic without a transaction. Should the event's key
-- (instance, now_ms, kind) be taken, the insert fails with
-- unique_violation (23505), as a locked row fails with lock_not_available,
-- and the caller runs the heartbeat in a transaction, which moves the
-- event to the next free millisecond.
WITH target AS (
    SELECT cur.partition_key, cur.namespace, cur.worker_instance_id
    FROM ff_worker_registry AS cur
    WHERE cur.partition_key = sqlc.arg(partition_key)
      AND cur.namespace = sqlc.arg(namespace)
      AND cur.worker_instance_id = sqlc.arg(worker_instance_id)
      AND cur.last_heartbeat_ms + cur.liveness_ttl_ms > sqlc.arg(now_ms)
    FOR NO KEY UPDATE NOWAIT
), beat AS (
    UPDATE ff_worker_registry AS w
    SET last_heartbeat_ms = sqlc.arg(now_ms)
    FROM target
    WHERE w.partition_key = sqlc.arg(partition_key)
      AND w.namespace = sqlc.arg(namespace)
      AND w.worker_instance_id = sqlc.arg(worker_instance_id)
      AND w.partition_key = target.partition_key
      AND w.namespace = target.namespace
      AND w.worker_instance_id = target.worker_instance_id
    RETURNING w.partition_key, w.namespace, w.worker_instance_id,
              (w.last_heartbeat_ms + w.liveness_ttl_ms)::bigint AS expires_at_ms, w.draining
), recorded AS (
    INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind, event_at_ms)
    SELECT beat.partition_key, beat.namespace, beat.worker_instance_id, 'heartbeat', sqlc.arg(now_ms)
    FROM beat
    RETURNING 1
)
SELECT beat.expires_at_ms, beat.draining FROM beat;

-- name: RefreshLiveWorkerNoWait :execrows
-- A registration's common case in one statement with its event, as
-- HeartbeatWithEventNoWait: a row live at now_ms under the same worker ID
-- takes the lanes, capabilities, TTL and heartbeat, keeps its
-- registered_at_ms, loses a pending drain, and gets a refreshed event. It
-- writes nothing when the row is absent, expired or another worker's (the
-- caller then runs the registration's transaction), and fails as
-- HeartbeatWithEventNoWait does when another transaction holds the row or
-- takes the event's key.
WITH target AS (
    SELECT cur.partition_key, cur.namespace, cur.worker_instance_id
    FROM ff_worker_registry AS cur
    WHERE cur.partition_key = sqlc.arg(partition_key)
      AND cur.namespace = sqlc.arg(namespace)
      AND cur.worker_instance_id = sqlc.arg(worker_instance_id)
      AND cur.worker_id = sqlc.arg(worker_id)
      AND cur.last_heartbeat_ms + cur.liveness_ttl_ms > sqlc.arg(now_ms)
    FOR NO KEY UPDATE NOWAIT
), refreshed AS (
    UPDATE ff_worker_registry AS w
    SET lanes             = sqlc.arg(lanes)::text[],
        capabilities_csv  = sqlc.arg(capabilities_csv),
        last_heartbeat_ms = sqlc.arg(now_ms),
        liveness_ttl_ms   = sqlc.arg(liveness_ttl_ms),
        draining          = false
    FROM target
    WHERE w.partition_key = sqlc.arg(partition_key)
      AND w.namespace = sqlc.arg(namespace)
      AND w.worker_instance_id = sqlc.arg(worker_instance_id)
      AND w.partition_key = target.partition_key
      AND w.namespace = target.namespace
      AND w.worker_instance_id = target.worker_instance_id
    RETURNING w.partition_key, w.namespace, w.worker_instance_id
), recorded AS (
    INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind, event_at_ms)
    SELECT refreshed.partition_key, refreshed.namespace, refreshed.worker_instance_id, 'refreshed', sqlc.arg(now_ms)
    FROM refreshed
    RETURNING 1
)
SELECT 1 FROM refreshed;
