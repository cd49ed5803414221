-- name: ListExpiredLeases :many
-- Walks ff_attempt_lease_expiry_idx from the cursor, a row value over the
-- index's leading columns, and stops at the page size: no sort. An empty
-- namespace means every namespace.
SELECT a.partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
       a.worker_instance_id::text AS worker_instance_id,
       a.lease_expires_at_ms::bigint AS lease_expires_at_ms,
       coalesce(c.raw_fields ->> 'namespace', '')::text AS namespace
FROM ff_attempt AS a
JOIN ff_exec_core AS c
  ON c.partition_key = a.partition_key AND c.execution_id = a.execution_id
WHERE a.lease_expires_at_ms IS NOT NULL
  AND a.worker_instance_id IS NOT NULL
  AND a.lease_expires_at_ms <= sqlc.arg(as_of_ms)::bigint
  AND (a.lease_expires_at_ms, a.partition_key, a.execution_id)
      > (sqlc.arg(after_expires_at_ms)::bigint, sqlc.arg(after_partition)::integer, sqlc.arg(after_execution_id)::uuid)
  AND c.public_state IN ('active', 'claimed', 'running')
  AND (sqlc.arg(namespace)::text = '' OR c.raw_fields ->> 'namespace' = sqlc.arg(namespace)::text)
ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id
LIMIT sqlc.arg(row_limit);
