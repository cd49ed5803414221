// Package store is the boundary between the registry's API and its
// database engines: the interface each engine implements, the rows that
// cross it, and what every engine shares (the version table, event kinds,
// the migration files' format). The arrows point down: package registry
// imports the engines (sqlitestore, pgstore), which import this package,
// the generated queries in db/ and the migrations in schema/; nothing here
// imports the API.
package store

import (
	"context"
	"time"
)

// Store is one database engine's half of the registry: its generated
// queries behind engine-neutral rows. Validation, outcomes, events and
// paging live once, in package registry, above every Store; a Store only
// runs statements. This is River's driver split, internal until a third
// engine shows which parts deserve to be public.
type Store interface {
	// Reader runs reads outside any transaction, on the read pool where
	// the engine has one.
	Reader() Reader
	// Writer runs single statements outside any transaction.
	Writer() Writer
	// InTx runs fn in one write transaction and commits it when fn
	// returns nil. It may run fn again, in a new transaction, after one
	// that failed without committing (SQLite retries SQLITE_BUSY), so fn
	// must set its results afresh on each run.
	InTx(ctx context.Context, fn func(Writer) error) error
	// HeartbeatAt refreshes one live registration in a write of its own,
	// judging liveness and computing the expiry at the time that now
	// returns once the write holds the lock that orders it against other
	// writers of the row: a heartbeat that waited must not then use a time
	// already past. A report (nil: none) is written in the same statement.
	HeartbeatAt(ctx context.Context, k InstanceKey, rep *Report, now func() int64) (HeartbeatRow, bool, error)
	// SweepExpired removes the registrations expired at nowMS, each with
	// its ttl_swept event, and returns how many. It finds them by scanning,
	// off the writer's path, and removes them in write transactions that
	// each store bounds (by rows, by time), re-checking expiry as it
	// deletes, so that a heartbeat that lands in between wins; it reports
	// each transaction's count to swept. Rows that other transactions hold
	// may be skipped. With nothing expired it writes nothing.
	SweepExpired(ctx context.Context, nowMS int64, swept func(n int)) (int, error)
	// BatchChunk returns how many heartbeats of a HeartbeatWorkers batch
	// one transaction may write; tookChunk reports that one that wrote n
	// ran its statements in d, for the next BatchChunk.
	BatchChunk() int
	TookChunk(n int, d time.Duration)
	Close() error
}

type Reader interface {
	ListWorkers(ctx context.Context, q WorkerQuery) ([]WorkerRow, error)
	ListEvents(ctx context.Context, q EventQuery) ([]EventRow, error)
	ListExpiredLeases(ctx context.Context, q LeaseQuery) ([]LeaseRow, error)
	// GetLiveWorker reads a registration live at nowMS.
	GetLiveWorker(ctx context.Context, k InstanceKey, nowMS int64) (WorkerRow, bool, error)
	// ListDeadHolders returns the holders of leases unexpired at asOfMS
	// that have no registration live at asOfMS in any namespace.
	ListDeadHolders(ctx context.Context, asOfMS int64) ([]string, error)
	// ListHolderLeases returns, for each holder of q, up to q.PerHolder of
	// its leases after its cursor, each holder's in lease order.
	ListHolderLeases(ctx context.Context, q HolderLeaseQuery) ([]LeaseRow, error)
}

type Writer interface {
	// LockWorkers locks the rows of keys that are live at minNowMS, in key
	// order, so that transactions that write several rows cannot deadlock
	// on each other, and returns the keys it locked: the transaction must
	// write no other row. A store whose write transactions are already
	// serial locks nothing and returns nil, which means every key.
	LockWorkers(ctx context.Context, keys []InstanceKey, minNowMS int64) (map[InstanceKey]bool, error)
	// GetWorker reads a registration, live or not, and holds it, or its
	// absence, against concurrent writers until the transaction ends.
	GetWorker(ctx context.Context, k InstanceKey) (prev Registration, found bool, err error)
	UpsertWorker(ctx context.Context, w WorkerRow) error
	// HeartbeatLiveWorker refreshes a live row and writes rep, when not
	// nil, in the same statement; a nil rep keeps the stored report.
	HeartbeatLiveWorker(ctx context.Context, k InstanceKey, rep *Report, nowMS int64) (HeartbeatRow, bool, error)
	// HeartbeatLiveWorkers refreshes the live rows of keys, which are
	// distinct; reports, when not nil, has one entry per key (nil keeps
	// that key's stored report).
	HeartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []InstanceKey, reports []*Report) ([]HeartbeatRow, error)
	DeleteLiveWorker(ctx context.Context, k InstanceKey, nowMS int64) (bool, error)
	RequestDrain(ctx context.Context, k InstanceKey, nowMS int64) (bool, error)
	ResumeWorker(ctx context.Context, k InstanceKey, nowMS int64) (bool, error)
	InsertEvent(ctx context.Context, e EventRow) error
	// InsertEvents records events of one kind and time, in the order of
	// keys.
	InsertEvents(ctx context.Context, kind string, atMS int64, keys []InstanceKey) error
	DeleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (int64, error)

	// An operator's directives to an instance, which outlive its
	// registration (ff_worker_registry_directive). SetDrainDirective
	// records a drain (RequestDrain) or its withdrawal (ResumeWorker):
	// registrations of the instance start draining while it is pending.
	// RecordKill records MarkWorkerDead's kill, which GetKill returns.
	SetDrainDirective(ctx context.Context, k InstanceKey, draining bool, nowMS int64) error
	RecordKill(ctx context.Context, k InstanceKey, nowMS int64, reason *string) error
	GetKill(ctx context.Context, k InstanceKey) (Kill, bool, error)
	// PruneDirectives deletes withdrawn drains, drains of instances absent
	// (no registration, no event) since drainBeforeMS, and kills from
	// before killBeforeMS, and returns how many.
	PruneDirectives(ctx context.Context, drainBeforeMS, killBeforeMS int64) (int64, error)
}

// Kill is an instance's kill directive.
type Kill struct {
	AtMs   int64
	Reason *string
}

// LiveRefresher is a Writer that refreshes a registration in one
// statement when it is live under w's worker ID: it writes w's lanes,
// capabilities, TTL, heartbeat and report, keeps the stored
// RegisteredAtMs, sets the drain as the instance's drain directive says,
// and reports true; otherwise it writes nothing and reports false. Other Writers read the row with GetWorker and write it with
// UpsertWorker.
type LiveRefresher interface {
	RefreshLiveWorker(ctx context.Context, w WorkerRow) (bool, error)
}

// OneStatementWriter is a Store that writes a heartbeat with its event,
// and the refresh of a live registration with its event, each as one
// statement outside any transaction, where nothing contends for the row:
//
//   - HeartbeatWithEventAt is HeartbeatAt that also records the
//     heartbeat's event, atomically, writing rep as HeartbeatAt does.
//     With explicit, now returns the caller's time (an explicit Now),
//     written as HeartbeatLiveWorker writes it; otherwise, as HeartbeatAt,
//     it never moves a stored heartbeat back.
//   - RefreshRegistration refreshes a registration live at
//     w.LastHeartbeatMs under w's worker ID, as a register that finds it
//     does (it writes w's lanes, capabilities, TTL, heartbeat and report,
//     keeping the stored report when w has none, keeps the stored
//     RegisteredAtMs, and leaves the drain as the instance's directive
//     says), with its refreshed event, and reports true; otherwise, or
//     when another transaction holds the row, or the row's drain is not
//     its directive's, it writes nothing and reports false, and the
//     caller registers in a transaction. explicit is
//     HeartbeatWithEventAt's, for w.LastHeartbeatMs.
//   - RequestDrainWithEvent sets the drain of a registration live at
//     nowMS, with its drain directive and its drain_requested event (with
//     reason), waiting for the row's lock as RequestDrain's transaction
//     does, and reports whether there was one to drain (drained) and
//     whether it ran at all (done); when the event's key is taken, or the
//     store does not name partitions, it writes nothing and reports done
//     false, and the caller drains in a transaction.
type OneStatementWriter interface {
	HeartbeatWithEventAt(ctx context.Context, k InstanceKey, rep *Report, now func() int64, explicit bool) (HeartbeatRow, bool, error)
	RefreshRegistration(ctx context.Context, w WorkerRow, explicit bool) (bool, error)
	RequestDrainWithEvent(ctx context.Context, k InstanceKey, nowMS int64, reason *string) (drained, done bool, err error)
}

// InstanceKey is the registry's key: one worker process in a namespace.
type InstanceKey struct{ Namespace, InstanceID string }

// Event kinds, as stored in ff_worker_registry_event.event_kind.
const (
	EventRegistered     = "registered"
	EventRefreshed      = "refreshed"
	EventHeartbeat      = "heartbeat"
	EventMarkedDead     = "marked_dead"
	EventTTLSwept       = "ttl_swept"
	EventDrainRequested = "drain_requested"
	EventDeregistered   = "deregistered"
	EventResumed        = "resumed"
)

// WorkerRow is a row of ff_worker_registry.
type WorkerRow struct {
	Namespace        string
	WorkerInstanceID string
	WorkerID         string
	Lanes            string
	CapabilitiesCsv  string
	LastHeartbeatMs  int64
	LivenessTTLMs    int64
	RegisteredAtMs   int64
	ExpiresAtMs      int64
	Draining         bool
	// The worker's last report (version 10's columns): all nil when none
	// was sent. UpsertWorker writes them as they are; RefreshLiveWorker
	// keeps the stored ones when they are nil.
	ReportInFlight *int64
	ReportCapacity *int64
	ReportVersion  *string
}

// Registration is what a register needs of the row it replaces.
type Registration struct {
	WorkerID       string
	RegisteredAtMs int64
	ExpiresAtMs    int64
	// The stored report, which a refresh without one keeps.
	ReportInFlight *int64
	ReportCapacity *int64
	ReportVersion  *string
}

// Report is a worker's report (registry.WorkerReport) as a heartbeat
// writes it.
type Report struct {
	InFlight, Capacity int64
	Version            string
}

// Columns returns r as the report columns of a row: all nil for a nil r.
func (r *Report) Columns() (inFlight, capacity *int64, version *string) {
	if r == nil {
		return nil, nil, nil
	}
	return &r.InFlight, &r.Capacity, &r.Version
}

type HeartbeatRow struct {
	Key         InstanceKey
	ExpiresAtMs int64
	Draining    bool
}

// EventRow is a row of ff_worker_registry_event; ID is zero until stored.
type EventRow struct {
	EventID          int64
	Namespace        string
	WorkerInstanceID string
	EventKind        string
	EventAtMs        int64
	Reason           *string
}

// LeaseRow is an expired lease as the walk returns it, not yet checked.
type LeaseRow struct {
	PartitionKey     int64
	ExecutionID      []byte
	AttemptIndex     int64
	LeaseEpoch       int64
	WorkerInstanceID string
	LeaseExpiresAtMs int64
	Namespace        string
}

// WorkerQuery selects a page of live workers. An empty Namespace means all
// namespaces; an empty Lane or Capability does not filter.
type WorkerQuery struct {
	Namespace                     string
	AfterNamespace, AfterInstance string
	NowMs                         int64
	Lane, Capability              string
	RowLimit                      int
}

// EventQuery selects a page of events of one namespace, or of all when
// Namespace is empty, and of one instance when Instance is set (only with
// a Namespace). Ascending pages start after After; descending ones
// before Before.
type EventQuery struct {
	Namespace, Instance string
	NewestFirst         bool
	After, Before       int64
	RowLimit            int
}

// LeaseQuery selects a page of expired leases after the cursor
// (AfterExpiresAtMs, AfterPartition, AfterExecutionID, AfterAttemptIndex).
type LeaseQuery struct {
	AsOfMs           int64
	AfterExpiresAtMs int64
	AfterPartition   int64
	AfterExecutionID []byte
	// AfterAttemptIndex orders held attempts of one execution that share
	// an expiry. A store whose schema allows one held lease per execution
	// has no such ties and may ignore it.
	AfterAttemptIndex int64
	Namespace         string
	RowLimit          int
}

// LeaseKey is a lease's position in the order of the lease walks:
// (expiry, partition, execution UUID bytes, attempt).
type LeaseKey struct {
	ExpiresAtMs  int64
	Partition    int64
	ExecutionID  []byte
	AttemptIndex int64
}

// HolderLeaseQuery selects, for each of Holders, its leases after the
// key of the same index in After, in the execution states that hold a
// lease and, when Namespace is set, of that namespace: at most PerHolder
// per holder.
type HolderLeaseQuery struct {
	Holders   []string
	After     []LeaseKey
	Namespace string
	PerHolder int
}
