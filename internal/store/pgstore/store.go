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

// Store runs the registry's statements on pgx pools, one for writes and
// one for reads, on FlowFabric's partitioned tables. Postgres has row
// locks and many concurrent writers, so unlike SQLite nothing serialises
// write transactions: the statements carry the locks. Every writer locks
// rows first (getWorker's advisory lock on the key and FOR UPDATE,
// lockWorkers in partition and key order, the one-statement writes'
// NOWAIT, the sweep's SKIP LOCKED) and takes the audit-log lock last,
// at its first event (the event ID's column default), as the engine's own
// statements do; so no lock order can deadlock, with each other or with
// the engine.
type Store struct {
	pool   *pgxpool.Pool // writes
	read   *pgxpool.Pool // reads: pool itself unless Open split them
	q      *pgdb.Queries // on pool
	rq     *pgdb.Queries // on read
	route  *router
	lim    *connLimits
	owned  bool       // close closes the pools
	sweeps sweepPlans // see SweepExpired
}

// New returns a store on pool, for reads and writes; Close closes the pool
// when owned.
func New(pool *pgxpool.Pool, owned bool) *Store {
	return NewSplit(pool, pool, owned)
}

// NewSplit returns a store that writes through writes and reads through
// reads, so that long reads never hold the connections that heartbeats
// wait for (as SQLite's writer has a connection of its own). Close closes
// both when owned.
func NewSplit(writes, reads *pgxpool.Pool, owned bool) *Store {
	s := &Store{pool: writes, read: reads, route: &router{}, lim: &connLimits{}, owned: owned}
	s.q = pgdb.New(routedDB{db: writes, r: s.route, limits: s.lim, pool: true})
	s.rq = pgdb.New(routedDB{db: reads, r: s.route, limits: s.lim, pool: true})
	return s
}

func (s *Store) Reader() store.Reader {
	return postgresQueries{q: s.rq, pool: s.read, route: s.route, lim: s.lim}
}

func (s *Store) Writer() store.Writer {
	return postgresQueries{q: s.q, pool: s.pool, route: s.route, lim: s.lim}
}

// InTx runs fn in a READ COMMITTED transaction, which is enough because
// every read that a write depends on locks what it read first. It is asked
// for by name: under a server whose default is REPEATABLE READ or
// SERIALIZABLE, the snapshot would predate the locks' waits, and a
// register that lost a race would fail with a serialization error instead
// of seeing the winner's row.
func (s *Store) InTx(ctx context.Context, fn func(store.Writer) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		return fn(postgresQueries{q: s.txQueries(tx), route: s.route, lim: s.lim})
	})
	return s.lim.explain(err)
}

// txQueries returns the queries in tx, routed as the store's are.
func (s *Store) txQueries(tx pgx.Tx) *pgdb.Queries {
	return pgdb.New(routedDB{db: tx, r: s.route, limits: s.lim})
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
	return s.heartbeatOrWait(ctx, k, rep, now, false, pgdb.HeartbeatWithEventNoWaitRow(row), err)
}

// heartbeatOrWait returns the result of a heartbeat statement that does
// not wait for the row's lock, or when it failed for the lock (or, with
// events, for the event's key), runs the heartbeat in a transaction.
func (s *Store) heartbeatOrWait(ctx context.Context, k store.InstanceKey, rep *store.Report, now func() int64, events bool, row pgdb.HeartbeatWithEventNoWaitRow, err error) (store.HeartbeatRow, bool, error) {
	switch {
	case err == nil:
		return store.HeartbeatRow{Key: k, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining}, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return store.HeartbeatRow{}, false, nil
	case !isLockNotAvailable(err) && !(events && isUniqueViolation(err)):
		return store.HeartbeatRow{}, false, err
	}
	return s.heartbeatInTx(ctx, k, rep, now, events)
}

// HeartbeatWithEventAt is HeartbeatAt with the heartbeat's event, in one
// statement (HeartbeatWithEventNoWait) where the row is free and the
// event's key too; otherwise in a transaction. With explicit, now returns
// the caller's time, written as it is (HeartbeatLiveWorker's way);
// otherwise the statement never moves the heartbeat back (HeartbeatAt's).
func (s *Store) HeartbeatWithEventAt(ctx context.Context, k store.InstanceKey, rep *store.Report, now func() int64, explicit bool) (store.HeartbeatRow, bool, error) {
	if !s.route.routes(ctx, s.pool) {
		// On the parent tables, the statement would take long to plan.
		return s.heartbeatInTx(ctx, k, rep, now, true)
	}
	inFlight, capacity, version := reportParams(rep)
	row, err := s.q.HeartbeatWithEventNoWait(ctx, pgdb.HeartbeatWithEventNoWaitParams{
		NowMs: now(), PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID,
		KeepLater: !explicit, ReportInFlight: inFlight, ReportCapacity: capacity, ReportVersion: version,
	})
	return s.heartbeatOrWait(ctx, k, rep, now, true, row, err)
}

// heartbeatInTx waits for the row's lock in a transaction, then reads the
// time and heartbeats, writing rep, with its event when events is set.
func (s *Store) heartbeatInTx(ctx context.Context, k store.InstanceKey, rep *store.Report, now func() int64, events bool) (store.HeartbeatRow, bool, error) {
	var res store.HeartbeatRow
	var found bool
	err := s.InTx(ctx, func(q store.Writer) error {
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
		if err != nil || !found || !events {
			return err
		}
		return q.InsertEvent(ctx, store.EventRow{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, EventKind: store.EventHeartbeat, EventAtMs: nowMS})
	})
	return res, found, err
}

// RefreshRegistration refreshes a registration live under w's worker ID,
// whose drain follows its directive, with its refreshed event, in one
// statement (RefreshLiveWorkerNoWait). It reports false, having written
// nothing, when the registration is not such, or another transaction
// holds the row or the event's key: the caller then registers in a
// transaction. explicit is HeartbeatWithEventAt's, for w.LastHeartbeatMs.
func (s *Store) RefreshRegistration(ctx context.Context, w store.WorkerRow, explicit bool) (bool, error) {
	if !s.route.routes(ctx, s.pool) {
		return false, nil
	}
	n, err := s.q.RefreshLiveWorkerNoWait(ctx, pgdb.RefreshLiveWorkerNoWaitParams{
		PartitionKey:     partitionKey(w.WorkerInstanceID),
		Namespace:        w.Namespace,
		WorkerInstanceID: w.WorkerInstanceID,
		WorkerID:         w.WorkerID,
		NowMs:            w.LastHeartbeatMs,
		KeepLater:        !explicit,
		Lanes:            strings.Split(w.Lanes, ","),
		CapabilitiesCsv:  w.CapabilitiesCsv,
		LivenessTTLMs:    w.LivenessTTLMs,
		ReportInFlight:   int32Ptr(w.ReportInFlight),
		ReportCapacity:   int32Ptr(w.ReportCapacity),
		ReportVersion:    w.ReportVersion,
	})
	if isLockNotAvailable(err) || isUniqueViolation(err) {
		return false, nil
	}
	return n > 0, err
}

// RequestDrainWithEvent drains a registration live at nowMS with its
// directive and event in one statement (RequestDrainWithEvent's query);
// see store.OneStatementWriter. On the parent tables it reports done
// false, as the statement would take long to plan.
func (s *Store) RequestDrainWithEvent(ctx context.Context, k store.InstanceKey, nowMS int64, reason *string) (drained, done bool, err error) {
	if !s.route.routes(ctx, s.pool) {
		return false, false, nil
	}
	n, err := s.q.RequestDrainWithEvent(ctx, pgdb.RequestDrainWithEventParams{
		PartitionKey: partitionKey(k.InstanceID), Namespace: k.Namespace, WorkerInstanceID: k.InstanceID,
		NowMs: nowMS, Reason: reason,
	})
	if isUniqueViolation(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return n > 0, true, nil
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

// isUniqueViolation reports Postgres's unique_violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func (s *Store) Close() error {
	if s.owned {
		if s.read != s.pool {
			s.read.Close()
		}
		s.pool.Close()
	}
	return nil
}

// postgresQueries adapts the generated queries to store.Reader and
// store.Writer. pool is set where the queries run outside a transaction.
type postgresQueries struct {
	q     *pgdb.Queries
	pool  *pgxpool.Pool
	route *router
	lim   *connLimits
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
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// Without table statistics, a generic plan over every partition is
		// estimated to cost millions, which makes Postgres compile it with
		// JIT first: 22 s for a lease walk whose execution took 4 ms
		// (measured on FlowFabric's tables, jit on as Debian ships it).
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL jit = off"); err != nil {
			return err
		}
		return fn(pgdb.New(routedDB{db: tx, r: s.route, limits: s.lim}))
	})
	return s.lim.explain(err)
}

// LockWorkers locks the live rows of keys, partition by partition in
// ascending order and in key order within each, which is the order of
// every batch's locks: one statement a partition, each naming its
// partition, all in one round trip.
func (s postgresQueries) LockWorkers(ctx context.Context, keys []store.InstanceKey, minNowMS int64) (map[store.InstanceKey]bool, error) {
	groups := partitionGroups(keys, nil)
	params := make([]pgdb.LockWorkersInPartitionParams, len(groups))
	for i, g := range groups {
		params[i] = pgdb.LockWorkersInPartitionParams{PartitionKey: g.key, Namespaces: g.namespaces, InstanceIds: g.instances, MinNowMs: minNowMS}
	}
	live := make(map[store.InstanceKey]bool, len(keys))
	var firstErr error
	s.q.LockWorkersInPartition(ctx, params).Query(func(_ int, rows []pgdb.LockWorkersInPartitionRow, err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
		for _, row := range rows {
			live[store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID}] = true
		}
	})
	return live, firstErr
}

// partitionGroup is a batch's keys in one partition, as the parallel
// arrays of its statements: reported and the report columns are nil when
// no key of the partition has a report.
type partitionGroup struct {
	key                   int16
	namespaces, instances []string
	reported              []bool
	inFlights, capacities []int32
	versions              []string
}

// partitionGroups groups keys, with their reports (nil, or one per key,
// nil for none), by partition, once each, partitions in ascending order
// and keys in (namespace, instance) byte order within each.
func partitionGroups(keys []store.InstanceKey, reports []*store.Report) []partitionGroup {
	type keyed struct {
		part int16
		k    store.InstanceKey
		rep  *store.Report
	}
	sorted := make([]keyed, len(keys))
	for i, k := range keys {
		sorted[i] = keyed{part: partitionKey(k.InstanceID), k: k}
		if reports != nil {
			sorted[i].rep = reports[i]
		}
	}
	slices.SortStableFunc(sorted, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.part, b.part),
			strings.Compare(a.k.Namespace, b.k.Namespace), strings.Compare(a.k.InstanceID, b.k.InstanceID))
	})
	sorted = slices.CompactFunc(sorted, func(a, b keyed) bool { return a.k == b.k })
	var groups []partitionGroup
	for _, k := range sorted {
		if len(groups) == 0 || groups[len(groups)-1].key != k.part {
			groups = append(groups, partitionGroup{key: k.part})
		}
		g := &groups[len(groups)-1]
		if k.rep != nil && g.reported == nil {
			// The first report of the partition: the arrays from here on.
			n := len(g.namespaces)
			g.reported, g.inFlights, g.capacities, g.versions = make([]bool, n), make([]int32, n), make([]int32, n), make([]string, n)
		}
		g.namespaces = append(g.namespaces, k.k.Namespace)
		g.instances = append(g.instances, k.k.InstanceID)
		if g.reported != nil {
			var r store.Report
			if k.rep != nil {
				r = *k.rep
			}
			// Counts are within int32 (see reportParams).
			g.reported = append(g.reported, k.rep != nil)
			g.inFlights = append(g.inFlights, int32(r.InFlight))
			g.capacities = append(g.capacities, int32(r.Capacity))
			g.versions = append(g.versions, r.Version)
		}
	}
	return groups
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

// HeartbeatLiveWorkers refreshes the live rows of keys, writing their
// reports: one statement a partition, each naming its partition, all in
// one round trip.
func (s postgresQueries) HeartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []store.InstanceKey, reports []*store.Report) ([]store.HeartbeatRow, error) {
	groups := partitionGroups(keys, reports)
	params := make([]pgdb.HeartbeatLiveWorkersInPartitionParams, len(groups))
	for i, g := range groups {
		params[i] = pgdb.HeartbeatLiveWorkersInPartitionParams{
			NowMs: nowMS, PartitionKey: g.key, Namespaces: g.namespaces, InstanceIds: g.instances,
			Reported: g.reported, InFlights: g.inFlights, Capacities: g.capacities, Versions: g.versions,
		}
	}
	out := make([]store.HeartbeatRow, 0, len(keys))
	var firstErr error
	s.q.HeartbeatLiveWorkersInPartition(ctx, params).Query(func(_ int, rows []pgdb.HeartbeatLiveWorkersInPartitionRow, err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
		for _, row := range rows {
			out = append(out, store.HeartbeatRow{Key: store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID}, ExpiresAtMs: row.ExpiresAtMs, Draining: row.Draining})
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

// PruneDirectives runs with a generic plan: its probes of the
// registration's and the audit log's partitions are planned for all 512
// of them, which took 100 ms a call with a plan for each call's
// parameters (measured on FlowFabric's tables).
func (s postgresQueries) PruneDirectives(ctx context.Context, drainBeforeMS, killBeforeMS int64) (n int64, err error) {
	err = s.withGenericPlan(ctx, func(q *pgdb.Queries) (err error) {
		n, err = q.PruneDirectives(ctx, pgdb.PruneDirectivesParams{DrainBeforeMs: drainBeforeMS, KillBeforeMs: killBeforeMS})
		return err
	})
	return n, err
}

// DeleteEventsBefore probes first, as the sweep does, both with generic
// plans (the probe took 25 ms to plan for each call's parameters).
func (s postgresQueries) DeleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (n int64, err error) {
	err = s.withGenericPlan(ctx, func(q *pgdb.Queries) (err error) {
		if found, err := q.AnyEventBefore(ctx, beforeMS); err != nil || !found {
			return err
		}
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
