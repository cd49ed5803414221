package registry

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"math"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// ListOrphanedLeasesArgs are the arguments of ListOrphanedLeases.
type ListOrphanedLeasesArgs struct {
	AsOf      time.Time    // leases unexpired at it whose holder is not live at it; zero: the registry's clock
	Namespace string       // the executions' namespace; "" lists every namespace
	After     *LeaseCursor // nil starts at the beginning
	Limit     int          // 0: DefaultLimit; above MaxLimit: MaxLimit
}

// ListOrphanedLeasesResult is a page of orphaned leases.
type ListOrphanedLeasesResult struct {
	Leases []ExpiredLease
	// Next is the cursor for the following page, nil when no more orphaned
	// leases matched as of the call.
	Next *LeaseCursor
}

// ListOrphanedLeases returns a page of the leases that a dead worker
// still holds: attempts whose lease has not expired at AsOf, on an
// execution that is active, claimed or running, whose holder has no
// registration live at AsOf. The engine can reclaim them at once instead
// of waiting for them to expire (ListExpiredLeases lists them then).
//
// A holder is live while a registration of its instance ID is live in any
// namespace. ff_attempt names a holder by instance ID alone, and the
// namespace of a lease is its execution's: matching each lease against a
// registration in that namespace would mean reading every held lease,
// where this way the cost follows the holders and the orphans. So an
// instance live in one namespace keeps its leases in every other until
// they expire, which never takes a lease from a live process.
//
// Pages are ordered, and the cursor is, as ListExpiredLeases': (expiry,
// partition, execution UUID bytes, attempt). Walking them with Next
// visits every orphaned lease exactly once, while holders neither die nor
// come back. A page costs one index probe per distinct holder of a held
// lease, plus a range scan of each dead holder's leases from the cursor.
func (r *Registry) ListOrphanedLeases(ctx context.Context, args ListOrphanedLeasesArgs) (ListOrphanedLeasesResult, error) {
	ctx, c := r.begin(ctx, opListOrphanedLeases)
	if err := r.check(); err != nil {
		return ListOrphanedLeasesResult{}, c.end(ctx, r.opError(ctx, "list orphaned leases", err))
	}
	res, err := r.listOrphanedLeases(ctx, args)
	if err != nil {
		return ListOrphanedLeasesResult{}, c.end(ctx, r.opError(ctx, "list orphaned leases", err))
	}
	return res, c.end(ctx, nil)
}

func (r *Registry) listOrphanedLeases(ctx context.Context, args ListOrphanedLeasesArgs) (ListOrphanedLeasesResult, error) {
	q, limit, err := r.leaseQuery(args.AsOf, args.Namespace, args.After, args.Limit)
	if err != nil {
		return ListOrphanedLeasesResult{}, err
	}
	start := store.LeaseKey{ExpiresAtMs: q.AfterExpiresAtMs, Partition: q.AfterPartition, ExecutionID: q.AfterExecutionID, AttemptIndex: q.AfterAttemptIndex}
	// Past every key that expires at AsOf: partitions are below MaxInt32.
	if unexpired := (store.LeaseKey{ExpiresAtMs: q.AsOfMs, Partition: math.MaxInt32, ExecutionID: []byte{}, AttemptIndex: 0}); compareKeys(start, unexpired) < 0 {
		start = unexpired
	}
	holders, err := r.st.Reader().ListDeadHolders(ctx, q.AsOfMs)
	if err != nil {
		return ListOrphanedLeasesResult{}, err
	}
	rows, err := mergeHolderLeases(ctx, r.st.Reader(), holders, start, q.Namespace, q.RowLimit)
	if err != nil {
		return ListOrphanedLeasesResult{}, err
	}
	leases, next, err := leasePage(rows, limit)
	if err != nil {
		return ListOrphanedLeasesResult{}, err
	}
	return ListOrphanedLeasesResult{Leases: leases, Next: next}, nil
}

// minHolderChunk is the fewest leases a holder's walk reads at a time.
const minHolderChunk = 8

// mergeHolderLeases returns the first want leases after start of the
// holders' walks, merged in lease order. Each walk reads a chunk at a
// time: at first its share of want and a quarter more, so that holders
// whose leases interleave fill the page from one read each without
// reading many leases past it (each costs a lookup of its execution); a
// walk that runs out reads again, twice as much, so that one holder
// holding the whole page costs a few reads. A lease that two walks return
// (it moved between holders while they read) is taken once.
func mergeHolderLeases(ctx context.Context, rd store.Reader, holders []string, start store.LeaseKey, namespace string, want int) ([]store.LeaseRow, error) {
	if len(holders) == 0 {
		return nil, nil
	}
	share := (want + len(holders) - 1) / len(holders)
	chunk := min(want, max(minHolderChunk, share+share/4))
	after := make([]store.LeaseKey, len(holders))
	for i := range after {
		after[i] = start
	}
	rows, err := rd.ListHolderLeases(ctx, store.HolderLeaseQuery{Holders: holders, After: after, Namespace: namespace, PerHolder: chunk})
	if err != nil {
		return nil, err
	}
	walks := make(map[string]*holderWalk, len(holders))
	for _, h := range holders {
		walks[h] = &holderWalk{holder: h, chunk: chunk}
	}
	for _, row := range rows {
		if w := walks[row.WorkerInstanceID]; w != nil {
			w.rows = append(w.rows, row)
		}
	}
	var pending walkHeap
	for _, w := range walks {
		w.done = len(w.rows) < chunk
		if len(w.rows) > 0 {
			pending = append(pending, w)
		}
	}
	heap.Init(&pending)

	out := make([]store.LeaseRow, 0, want)
	seen := make(map[attemptID]bool, want)
	for len(out) < want && len(pending) > 0 {
		w := pending[0]
		row := w.rows[0]
		w.rows = w.rows[1:]
		if id := leaseIdentity(row); !seen[id] {
			seen[id] = true
			out = append(out, row)
		}
		if len(w.rows) == 0 && !w.done && len(out) < want {
			w.chunk = min(2*w.chunk, want)
			n := min(w.chunk, want-len(out))
			more, err := rd.ListHolderLeases(ctx, store.HolderLeaseQuery{
				Holders: []string{w.holder}, After: []store.LeaseKey{rowKey(row)}, Namespace: namespace, PerHolder: n,
			})
			if err != nil {
				return nil, err
			}
			w.rows, w.done = more, len(more) < n
		}
		if len(w.rows) > 0 {
			heap.Fix(&pending, 0)
		} else {
			heap.Pop(&pending)
		}
	}
	return out, nil
}

// holderWalk is the part of one holder's walk read and not yet merged.
type holderWalk struct {
	holder string
	rows   []store.LeaseRow
	chunk  int  // rows the last read asked for
	done   bool // the last read returned fewer: the walk has no more
}

// walkHeap orders walks by their next lease.
type walkHeap []*holderWalk

func (h walkHeap) Len() int { return len(h) }
func (h walkHeap) Less(i, j int) bool {
	return compareKeys(rowKey(h[i].rows[0]), rowKey(h[j].rows[0])) < 0
}
func (h walkHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *walkHeap) Push(x any)   { *h = append(*h, x.(*holderWalk)) }
func (h *walkHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

func rowKey(row store.LeaseRow) store.LeaseKey {
	return store.LeaseKey{ExpiresAtMs: row.LeaseExpiresAtMs, Partition: row.PartitionKey, ExecutionID: row.ExecutionID, AttemptIndex: row.AttemptIndex}
}

// compareKeys orders lease keys as the lease walks do, execution UUIDs
// by their bytes.
func compareKeys(a, b store.LeaseKey) int {
	return cmp.Or(
		cmp.Compare(a.ExpiresAtMs, b.ExpiresAtMs),
		cmp.Compare(a.Partition, b.Partition),
		bytes.Compare(a.ExecutionID, b.ExecutionID),
		cmp.Compare(a.AttemptIndex, b.AttemptIndex))
}

// attemptID names an attempt, whoever holds it and until when.
type attemptID struct {
	partition, attempt int64
	execution          [16]byte
}

func leaseIdentity(row store.LeaseRow) attemptID {
	id := attemptID{partition: row.PartitionKey, attempt: row.AttemptIndex}
	copy(id.execution[:], row.ExecutionID)
	return id
}
