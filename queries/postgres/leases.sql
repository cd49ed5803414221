-- name: ListExpiredLeases :many
-- Walks ff_attempt_lease_expiry_idx from the cursor, a row value over the
-- index's leading columns, and stops at the page size. The execution is
-- looked up per lease in a LATERAL subquery that OFFSET 0 keeps from being
-- flattened: the join can then only be a nested loop driven by the walk,
-- so the planner cannot trade the walk for the namespace index, a hash
-- join and a sort of every expired lease. An empty namespace means every
-- namespace.
SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
       a.worker_instance_id::text AS worker_instance_id,
       a.lease_expires_at_ms::bigint AS lease_expires_at_ms,
       c.namespace::text AS namespace
FROM ff_attempt AS a
CROSS JOIN LATERAL (
    SELECT coalesce(e.raw_fields ->> 'namespace', '') AS namespace
    FROM ff_exec_core AS e
    WHERE e.partition_key = a.partition_key
      AND e.execution_id = a.execution_id
      AND e.public_state IN ('active', 'claimed', 'running')
      AND (sqlc.arg(namespace)::text = '' OR e.raw_fields ->> 'namespace' = sqlc.arg(namespace)::text)
    OFFSET 0
) AS c
WHERE a.lease_expires_at_ms IS NOT NULL
  AND a.worker_instance_id IS NOT NULL
  AND a.lease_expires_at_ms <= sqlc.arg(as_of_ms)::bigint
  AND (a.lease_expires_at_ms, a.partition_key, a.execution_id)
      > (sqlc.arg(after_expires_at_ms)::bigint, sqlc.arg(after_partition)::integer, sqlc.arg(after_execution_id)::uuid)
ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id
LIMIT sqlc.arg(row_limit);
