-- +goose Up

-- Version 5: the worker side. A worker that stops cleanly records
-- deregistered, distinct from an operator's marked_dead, and clearing a
-- drain records resumed.
ALTER TABLE ff_worker_registry_event DROP CONSTRAINT ff_worker_registry_event_event_kind_check;
ALTER TABLE ff_worker_registry_event ADD CONSTRAINT ff_worker_registry_event_event_kind_check
    CHECK (event_kind IN (
        'registered', 'refreshed', 'heartbeat', 'marked_dead', 'ttl_swept', 'drain_requested',
        'deregistered', 'resumed'));

-- The leases of one holder in (expiry, partition, execution UUID, attempt)
-- order: ListOrphanedLeases lists each dead holder's unexpired leases as a
-- range scan from the cursor, and finds the distinct holders by skipping
-- from one holder to the next.
CREATE INDEX ff_worker_registry_holder_lease_idx
    ON ff_attempt (worker_instance_id, lease_expires_at_ms, partition_key, execution_id, attempt_index)
    INCLUDE (lease_epoch)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;

-- Whether a holder is live in any namespace: one probe per holder.
CREATE INDEX ff_worker_registry_instance_idx
    ON ff_worker_registry (worker_instance_id);

-- +goose Down

DROP INDEX ff_worker_registry_instance_idx;
DROP INDEX ff_worker_registry_holder_lease_idx;
-- Version 4 knows neither kind: those events are lost.
DELETE FROM ff_worker_registry_event WHERE event_kind IN ('deregistered', 'resumed');
ALTER TABLE ff_worker_registry_event DROP CONSTRAINT ff_worker_registry_event_event_kind_check;
ALTER TABLE ff_worker_registry_event ADD CONSTRAINT ff_worker_registry_event_event_kind_check
    CHECK (event_kind IN (
        'registered', 'refreshed', 'heartbeat', 'marked_dead', 'ttl_swept', 'drain_requested'));
