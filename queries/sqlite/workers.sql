-- The expiry is last_heartbeat_ms + liveness_ttl_ms, the engine's own
-- definition, so that it follows heartbeats whoever writes them. No index
-- orders rows by it (version 8 dropped the expiry index: it cost every
-- heartbeat two more pages a commit): liveness of one worker is read by
-- key, listings filter by expiry as they page by key, and the sweep scans.
-- Liveness is spelled "+(last_heartbeat_ms + liveness_ttl_ms) > now": the
-- unary + keeps these statements off any index on the expression (a
-- database migrated down, or one an operator indexed), which would turn
-- key lookups and key-ordered pages into range scans and sorts.

-- name: GetWorker :one
-- Reads a registration whether or not it is live; the caller decides.
SELECT worker_id, registered_at_ms, cast(last_heartbeat_ms + liveness_ttl_ms AS INTEGER) AS expires_at_ms,
       report_in_flight, report_capacity, report_version
FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id);

-- name: UpsertWorker :exec
-- Writes a registration over whatever row is there. It is draining when
-- the instance's drain directive is pending: a drain outlives a lapse, a
-- sweep and the registration that follows, until ResumeWorker. The report
-- columns are written as given (the caller passes the stored report on
-- when a refresh sends none).
INSERT INTO ff_worker_registry (
    namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
    last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, draining,
    report_in_flight, report_capacity, report_version
) VALUES (
    sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(worker_id),
    sqlc.arg(lanes), sqlc.arg(capabilities_csv),
    sqlc.arg(now_ms), sqlc.arg(liveness_ttl_ms), sqlc.arg(registered_at_ms),
    coalesce((SELECT d.draining FROM ff_worker_registry_directive AS d
              WHERE d.namespace = sqlc.arg(namespace) AND d.worker_instance_id = sqlc.arg(worker_instance_id)), 0),
    sqlc.narg(report_in_flight), sqlc.narg(report_capacity), sqlc.narg(report_version)
)
ON CONFLICT (namespace, worker_instance_id) DO UPDATE SET
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

-- name: RefreshLiveWorker :one
-- Register's common case in one statement: a registration live under the
-- same worker ID gets the new lanes, capabilities, TTL and heartbeat, keeps
-- its registered_at_ms (returned) and its drain, which follows the
-- instance's drain directive (see UpsertWorker); a report replaces the
-- stored one, and none (NULLs) keeps it. Any other
-- case (absent, expired, another worker ID) matches no row and writes
-- nothing; the caller then reads the row and writes it with UpsertWorker.
UPDATE ff_worker_registry
SET lanes             = sqlc.arg(lanes),
    capabilities_csv  = sqlc.arg(capabilities_csv),
    last_heartbeat_ms = sqlc.arg(now_ms),
    liveness_ttl_ms   = sqlc.arg(liveness_ttl_ms),
    draining          = coalesce((SELECT d.draining FROM ff_worker_registry_directive AS d
                                  WHERE d.namespace = sqlc.arg(namespace)
                                    AND d.worker_instance_id = sqlc.arg(worker_instance_id)), 0),
    report_in_flight  = coalesce(cast(sqlc.narg(report_in_flight) AS INTEGER), ff_worker_registry.report_in_flight),
    report_capacity   = coalesce(cast(sqlc.narg(report_capacity) AS INTEGER), ff_worker_registry.report_capacity),
    report_version    = coalesce(cast(sqlc.narg(report_version) AS TEXT), ff_worker_registry.report_version)
WHERE ff_worker_registry.namespace = sqlc.arg(namespace)
  AND ff_worker_registry.worker_instance_id = sqlc.arg(worker_instance_id)
  AND worker_id = sqlc.arg(worker_id)
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms)
RETURNING registered_at_ms;

-- name: HeartbeatLiveWorker :many
-- Refreshes a live row only; an expired row is left for the sweep. It runs
-- outside a transaction, so it is :many, not :one: a :one statement is reset
-- after its first row, and an autocommit statement that is reset before it
-- steps to SQLITE_DONE commits without running SQLite's WAL hook, the one
-- place where the automatic checkpoint runs. The WAL then never restarts.
-- A report rides in the same UPDATE (NULLs keep the stored one): the row
-- is rewritten either way, and no index covers the report columns.
UPDATE ff_worker_registry
SET last_heartbeat_ms = sqlc.arg(now_ms),
    report_in_flight  = coalesce(cast(sqlc.narg(report_in_flight) AS INTEGER), report_in_flight),
    report_capacity   = coalesce(cast(sqlc.narg(report_capacity) AS INTEGER), report_capacity),
    report_version    = coalesce(cast(sqlc.narg(report_version) AS TEXT), report_version)
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms)
RETURNING last_heartbeat_ms, liveness_ttl_ms, draining;

-- name: DeleteLiveWorker :execrows
DELETE FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms);

-- name: ListLiveWorkers :many
-- All namespaces. The cursor is a row value over the primary key, so a page
-- is a range walk of the key in (namespace, instance) byte order.
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms,
       cast(last_heartbeat_ms + liveness_ttl_ms AS INTEGER) AS expires_at_ms, draining,
       report_in_flight, report_capacity, report_version
FROM ff_worker_registry
WHERE (namespace, worker_instance_id) > (cast(sqlc.arg(after_namespace) AS TEXT), cast(sqlc.arg(after_instance_id) AS TEXT))
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms)
  AND (cast(sqlc.arg(lane) AS TEXT) = '' OR instr(',' || lanes || ',', ',' || cast(sqlc.arg(lane) AS TEXT) || ',') > 0)
  AND (cast(sqlc.arg(capability) AS TEXT) = '' OR instr(',' || capabilities_csv || ',', ',' || cast(sqlc.arg(capability) AS TEXT) || ',') > 0)
ORDER BY namespace, worker_instance_id
LIMIT sqlc.arg(row_limit);

-- name: ListLiveWorkersInNamespace :many
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms,
       cast(last_heartbeat_ms + liveness_ttl_ms AS INTEGER) AS expires_at_ms, draining,
       report_in_flight, report_capacity, report_version
FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id > cast(sqlc.arg(after_instance_id) AS TEXT)
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms)
  AND (cast(sqlc.arg(lane) AS TEXT) = '' OR instr(',' || lanes || ',', ',' || cast(sqlc.arg(lane) AS TEXT) || ',') > 0)
  AND (cast(sqlc.arg(capability) AS TEXT) = '' OR instr(',' || capabilities_csv || ',', ',' || cast(sqlc.arg(capability) AS TEXT) || ',') > 0)
ORDER BY worker_instance_id
LIMIT sqlc.arg(row_limit);

-- HeartbeatLiveWorkers, many heartbeats (and reports) at one time as one
-- statement, is written by hand in db/sqlitedb/heartbeat_batch.go: it
-- needs UPDATE ... FROM, which sqlc's SQLite grammar does not parse.

-- name: RequestDrain :execrows
UPDATE ff_worker_registry
SET draining = 1
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms);

-- name: ListExpiredWorkers :one
-- A sweep's scan, on a read connection: the rowids of the rows expired at
-- now_ms, the oldest expiries first, as one comma-separated list ('' for
-- none). With no index on the expiry it reads the table once, and sorts
-- only what it found: with nothing expired, a scan and nothing more. One
-- value rather than a row per rowid: handing 100k rows over one by one
-- took as long as the scan and the sort together, and a slice of the list
-- in brackets is a batch's JSON array as it is.
SELECT cast(coalesce(group_concat(expired.row_id, ','), '') AS TEXT) AS row_ids
FROM (
    SELECT rowid AS row_id
    FROM ff_worker_registry
    WHERE last_heartbeat_ms + liveness_ttl_ms <= sqlc.arg(now_ms)
    -- group_concat takes the rows in this order: SQLite never flattens a
    -- subquery with an ORDER BY into an aggregate.
    ORDER BY last_heartbeat_ms + liveness_ttl_ms, rowid
) AS expired;

-- name: DeleteExpiredWorkerRows :execrows
-- One sweep batch on the writer, after InsertSweptEvents: the rows of
-- row_ids (a JSON array of rowids from ListExpiredWorkers) that are still
-- expired at now_ms. The expiry is checked again, so a heartbeat between
-- the scan and this wins; a rowid that now names another row deletes it
-- only if that row is expired too.
DELETE FROM ff_worker_registry
WHERE rowid IN (SELECT value FROM json_each(sqlc.arg(row_ids)))
  AND last_heartbeat_ms + liveness_ttl_ms <= sqlc.arg(now_ms);

-- name: DeleteExpiredWorkers :many
-- DeleteExpiredWorkerRows, returning the rows: for a batch some of whose
-- events move to a later millisecond (see InsertSweptEvents).
DELETE FROM ff_worker_registry
WHERE rowid IN (SELECT value FROM json_each(sqlc.arg(row_ids)))
  AND last_heartbeat_ms + liveness_ttl_ms <= sqlc.arg(now_ms)
RETURNING rowid AS row_id, namespace, worker_instance_id;

-- name: GetLiveWorker :one
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms,
       cast(last_heartbeat_ms + liveness_ttl_ms AS INTEGER) AS expires_at_ms, draining,
       report_in_flight, report_capacity, report_version
FROM ff_worker_registry
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms);

-- name: ResumeWorker :execrows
UPDATE ff_worker_registry
SET draining = 0
WHERE namespace = sqlc.arg(namespace)
  AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND +(last_heartbeat_ms + liveness_ttl_ms) > sqlc.arg(now_ms);
