-- +goose Up

-- Version 5: the worker side (deregistered and resumed events, which
-- FlowFabric's event table takes as they are: it has no CHECK on the kind)
-- and the walk of the leases of dead holders. Like version 4, only objects
-- of the registry's own name.

-- The leases of one holder in (expiry, partition, execution UUID, attempt)
-- order: ListOrphanedLeases lists each dead holder's unexpired leases as a
-- range scan from the cursor, and finds the distinct holders by skipping
-- from one holder to the next.
CREATE INDEX ff_worker_registry_holder_lease_idx
    ON ff_attempt (worker_instance_id, lease_expires_at_ms, partition_key, execution_id, attempt_index, lease_epoch)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;

-- Whether a holder is live in any namespace: one probe per holder. A
-- heartbeat changes no column of it, so it costs heartbeats nothing.
CREATE INDEX ff_worker_registry_instance_idx
    ON ff_worker_registry (worker_instance_id);

-- +goose Down

DROP INDEX ff_worker_registry_instance_idx;
DROP INDEX ff_worker_registry_holder_lease_idx;
