-- +goose Up

-- Version 6: the registry's tables take the shape of FlowFabric's own
-- (its migrations 0021 and 0022), so that the engine and the registry can
-- share one database and its rows: both tables hash-partitioned into 256
-- partitions by partition_key (FNV-1a 64 of the instance ID, modulo 256,
-- as the engine computes it), lanes a text[], events keyed by (partition,
-- namespace, instance, time, kind). Expiry is no longer stored: it is
-- last_heartbeat_ms + liveness_ttl_ms, whoever wrote the row.
--
-- A FlowFabric database already has this shape; the registry records it at
-- this version without running this file. A database of the registry's own
-- is converted here, keeping its rows, drain flags and event IDs (in the
-- columns draining and event_id, which version 7 declares for both kinds).

-- +goose StatementBegin
DO $$
DECLARE
    last_event_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'ff_worker_registry'::regclass
                     AND attname = 'expires_at_ms' AND NOT attisdropped) THEN
        RETURN; -- FlowFabric's shape already
    END IF;

    -- The engine's partition key, computed byte by byte: the low byte of
    -- FNV-1a 64 depends only on the low bytes of the basis (0x25) and of
    -- the prime (0xb3).
    CREATE FUNCTION pg_temp.ff_wr_partition_key(id text) RETURNS smallint
    LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
    DECLARE
        h integer := 37;
        b bytea := convert_to(id, 'UTF8');
    BEGIN
        FOR i IN 0 .. length(b) - 1 LOOP
            h := ((h # get_byte(b, i)) * 179) & 255;
        END LOOP;
        RETURN h;
    END $f$;

    ALTER TABLE ff_worker_registry RENAME TO ff_worker_registry_v5;
    ALTER TABLE ff_worker_registry_v5 RENAME CONSTRAINT ff_worker_registry_pkey TO ff_worker_registry_v5_pkey;
    DROP INDEX ff_worker_registry_expires_idx;
    DROP INDEX ff_worker_registry_instance_idx;
    ALTER TABLE ff_worker_registry_event RENAME TO ff_worker_registry_event_v5;
    ALTER TABLE ff_worker_registry_event_v5 RENAME CONSTRAINT ff_worker_registry_event_pkey TO ff_worker_registry_event_v5_pkey;
    DROP INDEX ff_worker_registry_event_namespace_idx;
    DROP INDEX ff_worker_registry_event_instance_idx;
    DROP INDEX ff_worker_registry_event_at_idx;

    CREATE TABLE ff_worker_registry (
        partition_key      smallint NOT NULL,
        namespace          text     NOT NULL,
        worker_instance_id text     NOT NULL,
        worker_id          text     NOT NULL,
        lanes              text[]   NOT NULL,
        capabilities_csv   text     NOT NULL,
        last_heartbeat_ms  bigint   NOT NULL,
        liveness_ttl_ms    bigint   NOT NULL,
        registered_at_ms   bigint   NOT NULL,
        draining           boolean  NOT NULL DEFAULT false,
        PRIMARY KEY (partition_key, namespace, worker_instance_id)
    ) PARTITION BY HASH (partition_key);
    CREATE TABLE ff_worker_registry_event (
        partition_key      smallint NOT NULL,
        namespace          text     NOT NULL,
        worker_instance_id text     NOT NULL,
        event_kind         text     NOT NULL,
        event_at_ms        bigint   NOT NULL,
        reason             text,
        event_id           bigint,
        PRIMARY KEY (partition_key, namespace, worker_instance_id, event_at_ms, event_kind)
    ) PARTITION BY HASH (partition_key);
    FOR i IN 0 .. 255 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF ff_worker_registry FOR VALUES WITH (MODULUS 256, REMAINDER %s)',
                       'ff_worker_registry_p' || lpad(i::text, 3, '0'), i);
        EXECUTE format('CREATE TABLE %I PARTITION OF ff_worker_registry_event FOR VALUES WITH (MODULUS 256, REMAINDER %s)',
                       'ff_worker_registry_event_p' || lpad(i::text, 3, '0'), i);
    END LOOP;
    CREATE INDEX ff_worker_registry_ns_inst_idx ON ff_worker_registry (namespace, worker_instance_id);

    INSERT INTO ff_worker_registry (partition_key, namespace, worker_instance_id, worker_id, lanes,
        capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, draining)
    SELECT pg_temp.ff_wr_partition_key(worker_instance_id), namespace, worker_instance_id, worker_id,
           string_to_array(lanes, ','), capabilities_csv, last_heartbeat_ms, liveness_ttl_ms,
           registered_at_ms, draining
    FROM ff_worker_registry_v5;

    -- The engine keys events by time and kind: of two events of one
    -- instance and kind in one millisecond, the later moves to the next
    -- free millisecond, as on SQLite.
    INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id, event_kind,
        event_at_ms, reason, event_id)
    SELECT pg_temp.ff_wr_partition_key(worker_instance_id), namespace, worker_instance_id, event_kind,
           event_at_ms, reason, event_id
    FROM ff_worker_registry_event_v5
    ORDER BY event_id
    ON CONFLICT DO NOTHING;
    DECLARE
        ev record;
        at bigint;
        done boolean;
    BEGIN
        FOR ev IN SELECT * FROM ff_worker_registry_event_v5 AS old
                  WHERE NOT EXISTS (SELECT 1 FROM ff_worker_registry_event AS new WHERE new.event_id = old.event_id)
                  ORDER BY old.event_id LOOP
            at := ev.event_at_ms;
            LOOP
                at := at + 1;
                INSERT INTO ff_worker_registry_event (partition_key, namespace, worker_instance_id,
                    event_kind, event_at_ms, reason, event_id)
                VALUES (pg_temp.ff_wr_partition_key(ev.worker_instance_id), ev.namespace,
                    ev.worker_instance_id, ev.event_kind, at, ev.reason, ev.event_id)
                ON CONFLICT DO NOTHING;
                GET DIAGNOSTICS done = ROW_COUNT;
                EXIT WHEN done;
            END LOOP;
        END LOOP;
    END;

    -- IDs continue after the last one ever issued, pruned or not.
    SELECT last_value INTO last_event_id FROM ff_worker_registry_event_event_id_seq;
    CREATE SEQUENCE ff_worker_registry_event_id_seq;
    PERFORM setval('ff_worker_registry_event_id_seq', greatest(last_event_id, 1));

    -- Marks the tables as the registry's, which down converts back; down
    -- leaves a FlowFabric database's tables alone.
    COMMENT ON TABLE ff_worker_registry IS 'Made by the worker registry (schema/postgres/00006)';
    COMMENT ON TABLE ff_worker_registry_event IS 'Made by the worker registry (schema/postgres/00006)';

    DROP TABLE ff_worker_registry_event_v5;
    DROP TABLE ff_worker_registry_v5;
    DROP FUNCTION pg_temp.ff_wr_partition_key(text);

    -- Version 2's lease indexes: a unique one would refuse the engine's
    -- second held attempt of an execution; version 7 adds the walk's index
    -- under the registry's name and the engine's index takes its name.
    DROP INDEX IF EXISTS ff_attempt_one_lease_idx;
    -- (pg_get_indexdef of this schema's index only: over pg_indexes it could
    -- meet another schema's index as it is dropped.)
    IF to_regclass('ff_attempt_lease_expiry_idx') IS NOT NULL
       AND pg_get_indexdef(to_regclass('ff_attempt_lease_expiry_idx')) LIKE '%INCLUDE%' THEN
        DROP INDEX ff_attempt_lease_expiry_idx;
        CREATE INDEX ff_attempt_lease_expiry_idx ON ff_attempt (partition_key, lease_expires_at_ms)
            WHERE lease_expires_at_ms IS NOT NULL;
    END IF;
END $$;
-- +goose StatementEnd

-- +goose Down

-- Only tables that this migration made go back to version 5's shapes: on a
-- FlowFabric database the tables are the engine's, and the registry stops at
-- version 6 there. Drain flags and event IDs do not come back (version 7's
-- down drops them): events are numbered again in time order.
-- +goose StatementBegin
DO $$
BEGIN
    IF coalesce(obj_description('ff_worker_registry'::regclass, 'pg_class'), '') <> 'Made by the worker registry (schema/postgres/00006)' THEN
        RAISE EXCEPTION 'the worker registry''s tables are FlowFabric''s: the registry does not migrate below version 6 on a FlowFabric database';
    END IF;

    ALTER TABLE ff_worker_registry RENAME TO ff_worker_registry_v6;
    ALTER TABLE ff_worker_registry_v6 RENAME CONSTRAINT ff_worker_registry_pkey TO ff_worker_registry_v6_pkey;
    ALTER INDEX ff_worker_registry_ns_inst_idx RENAME TO ff_worker_registry_v6_ns_inst_idx;
    ALTER TABLE ff_worker_registry_event RENAME TO ff_worker_registry_event_v6;
    ALTER TABLE ff_worker_registry_event_v6 RENAME CONSTRAINT ff_worker_registry_event_pkey TO ff_worker_registry_event_v6_pkey;

    CREATE TABLE ff_worker_registry (
        namespace          text    COLLATE "C" NOT NULL,
        worker_instance_id text    COLLATE "C" NOT NULL,
        worker_id          text    NOT NULL,
        lanes              text    NOT NULL,
        capabilities_csv   text    NOT NULL DEFAULT '',
        last_heartbeat_ms  bigint  NOT NULL,
        liveness_ttl_ms    bigint  NOT NULL CHECK (liveness_ttl_ms > 0),
        registered_at_ms   bigint  NOT NULL,
        expires_at_ms      bigint  NOT NULL CHECK (expires_at_ms = last_heartbeat_ms + liveness_ttl_ms),
        draining           boolean NOT NULL DEFAULT false,
        PRIMARY KEY (namespace, worker_instance_id)
    );
    CREATE INDEX ff_worker_registry_expires_idx ON ff_worker_registry (expires_at_ms);
    CREATE INDEX ff_worker_registry_instance_idx ON ff_worker_registry (worker_instance_id);
    INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
        last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms)
    SELECT namespace, worker_instance_id, worker_id, array_to_string(lanes, ','), capabilities_csv,
           last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, last_heartbeat_ms + liveness_ttl_ms
    FROM ff_worker_registry_v6;

    CREATE TABLE ff_worker_registry_event (
        event_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        namespace          text   COLLATE "C" NOT NULL,
        worker_instance_id text   COLLATE "C" NOT NULL,
        event_kind         text   NOT NULL CONSTRAINT ff_worker_registry_event_event_kind_check CHECK (event_kind IN (
            'registered', 'refreshed', 'heartbeat', 'marked_dead', 'ttl_swept', 'drain_requested',
            'deregistered', 'resumed')),
        event_at_ms        bigint NOT NULL,
        reason             text
    );
    CREATE INDEX ff_worker_registry_event_namespace_idx ON ff_worker_registry_event (namespace, event_id);
    CREATE INDEX ff_worker_registry_event_instance_idx ON ff_worker_registry_event (namespace, worker_instance_id, event_id);
    CREATE INDEX ff_worker_registry_event_at_idx ON ff_worker_registry_event (event_at_ms);
    INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
    SELECT namespace, worker_instance_id, event_kind, event_at_ms, reason
    FROM ff_worker_registry_event_v6
    ORDER BY event_at_ms, namespace, worker_instance_id, event_kind;

    DROP TABLE ff_worker_registry_event_v6;
    DROP TABLE ff_worker_registry_v6;

    -- Versions 2 and 5's lease indexes.
    IF pg_get_indexdef(to_regclass('ff_attempt_lease_expiry_idx')) NOT LIKE '%INCLUDE%' THEN
        DROP INDEX ff_attempt_lease_expiry_idx;
    END IF;
    CREATE INDEX IF NOT EXISTS ff_attempt_lease_expiry_idx
        ON ff_attempt (lease_expires_at_ms, partition_key, execution_id)
        INCLUDE (worker_instance_id, lease_epoch, attempt_index)
        WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;
    CREATE UNIQUE INDEX IF NOT EXISTS ff_attempt_one_lease_idx
        ON ff_attempt (partition_key, execution_id)
        WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS ff_worker_registry_holder_lease_idx
        ON ff_attempt (worker_instance_id, lease_expires_at_ms, partition_key, execution_id, attempt_index)
        INCLUDE (lease_epoch)
        WHERE lease_expires_at_ms IS NOT NULL AND worker_instance_id IS NOT NULL;
END $$;
-- +goose StatementEnd
