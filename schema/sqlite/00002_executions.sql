-- +goose Up

-- The parts of the engine's execution and attempt tables that the registry
-- reads to list expired leases. The engine owns and writes these rows; names
-- and encodings follow the engine's schema (16-byte BLOB execution UUIDs,
-- integer partition keys, namespace inside raw_fields).
-- Where the registry shares the engine's database the tables exist already
-- and are left as they are; only the registry's indexes are added.
CREATE TABLE IF NOT EXISTS ff_exec_core (
    partition_key INTEGER NOT NULL CHECK (partition_key BETWEEN 0 AND 65535),
    execution_id  BLOB    NOT NULL CHECK (typeof(execution_id) = 'blob' AND length(execution_id) = 16),
    public_state  TEXT    NOT NULL,
    raw_fields    TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(raw_fields)),
    PRIMARY KEY (partition_key, execution_id)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS ff_exec_core_namespace_idx
    ON ff_exec_core (json_extract(raw_fields, '$.namespace'));

CREATE TABLE IF NOT EXISTS ff_attempt (
    partition_key       INTEGER NOT NULL,
    execution_id        BLOB    NOT NULL,
    attempt_index       INTEGER NOT NULL CHECK (attempt_index BETWEEN 0 AND 2147483647),
    worker_instance_id  TEXT,
    lease_epoch         INTEGER NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0),
    lease_expires_at_ms INTEGER,
    PRIMARY KEY (partition_key, execution_id, attempt_index),
    FOREIGN KEY (partition_key, execution_id)
        REFERENCES ff_exec_core (partition_key, execution_id) ON DELETE CASCADE
) WITHOUT ROWID;

-- The expired-lease walk: rows in (expiry, partition, execution UUID) order,
-- so a page is a range scan from the cursor, never a sort. Holder and epoch
-- are included so the walk does not visit the table for them.
CREATE INDEX IF NOT EXISTS ff_attempt_lease_expiry_idx
    ON ff_attempt (lease_expires_at_ms, partition_key, execution_id, worker_instance_id, lease_epoch)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;

-- An execution has at most one held lease. This is what makes
-- (expiry, partition, execution UUID) a unique cursor.
CREATE UNIQUE INDEX IF NOT EXISTS ff_attempt_one_lease_idx
    ON ff_attempt (partition_key, execution_id)
    WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;

-- +goose Down

-- The engine owns the executions and attempts: only the registry's indexes
-- go. The tables stay, whether the engine made them or this migration did,
-- since dropping them would drop the engine's jobs.
DROP INDEX IF EXISTS ff_attempt_one_lease_idx;
DROP INDEX IF EXISTS ff_attempt_lease_expiry_idx;
DROP INDEX IF EXISTS ff_exec_core_namespace_idx;
