package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// maxHeartbeatBatch bounds one HeartbeatWorkers call.
const maxHeartbeatBatch = MaxLimit

// HeartbeatWorkers applies a batch of heartbeats and returns one result per
// input, in input order, each as HeartbeatWorker would return it had the
// inputs run one after another. An invalid entry rejects the whole batch
// before anything is written; its field is named with its index
// ("[3].namespace").
//
// A large batch runs as several transactions, one per chunk of consecutive
// heartbeats in input order, so that none holds the write lock for long
// (on SQLite a chunk is sized to take about 10 ms; on Postgres it is 500
// heartbeats): a batch larger than a chunk is not atomic. When a chunk
// fails, the call returns its error and no results, but the chunks before
// it stay committed; to retry, send the whole batch again. Each chunk
// reads the clock, for its entries with a zero Now, once it holds its
// locks.
//
// Heartbeats that share a time run as one statement, which is what makes a
// batch several times cheaper than as many single calls. With heartbeat
// events on, the events of one time are written together, so their IDs
// follow time groups rather than input order.
func (r *Registry) HeartbeatWorkers(ctx context.Context, batch []HeartbeatWorkerArgs) ([]HeartbeatResult, error) {
	ctx, c := r.begin(ctx, opHeartbeatWorkers)
	if err := r.check(); err != nil {
		return nil, c.end(ctx, r.opError(ctx, "heartbeat workers", err))
	}
	res, err := r.heartbeatWorkers(ctx, batch)
	r.countHeartbeats(ctx, res, len(batch), err)
	if err != nil {
		return nil, c.end(ctx, r.opError(ctx, "heartbeat workers", err))
	}
	return res, c.end(ctx, nil)
}

func (r *Registry) heartbeatWorkers(ctx context.Context, batch []HeartbeatWorkerArgs) ([]HeartbeatResult, error) {
	if len(batch) > maxHeartbeatBatch {
		return nil, invalid("batch", "exceeds %d heartbeats (got %d)", maxHeartbeatBatch, len(batch))
	}
	// Validate the whole batch before any chunk writes. The clock is read
	// here once, to validate it; each chunk reads it again under its locks.
	var clockMS int64
	nows := make([]int64, len(batch))
	var reports []*store.Report // nil when no entry has a report
	for i, args := range batch {
		if err := validateInstance(args.Namespace, args.WorkerInstanceID); err != nil {
			return nil, indexed(i, err)
		}
		rep, err := validateReport(args.Report)
		if err != nil {
			return nil, indexed(i, err)
		}
		if rep != nil {
			if reports == nil {
				reports = make([]*store.Report, len(batch))
			}
			reports[i] = rep
		}
		if args.Now.IsZero() {
			if clockMS == 0 {
				if clockMS, err = r.millis("now", args.Now); err != nil {
					return nil, indexed(i, err)
				}
			}
			nows[i] = clockMS
		} else if nows[i], err = r.millis("now", args.Now); err != nil {
			return nil, indexed(i, err)
		}
	}
	results := make([]HeartbeatResult, len(batch))
	for lo := 0; lo < len(batch); {
		hi := min(lo+r.st.BatchChunk(), len(batch))
		var chunkReports []*store.Report
		if reports != nil {
			chunkReports = reports[lo:hi]
		}
		if err := r.heartbeatChunk(ctx, batch[lo:hi], chunkReports, nows[lo:hi], clockMS, results[lo:hi]); err != nil {
			return nil, err
		}
		lo = hi
	}
	return results, nil
}

// heartbeatChunk runs one chunk of a batch in one transaction. reports
// are the entries' validated reports (nil: none has one); firstNows are
// the entries' times as validated, clockMS for those with a zero Now;
// results receives the chunk's results.
func (r *Registry) heartbeatChunk(ctx context.Context, batch []HeartbeatWorkerArgs, reports []*store.Report, firstNows []int64, clockMS int64, results []HeartbeatResult) error {
	keys := make([]store.InstanceKey, len(batch))
	seen := make(map[store.InstanceKey]bool, len(batch))
	distinct, anyClock := true, false
	for i, args := range batch {
		keys[i] = store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID}
		distinct = distinct && !seen[keys[i]]
		seen[keys[i]] = true
		anyClock = anyClock || args.Now.IsZero()
	}
	nows := make([]int64, len(batch))
	var took time.Duration
	err := r.inTx(ctx, func(q store.Writer) error {
		start := time.Now()
		defer func() { took = time.Since(start) }()
		// The clock can only have moved forward, so the first times lock
		// every row that may still be live at the later ones.
		live, err := q.LockWorkers(ctx, keys, slices.Min(firstNows))
		if err != nil {
			return err
		}
		copy(nows, firstNows)
		if anyClock {
			lockedMS := r.lockedNow(time.Time{}, clockMS)
			for i, args := range batch {
				if args.Now.IsZero() {
					nows[i] = lockedMS
				}
			}
		}
		// Only the rows just locked are written: a row that appears after
		// the lock would be locked out of order. Its heartbeat is ordered
		// before its registration, so it was not registered.
		todo := make([]int, 0, len(batch))
		for i, k := range keys {
			if live == nil || live[k] {
				todo = append(todo, i)
			} else {
				results[i] = HeartbeatResult{Outcome: HeartbeatNotRegistered}
			}
		}
		if !distinct {
			// A repeated instance must see its own earlier heartbeat, so
			// run the chunk one by one, in order.
			for _, i := range todo {
				var err error
				if results[i], err = r.heartbeatOne(ctx, q, batch[i], reportAt(reports, i), nows[i]); err != nil {
					return err
				}
			}
			return nil
		}
		return r.heartbeatGroups(ctx, q, batch, reports, nows, todo, results)
	})
	if err == nil {
		r.st.TookChunk(len(batch), took)
	}
	return err
}

// heartbeatGroups runs one statement per distinct time among the entries
// todo of the batch, whose keys are all distinct.
func (r *Registry) heartbeatGroups(ctx context.Context, q store.Writer, batch []HeartbeatWorkerArgs, reports []*store.Report, nows []int64, todo []int, results []HeartbeatResult) error {
	groups := map[int64][]int{}
	var order []int64
	for _, i := range todo {
		now := nows[i]
		if groups[now] == nil {
			order = append(order, now)
		}
		groups[now] = append(groups[now], i)
	}
	for _, now := range order {
		idx := groups[now]
		keys := make([]store.InstanceKey, len(idx))
		var groupReports []*store.Report
		if reports != nil {
			groupReports = make([]*store.Report, len(idx))
		}
		pos := make(map[store.InstanceKey]int, len(idx))
		for j, i := range idx {
			keys[j] = store.InstanceKey{Namespace: batch[i].Namespace, InstanceID: batch[i].WorkerInstanceID}
			if reports != nil {
				groupReports[j] = reports[i]
			}
			pos[keys[j]] = i
			results[i] = HeartbeatResult{Outcome: HeartbeatNotRegistered}
		}
		rows, err := q.HeartbeatLiveWorkers(ctx, now, keys, groupReports)
		if err != nil {
			return err
		}
		for _, row := range rows {
			results[pos[row.Key]] = heartbeatResult(row.ExpiresAtMs, row.Draining)
		}
		if !r.cfg.heartbeatEvents || len(rows) == 0 {
			continue
		}
		// Events in input order, as single calls would write them.
		refreshed := make([]store.InstanceKey, 0, len(rows))
		for j, i := range idx {
			if results[i].Outcome == HeartbeatRefreshed {
				refreshed = append(refreshed, keys[j])
			}
		}
		if err := q.InsertEvents(ctx, eventHeartbeat, now, refreshed); err != nil {
			return err
		}
	}
	return nil
}

// reportAt is entry i's report, nil when reports is.
func reportAt(reports []*store.Report, i int) *store.Report {
	if reports == nil {
		return nil
	}
	return reports[i]
}

// indexed prefixes a batch entry's field with its index.
func indexed(i int, err error) error {
	if ve, ok := err.(*ValidationError); ok {
		return &ValidationError{Field: fmt.Sprintf("[%d].%s", i, ve.Field), Reason: ve.Reason}
	}
	return err
}
