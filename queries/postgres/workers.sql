-- The registry's table is FlowFabric's ff_worker_registry, hash-partitioned
-- by partition_key, which the caller computes from the instance ID as the
-- engine does (partitionKey in internal/store/pgstore/store.go). A statement
-- about one instance names its partition_key, so that Postgres touches one
-- partition. A row is live while now < last_heartbeat_ms + liveness_ttl_ms,
-- whoever wrote the row; no index orders rows by it (version 8 dropped the
-- expiry index, so that heartbeats are heap-only-tuple updates): liveness
-- of one worker is read by key, listings filter as they page by key, and
-- the sweep scans partition by partition.
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
SELECT worker_id, registered_at_ms, (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms,
       report_in_flight, report_capacity, report_version
FROM ff_worker_registry
WHERE partition_key = sqlc.arg(partition_key)
  AND namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
FOR UPDATE;

-- name: UpsertWorker :exec
-- Writes a registration over whatever row is there. It is draining when
-- the instance's drain directive is pending: a drain outlives a lapse, a
-- sweep and the registration that follows, until ResumeWorker. The report
-- columns are written as given (the caller passes the stored report on
-- when a refresh sends none).
INSERT INTO ff_worker_registry (
    partition_key, namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
    last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, draining,
    report_in_flight, report_capacity, report_version
) VALUES (
    sqlc.arg(partition_key), sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(worker_id),
    sqlc.arg(lanes), sqlc.arg(capabilities_csv),
    sqlc.arg(now_ms), sqlc.arg(liveness_ttl_ms), sqlc.arg(registered_at_ms),
    coalesce((SELECT d.draining FROM ff_worker_registry_directive AS d
              WHERE d.namespace = sqlc.arg(namespace) AND d.worker_instance_id = sqlc.arg(worker_instance_id)), false),
    sqlc.narg(report_in_flight), sqlc.narg(report_capacity), sqlc.narg(report_version)
)
ON CONFLICT (partition_key, namespace, worker_instance_id) DO UPDATE SET
    worker_id         = excluded.worker_id,
    lanes             = excluded.lanes,
    capabilities_csv  = excluded.capabilities_csv,
    last_heartbeat_ms = excluded.last_heartbeat_ms,
    liveness_ttl_ms   = excluded.liveness_ttl_ms,
    registered_at_ms  = excluded.registered_at_ms,
    draining          = excluded.draining,
    report_in_flight  = excluded.report_in_flight,
    report_capacity   = excluded.report_capacity,
    report_version    = excluded.report_version;

-- name: HeartbeatLiveWorker :one
-- Refreshes a live row only; an expired row is left for the sweep. A
-- report rides in the same UPDATE (NULLs keep the stored one); no index
-- covers the report columns, so it stays a HOT update.
UPDATE ff_worker_registry
SET last_heartbeat_ms = sqlc.arg(now_ms),
    report_in_flight  = coalesce(sqlc.narg(report_in_flight)::integer, report_in_flight),
    report_capacity   = coalesce(sqlc.narg(report_capacity)::integer, report_capacity),
    report_version    = coalesce(sqlc.narg(report_version)::text, report_version)
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
       (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms, draining,
       report_in_flight, report_capacity, report_version
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
       (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms, draining,
       report_in_flight, report_capacity, report_version
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

-- name: RequestDrainWithEvent :one
-- RequestDrain with its directive (SetDrainDirective) and its
-- drain_requested event, in one statement: one round trip, atomic without
-- a transaction, where RequestDrain's transaction takes five. It waits
-- for the row's lock as that transaction does, and takes the audit log's
-- lock after it, as that transaction does. Should the event's key
-- (instance, now_ms, kind) be taken, the insert fails with
-- unique_violation (23505) and the caller runs the transaction, which
-- moves the event to the next free millisecond. It returns how many rows
-- it drained: none when the worker is absent or expired at now_ms.
WITH drained AS (
    UPDATE ff_worker_registry AS w
    SET draining = true
    WHERE w.partition_key = sqlc.arg(partition_key)
      AND w.namespace = sqlc.arg(namespace)
      AND w.worker_instance_id = sqlc.arg(worker_instance_id)
      AND w.last_heartbeat_ms + w.liveness_ttl_ms > sqlc.arg(now_ms)
    RETURNING w.partition_key, w.namespace, w.worker_instance_id
), directive AS (
    INSERT INTO ff_worker_registry_directive (namespace, worker_instance_id, draining, updated_at_ms)
    SELECT drained.namespace, drained.worker_instance_id, true, sqlc.arg(now_ms) FROM drained
    ON CONFLICT (namespace, worker_instance_id) DO UPDATE SET
        draining      = excluded.draining,
        updated_at_ms = excluded.updated_at_ms
    RETURNING 1
), recorded AS (
    INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason)
    SELECT drained.partition_key, drained.namespace, drained.worker_instance_id, 'drain_requested', sqlc.arg(now_ms),
           sqlc.narg(reason)::text
    FROM drained
    RETURNING 1
)
SELECT count(*) AS drained FROM drained;

-- name: SweepExpiredPartition :one
-- One sweep batch of one partition. The statement names the parent table
-- as "ff_worker_registry AS w"; the store runs it with a partition's name in
-- its place (internal/store/pgstore, sweep.go), so that it reads one
-- partition, as the engine's tick does. Up to batch_size rows expired at
-- now_ms are locked, SKIP LOCKED so that a row a heartbeat or registration
-- holds is left to it; deleted by their ctids (a TID scan: a join back on
-- the key costs the statement twice the engine's time), with the expiry
-- checked again on the locked row; and given their ttl_swept events. Their
-- IDs are drawn with nextval once the audit log's lock is held (an
-- InitPlan, taken once), which is what the column's default does for one
-- row at a time. It returns how many rows it deleted and how many events
-- it wrote: fewer events means that an event's key was taken, and the
-- store then writes the batch again with DeleteExpiredPartitionRows.
-- It is kept this small because it is planned and started again whenever
-- (auto)vacuum or analyze has touched its partition: with the taken keys'
-- set operations in it, that took 1.2 to 2.1 ms, without them 0.5 ms (the
-- engine's tick 0.4 ms).
WITH swept AS (
    DELETE FROM ff_worker_registry AS w
    WHERE w.ctid = ANY (ARRAY(
            SELECT x.ctid FROM ff_worker_registry AS x
            WHERE x.last_heartbeat_ms + x.liveness_ttl_ms <= sqlc.arg(now_ms)::bigint
            LIMIT sqlc.arg(batch_size)::bigint
            FOR UPDATE SKIP LOCKED))
      AND w.last_heartbeat_ms + w.liveness_ttl_ms <= sqlc.arg(now_ms)::bigint
    RETURNING w.partition_key, w.namespace, w.worker_instance_id
), recorded AS (
    INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind, event_at_ms, event_id)
    SELECT swept.partition_key, swept.namespace, swept.worker_instance_id, 'ttl_swept', sqlc.arg(now_ms)::bigint,
           nextval('ff_worker_registry_event_id_seq')
    FROM swept
    WHERE (SELECT pg_advisory_xact_lock(1717657458,
               ('ff_worker_registry_event_id_seq'::regclass::oid::bigint % 2147483647)::integer)::text) = ''
    ORDER BY swept.namespace COLLATE "C", swept.worker_instance_id COLLATE "C"
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM swept)::bigint AS swept,
       (SELECT count(*) FROM recorded)::bigint AS recorded;

-- name: DeleteExpiredPartitionRows :many
-- SweepExpiredPartition's delete alone, returning the rows' keys: for a
-- batch one of whose events' keys is taken (almost never), whose events
-- the store then writes with InsertEvents, moving such an event to the
-- next free millisecond.
DELETE FROM ff_worker_registry AS w
WHERE w.ctid = ANY (ARRAY(
        SELECT x.ctid FROM ff_worker_registry AS x
        WHERE x.last_heartbeat_ms + x.liveness_ttl_ms <= sqlc.arg(now_ms)::bigint
        LIMIT sqlc.arg(batch_size)::bigint
        FOR UPDATE SKIP LOCKED))
  AND w.last_heartbeat_ms + w.liveness_ttl_ms <= sqlc.arg(now_ms)::bigint
RETURNING w.namespace, w.worker_instance_id;

-- name: HeartbeatLiveWorkerNoWait :one
-- HeartbeatLiveWorker for a caller that read its time just before: rather
-- than wait for another transaction's lock on the row, after which that
-- time would be stale, it fails with lock_not_available (55P03), and the
-- caller locks the row first and reads the time again. The statement is
-- sent without the row's lock held, so it may run long after its time was
-- read (a backend stopped with it in its socket runs it when continued),
-- after the worker's later heartbeats or a registration on another
-- connection: it never moves last_heartbeat_ms back. (The other writers
-- hold the row's lock from before they read their time: nothing else can
-- have written the row in between. An explicit Now may move it back.)
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
SET last_heartbeat_ms = GREATEST(w.last_heartbeat_ms, sqlc.arg(now_ms)),
    report_in_flight  = coalesce(sqlc.narg(report_in_flight)::integer, w.report_in_flight),
    report_capacity   = coalesce(sqlc.narg(report_capacity)::integer, w.report_capacity),
    report_version    = coalesce(sqlc.narg(report_version)::text, w.report_version)
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
       (last_heartbeat_ms + liveness_ttl_ms)::bigint AS expires_at_ms, draining,
       report_in_flight, report_capacity, report_version
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
-- Whether one partition has a row expired at now_ms; like
-- SweepExpiredPartition, it names the parent as "ff_worker_registry AS w"
-- and runs with a partition's name in its place, all partitions in one
-- statement (sweep.go). A scan of the partition that stops at the first
-- expired row: a sweep with nothing expired costs one scan of the table
-- and writes nothing.
SELECT EXISTS (
    SELECT 1 FROM ff_worker_registry AS w
    WHERE w.last_heartbeat_ms + w.liveness_ttl_ms <= sqlc.arg(now_ms)::bigint
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
-- The keys arrive as parallel arrays. (sqlc does not know the many-array
-- unnest, hence the subscripts.) Reports come as parallel arrays too,
-- reported[i] saying whether key i has one; with NULL arrays, for a
-- partition with none, the stored reports are kept.
UPDATE ff_worker_registry AS w
SET last_heartbeat_ms = sqlc.arg(now_ms),
    report_in_flight  = CASE WHEN k.reported THEN k.in_flight ELSE w.report_in_flight END,
    report_capacity   = CASE WHEN k.reported THEN k.capacity ELSE w.report_capacity END,
    report_version    = CASE WHEN k.reported THEN k.version ELSE w.report_version END
FROM (
    SELECT n.namespace, (sqlc.arg(instance_ids)::text[])[n.ord] AS worker_instance_id,
           (sqlc.arg(reported)::boolean[])[n.ord] AS reported,
           (sqlc.arg(in_flights)::integer[])[n.ord] AS in_flight,
           (sqlc.arg(capacities)::integer[])[n.ord] AS capacity,
           (sqlc.arg(versions)::text[])[n.ord] AS version
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
-- event to the next free millisecond. A report rides in the same UPDATE,
-- as in HeartbeatLiveWorker. With keep_later, for a time read from the
-- clock before the statement was sent, it never moves last_heartbeat_ms
-- back, as HeartbeatLiveWorkerNoWait does not; without, for an explicit
-- Now, it writes now_ms as HeartbeatLiveWorker does.
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
    SET last_heartbeat_ms = CASE WHEN sqlc.arg(keep_later)::boolean
                                 THEN GREATEST(w.last_heartbeat_ms, sqlc.arg(now_ms)) ELSE sqlc.arg(now_ms) END,
        report_in_flight  = coalesce(sqlc.narg(report_in_flight)::integer, w.report_in_flight),
        report_capacity   = coalesce(sqlc.narg(report_capacity)::integer, w.report_capacity),
        report_version    = coalesce(sqlc.narg(report_version)::text, w.report_version)
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
-- registered_at_ms, and gets a refreshed event; a report replaces the
-- stored one, and none (NULLs) keeps it. With keep_later (a time read
-- before the statement), a row whose heartbeat is later than now_ms is
-- left to the transaction, which reads its time once it holds the row:
-- a late refresh never moves a heartbeat back, and a registration stores
-- what the transaction (and SQLite's) would. The drain follows the instance's drain
-- directive, as UpsertWorker's does: the statement applies only where the
-- locked row's drain already is the directive's, and leaves it. The
-- directive is read in the statement's snapshot and the row as locked, so
-- a drain or resume that commits in between (each writes both) makes them
-- differ; so does a row whose drain the engine wrote. It writes nothing
-- when the row is absent, expired, another worker's or draining otherwise
-- than its directive says (the caller then runs the registration's
-- transaction, which reads the directive afresh), and fails as
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
      AND (NOT sqlc.arg(keep_later)::boolean OR cur.last_heartbeat_ms <= sqlc.arg(now_ms))
      AND cur.draining = coalesce((SELECT d.draining FROM ff_worker_registry_directive AS d
                                   WHERE d.namespace = sqlc.arg(namespace)
                                     AND d.worker_instance_id = sqlc.arg(worker_instance_id)), false)
    FOR NO KEY UPDATE NOWAIT
), refreshed AS (
    UPDATE ff_worker_registry AS w
    SET lanes             = sqlc.arg(lanes)::text[],
        capabilities_csv  = sqlc.arg(capabilities_csv),
        last_heartbeat_ms = sqlc.arg(now_ms),
        liveness_ttl_ms   = sqlc.arg(liveness_ttl_ms),
        report_in_flight  = coalesce(sqlc.narg(report_in_flight)::integer, w.report_in_flight),
        report_capacity   = coalesce(sqlc.narg(report_capacity)::integer, w.report_capacity),
        report_version    = coalesce(sqlc.narg(report_version)::text, w.report_version)
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

-- name: UseGenericPlans :execrows
-- For the rest of the transaction, prepared statements use generic plans:
-- the sweep's probe and each partition's sweep statement are planned once
-- per connection, not for their arguments first.
SELECT set_config('plan_cache_mode', 'force_generic_plan', true);
