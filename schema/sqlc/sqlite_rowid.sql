-- Not a migration: sqlc reads this after schema/sqlite so that its catalog
-- knows the rowids of the audit log and of the worker table, which SQLite
-- gives every rowid table and sqlc's SQLite engine does not model. The registry uses the rowid as the
-- event ID (see queries/sqlite/events.sql) and the sweep's key (see
-- queries/sqlite/workers.sql). Nothing ever runs this file.
ALTER TABLE ff_worker_registry_event ADD COLUMN rowid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ff_worker_registry ADD COLUMN rowid INTEGER NOT NULL DEFAULT 0;
