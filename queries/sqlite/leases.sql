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
