-- Not a migration: sqlc reads this after schema/postgres so that its
-- catalog has the tables' shapes from version 6 on. Version 6 builds them in
-- a DO block, which sqlc does not run. Nothing ever runs this file.
DROP TABLE ff_worker_registry_event;
DROP TABLE ff_worker_registry;

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
    -- Version 10.
    report_in_flight   integer,
    report_capacity    integer,
    report_version     text,
    PRIMARY KEY (partition_key, namespace, worker_instance_id)
) PARTITION BY HASH (partition_key);

CREATE TABLE ff_worker_registry_event (
    partition_key      smallint NOT NULL,
    namespace          text     NOT NULL,
    worker_instance_id text     NOT NULL,
    event_kind         text     NOT NULL,
    event_at_ms        bigint   NOT NULL,
    reason             text,
    event_id           bigint   NOT NULL,
    PRIMARY KEY (partition_key, namespace, worker_instance_id, event_at_ms, event_kind)
) PARTITION BY HASH (partition_key);
