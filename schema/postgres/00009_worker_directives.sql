-- +goose Up

-- Version 9: an operator's directives to a worker instance, kept apart
-- from its registration, so that they outlive it. A drain outlives a lapse,
-- a sweep and the registration that follows (a new registration of a
-- draining instance starts draining) until ResumeWorker; a kill outlives
-- the pruning of the audit log, so that the worker loop never registers a
-- killed instance again. The engine's statements neither read nor write
-- this table; only the registry's name, so that on an adopted database the
-- down migration removes exactly it. Not partitioned: it holds a row per
-- drained or killed instance, few, and is read by key.
--
-- draining is true from RequestDrain to ResumeWorker. killed_at_ms and
-- kill_reason are MarkWorkerDead's. updated_at_ms is the last directive's
-- time: the sweep prunes a drain of an instance that has been absent
-- longer than the event retention, and a kill older than the longer of the
-- event retention and 30 days (see registry/sweep.go).
CREATE TABLE ff_worker_registry_directive (
    namespace          text NOT NULL,
    worker_instance_id text NOT NULL,
    draining           boolean NOT NULL DEFAULT false,
    killed_at_ms       bigint,
    kill_reason        text,
    updated_at_ms      bigint NOT NULL,
    PRIMARY KEY (namespace, worker_instance_id)
);

-- The drains pending on registrations, and the kills that the audit log
-- still shows as an instance's latest event (what the loop read before).
INSERT INTO ff_worker_registry_directive (namespace, worker_instance_id, draining, updated_at_ms)
SELECT namespace, worker_instance_id, true, last_heartbeat_ms
FROM ff_worker_registry
WHERE draining;
INSERT INTO ff_worker_registry_directive (namespace, worker_instance_id, killed_at_ms, kill_reason, updated_at_ms)
SELECT DISTINCT ON (e.namespace, e.worker_instance_id) e.namespace, e.worker_instance_id, e.event_at_ms, e.reason, e.event_at_ms
FROM ff_worker_registry_event AS e
WHERE e.event_kind = 'marked_dead'
  AND NOT EXISTS (SELECT 1 FROM ff_worker_registry_event AS later
                  WHERE later.partition_key = e.partition_key AND later.namespace = e.namespace
                    AND later.worker_instance_id = e.worker_instance_id AND later.event_id > e.event_id)
ORDER BY e.namespace, e.worker_instance_id, e.event_id DESC
ON CONFLICT (namespace, worker_instance_id) DO UPDATE SET
    killed_at_ms = excluded.killed_at_ms,
    kill_reason  = excluded.kill_reason;

-- +goose Down

-- Directives are lost: pending drains stay on the registrations they were
-- requested of (the draining column), and kills are known again only from
-- the audit log.
DROP TABLE ff_worker_registry_directive;
