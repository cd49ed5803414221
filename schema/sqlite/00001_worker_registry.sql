-- +goose Up

-- One row per registered worker instance. A row is live while
-- now < expires_at_ms; an expired row is treated as absent until the sweep
-- removes it.
CREATE TABLE ff_worker_registry (
    namespace          TEXT    NOT NULL,
    worker_instance_id TEXT    NOT NULL,
    worker_id          TEXT    NOT NULL,
    -- Sorted, de-duplicated, comma-joined tokens (the reference's wire shape).
    lanes              TEXT    NOT NULL,
    capabilities_csv   TEXT    NOT NULL DEFAULT '',
    last_heartbeat_ms  INTEGER NOT NULL,
    liveness_ttl_ms    INTEGER NOT NULL CHECK (liveness_ttl_ms > 0),
    registered_at_ms   INTEGER NOT NULL,
    -- Stored, not computed on read, so that liveness and the sweep are index
    -- probes rather than scans. The CHECK keeps it honest.
    expires_at_ms      INTEGER NOT NULL CHECK (expires_at_ms = last_heartbeat_ms + liveness_ttl_ms),
    draining           INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1)),
    PRIMARY KEY (namespace, worker_instance_id)
) WITHOUT ROWID;

CREATE INDEX ff_worker_registry_expires_idx ON ff_worker_registry (expires_at_ms);

-- Audit log. event_id is its own key so that two events in one millisecond
-- are both kept; AUTOINCREMENT keeps ids monotonic after pruning, which the
-- event cursor relies on.
CREATE TABLE ff_worker_registry_event (
    event_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace          TEXT    NOT NULL,
    worker_instance_id TEXT    NOT NULL,
    event_kind         TEXT    NOT NULL CHECK (event_kind IN (
        'registered', 'refreshed', 'heartbeat', 'marked_dead', 'ttl_swept', 'drain_requested')),
    event_at_ms        INTEGER NOT NULL,
    reason             TEXT
);

CREATE INDEX ff_worker_registry_event_namespace_idx
    ON ff_worker_registry_event (namespace, event_id);
CREATE INDEX ff_worker_registry_event_instance_idx
    ON ff_worker_registry_event (namespace, worker_instance_id, event_id);
CREATE INDEX ff_worker_registry_event_at_idx
    ON ff_worker_registry_event (event_at_ms);

-- +goose Down

-- Dropping the registry loses every registration and the audit log; there is
-- nothing older to restore them into.
DROP TABLE ff_worker_registry_event;
DROP TABLE ff_worker_registry;
