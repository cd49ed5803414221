-- +goose Up

-- Version 8: the expiry index goes. Every heartbeat moved the worker's entry
-- in it (two more pages a commit than the row's own), to make a sweep with
-- nothing expired an index probe; a sweep now scans the table on a read
-- connection, off the writer's path, and the writer deletes what it found
-- by key (see internal/store/sqlitestore). Liveness of one worker is read
-- by key, and listings filter by expiry as they page by key. No index of
-- the registry's on ff_worker_registry includes a column that a heartbeat
-- writes (last_heartbeat_ms). Only the registry's own index goes: the
-- engine's objects are left alone.
DROP INDEX ff_worker_registry_expiry_idx;

-- +goose Down

CREATE INDEX ff_worker_registry_expiry_idx
    ON ff_worker_registry (last_heartbeat_ms + liveness_ttl_ms);
