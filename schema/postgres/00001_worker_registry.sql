-- +goose Up

-- One row per registered worker instance. A row is live while
-- now < expires_at_ms; an expired row is treated as absent until the sweep
-- removes it. Times are Unix milliseconds, as in the SQLite store, so both
-- stores compare and page the same way.
CREATE TABLE ff_worker_registry (
    -- COLLATE "C" makes the key order byte order, as in SQLite, so that a
    -- page cursor means the same thing on both stores.
    namespace          text    COLLATE "C" NOT NULL,
    worker_instance_id text    COLLATE "C" NOT NULL,
    worker_id          text    NOT NULL,
    -- Sorted, de-duplicated, comma-joined tokens (the reference's wire shape).
    lanes              text    NOT NULL,
    capabilities_csv   text    NOT NULL DEFAULT '',
    last_heartbeat_ms  bigint  NOT NULL,
    liveness_ttl_ms    bigint  NOT NULL CHECK (liveness_ttl_ms > 0),
    registered_at_ms   bigint  NOT NULL,
    -- Stored, not computed on read, so that liveness and the sweep are index
    -- probes rather than scans. The CHECK keeps it honest.
    expires_at_ms      bigint  NOT NULL CHECK (expires_at_ms = last_heartbeat_ms + liveness_ttl_ms),
    draining           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (namespace, worker_instance_id)
);

CREATE INDEX ff_worker_registry_expires_idx ON ff_worker_registry (expires_at_ms);

-- Audit log. event_id is its own key so that two events in one millisecond
-- are both kept; the identity sequence never reuses an id after pruning.
CREATE TABLE ff_worker_registry_event (
    event_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace          text   COLLATE "C" NOT NULL,
    worker_instance_id text   COLLATE "C" NOT NULL,
    event_kind         text   NOT NULL CHECK (event_kind IN (
        'registered', 'refreshed', 'heartbeat', 'marked_dead', 'ttl_swept', 'drain_requested')),
    event_at_ms        bigint NOT NULL,
    reason             text
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
