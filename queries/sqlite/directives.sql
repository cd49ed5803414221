-- An operator's directives to a worker instance, which outlive its
-- registration (schema/sqlite/00009_worker_directives.sql): a drain until
-- ResumeWorker, a kill for good. Each is written in the transaction of the
-- call that changes the registration.

-- name: SetDrainDirective :exec
-- RequestDrain (draining 1) and ResumeWorker (0); a kill on the row stays.
INSERT INTO ff_worker_registry_directive (namespace, worker_instance_id, draining, updated_at_ms)
VALUES (sqlc.arg(namespace), sqlc.arg(worker_instance_id), sqlc.arg(draining), sqlc.arg(now_ms))
ON CONFLICT (namespace, worker_instance_id) DO UPDATE SET
    draining      = excluded.draining,
    updated_at_ms = excluded.updated_at_ms;

-- name: RecordKill :exec
-- MarkWorkerDead; a drain on the row stays (a killed instance never
-- registers again through the worker loop, so it no longer matters).
INSERT INTO ff_worker_registry_directive (namespace, worker_instance_id, killed_at_ms, kill_reason, updated_at_ms)
VALUES (sqlc.arg(namespace), sqlc.arg(worker_instance_id), cast(sqlc.arg(now_ms) AS INTEGER), sqlc.narg(reason), cast(sqlc.arg(now_ms) AS INTEGER))
ON CONFLICT (namespace, worker_instance_id) DO UPDATE SET
    killed_at_ms  = excluded.killed_at_ms,
    kill_reason   = excluded.kill_reason,
    updated_at_ms = excluded.updated_at_ms;

-- name: GetKill :one
SELECT cast(killed_at_ms AS INTEGER) AS killed_at_ms, kill_reason
FROM ff_worker_registry_directive
WHERE namespace = sqlc.arg(namespace) AND worker_instance_id = sqlc.arg(worker_instance_id)
  AND killed_at_ms IS NOT NULL;

-- name: PruneDirectives :execrows
-- Withdrawn drains at once; a drain of an instance with no registration
-- and no event since drain_before_ms (every registration ends with an
-- event, so it has been absent since before then); a kill from before
-- kill_before_ms.
DELETE FROM ff_worker_registry_directive AS d
WHERE CASE
    WHEN d.killed_at_ms IS NOT NULL THEN d.killed_at_ms < cast(sqlc.arg(kill_before_ms) AS INTEGER)
    WHEN d.draining = 0 THEN 1
    ELSE d.updated_at_ms < sqlc.arg(drain_before_ms)
         AND NOT EXISTS (SELECT 1 FROM ff_worker_registry AS w
                         WHERE w.namespace = d.namespace AND w.worker_instance_id = d.worker_instance_id)
         AND NOT EXISTS (SELECT 1 FROM ff_worker_registry_event AS e
                         WHERE e.namespace = d.namespace AND e.worker_instance_id = d.worker_instance_id
                           AND e.event_at_ms >= sqlc.arg(drain_before_ms))
END;
