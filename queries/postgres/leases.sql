-- name: ListExpiredLeases :many
-- Walks ff_worker_registry_lease_idx from the cursor (a merge of the
-- partitions' walks where ff_attempt is partitioned), a row value over the
-- index's leading columns, and stops at the page size. The execution is
-- looked up per lease in a LATERAL subquery that OFFSET 0 keeps from being
-- flattened: the join can then only be a nested loop driven by the walk,
-- so the planner cannot trade the walk for the namespace index, a hash
-- join and a sort of every expired lease. An empty namespace means every
-- namespace.
SELECT a.partition_key::integer AS partition_key, a.execution_id, a.attempt_index, a.lease_epoch,
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
  AND (a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index)
      > (sqlc.arg(after_expires_at_ms)::bigint, sqlc.arg(after_partition)::integer,
         sqlc.arg(after_execution_id)::uuid, sqlc.arg(after_attempt_index)::integer)
ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index
LIMIT sqlc.arg(row_limit)::bigint;

-- name: ListDeadHolders :many
-- The holders of leases unexpired at as_of that have no registration live
-- at as_of, in any namespace. The recursive CTE skips from one holder to
-- the next through ff_worker_registry_holder_lease_idx, one index probe
-- each (a loose index scan), so that the cost follows the number of
-- holders, not of held leases; each holder then costs a probe of
-- ff_worker_registry_instance_idx and one of its unexpired leases.
WITH RECURSIVE holders(holder) AS (
    SELECT (SELECT min(first.worker_instance_id) FROM ff_attempt AS first
            WHERE first.worker_instance_id IS NOT NULL AND first.lease_expires_at_ms IS NOT NULL)
    UNION ALL
    SELECT (SELECT min(nxt.worker_instance_id) FROM ff_attempt AS nxt
            WHERE nxt.worker_instance_id > holders.holder AND nxt.lease_expires_at_ms IS NOT NULL)
    FROM holders
    WHERE holders.holder IS NOT NULL
)
SELECT holders.holder::text AS worker_instance_id
FROM holders
WHERE holders.holder IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM ff_worker_registry AS w
      WHERE w.worker_instance_id = holders.holder
        AND w.last_heartbeat_ms + w.liveness_ttl_ms > sqlc.arg(as_of_ms)::bigint)
  AND EXISTS (
      SELECT 1 FROM ff_attempt AS held
      WHERE held.worker_instance_id = holders.holder
        AND held.lease_expires_at_ms > sqlc.arg(as_of_ms)::bigint);

-- name: ListHolderLeases :many
-- Several holders' leases, each after a cursor of its own, at most
-- row_limit per holder: each holder is a walk of
-- ff_worker_registry_holder_lease_idx from its cursor (the arrays are
-- parallel, one element per holder), and the caller merges them in cursor
-- order. The execution is looked up per lease, as in ListExpiredLeases.
SELECT l.partition_key::integer AS partition_key, l.execution_id, l.attempt_index, l.lease_epoch,
       l.worker_instance_id, l.lease_expires_at_ms, l.namespace
FROM unnest(sqlc.arg(holders)::text[]) WITH ORDINALITY AS h(holder, ord)
CROSS JOIN LATERAL (
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
    WHERE a.worker_instance_id = h.holder
      AND a.lease_expires_at_ms IS NOT NULL
      AND (a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index)
          > ((sqlc.arg(after_expires_at_ms)::bigint[])[h.ord], (sqlc.arg(after_partitions)::integer[])[h.ord],
             (sqlc.arg(after_execution_ids)::uuid[])[h.ord], (sqlc.arg(after_attempt_indexes)::integer[])[h.ord])
    ORDER BY a.lease_expires_at_ms, a.partition_key, a.execution_id, a.attempt_index
    LIMIT sqlc.arg(row_limit)::bigint
) AS l;
