-- Writes of the engine's tables, for registrytest. The library itself never
-- writes executions or attempts.

-- name: InsertExecution :exec
INSERT INTO ff_exec_core (partition_key, execution_id, public_state, raw_fields)
VALUES (sqlc.arg(partition_key), sqlc.arg(execution_id), sqlc.arg(public_state), sqlc.arg(raw_fields));

-- name: InsertAttempt :exec
INSERT INTO ff_attempt (partition_key, execution_id, attempt_index, worker_instance_id, lease_epoch, lease_expires_at_ms)
VALUES (sqlc.arg(partition_key), sqlc.arg(execution_id), sqlc.arg(attempt_index), sqlc.narg(worker_instance_id), sqlc.arg(lease_epoch), sqlc.narg(lease_expires_at_ms));
