package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"

	"github.com/flowfabric/workerregistry/db/sqlitedb"
	"github.com/flowfabric/workerregistry/internal/store"
)

// Store runs the registry's statements on SQLite: writes on a
// one-connection pool whose transactions are BEGIN IMMEDIATE, reads on a
// separate query-only pool. Each pool prepares a statement on its first
// use (stmtCache).
type Store struct {
	writerDB *sql.DB // at most one connection: SQLite has one writer at a time
	readerDB *sql.DB // the read pool; the same *sql.DB as writerDB when not split
	w, r     *stmtCache
	owned    bool       // close closes the databases
	readOnly bool       // writes fail with ErrReadOnly: see OpenFileReadOnly
	gate     *writeGate // see write
	beats    beatQueue  // see heartbeat
}

// New returns a store whose writes go through writer, a pool of one
// connection with immediate transactions (WriterDSN), and whose reads go
// through reader, which may be writer itself. Close closes both when
// owned.
func New(writer, reader *sql.DB, owned bool) *Store {
	s := &Store{writerDB: writer, readerDB: reader, w: newStmtCache(writer), gate: newWriteGate(), owned: owned}
	s.r = s.w
	if reader != writer {
		s.r = newStmtCache(reader)
	}
	return s
}

func (s *Store) Reader() store.Reader { return sqliteQueries{s.r.queries(nil)} }

// writer and inTx are in sqlite_write.go.

func (s *Store) Close() error {
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

// sqliteQueries adapts the generated queries to store.Reader and
// store.Writer.
type sqliteQueries struct{ q *sqlitedb.Queries }

var (
	_ store.Store         = (*Store)(nil)
	_ store.Reader        = sqliteQueries{}
	_ store.Writer        = sqliteQueries{}
	_ store.LiveRefresher = sqliteQueries{} // the registry's one-statement re-register
	_ store.Writer        = sqliteAutocommit{}
)

func (sqliteQueries) LockWorkers(context.Context, []store.InstanceKey, int64) (map[store.InstanceKey]bool, error) {
	return nil, nil
}

func (s sqliteQueries) GetWorker(ctx context.Context, k store.InstanceKey) (store.Registration, bool, error) {
	row, err := s.q.GetWorker(ctx, sqlitedb.GetWorkerParams{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Registration{}, false, nil
	}
	if err != nil {
		return store.Registration{}, false, err
	}
	return store.Registration(row), true, nil
}

func (s sqliteQueries) UpsertWorker(ctx context.Context, w store.WorkerRow) error {
	return s.q.UpsertWorker(ctx, sqlitedb.UpsertWorkerParams{
		Namespace:        w.Namespace,
		WorkerInstanceID: w.WorkerInstanceID,
		WorkerID:         w.WorkerID,
		Lanes:            w.Lanes,
		CapabilitiesCsv:  w.CapabilitiesCsv,
		NowMs:            w.LastHeartbeatMs,
		LivenessTTLMs:    w.LivenessTTLMs,
		RegisteredAtMs:   w.RegisteredAtMs,
		ReportInFlight:   w.ReportInFlight,
		ReportCapacity:   w.ReportCapacity,
		ReportVersion:    w.ReportVersion,
	})
}

func (s sqliteQueries) RefreshLiveWorker(ctx context.Context, w store.WorkerRow) (bool, error) {
	_, err := s.q.RefreshLiveWorker(ctx, sqlitedb.RefreshLiveWorkerParams{
		Lanes:            w.Lanes,
		CapabilitiesCsv:  w.CapabilitiesCsv,
		NowMs:            w.LastHeartbeatMs,
		LivenessTTLMs:    w.LivenessTTLMs,
		ReportInFlight:   w.ReportInFlight,
		ReportCapacity:   w.ReportCapacity,
		ReportVersion:    w.ReportVersion,
		Namespace:        w.Namespace,
		WorkerInstanceID: w.WorkerInstanceID,
		WorkerID:         w.WorkerID,
	})
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s sqliteQueries) HeartbeatLiveWorker(ctx context.Context, k store.InstanceKey, rep *store.Report, nowMS int64) (store.HeartbeatRow, bool, error) {
	// All rows (at most one), so that the statement steps to SQLITE_DONE:
	// see HeartbeatLiveWorker in queries/sqlite/workers.sql.
	inFlight, capacity, version := rep.Columns()
	rows, err := s.q.HeartbeatLiveWorker(ctx, sqlitedb.HeartbeatLiveWorkerParams{
		NowMs: nowMS, Namespace: k.Namespace, WorkerInstanceID: k.InstanceID,
		ReportInFlight: inFlight, ReportCapacity: capacity, ReportVersion: version,
	})
	if err != nil || len(rows) == 0 {
		return store.HeartbeatRow{}, false, err
	}
	return store.HeartbeatRow{Key: k, ExpiresAtMs: expiryMS(rows[0].LastHeartbeatMs, rows[0].LivenessTTLMs), Draining: rows[0].Draining}, true, nil
}

func (s sqliteQueries) HeartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []store.InstanceKey, reports []*store.Report) ([]store.HeartbeatRow, error) {
	keysJSON, err := beatArray(keys, reports)
	if err != nil {
		return nil, err
	}
	rows, err := s.q.HeartbeatLiveWorkers(ctx, sqlitedb.HeartbeatLiveWorkersParams{NowMs: nowMS, Keys: keysJSON})
	if err != nil {
		return nil, err
	}
	out := make([]store.HeartbeatRow, len(rows))
	for i, row := range rows {
		out[i] = store.HeartbeatRow{
			Key:         store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID},
			ExpiresAtMs: expiryMS(row.LastHeartbeatMs, row.LivenessTTLMs),
			Draining:    row.Draining,
		}
	}
	return out, nil
}

func (s sqliteQueries) DeleteLiveWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (bool, error) {
	n, err := s.q.DeleteLiveWorker(ctx, sqlitedb.DeleteLiveWorkerParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s sqliteQueries) RequestDrain(ctx context.Context, k store.InstanceKey, nowMS int64) (bool, error) {
	n, err := s.q.RequestDrain(ctx, sqlitedb.RequestDrainParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s sqliteQueries) ResumeWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (bool, error) {
	n, err := s.q.ResumeWorker(ctx, sqlitedb.ResumeWorkerParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	return n > 0, err
}

// InsertEvent records e. The engine's table keys events by (namespace,
// instance, time, kind), so an event whose key is taken moves to the next
// free millisecond rather than being lost.
func (s sqliteQueries) InsertEvent(ctx context.Context, e store.EventRow) error {
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

// InsertEvents records events of one kind and time as one statement; the
// few whose key is taken follow one by one (see insertEvent).
func (s sqliteQueries) InsertEvents(ctx context.Context, kind string, atMS int64, keys []store.InstanceKey) error {
	keysJSON, err := keyArray(keys)
	if err != nil {
		return err
	}
	rows, err := s.q.InsertEvents(ctx, sqlitedb.InsertEventsParams{EventKind: kind, EventAtMs: atMS, Keys: keysJSON})
	if err != nil || len(rows) == len(keys) {
		return err
	}
	written := make(map[store.InstanceKey]bool, len(rows))
	for _, row := range rows {
		written[store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID}] = true
	}
	for _, k := range keys {
		if !written[k] {
			if err := s.InsertEvent(ctx, store.EventRow{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, EventKind: kind, EventAtMs: atMS + 1}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s sqliteQueries) SetDrainDirective(ctx context.Context, k store.InstanceKey, draining bool, nowMS int64) error {
	return s.q.SetDrainDirective(ctx, sqlitedb.SetDrainDirectiveParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, Draining: draining, NowMs: nowMS,
	})
}

func (s sqliteQueries) RecordKill(ctx context.Context, k store.InstanceKey, nowMS int64, reason *string) error {
	return s.q.RecordKill(ctx, sqlitedb.RecordKillParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS, Reason: reason,
	})
}

func (s sqliteQueries) GetKill(ctx context.Context, k store.InstanceKey) (store.Kill, bool, error) {
	row, err := s.q.GetKill(ctx, sqlitedb.GetKillParams{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Kill{}, false, nil
	}
	if err != nil {
		return store.Kill{}, false, err
	}
	return store.Kill{AtMs: row.KilledAtMs, Reason: row.KillReason}, true, nil
}

func (s sqliteQueries) PruneDirectives(ctx context.Context, drainBeforeMS, killBeforeMS int64) (int64, error) {
	return s.q.PruneDirectives(ctx, sqlitedb.PruneDirectivesParams{DrainBeforeMs: drainBeforeMS, KillBeforeMs: killBeforeMS})
}

func (s sqliteQueries) DeleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (int64, error) {
	return s.q.DeleteEventsBefore(ctx, sqlitedb.DeleteEventsBeforeParams{BeforeMs: beforeMS, BatchSize: int64(limit)})
}

func (s sqliteQueries) ListWorkers(ctx context.Context, q store.WorkerQuery) ([]store.WorkerRow, error) {
	if q.Namespace == "" {
		rows, err := s.q.ListLiveWorkers(ctx, sqlitedb.ListLiveWorkersParams{
			AfterNamespace:  q.AfterNamespace,
			AfterInstanceID: q.AfterInstance,
			NowMs:           q.NowMs,
			Lane:            q.Lane,
			Capability:      q.Capability,
			RowLimit:        int64(q.RowLimit),
		})
		return mapRows(rows, err, func(r sqlitedb.ListLiveWorkersRow) store.WorkerRow { return store.WorkerRow(r) })
	}
	rows, err := s.q.ListLiveWorkersInNamespace(ctx, sqlitedb.ListLiveWorkersInNamespaceParams{
		Namespace:       q.Namespace,
		AfterInstanceID: q.AfterInstance,
		NowMs:           q.NowMs,
		Lane:            q.Lane,
		Capability:      q.Capability,
		RowLimit:        int64(q.RowLimit),
	})
	return mapRows(rows, err, func(r sqlitedb.ListLiveWorkersInNamespaceRow) store.WorkerRow { return store.WorkerRow(r) })
}

func (s sqliteQueries) ListEvents(ctx context.Context, q store.EventQuery) ([]store.EventRow, error) {
	limit := int64(q.RowLimit)
	switch {
	case q.Namespace == "" && !q.NewestFirst:
		rows, err := s.q.ListAllEventsAsc(ctx, sqlitedb.ListAllEventsAscParams{AfterID: q.After, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListAllEventsAscRow) store.EventRow { return store.EventRow(r) })
	case q.Namespace == "":
		rows, err := s.q.ListAllEventsDesc(ctx, sqlitedb.ListAllEventsDescParams{BeforeID: q.Before, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListAllEventsDescRow) store.EventRow { return store.EventRow(r) })
	case q.Instance == "" && !q.NewestFirst:
		rows, err := s.q.ListEventsAsc(ctx, sqlitedb.ListEventsAscParams{Namespace: q.Namespace, AfterID: q.After, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListEventsAscRow) store.EventRow { return store.EventRow(r) })
	case q.Instance == "":
		rows, err := s.q.ListEventsDesc(ctx, sqlitedb.ListEventsDescParams{Namespace: q.Namespace, BeforeID: q.Before, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListEventsDescRow) store.EventRow { return store.EventRow(r) })
	case !q.NewestFirst:
		rows, err := s.q.ListInstanceEventsAsc(ctx, sqlitedb.ListInstanceEventsAscParams{
			Namespace: q.Namespace, WorkerInstanceID: q.Instance, AfterID: q.After, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListInstanceEventsAscRow) store.EventRow { return store.EventRow(r) })
	default:
		rows, err := s.q.ListInstanceEventsDesc(ctx, sqlitedb.ListInstanceEventsDescParams{
			Namespace: q.Namespace, WorkerInstanceID: q.Instance, BeforeID: q.Before, RowLimit: limit})
		return mapRows(rows, err, func(r sqlitedb.ListInstanceEventsDescRow) store.EventRow { return store.EventRow(r) })
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

func (s sqliteQueries) ListExpiredLeases(ctx context.Context, q store.LeaseQuery) ([]store.LeaseRow, error) {
	rows, err := s.q.ListExpiredLeases(ctx, sqlitedb.ListExpiredLeasesParams{
		AsOfMs:            q.AsOfMs,
		AfterExpiresAtMs:  q.AfterExpiresAtMs,
		AfterPartition:    &q.AfterPartition,
		AfterExecutionID:  q.AfterExecutionID,
		AfterAttemptIndex: &q.AfterAttemptIndex,
		Namespace:         q.Namespace,
		RowLimit:          int64(q.RowLimit),
	})
	return mapRows(rows, err, func(r sqlitedb.ListExpiredLeasesRow) store.LeaseRow { return store.LeaseRow(r) })
}

func (s sqliteQueries) GetLiveWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (store.WorkerRow, bool, error) {
	row, err := s.q.GetLiveWorker(ctx, sqlitedb.GetLiveWorkerParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.WorkerRow{}, false, nil
	}
	if err != nil {
		return store.WorkerRow{}, false, err
	}
	return store.WorkerRow(row), true, nil
}

func (s sqliteQueries) ListDeadHolders(ctx context.Context, asOfMS int64) ([]string, error) {
	return s.q.ListDeadHolders(ctx, asOfMS)
}

// ListHolderLeases runs one statement per holder: in process, a statement
// costs microseconds, and one per holder keeps each a range scan of the
// holder's index entries.
func (s sqliteQueries) ListHolderLeases(ctx context.Context, q store.HolderLeaseQuery) ([]store.LeaseRow, error) {
	var out []store.LeaseRow
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
			out = append(out, store.LeaseRow(row))
		}
	}
	return out, nil
}

// beatArray encodes a batch's heartbeats as the JSON array that
// HeartbeatLiveWorkers unpacks: [namespace, instance] for a heartbeat
// without a report, [namespace, instance, in_flight, capacity, version]
// with one. reports is nil or parallel to keys.
func beatArray(keys []store.InstanceKey, reports []*store.Report) (string, error) {
	if reports == nil {
		return keyArray(keys)
	}
	beats := make([][]any, len(keys))
	for i, k := range keys {
		if r := reports[i]; r != nil {
			beats[i] = []any{k.Namespace, k.InstanceID, r.InFlight, r.Capacity, r.Version}
		} else {
			beats[i] = []any{k.Namespace, k.InstanceID}
		}
	}
	b, err := json.Marshal(beats)
	return string(b), err
}

// keyArray encodes keys as the JSON array of [namespace, instance] pairs
// that the SQLite statements unpack with json_each.
func keyArray(keys []store.InstanceKey) (string, error) {
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.Namespace, k.InstanceID}
	}
	b, err := json.Marshal(pairs)
	return string(b), err
}
