-- +goose Up

-- What the registry adds to FlowFabric's tables, on a database it made and on
-- one it adopted alike. Every object has a name of the registry's own, so
-- that none can collide with the engine's, and the down migration removes
-- exactly these.

-- A drain request, which the engine's statements neither set nor clear.
ALTER TABLE ff_worker_registry ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;
-- Version 3 carried version 2's drain flags here; an adopted database has
-- none to carry.
CREATE TABLE IF NOT EXISTS ff_worker_registry_carried_drains (
    namespace          TEXT NOT NULL,
    worker_instance_id TEXT NOT NULL,
    PRIMARY KEY (namespace, worker_instance_id)
) WITHOUT ROWID;
UPDATE ff_worker_registry SET draining = 1
WHERE (namespace, worker_instance_id) IN (
    SELECT namespace, worker_instance_id FROM ff_worker_registry_carried_drains);
DROP TABLE ff_worker_registry_carried_drains;

-- Liveness and the sweep: an index on the expiry as the engine's columns
-- define it, so that it follows every heartbeat whoever writes it. Queries
-- spell the expression exactly so to use it, and as
-- +(last_heartbeat_ms + liveness_ttl_ms) where they must not.
CREATE INDEX ff_worker_registry_expiry_idx
    ON ff_worker_registry (last_heartbeat_ms + liveness_ttl_ms);

-- The audit log's ID is the rowid, in insertion order (every SQLite index
-- ends with it): pages of one namespace, of one instance, and pruning by age.
CREATE INDEX ff_worker_registry_event_namespace_idx
    ON ff_worker_registry_event (namespace);
CREATE INDEX ff_worker_registry_event_instance_idx
    ON ff_worker_registry_event (namespace, worker_instance_id);
CREATE INDEX ff_worker_registry_event_at_idx
    ON ff_worker_registry_event (event_at_ms);

-- The expired-lease walk: rows in (expiry, partition, execution UUID,
-- attempt) order, so a page is a range scan from the cursor, never a sort.
-- Holder and epoch are included so the walk does not visit the table.
CREATE INDEX ff_worker_registry_lease_idx
    ON ff_attempt (lease_expires_at_ms, partition_key, execution_id, attempt_index, worker_instance_id, lease_epoch)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;
CREATE INDEX ff_worker_registry_exec_namespace_idx
    ON ff_exec_core (json_extract(raw_fields, '$.namespace'));

-- +goose Down

DROP INDEX ff_worker_registry_exec_namespace_idx;
DROP INDEX ff_worker_registry_lease_idx;
DROP INDEX ff_worker_registry_event_at_idx;
DROP INDEX ff_worker_registry_event_instance_idx;
DROP INDEX ff_worker_registry_event_namespace_idx;
DROP INDEX ff_worker_registry_expiry_idx;
-- Pending drain requests are lost.
ALTER TABLE ff_worker_registry DROP COLUMN draining;
