-- name: ListExpiredLeases :many
-- Walks ff_worker_registry_lease_idx from the cursor. CROSS JOIN pins
-- ff_attempt as the outer loop so that the planner never trades the walk
-- for the namespace index plus a sort of every expired lease. The cursor
-- is a row value over the index's leading columns; the attempt orders two
-- held attempts of one execution that share an expiry, which the engine's
-- tables allow. (A CAST on the
-- partition parameter would stop SQLite from seeking on the whole row value,
-- hence its nullable Go type.) An empty namespace means every namespace.
SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
       cast(a.worker_instance_id AS TEXT) AS worker_instance_id,
       cast(a.lease_expires_at_ms AS INTEGER) AS lease_expires_at_ms,
       cast(coalesce(json_extract(c.raw_fields, '$.namespace'), '') AS TEXT) AS namespace
FROM ff_attempt AS a
CROSS JOIN ff_exec_core AS c
WHERE c.partition_key = a.partition_key
  AND c.execution_id = a.execution_id
  AND a.lease_expires_at_ms IS NOT NULL
  AND a.worker_instance_id IS NOT NULL
  AND a.lease_expires_at_ms <= cast(sqlc.arg(as_of_ms) AS INTEGER)
  AND (a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index)
      > (cast(sqlc.arg(after_expires_at_ms) AS INTEGER), sqlc.arg(after_partition), cast(sqlc.arg(after_execution_id) AS BLOB), sqlc.arg(after_attempt_index))
  AND c.public_state IN ('active', 'claimed', 'running')
  AND (cast(sqlc.arg(namespace) AS TEXT) = '' OR json_extract(c.raw_fields, '$.namespace') = cast(sqlc.arg(namespace) AS TEXT))
ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index
LIMIT sqlc.arg(row_limit);

-- name: ListDeadHolders :many
-- The holders of leases unexpired at as_of that have no registration live
-- at as_of, in any namespace. The recursive CTE skips from one holder to
-- the next through ff_worker_registry_holder_lease_idx, one seek each, so
-- that the cost follows the number of holders, not of held leases; each
-- holder then costs a probe of ff_worker_registry_instance_idx and one of
-- its unexpired leases.
WITH RECURSIVE holders(holder) AS (
    SELECT (SELECT min(first.worker_instance_id) FROM ff_attempt AS first
            WHERE first.worker_instance_id IS NOT NULL AND first.lease_expires_at_ms IS NOT NULL)
    UNION ALL
    SELECT (SELECT min(nxt.worker_instance_id) FROM ff_attempt AS nxt
            WHERE nxt.worker_instance_id > holders.holder AND nxt.lease_expires_at_ms IS NOT NULL)
    FROM holders
    WHERE holders.holder IS NOT NULL
)
SELECT cast(holders.holder AS TEXT) AS worker_instance_id
FROM holders
WHERE holders.holder IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM ff_worker_registry AS w
      WHERE w.worker_instance_id = holders.holder
        AND +(w.last_heartbeat_ms + w.liveness_ttl_ms) > cast(sqlc.arg(as_of_ms) AS INTEGER))
  AND EXISTS (
      SELECT 1 FROM ff_attempt AS held
      WHERE held.worker_instance_id = holders.holder
        AND held.lease_expires_at_ms > cast(sqlc.arg(as_of_ms) AS INTEGER));

-- name: ListHolderLeases :many
-- One holder's leases after the cursor, walking
-- ff_worker_registry_holder_lease_idx from it; the caller merges holders'
-- pages in cursor order. The cursor's expiry is past as_of (the caller
-- makes it so), so every lease listed is unexpired.
SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
       cast(a.worker_instance_id AS TEXT) AS worker_instance_id,
       cast(a.lease_expires_at_ms AS INTEGER) AS lease_expires_at_ms,
       cast(coalesce(json_extract(c.raw_fields, '$.namespace'), '') AS TEXT) AS namespace
FROM ff_attempt AS a
CROSS JOIN ff_exec_core AS c
WHERE a.worker_instance_id = cast(sqlc.arg(holder) AS TEXT)
  AND a.lease_expires_at_ms IS NOT NULL
  AND (a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index)
      > (cast(sqlc.arg(after_expires_at_ms) AS INTEGER), sqlc.arg(after_partition), cast(sqlc.arg(after_execution_id) AS BLOB), sqlc.arg(after_attempt_index))
  AND c.partition_key = a.partition_key
  AND c.execution_id = a.execution_id
  AND c.public_state IN ('active', 'claimed', 'running')
  AND (cast(sqlc.arg(namespace) AS TEXT) = '' OR json_extract(c.raw_fields, '$.namespace') = cast(sqlc.arg(namespace) AS TEXT))
ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index
LIMIT sqlc.arg(row_limit);
