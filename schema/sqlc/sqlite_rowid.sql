-- Not a migration: sqlc reads this after schema/sqlite so that its catalog
-- knows the audit log's rowid, which SQLite gives every rowid table and
-- sqlc's SQLite engine does not model. The registry uses the rowid as the
-- event ID (see queries/sqlite/events.sql). Nothing ever runs this file.
ALTER TABLE ff_worker_registry_event ADD COLUMN rowid INTEGER NOT NULL DEFAULT 0;
