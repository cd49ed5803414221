-- +goose Up

-- Version 10: what a worker reports of itself with a registration or a
-- heartbeat (registry.WorkerReport): jobs in flight, capacity and the
-- build it runs. Columns of the registry's own names on the engine's table
-- (made by the registry or adopted alike), nullable and without a default,
-- so that the engine's statements, which name their columns, write them
-- nothing and keep working, and adding them rewrites no row. NULL: no
-- report was ever sent; a heartbeat with a report writes them in its one
-- UPDATE, and one without keeps them.
ALTER TABLE ff_worker_registry ADD COLUMN report_in_flight INTEGER;
ALTER TABLE ff_worker_registry ADD COLUMN report_capacity INTEGER;
ALTER TABLE ff_worker_registry ADD COLUMN report_version TEXT;

-- +goose Down

-- Exactly version 10's columns; the reports are lost.
ALTER TABLE ff_worker_registry DROP COLUMN report_version;
ALTER TABLE ff_worker_registry DROP COLUMN report_capacity;
ALTER TABLE ff_worker_registry DROP COLUMN report_in_flight;
