package registry

import (
	"context"
	"time"
)

// store is one database engine's half of the registry: its generated
// queries behind engine-neutral rows. Validation, outcomes, events and
// paging live once, in Registry, above every store; a store only runs
// statements. This is River's driver split, kept unexported until a third
// engine shows which parts deserve to be public.
type store interface {
	// reader runs reads outside any transaction, on the read pool where
	// the engine has one.
	reader() storeReader
	// writer runs single statements outside any transaction.
	writer() storeWriter
	// inTx runs fn in one write transaction and commits it when fn
	// returns nil. It may run fn again, in a new transaction, after one
	// that failed without committing (SQLite retries SQLITE_BUSY), so fn
	// must set its results afresh on each run.
	inTx(ctx context.Context, fn func(storeWriter) error) error
	// heartbeatAt refreshes one live registration in a write of its own,
	// judging liveness and computing the expiry at the time that now
	// returns once the write holds the lock that orders it against other
	// writers of the row: a heartbeat that waited must not then use a time
	// already past.
	heartbeatAt(ctx context.Context, k instanceKey, now func() int64) (heartbeatRow, bool, error)
	// batchChunk returns how many heartbeats of a HeartbeatWorkers batch
	// one transaction may write; tookChunk reports that one that wrote n
	// ran its statements in d, for the next batchChunk.
	batchChunk() int
	tookChunk(n int, d time.Duration)
	close() error
}

type storeReader interface {
	listWorkers(ctx context.Context, q workerQuery) ([]workerRow, error)
	listEvents(ctx context.Context, q eventQuery) ([]eventRow, error)
	listExpiredLeases(ctx context.Context, q leaseQuery) ([]leaseRow, error)
	// getLiveWorker reads a registration live at nowMS.
	getLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (workerRow, bool, error)
	// listDeadHolders returns the holders of leases unexpired at asOfMS
	// that have no registration live at asOfMS in any namespace.
	listDeadHolders(ctx context.Context, asOfMS int64) ([]string, error)
	// listHolderLeases returns, for each holder of q, up to q.PerHolder of
	// its leases after its cursor, each holder's in lease order.
	listHolderLeases(ctx context.Context, q holderLeaseQuery) ([]leaseRow, error)
}

type storeWriter interface {
	// lockWorkers locks the rows of keys that are live at minNowMS, in key
	// order, so that transactions that write several rows cannot deadlock
	// on each other, and returns the keys it locked: the transaction must
	// write no other row. A store whose write transactions are already
	// serial locks nothing and returns nil, which means every key.
	lockWorkers(ctx context.Context, keys []instanceKey, minNowMS int64) (map[instanceKey]bool, error)
	// getWorker reads a registration, live or not, and holds it, or its
	// absence, against concurrent writers until the transaction ends.
	getWorker(ctx context.Context, k instanceKey) (prev registration, found bool, err error)
	upsertWorker(ctx context.Context, w workerRow) error
	heartbeatLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (heartbeatRow, bool, error)
	heartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []instanceKey) ([]heartbeatRow, error)
	deleteLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (bool, error)
	requestDrain(ctx context.Context, k instanceKey, nowMS int64) (bool, error)
	resumeWorker(ctx context.Context, k instanceKey, nowMS int64) (bool, error)
	// sweepExpiredWorkers deletes up to limit registrations expired at
	// nowMS, oldest expiry first, each with its ttl_swept event, atomically,
	// and returns how many. Rows that other transactions hold are skipped.
	sweepExpiredWorkers(ctx context.Context, nowMS int64, limit int) (int, error)
	insertEvent(ctx context.Context, e eventRow) error
	// insertEvents records events of one kind and time, in the order of
	// keys.
	insertEvents(ctx context.Context, kind string, atMS int64, keys []instanceKey) error
	deleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (int64, error)
}

// workerRow is a row of ff_worker_registry.
type workerRow struct {
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
}

// registration is what a register needs of the row it replaces.
type registration struct {
	WorkerID       string
	RegisteredAtMs int64
	ExpiresAtMs    int64
}

type heartbeatRow struct {
	Key         instanceKey
	ExpiresAtMs int64
	Draining    bool
}

// eventRow is a row of ff_worker_registry_event; ID is zero until stored.
type eventRow struct {
	EventID          int64
	Namespace        string
	WorkerInstanceID string
	EventKind        string
	EventAtMs        int64
	Reason           *string
}

// leaseRow is an expired lease as the walk returns it, not yet checked.
type leaseRow struct {
	PartitionKey     int64
	ExecutionID      []byte
	AttemptIndex     int64
	LeaseEpoch       int64
	WorkerInstanceID string
	LeaseExpiresAtMs int64
	Namespace        string
}

// workerQuery selects a page of live workers. An empty Namespace means all
// namespaces; an empty Lane or Capability does not filter.
type workerQuery struct {
	Namespace                     string
	AfterNamespace, AfterInstance string
	NowMs                         int64
	Lane, Capability              string
	RowLimit                      int
}

// eventQuery selects a page of events of one namespace, or of all when
// Namespace is empty, and of one instance when Instance is set (only with
// a Namespace). Ascending pages start after After; descending ones
// before Before.
type eventQuery struct {
	Namespace, Instance string
	NewestFirst         bool
	After, Before       int64
	RowLimit            int
}

// leaseQuery selects a page of expired leases after the cursor
// (AfterExpiresAtMs, AfterPartition, AfterExecutionID, AfterAttemptIndex).
type leaseQuery struct {
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

// leaseKey is a lease's position in the order of the lease walks:
// (expiry, partition, execution UUID bytes, attempt).
type leaseKey struct {
	ExpiresAtMs  int64
	Partition    int64
	ExecutionID  []byte
	AttemptIndex int64
}

// holderLeaseQuery selects, for each of Holders, its leases after the
// key of the same index in After, in the execution states that hold a
// lease and, when Namespace is set, of that namespace: at most PerHolder
// per holder.
type holderLeaseQuery struct {
	Holders   []string
	After     []leaseKey
	Namespace string
	PerHolder int
}
