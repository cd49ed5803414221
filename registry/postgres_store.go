package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/db/pgdb"
)

// postgresStore runs the registry's statements on a pgx pool. Postgres has
// row locks and many concurrent writers, so unlike SQLite nothing
// serialises write transactions: the statements themselves carry the locks
// (lockAuditLog, getWorker's FOR UPDATE, the sweep's SKIP LOCKED).
type postgresStore struct {
	pool  *pgxpool.Pool
	q     *pgdb.Queries
	owned bool // close closes the pool
}

func newPostgresStore(pool *pgxpool.Pool) *postgresStore {
	return &postgresStore{pool: pool, q: pgdb.New(pool)}
}

func (s *postgresStore) reader() storeReader { return postgresQueries{s.q} }
func (s *postgresStore) writer() storeWriter { return postgresQueries{s.q} }

// inTx runs fn in a READ COMMITTED transaction, which is enough because
// every read that a write depends on locks what it read first. It is asked
// for by name: under a server whose default is REPEATABLE READ or
// SERIALIZABLE, the snapshot would predate the locks' waits, and a
// register that lost a race would fail with a serialization error instead
// of seeing the winner's row.
func (s *postgresStore) inTx(ctx context.Context, fn func(storeWriter) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		return fn(postgresQueries{s.q.WithTx(tx)})
	})
}

// heartbeatAt first tries the heartbeat as one statement, at the time
// read just before it: if the row's lock is free, that time is the
// lock's, give or take a network hop. If another transaction holds the
// lock, the statement fails at once (NOWAIT) instead of waiting, and the
// heartbeat waits for the lock in a transaction, then reads the time. The
// statement costs a few percent more than a plain UPDATE; locking first
// in a transaction every time would cost three times as much (measured).
func (s *postgresStore) heartbeatAt(ctx context.Context, k instanceKey, now func() int64) (heartbeatRow, bool, error) {
	row, err := s.q.HeartbeatLiveWorkerNoWait(ctx, pgdb.HeartbeatLiveWorkerNoWaitParams{
		NowMs: now(), Namespace: k.namespace, WorkerInstanceID: k.instanceID,
	})
	switch {
	case err == nil:
		return heartbeatRow{Key: k, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining}, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return heartbeatRow{}, false, nil
	case !isLockNotAvailable(err):
		return heartbeatRow{}, false, err
	}
	var res heartbeatRow
	var found bool
	err = s.inTx(ctx, func(q storeWriter) error {
		res, found = heartbeatRow{}, false
		prev, ok, err := q.getWorker(ctx, k) // FOR UPDATE: waits for the lock
		if err != nil || !ok {
			return err
		}
		nowMS := now()
		if prev.ExpiresAtMs <= nowMS {
			return nil
		}
		res, found, err = q.heartbeatLiveWorker(ctx, k, nowMS)
		return err
	})
	return res, found, err
}

func (s *postgresStore) batchChunk() int              { return postgresChunkSize }
func (s *postgresStore) tookChunk(int, time.Duration) {}

// isLockNotAvailable reports Postgres's lock_not_available, which NOWAIT
// raises.
func isLockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

func (s *postgresStore) close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}

// postgresQueries adapts the generated queries to storeReader and
// storeWriter.
type postgresQueries struct{ q *pgdb.Queries }

func (s postgresQueries) lockAuditLog(ctx context.Context) error {
	return s.q.LockAuditLog(ctx)
}

func (s postgresQueries) lockWorkers(ctx context.Context, keys []instanceKey, minNowMS int64) (map[instanceKey]bool, error) {
	namespaces, instances := keyColumns(keys)
	rows, err := s.q.LockWorkers(ctx, pgdb.LockWorkersParams{
		Namespaces: namespaces, InstanceIds: instances, MinNowMs: minNowMS,
	})
	if err != nil {
		return nil, err
	}
	live := make(map[instanceKey]bool, len(rows))
	for _, row := range rows {
		live[instanceKey{row.Namespace, row.WorkerInstanceID}] = true
	}
	return live, nil
}

func (s postgresQueries) getWorker(ctx context.Context, k instanceKey) (registration, bool, error) {
	row, err := s.q.GetWorker(ctx, pgdb.GetWorkerParams{Namespace: k.namespace, WorkerInstanceID: k.instanceID})
	if errors.Is(err, pgx.ErrNoRows) {
		return registration{}, false, nil
	}
	if err != nil {
		return registration{}, false, err
	}
	return registration(row), true, nil
}

func (s postgresQueries) upsertWorker(ctx context.Context, w workerRow) error {
	return s.q.UpsertWorker(ctx, pgdb.UpsertWorkerParams{
		Namespace:        w.Namespace,
		WorkerInstanceID: w.WorkerInstanceID,
		WorkerID:         w.WorkerID,
		Lanes:            w.Lanes,
		CapabilitiesCsv:  w.CapabilitiesCsv,
		NowMs:            w.LastHeartbeatMs,
		LivenessTTLMs:    w.LivenessTTLMs,
		RegisteredAtMs:   w.RegisteredAtMs,
		ExpiresAtMs:      w.ExpiresAtMs,
	})
}

func (s postgresQueries) heartbeatLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (heartbeatRow, bool, error) {
	row, err := s.q.HeartbeatLiveWorker(ctx, pgdb.HeartbeatLiveWorkerParams{
		NowMs: nowMS, Namespace: k.namespace, WorkerInstanceID: k.instanceID,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return heartbeatRow{}, false, nil
	}
	if err != nil {
		return heartbeatRow{}, false, err
	}
	return heartbeatRow{Key: k, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining}, true, nil
}

func (s postgresQueries) heartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []instanceKey) ([]heartbeatRow, error) {
	namespaces, instances := keyColumns(keys)
	rows, err := s.q.HeartbeatLiveWorkers(ctx, pgdb.HeartbeatLiveWorkersParams{
		NowMs: nowMS, Namespaces: namespaces, InstanceIds: instances,
	})
	if err != nil {
		return nil, err
	}
	out := make([]heartbeatRow, len(rows))
	for i, row := range rows {
		out[i] = heartbeatRow{
			Key:         instanceKey{row.Namespace, row.WorkerInstanceID},
			ExpiresAtMs: row.ExpiresAtMs,
			Draining:    row.Draining,
		}
	}
	return out, nil
}

func (s postgresQueries) deleteLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (bool, error) {
	n, err := s.q.DeleteLiveWorker(ctx, pgdb.DeleteLiveWorkerParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s postgresQueries) requestDrain(ctx context.Context, k instanceKey, nowMS int64) (bool, error) {
	n, err := s.q.RequestDrain(ctx, pgdb.RequestDrainParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s postgresQueries) resumeWorker(ctx context.Context, k instanceKey, nowMS int64) (bool, error) {
	n, err := s.q.ResumeWorker(ctx, pgdb.ResumeWorkerParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s postgresQueries) deleteExpiredWorkers(ctx context.Context, nowMS int64, limit int) ([]instanceKey, error) {
	rows, err := s.q.DeleteExpiredWorkers(ctx, pgdb.DeleteExpiredWorkersParams{NowMs: nowMS, BatchSize: int32(limit)})
	if err != nil {
		return nil, err
	}
	keys := make([]instanceKey, len(rows))
	for i, row := range rows {
		keys[i] = instanceKey{row.Namespace, row.WorkerInstanceID}
	}
	return keys, nil
}

func (s postgresQueries) insertEvent(ctx context.Context, e eventRow) error {
	return s.q.InsertEvent(ctx, pgdb.InsertEventParams{
		Namespace:        e.Namespace,
		WorkerInstanceID: e.WorkerInstanceID,
		EventKind:        e.EventKind,
		EventAtMs:        e.EventAtMs,
		Reason:           e.Reason,
	})
}

func (s postgresQueries) insertEvents(ctx context.Context, kind string, atMS int64, keys []instanceKey) error {
	namespaces, instances := keyColumns(keys)
	return s.q.InsertEvents(ctx, pgdb.InsertEventsParams{
		EventKind: kind, EventAtMs: atMS, Namespaces: namespaces, InstanceIds: instances,
	})
}

func (s postgresQueries) deleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (int64, error) {
	return s.q.DeleteEventsBefore(ctx, pgdb.DeleteEventsBeforeParams{BeforeMs: beforeMS, BatchSize: int32(limit)})
}

func (s postgresQueries) listWorkers(ctx context.Context, q workerQuery) ([]workerRow, error) {
	var rows []pgdb.FfWorkerRegistry
	var err error
	if q.Namespace == "" {
		rows, err = s.q.ListLiveWorkers(ctx, pgdb.ListLiveWorkersParams{
			AfterNamespace:  q.AfterNamespace,
			AfterInstanceID: q.AfterInstance,
			NowMs:           q.NowMs,
			Lane:            q.Lane,
			Capability:      q.Capability,
			RowLimit:        int32(q.RowLimit),
		})
	} else {
		rows, err = s.q.ListLiveWorkersInNamespace(ctx, pgdb.ListLiveWorkersInNamespaceParams{
			Namespace:       q.Namespace,
			AfterInstanceID: q.AfterInstance,
			NowMs:           q.NowMs,
			Lane:            q.Lane,
			Capability:      q.Capability,
			RowLimit:        int32(q.RowLimit),
		})
	}
	if err != nil {
		return nil, err
	}
	out := make([]workerRow, len(rows))
	for i, row := range rows {
		out[i] = workerRow(row)
	}
	return out, nil
}

func (s postgresQueries) listEvents(ctx context.Context, q eventQuery) ([]eventRow, error) {
	var rows []pgdb.FfWorkerRegistryEvent
	var err error
	limit := int32(q.RowLimit)
	switch {
	case q.Namespace == "" && !q.NewestFirst:
		rows, err = s.q.ListAllEventsAsc(ctx, pgdb.ListAllEventsAscParams{AfterID: q.After, RowLimit: limit})
	case q.Namespace == "":
		rows, err = s.q.ListAllEventsDesc(ctx, pgdb.ListAllEventsDescParams{BeforeID: q.Before, RowLimit: limit})
	case q.Instance == "" && !q.NewestFirst:
		rows, err = s.q.ListEventsAsc(ctx, pgdb.ListEventsAscParams{Namespace: q.Namespace, AfterID: q.After, RowLimit: limit})
	case q.Instance == "":
		rows, err = s.q.ListEventsDesc(ctx, pgdb.ListEventsDescParams{Namespace: q.Namespace, BeforeID: q.Before, RowLimit: limit})
	case !q.NewestFirst:
		rows, err = s.q.ListInstanceEventsAsc(ctx, pgdb.ListInstanceEventsAscParams{
			Namespace: q.Namespace, WorkerInstanceID: q.Instance, AfterID: q.After, RowLimit: limit})
	default:
		rows, err = s.q.ListInstanceEventsDesc(ctx, pgdb.ListInstanceEventsDescParams{
			Namespace: q.Namespace, WorkerInstanceID: q.Instance, BeforeID: q.Before, RowLimit: limit})
	}
	if err != nil {
		return nil, err
	}
	out := make([]eventRow, len(rows))
	for i, row := range rows {
		out[i] = eventRow(row)
	}
	return out, nil
}

func (s postgresQueries) listExpiredLeases(ctx context.Context, q leaseQuery) ([]leaseRow, error) {
	params := pgdb.ListExpiredLeasesParams{
		AsOfMs:           q.AsOfMs,
		AfterExpiresAtMs: q.AfterExpiresAtMs,
		AfterPartition:   int32(q.AfterPartition),
		Namespace:        q.Namespace,
		RowLimit:         int32(q.RowLimit),
	}
	if len(q.AfterExecutionID) > 0 {
		id, err := uuid.FromBytes(q.AfterExecutionID)
		if err != nil {
			return nil, fmt.Errorf("lease cursor: %w", err)
		}
		params.AfterExecutionID = id
	}
	rows, err := s.q.ListExpiredLeases(ctx, params)
	if err != nil {
		return nil, err
	}
	out := make([]leaseRow, len(rows))
	for i, row := range rows {
		out[i] = leaseRow{
			PartitionKey:     int64(row.PartitionKey),
			ExecutionID:      row.ExecutionID[:],
			AttemptIndex:     int64(row.AttemptIndex),
			LeaseEpoch:       row.LeaseEpoch,
			WorkerInstanceID: row.WorkerInstanceID,
			LeaseExpiresAtMs: row.LeaseExpiresAtMs,
			Namespace:        row.Namespace,
		}
	}
	return out, nil
}

func (s postgresQueries) getLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (workerRow, bool, error) {
	row, err := s.q.GetLiveWorker(ctx, pgdb.GetLiveWorkerParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return workerRow{}, false, nil
	}
	if err != nil {
		return workerRow{}, false, err
	}
	return workerRow(row), true, nil
}

func (s postgresQueries) listDeadHolders(ctx context.Context, asOfMS int64) ([]string, error) {
	return s.q.ListDeadHolders(ctx, asOfMS)
}

// listHolderLeases reads every holder's leases in one statement, one
// round trip, whatever the number of holders.
func (s postgresQueries) listHolderLeases(ctx context.Context, q holderLeaseQuery) ([]leaseRow, error) {
	params := pgdb.ListHolderLeasesParams{
		Holders:             q.Holders,
		Namespace:           q.Namespace,
		AfterExpiresAtMs:    make([]int64, len(q.After)),
		AfterPartitions:     make([]int32, len(q.After)),
		AfterExecutionIds:   make([]uuid.UUID, len(q.After)),
		AfterAttemptIndexes: make([]int32, len(q.After)),
		RowLimit:            int32(q.PerHolder),
	}
	for i, after := range q.After {
		params.AfterExpiresAtMs[i] = after.ExpiresAtMs
		params.AfterPartitions[i] = int32(after.Partition)
		params.AfterAttemptIndexes[i] = int32(after.AttemptIndex)
		if len(after.ExecutionID) > 0 {
			id, err := uuid.FromBytes(after.ExecutionID)
			if err != nil {
				return nil, fmt.Errorf("lease cursor: %w", err)
			}
			params.AfterExecutionIds[i] = id
		}
	}
	rows, err := s.q.ListHolderLeases(ctx, params)
	if err != nil {
		return nil, err
	}
	out := make([]leaseRow, len(rows))
	for i, row := range rows {
		out[i] = leaseRow{
			PartitionKey:     int64(row.PartitionKey),
			ExecutionID:      row.ExecutionID[:],
			AttemptIndex:     int64(row.AttemptIndex),
			LeaseEpoch:       row.LeaseEpoch,
			WorkerInstanceID: row.WorkerInstanceID,
			LeaseExpiresAtMs: row.LeaseExpiresAtMs,
			Namespace:        row.Namespace,
		}
	}
	return out, nil
}

// keyColumns splits keys into the parallel arrays that the Postgres
// statements unnest.
func keyColumns(keys []instanceKey) (namespaces, instances []string) {
	namespaces = make([]string, len(keys))
	instances = make([]string, len(keys))
	for i, k := range keys {
		namespaces[i], instances[i] = k.namespace, k.instanceID
	}
	return namespaces, instances
}
