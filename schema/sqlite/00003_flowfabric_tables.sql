-- +goose Up

-- FlowFabric's engine creates ff_worker_registry and ff_worker_registry_event
-- itself (its migrations 0021 and 0022), and the registry shares them with
-- it. This migration gives the tables that versions 1 and 2 made the
-- engine's shapes, keeping every row, so that a database the registry made
-- and one it adopted from the engine are the same and the engine's own
-- statements run on either. A FlowFabric database is adopted at this
-- version without running it (see registry/migrate_sqlite.go).

-- Drain flags have no column in the engine's shape; version 4 adds one and
-- takes them from here.
CREATE TABLE ff_worker_registry_carried_drains (
    namespace          TEXT NOT NULL,
    worker_instance_id TEXT NOT NULL,
    PRIMARY KEY (namespace, worker_instance_id)
) WITHOUT ROWID;
INSERT INTO ff_worker_registry_carried_drains (namespace, worker_instance_id)
SELECT namespace, worker_instance_id FROM ff_worker_registry WHERE draining = 1;

CREATE TABLE ff_worker_registry_v3 (
    -- Made by the worker registry (schema/sqlite/00003), in FlowFabric's shape.
    namespace          TEXT    NOT NULL,
    worker_instance_id TEXT    NOT NULL,
    worker_id          TEXT    NOT NULL,
    lanes              TEXT    NOT NULL,
    capabilities_csv   TEXT    NOT NULL,
    last_heartbeat_ms  INTEGER NOT NULL,
    liveness_ttl_ms    INTEGER NOT NULL,
    registered_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (namespace, worker_instance_id)
);
INSERT INTO ff_worker_registry_v3 (
    namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
    last_heartbeat_ms, liveness_ttl_ms, registered_at_ms)
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms
FROM ff_worker_registry;
DROP TABLE ff_worker_registry;
ALTER TABLE ff_worker_registry_v3 RENAME TO ff_worker_registry;

-- The engine's key includes the event's time, so two events of one kind for
-- one instance in one millisecond, which the old integer key allowed, cannot
-- both keep their time: each later one moves to the next free millisecond of
-- its (instance, kind). Event IDs become rowids and keep their values, so
-- readers' cursors stay valid.
CREATE TABLE ff_worker_registry_event_v3 (
    -- Made by the worker registry (schema/sqlite/00003), in FlowFabric's shape.
    namespace          TEXT    NOT NULL,
    worker_instance_id TEXT    NOT NULL,
    event_kind         TEXT    NOT NULL,
    event_at_ms        INTEGER NOT NULL,
    reason             TEXT,
    PRIMARY KEY (namespace, worker_instance_id, event_at_ms, event_kind)
);
INSERT INTO ff_worker_registry_event_v3 (
    rowid, namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT event_id, namespace, worker_instance_id, event_kind,
       -- The n-th event of its (instance, kind) in time order lands at
       -- max over earlier ones m of (at_m + n - m): its own time, or one
       -- past the one before it.
       rn + max(event_at_ms - rn) OVER (
           PARTITION BY namespace, worker_instance_id, event_kind
           ORDER BY event_at_ms, event_id ROWS UNBOUNDED PRECEDING),
       reason
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY namespace, worker_instance_id, event_kind
        ORDER BY event_at_ms, event_id) AS rn
    FROM ff_worker_registry_event
);
-- Version 2's AUTOINCREMENT never handed out an ID twice, even after the
-- newest events were pruned; a rowid table hands out max(rowid) + 1. A
-- placeholder at the highest ID ever issued keeps later IDs above it (the
-- namespace '' holds no worker, and pruning keeps the newest row).
INSERT INTO ff_worker_registry_event_v3 (rowid, namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT seq, '', '', 'id_floor', 0, NULL FROM sqlite_sequence
WHERE name = 'ff_worker_registry_event'
  AND seq > coalesce((SELECT max(event_id) FROM ff_worker_registry_event), 0);
DROP TABLE ff_worker_registry_event;
ALTER TABLE ff_worker_registry_event_v3 RENAME TO ff_worker_registry_event;

-- Version 2's indexes on the engine's tables took names of the engine's
-- kind; version 4 puts them back under the registry's names.
-- ff_attempt_lease_expiry_idx stays: where version 2 made it, it is a
-- harmless leftover, and on an older FlowFabric database (before its 0021)
-- that version 2 shared, the name is the engine's own index.
DROP INDEX IF EXISTS ff_attempt_one_lease_idx;
DROP INDEX IF EXISTS ff_exec_core_namespace_idx;

-- +goose Down

-- Only tables this migration made go back to version 2's shapes: on a
-- FlowFabric database the tables are the engine's, and the registry stops
-- at version 3 there. Drain flags do not come back (version 4's down drops
-- them); a drained worker's next heartbeat is told nothing.
CREATE TEMP TABLE ff_worker_registry_guard (
    ok INTEGER NOT NULL CONSTRAINT "the worker registry tables are FlowFabric's: the registry does not migrate below version 3 on a FlowFabric database" CHECK (ok));
INSERT INTO ff_worker_registry_guard (ok)
SELECT sql LIKE '%Made by the worker registry (schema/sqlite/00003)%'
FROM sqlite_master WHERE type = 'table' AND name IN ('ff_worker_registry', 'ff_worker_registry_event');
DROP TABLE ff_worker_registry_guard;

CREATE TABLE ff_worker_registry_v2 (
    namespace          TEXT    NOT NULL,
    worker_instance_id TEXT    NOT NULL,
    worker_id          TEXT    NOT NULL,
    lanes              TEXT    NOT NULL,
    capabilities_csv   TEXT    NOT NULL DEFAULT '',
    last_heartbeat_ms  INTEGER NOT NULL,
    liveness_ttl_ms    INTEGER NOT NULL CHECK (liveness_ttl_ms > 0),
    registered_at_ms   INTEGER NOT NULL,
    expires_at_ms      INTEGER NOT NULL CHECK (expires_at_ms = last_heartbeat_ms + liveness_ttl_ms),
    draining           INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1)),
    PRIMARY KEY (namespace, worker_instance_id)
) WITHOUT ROWID;
INSERT INTO ff_worker_registry_v2 (
    namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
    last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms, draining)
SELECT namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
       last_heartbeat_ms, liveness_ttl_ms, registered_at_ms,
       last_heartbeat_ms + liveness_ttl_ms, 0
FROM ff_worker_registry;
DROP TABLE ff_worker_registry;
ALTER TABLE ff_worker_registry_v2 RENAME TO ff_worker_registry;
CREATE INDEX ff_worker_registry_expires_idx ON ff_worker_registry (expires_at_ms);

CREATE TABLE ff_worker_registry_event_v2 (
    event_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace          TEXT    NOT NULL,
    worker_instance_id TEXT    NOT NULL,
    event_kind         TEXT    NOT NULL CHECK (event_kind IN (
        'registered', 'refreshed', 'heartbeat', 'marked_dead', 'ttl_swept', 'drain_requested')),
    event_at_ms        INTEGER NOT NULL,
    reason             TEXT
);
-- Kinds that version 2 did not know (written by the engine or by later
-- versions) cannot go back.
INSERT INTO ff_worker_registry_event_v2 (event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason)
SELECT rowid, namespace, worker_instance_id, event_kind, event_at_ms, reason
FROM ff_worker_registry_event
WHERE event_kind IN ('registered', 'refreshed', 'heartbeat', 'marked_dead', 'ttl_swept', 'drain_requested');
DROP TABLE ff_worker_registry_event;
ALTER TABLE ff_worker_registry_event_v2 RENAME TO ff_worker_registry_event;
CREATE INDEX ff_worker_registry_event_namespace_idx
    ON ff_worker_registry_event (namespace, event_id);
CREATE INDEX ff_worker_registry_event_instance_idx
    ON ff_worker_registry_event (namespace, worker_instance_id, event_id);
CREATE INDEX ff_worker_registry_event_at_idx
    ON ff_worker_registry_event (event_at_ms);

CREATE INDEX IF NOT EXISTS ff_exec_core_namespace_idx
    ON ff_exec_core (json_extract(raw_fields, '$.namespace'));
CREATE UNIQUE INDEX IF NOT EXISTS ff_attempt_one_lease_idx
    ON ff_attempt (partition_key, execution_id)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;
