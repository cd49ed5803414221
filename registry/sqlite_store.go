package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"

	"github.com/flowfabric/workerregistry/db/sqlitedb"
)

// sqliteStore runs the registry's statements on SQLite: writes on a
// one-connection pool whose transactions are BEGIN IMMEDIATE, reads on a
// separate query-only pool. Each pool prepares a statement on its first
// use (stmtCache).
type sqliteStore struct {
	writerDB *sql.DB // at most one connection: SQLite has one writer at a time
	readerDB *sql.DB // the read pool; the same *sql.DB as writerDB when not split
	w, r     *stmtCache
	owned    bool       // close closes the databases
	gate     *writeGate // see write
	beats    beatQueue  // see heartbeat
}

func newSQLiteStore(writer, reader *sql.DB) *sqliteStore {
	s := &sqliteStore{writerDB: writer, readerDB: reader, w: newStmtCache(writer), gate: newWriteGate()}
	s.r = s.w
	if reader != writer {
		s.r = newStmtCache(reader)
	}
	return s
}

func (s *sqliteStore) reader() storeReader { return sqliteQueries{s.r.queries(nil)} }

// writer and inTx are in sqlite_write.go.

func (s *sqliteStore) close() error {
	err := s.w.close()
	if s.r != s.w {
		err = errors.Join(err, s.r.close())
	}
	if !s.owned {
		return err
	}
	err = errors.Join(err, s.writerDB.Close())
	if s.readerDB != s.writerDB {
		err = errors.Join(err, s.readerDB.Close())
	}
	return err
}

// expiryMS is last heartbeat + TTL as SQLite's cast computes it for a row
// the engine wrote: saturated at the ends of int64 rather than wrapped
// (the engine stores a TTL as an unsigned value cast to signed).
func expiryMS(heartbeatMS, ttlMS int64) int64 {
	sum := heartbeatMS + ttlMS
	switch {
	case ttlMS > 0 && sum < heartbeatMS:
		return math.MaxInt64
	case ttlMS < 0 && sum > heartbeatMS:
		return math.MinInt64
	}
	return sum
}

// ignoreDone drops the error that Rollback returns after a cancelled
// context already rolled the transaction back.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// sqliteQueries adapts the generated queries to storeReader and
// storeWriter.
type sqliteQueries struct{ q *sqlitedb.Queries }

func (sqliteQueries) lockWorkers(context.Context, []instanceKey, int64) (map[instanceKey]bool, error) {
	return nil, nil
}

func (s sqliteQueries) getWorker(ctx context.Context, k instanceKey) (registration, bool, error) {
	row, err := s.q.GetWorker(ctx, sqlitedb.GetWorkerParams{Namespace: k.namespace, WorkerInstanceID: k.instanceID})
	if errors.Is(err, sql.ErrNoRows) {
		return registration{}, false, nil
	}
	if err != nil {
		return registration{}, false, err
	}
	return registration(row), true, nil
}

func (s sqliteQueries) upsertWorker(ctx context.Context, w workerRow) error {
	return s.q.UpsertWorker(ctx, sqlitedb.UpsertWorkerParams{
		Namespace:        w.Namespace,
		WorkerInstanceID: w.WorkerInstanceID,
		WorkerID:         w.WorkerID,
		Lanes:            w.Lanes,
		CapabilitiesCsv:  w.CapabilitiesCsv,
		NowMs:            w.LastHeartbeatMs,
		LivenessTTLMs:    w.LivenessTTLMs,
		RegisteredAtMs:   w.RegisteredAtMs,
	})
}

func (s sqliteQueries) refreshLiveWorker(ctx context.Context, w workerRow) (bool, error) {
	_, err := s.q.RefreshLiveWorker(ctx, sqlitedb.RefreshLiveWorkerParams{
		Lanes:            w.Lanes,
		CapabilitiesCsv:  w.CapabilitiesCsv,
		NowMs:            w.LastHeartbeatMs,
		LivenessTTLMs:    w.LivenessTTLMs,
		Namespace:        w.Namespace,
		WorkerInstanceID: w.WorkerInstanceID,
		WorkerID:         w.WorkerID,
	})
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s sqliteQueries) heartbeatLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (heartbeatRow, bool, error) {
	// All rows (at most one), so that the statement steps to SQLITE_DONE:
	// see HeartbeatLiveWorker in queries/sqlite/workers.sql.
	rows, err := s.q.HeartbeatLiveWorker(ctx, sqlitedb.HeartbeatLiveWorkerParams{
		NowMs: nowMS, Namespace: k.namespace, WorkerInstanceID: k.instanceID,
	})
	if err != nil || len(rows) == 0 {
		return heartbeatRow{}, false, err
	}
	return heartbeatRow{Key: k, ExpiresAtMs: expiryMS(rows[0].LastHeartbeatMs, rows[0].LivenessTTLMs), Draining: rows[0].Draining}, true, nil
}

func (s sqliteQueries) heartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []instanceKey) ([]heartbeatRow, error) {
	keysJSON, err := keyArray(keys)
	if err != nil {
		return nil, err
	}
	rows, err := s.q.HeartbeatLiveWorkers(ctx, sqlitedb.HeartbeatLiveWorkersParams{NowMs: nowMS, Keys: keysJSON})
	if err != nil {
		return nil, err
	}
	out := make([]heartbeatRow, len(rows))
	for i, row := range rows {
		out[i] = heartbeatRow{
			Key:         instanceKey{row.Namespace, row.WorkerInstanceID},
			ExpiresAtMs: expiryMS(row.LastHeartbeatMs, row.LivenessTTLMs),
			Draining:    row.Draining,
		}
	}
	return out, nil
}

func (s sqliteQueries) deleteLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (bool, error) {
	n, err := s.q.DeleteLiveWorker(ctx, sqlitedb.DeleteLiveWorkerParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s sqliteQueries) requestDrain(ctx context.Context, k instanceKey, nowMS int64) (bool, error) {
	n, err := s.q.RequestDrain(ctx, sqlitedb.RequestDrainParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s sqliteQueries) resumeWorker(ctx context.Context, k instanceKey, nowMS int64) (bool, error) {
	n, err := s.q.ResumeWorker(ctx, sqlitedb.ResumeWorkerParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	return n > 0, err
}

// insertEvent records e. The engine's table keys events by (namespace,
// instance, time, kind), so an event whose key is taken moves to the next
// free millisecond rather than being lost.
func (s sqliteQueries) insertEvent(ctx context.Context, e eventRow) error {
	for at := e.EventAtMs; ; at++ {
		n, err := s.q.InsertEvent(ctx, sqlitedb.InsertEventParams{
			Namespace:        e.Namespace,
			WorkerInstanceID: e.WorkerInstanceID,
			EventKind:        e.EventKind,
			EventAtMs:        at,
			Reason:           e.Reason,
		})
		if err != nil || n > 0 {
			return err
		}
	}
}

// insertEvents records events of one kind and time as one statement; the
// few whose key is taken follow one by one (see insertEvent).
func (s sqliteQueries) insertEvents(ctx context.Context, kind string, atMS int64, keys []instanceKey) error {
	keysJSON, err := keyArray(keys)
	if err != nil {
		return err
	}
	rows, err := s.q.InsertEvents(ctx, sqlitedb.InsertEventsParams{EventKind: kind, EventAtMs: atMS, Keys: keysJSON})
	if err != nil || len(rows) == len(keys) {
		return err
	}
	written := make(map[instanceKey]bool, len(rows))
	for _, row := range rows {
		written[instanceKey{row.Namespace, row.WorkerInstanceID}] = true
	}
	for _, k := range keys {
		if !written[k] {
			if err := s.insertEvent(ctx, eventRow{Namespace: k.namespace, WorkerInstanceID: k.instanceID, EventKind: kind, EventAtMs: atMS + 1}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweepExpiredWorkers removes one sweep batch of at most limit rows not
// live at nowMS and records a ttl_swept event for each (q must be a
// transaction's), with set-based
// statements that keep the rows' keys inside SQLite: the events are
// inserted from the expired rows, then the same rows are deleted. An
// event whose key is taken moves to the next free millisecond, as in
// insertEvent; finding those costs a probe of each row of a batch that
// wrote fewer events than limit (the last one of a sweep), and nothing
// otherwise.
func (s sqliteQueries) sweepExpiredWorkers(ctx context.Context, nowMS int64, limit int) (int, error) {
	res, err := s.q.InsertSweepEvents(ctx, sqlitedb.InsertSweepEventsParams{EventKind: eventTTLSwept, NowMs: nowMS, BatchSize: int64(limit)})
	if err != nil {
		return 0, err
	}
	written, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if written < int64(limit) {
		// The events just written are the newest rowids; any event at
		// this key before them is one that made the insert skip a row.
		before := int64(math.MaxInt64)
		if written > 0 {
			last, err := res.LastInsertId()
			if err != nil {
				return 0, err
			}
			before = last - written
		}
		taken, err := s.q.ListSweepConflicts(ctx, sqlitedb.ListSweepConflictsParams{
			NowMs: nowMS, BatchSize: int64(limit), EventKind: eventTTLSwept, BeforeID: before,
		})
		if err != nil {
			return 0, err
		}
		for _, k := range taken {
			if err := s.insertEvent(ctx, eventRow{Namespace: k.Namespace, WorkerInstanceID: k.WorkerInstanceID, EventKind: eventTTLSwept, EventAtMs: nowMS + 1}); err != nil {
				return 0, err
			}
		}
	}
	n, err := s.q.DeleteSweepBatch(ctx, sqlitedb.DeleteSweepBatchParams{NowMs: nowMS, BatchSize: int64(limit)})
	return int(n), err
}

func (s sqliteQueries) deleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (int64, error) {
	return s.q.DeleteEventsBefore(ctx, sqlitedb.DeleteEventsBeforeParams{BeforeMs: beforeMS, BatchSize: int64(limit)})
}

func (s sqliteQueries) listWorkers(ctx context.Context, q workerQuery) ([]workerRow, error) {
	if q.Namespace == "" {
		rows, err := s.q.ListLiveWorkers(ctx, sqlitedb.ListLiveWorkersParams{
			AfterNamespace:  q.AfterNamespace,
			AfterInstanceID: q.AfterInstance,
			NowMs:           q.NowMs,
			Lane:            q.Lane,
			Capability:      q.Capability,
			RowLimit:        int64(q.RowLimit),
		})
		return mapRows(rows, err, func(r sqlitedb.ListLiveWorkersRow) workerRow { return workerRow(r) })
	}
	rows, err := s.q.ListLiveWorkersInNamespace(ctx, sqlitedb.ListLiveWorkersInNamespaceParams{
		Namespace:       q.Namespace,
		AfterInstanceID: q.AfterInstance,
		NowMs:           q.NowMs,
		Lane:            q.Lane,
		Capability:      q.Capability,
		RowLimit:        int64(q.RowLimit),
	})
	return mapRows(rows, err, func(r sqlitedb.ListLiveWorkersInNamespaceRow) workerRow { return workerRow(r) })
}

func (s sqliteQueries) listEvents(ctx context.Context, q eventQuery) ([]eventRow, error) {
	limit := int64(q.RowLimit)
	switch {
	case q.Namespace == "" && !q.NewestFirst:
		rows, err := s.q.ListAllEventsAsc(ctx, sqlitedb.ListAllEventsAscParams{AfterID: q.After, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListAllEventsAscRow) eventRow { return eventRow(r) })
	case q.Namespace == "":
		rows, err := s.q.ListAllEventsDesc(ctx, sqlitedb.ListAllEventsDescParams{BeforeID: q.Before, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListAllEventsDescRow) eventRow { return eventRow(r) })
	case q.Instance == "" && !q.NewestFirst:
		rows, err := s.q.ListEventsAsc(ctx, sqlitedb.ListEventsAscParams{Namespace: q.Namespace, AfterID: q.After, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListEventsAscRow) eventRow { return eventRow(r) })
	case q.Instance == "":
		rows, err := s.q.ListEventsDesc(ctx, sqlitedb.ListEventsDescParams{Namespace: q.Namespace, BeforeID: q.Before, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListEventsDescRow) eventRow { return eventRow(r) })
	case !q.NewestFirst:
		rows, err := s.q.ListInstanceEventsAsc(ctx, sqlitedb.ListInstanceEventsAscParams{
			Namespace: q.Namespace, WorkerInstanceID: q.Instance, AfterID: q.After, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListInstanceEventsAscRow) eventRow { return eventRow(r) })
	default:
		rows, err := s.q.ListInstanceEventsDesc(ctx, sqlitedb.ListInstanceEventsDescParams{
			Namespace: q.Namespace, WorkerInstanceID: q.Instance, BeforeID: q.Before, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListInstanceEventsDescRow) eventRow { return eventRow(r) })
	}
}

// mapRows converts generated rows, whose fields match the store's row
// type, through conv (a type conversion: Go has none over type
// parameters).
func mapRows[T, R any](rows []T, err error, conv func(T) R) ([]R, error) {
	if err != nil {
		return nil, err
	}
	out := make([]R, len(rows))
	for i, r := range rows {
		out[i] = conv(r)
	}
	return out, nil
}

func (s sqliteQueries) listExpiredLeases(ctx context.Context, q leaseQuery) ([]leaseRow, error) {
	rows, err := s.q.ListExpiredLeases(ctx, sqlitedb.ListExpiredLeasesParams{
		AsOfMs:            q.AsOfMs,
		AfterExpiresAtMs:  q.AfterExpiresAtMs,
		AfterPartition:    &q.AfterPartition,
		AfterExecutionID:  q.AfterExecutionID,
		AfterAttemptIndex: &q.AfterAttemptIndex,
		Namespace:         q.Namespace,
		RowLimit:          int64(q.RowLimit),
	})
	return mapRows(rows, err, func(r sqlitedb.ListExpiredLeasesRow) leaseRow { return leaseRow(r) })
}

func (s sqliteQueries) getLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (workerRow, bool, error) {
	row, err := s.q.GetLiveWorker(ctx, sqlitedb.GetLiveWorkerParams{
		Namespace: k.namespace, WorkerInstanceID: k.instanceID, NowMs: nowMS,
	})
	if errors.Is(err, sql.ErrNoRows) {
		return workerRow{}, false, nil
	}
	if err != nil {
		return workerRow{}, false, err
	}
	return workerRow(row), true, nil
}

func (s sqliteQueries) listDeadHolders(ctx context.Context, asOfMS int64) ([]string, error) {
	return s.q.ListDeadHolders(ctx, asOfMS)
}

// listHolderLeases runs one statement per holder: in process, a statement
// costs microseconds, and one per holder keeps each a range scan of the
// holder's index entries.
func (s sqliteQueries) listHolderLeases(ctx context.Context, q holderLeaseQuery) ([]leaseRow, error) {
	var out []leaseRow
	for i, holder := range q.Holders {
		after := q.After[i]
		rows, err := s.q.ListHolderLeases(ctx, sqlitedb.ListHolderLeasesParams{
			Holder:            holder,
			AfterExpiresAtMs:  after.ExpiresAtMs,
			AfterPartition:    &after.Partition,
			AfterExecutionID:  after.ExecutionID,
			AfterAttemptIndex: &after.AttemptIndex,
			Namespace:         q.Namespace,
			RowLimit:          int64(q.PerHolder),
		})
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			out = append(out, leaseRow(row))
		}
	}
	return out, nil
}

// keyArray encodes keys as the JSON array of [namespace, instance] pairs
// that the SQLite statements unpack with json_each.
func keyArray(keys []instanceKey) (string, error) {
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.namespace, k.instanceID}
	}
	b, err := json.Marshal(pairs)
	return string(b), err
}
