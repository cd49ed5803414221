package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/db/pgdb"
	"github.com/flowfabric/workerregistry/internal/store"
)

// Store runs the registry's statements on a pgx pool, on
// FlowFabric's partitioned tables. Postgres has row locks and many
// concurrent writers, so unlike SQLite nothing serialises write
// transactions: the statements carry the locks. Every writer locks rows
// first (getWorker's advisory lock on the key and FOR UPDATE, lockWorkers
// in key order, the sweep's SKIP LOCKED) and takes the audit-log lock last,
// at its first event (the event ID's column default), as the engine's own
// statements do; so no lock order can deadlock, with each other or with
// the engine.
type Store struct {
	pool   *pgxpool.Pool
	q      *pgdb.Queries
	owned  bool       // close closes the pool
	sweeps sweepPlans // see SweepExpired
}

// New returns a store on pool; Close closes the pool when owned.
func New(pool *pgxpool.Pool, owned bool) *Store {
	return &Store{pool: pool, q: pgdb.New(pool), owned: owned}
}

func (s *Store) Reader() store.Reader { return postgresQueries{q: s.q, pool: s.pool} }
func (s *Store) Writer() store.Writer { return postgresQueries{q: s.q, pool: s.pool} }

// InTx runs fn in a READ COMMITTED transaction, which is enough because
// every read that a write depends on locks what it read first. It is asked
// for by name: under a server whose default is REPEATABLE READ or
// SERIALIZABLE, the snapshot would predate the locks' waits, and a
// register that lost a race would fail with a serialization error instead
// of seeing the winner's row.
func (s *Store) InTx(ctx context.Context, fn func(store.Writer) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		return fn(postgresQueries{q: s.q.WithTx(tx)})
	})
}

// HeartbeatAt first tries the heartbeat as one statement, at the time
// read just before it: if the row's lock is free, that time is the
// lock's, give or take a network hop. If another transaction holds the
// lock, the statement fails at once (NOWAIT) instead of waiting, and the
// heartbeat waits for the lock in a transaction, then reads the time. The
// statement costs a few percent more than a plain UPDATE; locking first
// in a transaction every time would cost three times as much (measured).
func (s *Store) HeartbeatAt(ctx context.Context, k store.InstanceKey, rep *store.Report, now func() int64) (store.HeartbeatRow, bool, error) {
	inFlight, capacity, version := reportParams(rep)
	row, err := s.q.HeartbeatLiveWorkerNoWait(ctx, pgdb.HeartbeatLiveWorkerNoWaitParams{
		NowMs: now(), PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID,
		ReportInFlight: inFlight, ReportCapacity: capacity, ReportVersion: version,
	})
	switch {
	case err == nil:
		return store.HeartbeatRow{Key: k, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining}, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return store.HeartbeatRow{}, false, nil
	case !isLockNotAvailable(err):
		return store.HeartbeatRow{}, false, err
	}
	var res store.HeartbeatRow
	var found bool
	err = s.InTx(ctx, func(q store.Writer) error {
		res, found = store.HeartbeatRow{}, false
		prev, ok, err := q.GetWorker(ctx, k) // FOR UPDATE: waits for the lock
		if err != nil || !ok {
			return err
		}
		nowMS := now()
		if prev.ExpiresAtMs <= nowMS {
			return nil
		}
		res, found, err = q.HeartbeatLiveWorker(ctx, k, rep, nowMS)
		return err
	})
	return res, found, err
}

func (s *Store) BatchChunk() int              { return chunkSize }
func (s *Store) TookChunk(int, time.Duration) {}

// chunkSize is how many heartbeats one transaction of a batch writes
// (SQLite sizes its chunks by time). Postgres has no write lock to share,
// so chunks only bound how many rows one transaction holds.
const chunkSize = 500

// isLockNotAvailable reports Postgres's lock_not_available, which NOWAIT
// raises.
func isLockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

func (s *Store) Close() error {
	if s.owned {
		s.pool.Close()
	}
	return nil
}

// postgresQueries adapts the generated queries to store.Reader and
// store.Writer. pool is set where the queries run outside a transaction.
type postgresQueries struct {
	q    *pgdb.Queries
	pool *pgxpool.Pool
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Reader = postgresQueries{}
	_ store.Writer = postgresQueries{}
)

// withGenericPlan runs fn in a transaction whose prepared statements use
// generic plans, without JIT. A statement over every partition (a sweep or
// prune batch, a listing, a lease walk) costs milliseconds to over a
// hundred to plan for its parameters, and Postgres plans the first five
// runs of each on each connection that way before it may settle on a
// generic plan (without table statistics, never), which is planned once
// per connection and prunes partitions as it runs.
func (s postgresQueries) withGenericPlan(ctx context.Context, fn func(q *pgdb.Queries) error) error {
	if s.pool == nil {
		return fn(s.q) // in the caller's transaction
	}
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// Without table statistics, a generic plan over every partition is
		// estimated to cost millions, which makes Postgres compile it with
		// JIT first: 22 s for a lease walk whose execution took 4 ms
		// (measured on FlowFabric's tables, jit on as Debian ships it).
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL jit = off"); err != nil {
			return err
		}
		return fn(s.q.WithTx(tx))
	})
}

// setBatch is the number of keys from which a batch's statements are one
// statement for all of them (a join of the keys to every partition, with a
// generic plan) rather than one statement a key (each touching one
// partition, all sent in one round trip). Measured: 10 keys, 138 µs a
// heartbeat one a key, 373 µs set-based; 100 keys, 86 µs and 50 µs.
const setBatch = 32

// LockWorkers locks the live rows of keys in key order.
func (s postgresQueries) LockWorkers(ctx context.Context, keys []store.InstanceKey, minNowMS int64) (map[store.InstanceKey]bool, error) {
	if len(keys) >= setBatch {
		if _, err := s.q.UseGenericPlans(ctx); err != nil {
			return nil, err
		}
		partitions, namespaces, instances := keyColumns(keys)
		rows, err := s.q.LockWorkers(ctx, pgdb.LockWorkersParams{
			PartitionKeys: partitions, Namespaces: namespaces, InstanceIds: instances, MinNowMs: minNowMS,
		})
		if err != nil {
			return nil, err
		}
		live := make(map[store.InstanceKey]bool, len(rows))
		for _, row := range rows {
			live[store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID}] = true
		}
		return live, nil
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b store.InstanceKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.InstanceID, b.InstanceID))
	})
	sorted = slices.Compact(sorted)
	params := make([]pgdb.LockWorkerBatchParams, len(sorted))
	for i, k := range sorted {
		params[i] = pgdb.LockWorkerBatchParams{
			PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, MinNowMs: minNowMS,
		}
	}
	live := make(map[store.InstanceKey]bool, len(sorted))
	var firstErr error
	s.q.LockWorkerBatch(ctx, params).QueryRow(func(i int, row pgdb.LockWorkerBatchRow, err error) {
		switch {
		case err == nil:
			live[sorted[i]] = true
		case !errors.Is(err, pgx.ErrNoRows) && firstErr == nil:
			firstErr = err
		}
	})
	return live, firstErr
}

func (s postgresQueries) GetWorker(ctx context.Context, k store.InstanceKey) (store.Registration, bool, error) {
	if err := s.q.LockWorkerKey(ctx, pgdb.LockWorkerKeyParams{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID}); err != nil {
		return store.Registration{}, false, err
	}
	row, err := s.q.GetWorker(ctx, pgdb.GetWorkerParams{
		PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Registration{}, false, nil
	}
	if err != nil {
		return store.Registration{}, false, err
	}
	return store.Registration{
		WorkerID: row.WorkerID, RegisteredAtMs: row.RegisteredAtMs, ExpiresAtMs: row.ExpiresAtMs,
		ReportInFlight: int64Ptr(row.ReportInFlight), ReportCapacity: int64Ptr(row.ReportCapacity), ReportVersion: row.ReportVersion,
	}, true, nil
}

func (s postgresQueries) UpsertWorker(ctx context.Context, w store.WorkerRow) error {
	// Lanes are sorted and de-duplicated, as the engine stores them.
	return s.q.UpsertWorker(ctx, pgdb.UpsertWorkerParams{
		PartitionKey:     partitionKey(w.WorkerInstanceID),
		Namespace:        w.Namespace,
		WorkerInstanceID: w.WorkerInstanceID,
		WorkerID:         w.WorkerID,
		Lanes:            strings.Split(w.Lanes, ","),
		CapabilitiesCsv:  w.CapabilitiesCsv,
		NowMs:            w.LastHeartbeatMs,
		LivenessTTLMs:    w.LivenessTTLMs,
		RegisteredAtMs:   w.RegisteredAtMs,
		ReportInFlight:   int32Ptr(w.ReportInFlight),
		ReportCapacity:   int32Ptr(w.ReportCapacity),
		ReportVersion:    w.ReportVersion,
	})
}

func (s postgresQueries) HeartbeatLiveWorker(ctx context.Context, k store.InstanceKey, rep *store.Report, nowMS int64) (store.HeartbeatRow, bool, error) {
	inFlight, capacity, version := reportParams(rep)
	row, err := s.q.HeartbeatLiveWorker(ctx, pgdb.HeartbeatLiveWorkerParams{
		NowMs: nowMS, PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID,
		ReportInFlight: inFlight, ReportCapacity: capacity, ReportVersion: version,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.HeartbeatRow{}, false, nil
	}
	if err != nil {
		return store.HeartbeatRow{}, false, err
	}
	return store.HeartbeatRow{Key: k, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining}, true, nil
}

// HeartbeatLiveWorkers refreshes the live rows of keys (see setBatch).
func (s postgresQueries) HeartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []store.InstanceKey, reports []*store.Report) ([]store.HeartbeatRow, error) {
	if len(keys) >= setBatch {
		// lockWorkers, called first in the transaction, set generic plans.
		partitions, namespaces, instances := keyColumns(keys)
		params := pgdb.HeartbeatLiveWorkersParams{
			NowMs: nowMS, PartitionKeys: partitions, Namespaces: namespaces, InstanceIds: instances,
		}
		if reports != nil {
			// Parallel arrays; NULL arrays (none in the batch) keep every
			// stored report.
			params.Reported = make([]bool, len(keys))
			params.InFlights = make([]int32, len(keys))
			params.Capacities = make([]int32, len(keys))
			params.Versions = make([]string, len(keys))
			for i, r := range reports {
				if r != nil {
					params.Reported[i] = true
					params.InFlights[i], params.Capacities[i], params.Versions[i] = int32(r.InFlight), int32(r.Capacity), r.Version
				}
			}
		}
		rows, err := s.q.HeartbeatLiveWorkers(ctx, params)
		out := make([]store.HeartbeatRow, len(rows))
		for i, row := range rows {
			out[i] = store.HeartbeatRow{Key: store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID}, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining}
		}
		return out, err
	}
	params := make([]pgdb.HeartbeatLiveWorkerBatchParams, 0, len(keys))
	seen := make(map[store.InstanceKey]bool, len(keys))
	for i, k := range keys {
		if !seen[k] {
			seen[k] = true
			var rep *store.Report
			if reports != nil {
				rep = reports[i]
			}
			inFlight, capacity, version := reportParams(rep)
			params = append(params, pgdb.HeartbeatLiveWorkerBatchParams{
				NowMs: nowMS, PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID,
				ReportInFlight: inFlight, ReportCapacity: capacity, ReportVersion: version,
			})
		}
	}
	var out []store.HeartbeatRow
	var firstErr error
	s.q.HeartbeatLiveWorkerBatch(ctx, params).QueryRow(func(_ int, row pgdb.HeartbeatLiveWorkerBatchRow, err error) {
		switch {
		case err == nil:
			out = append(out, store.HeartbeatRow{Key: store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID}, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining})
		case !errors.Is(err, pgx.ErrNoRows) && firstErr == nil:
			firstErr = err
		}
	})
	return out, firstErr
}

func (s postgresQueries) DeleteLiveWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (bool, error) {
	n, err := s.q.DeleteLiveWorker(ctx, pgdb.DeleteLiveWorkerParams{
		PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s postgresQueries) RequestDrain(ctx context.Context, k store.InstanceKey, nowMS int64) (bool, error) {
	n, err := s.q.RequestDrain(ctx, pgdb.RequestDrainParams{
		PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	return n > 0, err
}

func (s postgresQueries) ResumeWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (bool, error) {
	n, err := s.q.ResumeWorker(ctx, pgdb.ResumeWorkerParams{
		PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	return n > 0, err
}

// InsertEvent records e. The engine's table keys events by (instance, time,
// kind), so an event whose key is taken moves to the next free millisecond
// rather than being lost; a racing insert of the same key waits for the
// other to commit and then finds it taken.
func (s postgresQueries) InsertEvent(ctx context.Context, e store.EventRow) error {
	pk := partitionKey(e.WorkerInstanceID)
	for at := e.EventAtMs; ; at++ {
		n, err := s.q.InsertEvent(ctx, pgdb.InsertEventParams{
			PartitionKey:     pk,
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
func (s postgresQueries) InsertEvents(ctx context.Context, kind string, atMS int64, keys []store.InstanceKey) error {
	partitions, namespaces, instances := keyColumns(keys)
	rows, err := s.q.InsertEvents(ctx, pgdb.InsertEventsParams{
		EventKind: kind, EventAtMs: atMS, PartitionKeys: partitions, Namespaces: namespaces, InstanceIds: instances,
	})
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

func (s postgresQueries) SetDrainDirective(ctx context.Context, k store.InstanceKey, draining bool, nowMS int64) error {
	return s.q.SetDrainDirective(ctx, pgdb.SetDrainDirectiveParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, Draining: draining, NowMs: nowMS,
	})
}

func (s postgresQueries) RecordKill(ctx context.Context, k store.InstanceKey, nowMS int64, reason *string) error {
	return s.q.RecordKill(ctx, pgdb.RecordKillParams{
		Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS, Reason: reason,
	})
}

func (s postgresQueries) GetKill(ctx context.Context, k store.InstanceKey) (store.Kill, bool, error) {
	row, err := s.q.GetKill(ctx, pgdb.GetKillParams{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Kill{}, false, nil
	}
	if err != nil {
		return store.Kill{}, false, err
	}
	return store.Kill{AtMs: row.KilledAtMs, Reason: row.KillReason}, true, nil
}

func (s postgresQueries) PruneDirectives(ctx context.Context, drainBeforeMS, killBeforeMS int64) (int64, error) {
	return s.q.PruneDirectives(ctx, pgdb.PruneDirectivesParams{DrainBeforeMs: drainBeforeMS, KillBeforeMs: killBeforeMS})
}

// DeleteEventsBefore probes first, as sweepExpiredWorkers does.
func (s postgresQueries) DeleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (n int64, err error) {
	if found, err := s.q.AnyEventBefore(ctx, beforeMS); err != nil || !found {
		return 0, err
	}
	err = s.withGenericPlan(ctx, func(q *pgdb.Queries) (err error) {
		n, err = q.DeleteEventsBefore(ctx, pgdb.DeleteEventsBeforeParams{BeforeMs: beforeMS, BatchSize: int64(limit)})
		return err
	})
	return n, err
}

func (s postgresQueries) ListWorkers(ctx context.Context, q store.WorkerQuery) ([]store.WorkerRow, error) {
	var rows []pgdb.ListLiveWorkersRow
	// Every partition: see withGenericPlan.
	err := s.withGenericPlan(ctx, func(pq *pgdb.Queries) (err error) {
		if q.Namespace == "" {
			rows, err = pq.ListLiveWorkers(ctx, pgdb.ListLiveWorkersParams{
				AfterNamespace:  q.AfterNamespace,
				AfterInstanceID: q.AfterInstance,
				NowMs:           q.NowMs,
				Lane:            q.Lane,
				Capability:      q.Capability,
				RowLimit:        int64(q.RowLimit),
			})
			return err
		}
		inNS, err := pq.ListLiveWorkersInNamespace(ctx, pgdb.ListLiveWorkersInNamespaceParams{
			Namespace:       q.Namespace,
			AfterInstanceID: q.AfterInstance,
			NowMs:           q.NowMs,
			Lane:            q.Lane,
			Capability:      q.Capability,
			RowLimit:        int64(q.RowLimit),
		})
		for _, row := range inNS {
			rows = append(rows, pgdb.ListLiveWorkersRow(row))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.WorkerRow, len(rows))
	for i, row := range rows {
		out[i] = pgWorkerRow(row)
	}
	return out, nil
}

func (s postgresQueries) ListEvents(ctx context.Context, q store.EventQuery) ([]store.EventRow, error) {
	var rows []pgdb.FfWorkerRegistryEvent
	var err error
	limit := int64(q.RowLimit)
	if q.Instance != "" {
		// One partition.
		if !q.NewestFirst {
			rows, err = s.q.ListInstanceEventsAsc(ctx, pgdb.ListInstanceEventsAscParams{
				PartitionKey: partitionKey(q.Instance), Namespace: q.Namespace, WorkerInstanceID: q.Instance, AfterID: q.After, RowLimit: limit})
		} else {
			rows, err = s.q.ListInstanceEventsDesc(ctx, pgdb.ListInstanceEventsDescParams{
				PartitionKey: partitionKey(q.Instance), Namespace: q.Namespace, WorkerInstanceID: q.Instance, BeforeID: q.Before, RowLimit: limit})
		}
	} else {
		// Every partition: see withGenericPlan.
		err = s.withGenericPlan(ctx, func(pq *pgdb.Queries) (err error) {
			switch {
			case q.Namespace == "" && !q.NewestFirst:
				rows, err = pq.ListAllEventsAsc(ctx, pgdb.ListAllEventsAscParams{AfterID: q.After, RowLimit: limit})
			case q.Namespace == "":
				rows, err = pq.ListAllEventsDesc(ctx, pgdb.ListAllEventsDescParams{BeforeID: q.Before, RowLimit: limit})
			case !q.NewestFirst:
				rows, err = pq.ListEventsAsc(ctx, pgdb.ListEventsAscParams{Namespace: q.Namespace, AfterID: q.After, RowLimit: limit})
			default:
				rows, err = pq.ListEventsDesc(ctx, pgdb.ListEventsDescParams{Namespace: q.Namespace, BeforeID: q.Before, RowLimit: limit})
			}
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	out := make([]store.EventRow, len(rows))
	for i, row := range rows {
		out[i] = store.EventRow{EventID: row.EventID, Namespace: row.Namespace, WorkerInstanceID: row.WorkerInstanceID, EventKind: row.EventKind, EventAtMs: row.EventAtMs, Reason: row.Reason}
	}
	return out, nil
}

func (s postgresQueries) ListExpiredLeases(ctx context.Context, q store.LeaseQuery) ([]store.LeaseRow, error) {
	params := pgdb.ListExpiredLeasesParams{
		AsOfMs:            q.AsOfMs,
		AfterExpiresAtMs:  q.AfterExpiresAtMs,
		AfterPartition:    int32(q.AfterPartition),
		AfterAttemptIndex: int32(q.AfterAttemptIndex),
		Namespace:         q.Namespace,
		RowLimit:          int64(q.RowLimit),
	}
	if len(q.AfterExecutionID) > 0 {
		id, err := uuid.FromBytes(q.AfterExecutionID)
		if err != nil {
			return nil, fmt.Errorf("lease cursor: %w", err)
		}
		params.AfterExecutionID = id
	}
	var rows []pgdb.ListExpiredLeasesRow
	err := s.withGenericPlan(ctx, func(q *pgdb.Queries) (err error) {
		rows, err = q.ListExpiredLeases(ctx, params)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.LeaseRow, len(rows))
	for i, row := range rows {
		out[i] = pgLeaseRow(row)
	}
	return out, nil
}

func (s postgresQueries) GetLiveWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (store.WorkerRow, bool, error) {
	row, err := s.q.GetLiveWorker(ctx, pgdb.GetLiveWorkerParams{
		PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, NowMs: nowMS,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return store.WorkerRow{}, false, nil
	}
	if err != nil {
		return store.WorkerRow{}, false, err
	}
	return pgWorkerRow(pgdb.ListLiveWorkersRow(row)), true, nil
}

func (s postgresQueries) ListDeadHolders(ctx context.Context, asOfMS int64) (holders []string, err error) {
	err = s.withGenericPlan(ctx, func(q *pgdb.Queries) error {
		holders, err = q.ListDeadHolders(ctx, asOfMS)
		return err
	})
	return holders, err
}

// ListHolderLeases reads every holder's leases in one statement, one
// round trip, whatever the number of holders.
func (s postgresQueries) ListHolderLeases(ctx context.Context, q store.HolderLeaseQuery) ([]store.LeaseRow, error) {
	params := pgdb.ListHolderLeasesParams{
		Holders:             q.Holders,
		Namespace:           q.Namespace,
		AfterExpiresAtMs:    make([]int64, len(q.After)),
		AfterPartitions:     make([]int32, len(q.After)),
		AfterExecutionIds:   make([]uuid.UUID, len(q.After)),
		AfterAttemptIndexes: make([]int32, len(q.After)),
		RowLimit:            int64(q.PerHolder),
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
	var rows []pgdb.ListHolderLeasesRow
	err := s.withGenericPlan(ctx, func(q *pgdb.Queries) (err error) {
		rows, err = q.ListHolderLeases(ctx, params)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.LeaseRow, len(rows))
	for i, row := range rows {
		out[i] = pgLeaseRow(pgdb.ListExpiredLeasesRow(row))
	}
	return out, nil
}

// pgLeaseRow is a lease as the lease walks return it.
func pgLeaseRow(r pgdb.ListExpiredLeasesRow) store.LeaseRow {
	return store.LeaseRow{
		PartitionKey: int64(r.PartitionKey), ExecutionID: r.ExecutionID[:], AttemptIndex: int64(r.AttemptIndex),
		LeaseEpoch: r.LeaseEpoch, WorkerInstanceID: r.WorkerInstanceID, LeaseExpiresAtMs: r.LeaseExpiresAtMs,
		Namespace: r.Namespace,
	}
}

// keyColumns splits keys into the parallel arrays that the Postgres
// statements unnest.
func keyColumns(keys []store.InstanceKey) (partitions []int16, namespaces, instances []string) {
	partitions = make([]int16, len(keys))
	namespaces = make([]string, len(keys))
	instances = make([]string, len(keys))
	for i, k := range keys {
		partitions[i], namespaces[i], instances[i] = partitionKey(k.InstanceID), k.Namespace, k.InstanceID
	}
	return partitions, namespaces, instances
}

// partitionKey is FlowFabric's partition_key of an instance ID: FNV-1a 64
// of its bytes, modulo 256, as the engine computes it, so that a row either
// side writes is where the other looks for it.
func partitionKey(instanceID string) int16 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(instanceID); i++ {
		h ^= uint64(instanceID[i])
		h *= prime64
	}
	return int16(h % 256)
}

// pgWorkerRow is a registration as the store's statements return it; lanes
// are the engine's text[], joined as on SQLite.
func pgWorkerRow(r pgdb.ListLiveWorkersRow) store.WorkerRow {
	return store.WorkerRow{
		Namespace: r.Namespace, WorkerInstanceID: r.WorkerInstanceID, WorkerID: r.WorkerID,
		Lanes: strings.Join(r.Lanes, ","), CapabilitiesCsv: r.CapabilitiesCsv,
		LastHeartbeatMs: r.LastHeartbeatMs, LivenessTTLMs: r.LivenessTTLMs, RegisteredAtMs: r.RegisteredAtMs,
		ExpiresAtMs: r.ExpiresAtMs, Draining: r.Draining,
		ReportInFlight: int64Ptr(r.ReportInFlight), ReportCapacity: int64Ptr(r.ReportCapacity), ReportVersion: r.ReportVersion,
	}
}

// reportParams is rep as the report columns' parameters (integer columns:
// the registry keeps counts within int32): all nil for a nil rep, which
// keeps the stored report.
func reportParams(rep *store.Report) (inFlight, capacity *int32, version *string) {
	f, c, v := rep.Columns()
	return int32Ptr(f), int32Ptr(c), v
}

func int32Ptr(p *int64) *int32 {
	if p == nil {
		return nil
	}
	v := int32(*p)
	return &v
}

func int64Ptr(p *int32) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}
