-- +goose Up

-- Version 7: what the registry adds to FlowFabric's tables (as made by the
-- engine, or by version 6), each under a name of the registry's own.
-- Indexes on a partitioned table are partitioned too: one per partition.

-- The engine's partition key of an instance ID, for operators' queries:
-- FNV-1a 64 of its bytes, modulo 256. The low byte of FNV-1a depends only
-- on the low bytes of the offset basis (0x25) and of the prime (0xb3).
-- +goose StatementBegin
CREATE FUNCTION ff_worker_registry_partition_key(instance_id text) RETURNS smallint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    h integer := 37;
    b bytea := convert_to(instance_id, 'UTF8');
BEGIN
    FOR i IN 0 .. length(b) - 1 LOOP
        h := ((h # get_byte(b, i)) * 179) & 255;
    END LOOP;
    RETURN h;
END $$;
-- +goose StatementEnd

-- A drain request, which the engine's statements neither read nor clear
-- (its re-register keeps a drain, as on SQLite).
ALTER TABLE ff_worker_registry ADD COLUMN IF NOT EXISTS draining boolean NOT NULL DEFAULT false;

-- Liveness and the sweep: an expression index, so that the expiry follows
-- an engine heartbeat as it follows the registry's.
CREATE INDEX ff_worker_registry_expiry_idx
    ON ff_worker_registry ((last_heartbeat_ms + liveness_ttl_ms));

-- Pages of workers in (namespace, instance) byte order, whatever the
-- database's collation, so that a cursor means the same as on SQLite.
CREATE INDEX ff_worker_registry_list_idx
    ON ff_worker_registry (namespace COLLATE "C", worker_instance_id COLLATE "C");

-- Whether a lease holder is live in any namespace: one probe per holder.
CREATE INDEX ff_worker_registry_instance_idx
    ON ff_worker_registry (worker_instance_id);

-- Event IDs. The engine inserts events without one, so the ID is the
-- column's default, drawn under a transaction-level advisory lock: the
-- holder commits before the next writer of an event draws its ID, so IDs
-- commit in order and a reader paging forward never skips one that
-- commits late. Writers take the lock at their first event, after their
-- row locks, as the engine's statements do; nothing takes a row lock after
-- it, so it joins no deadlock. The two-key form keeps it apart from
-- applications' one-key locks; the second key is the sequence's OID, so
-- that registries in different schemas of a database do not wait on each
-- other.
CREATE SEQUENCE IF NOT EXISTS ff_worker_registry_event_id_seq;

-- +goose StatementBegin
CREATE FUNCTION ff_worker_registry_next_event_id(seq regclass) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(1717657458, (seq::oid::bigint % 2147483647)::integer);
    SELECT nextval(seq);
$$;
-- +goose StatementEnd

ALTER TABLE ff_worker_registry_event ADD COLUMN IF NOT EXISTS event_id bigint;

-- The engine's events so far, numbered in time order after any ID that
-- version 6 kept.
WITH numbered AS (
    SELECT partition_key, namespace, worker_instance_id, event_at_ms, event_kind,
           row_number() OVER (ORDER BY event_at_ms, partition_key, namespace, worker_instance_id, event_kind) AS n
    FROM ff_worker_registry_event
    WHERE event_id IS NULL
)
UPDATE ff_worker_registry_event AS e
SET event_id = (SELECT greatest(coalesce(max(event_id), 0),
                                (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
                                 FROM ff_worker_registry_event_id_seq))
                FROM ff_worker_registry_event) + numbered.n
FROM numbered
WHERE e.partition_key = numbered.partition_key
  AND e.namespace = numbered.namespace
  AND e.worker_instance_id = numbered.worker_instance_id
  AND e.event_at_ms = numbered.event_at_ms
  AND e.event_kind = numbered.event_kind;

SELECT setval('ff_worker_registry_event_id_seq',
              greatest((SELECT max(event_id) FROM ff_worker_registry_event),
                       (SELECT last_value FROM ff_worker_registry_event_id_seq), 1));

ALTER TABLE ff_worker_registry_event
    ALTER COLUMN event_id SET DEFAULT ff_worker_registry_next_event_id('ff_worker_registry_event_id_seq'),
    ALTER COLUMN event_id SET NOT NULL;
ALTER SEQUENCE ff_worker_registry_event_id_seq OWNED BY ff_worker_registry_event.event_id;

-- Pages of the log: of every namespace, of one, of one instance (whose
-- partition the key names); and the prune, oldest first.
CREATE INDEX ff_worker_registry_event_id_idx
    ON ff_worker_registry_event (event_id);
CREATE INDEX ff_worker_registry_event_namespace_idx
    ON ff_worker_registry_event (namespace, event_id);
CREATE INDEX ff_worker_registry_event_instance_idx
    ON ff_worker_registry_event (namespace, worker_instance_id, event_id);
CREATE INDEX ff_worker_registry_event_at_idx
    ON ff_worker_registry_event (event_at_ms);

-- The expired-lease walk in (expiry, partition, execution, attempt) order,
-- index-only: the engine's ff_attempt_lease_expiry_idx leads with the
-- partition, which suits its per-partition scans but not one ordered walk.
CREATE INDEX ff_worker_registry_lease_idx
    ON ff_attempt (lease_expires_at_ms, partition_key, execution_id, attempt_index)
    INCLUDE (worker_instance_id, lease_epoch)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;

-- The leases of one holder in the same order, for ListOrphanedLeases
-- (version 5 made it on the registry's own databases).
CREATE INDEX IF NOT EXISTS ff_worker_registry_holder_lease_idx
    ON ff_attempt (worker_instance_id, lease_expires_at_ms, partition_key, execution_id, attempt_index)
    INCLUDE (lease_epoch)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;

-- +goose Down

-- Everything version 7 added, and nothing of the engine's: drain flags and
-- event IDs are lost.
DROP INDEX ff_worker_registry_holder_lease_idx;
DROP INDEX ff_worker_registry_lease_idx;
DROP INDEX ff_worker_registry_event_at_idx;
DROP INDEX ff_worker_registry_event_instance_idx;
DROP INDEX ff_worker_registry_event_namespace_idx;
DROP INDEX ff_worker_registry_event_id_idx;
ALTER TABLE ff_worker_registry_event DROP COLUMN event_id;
DROP FUNCTION ff_worker_registry_next_event_id(regclass);
DROP INDEX ff_worker_registry_instance_idx;
DROP INDEX ff_worker_registry_list_idx;
DROP INDEX ff_worker_registry_expiry_idx;
ALTER TABLE ff_worker_registry DROP COLUMN draining;
DROP FUNCTION ff_worker_registry_partition_key(text);
