-- +goose Up

-- Version 8: the expiry index goes. Every heartbeat moved the worker's entry
-- in it, so that no heartbeat, the registry's or the engine's, could be a
-- heap-only-tuple update, and every index of the table got a new entry;
-- all to make a sweep with nothing expired an index probe. A sweep now
-- scans partition by partition, as the engine's tick does. Liveness of one
-- worker is read by key, and listings filter by expiry as they page by key.
-- No index of the registry's on ff_worker_registry includes a column that a
-- heartbeat writes (last_heartbeat_ms). Only the registry's own index goes
-- (with its partitions' indexes): the engine's objects are left alone.
DROP INDEX ff_worker_registry_expiry_idx;

-- +goose Down

CREATE INDEX ff_worker_registry_expiry_idx
    ON ff_worker_registry ((last_heartbeat_ms + liveness_ttl_ms));
