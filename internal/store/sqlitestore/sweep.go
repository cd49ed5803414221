package sqlitestore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowfabric/workerregistry/db/sqlitedb"
	"github.com/flowfabric/workerregistry/internal/store"
)

// A sweep of many expired rows is a long run of write transactions, and
// the process's other writes (heartbeats) take turns with it at the write
// lock. Three things bound how long one of them waits for a sweep:
//
//   - Each batch holds the lock for about sweepHold: it takes as many rows
//     as the statements of the batches before it removed in that time,
//     between sweepBatchMin and sweepBatchMax. Its statements are two
//     set-based ones (InsertSweptEvents, DeleteExpiredWorkerRows) that
//     hand no row to Go and back.
//   - Between batches the sweep waits until every write that queued for
//     the turn during its batch has had its turn (writeGate.queued): such
//     a write waits for one batch, never for several.
//   - No checkpoint runs inside a batch. While sweeps remove rows, the
//     writer connection's automatic checkpoint is off, and a read
//     connection checkpoints instead (PASSIVE, which takes no write lock),
//     in parallel with the batches (checkpointer). The
//     automatic checkpoint runs in the commit that fills the WAL, with the
//     turn held: 19 ms of every ninth batch, or of the heartbeat that
//     committed after it.
const (
	sweepHold       = 10 * time.Millisecond
	sweepBatchMin   = 64
	sweepBatchMax   = 4000
	sweepBatchFirst = 500 // before any batch was measured
)

// afterSweepScan, when set (by tests), runs between a sweep's scan and
// its first delete.
var afterSweepScan func()

// inSweepBatch, when set (by tests), runs in the transaction of each
// sweep batch, numbered from 0, after its statements.
var inSweepBatch func(i int)

// SweepExpired scans for the rows expired at nowMS on a read connection,
// off the writer's path, and then deletes them by rowid, in write
// transactions that hold the lock about sweepHold each, with their
// events. The writer is held only for what is removed: a sweep whose scan
// finds nothing writes nothing. A row that a heartbeat refreshed after
// the scan is not deleted: the DELETE checks the expiry again.
func (s *Store) SweepExpired(ctx context.Context, nowMS int64, swept func(n int)) (int, error) {
	return s.sweepExpired(ctx, nowMS, sweepBatchMax, swept)
}

// sweepExpired is SweepExpired with batches of at most batch rows.
func (s *Store) sweepExpired(ctx context.Context, nowMS int64, batch int, swept func(n int)) (total int, err error) {
	ids, err := s.r.queries(nil).ListExpiredWorkers(ctx, nowMS)
	if err != nil {
		return 0, err
	}
	if afterSweepScan != nil {
		afterSweepScan()
	}
	if ids == "" {
		return 0, nil
	}
	g := s.gate
	ckpt := s.startCheckpointer(ctx)
	defer ckpt.stop()
	var queued uint64 // writes that had queued for the turn when the last batch ended
	for i := 0; ids != ""; i++ {
		var chunk string
		chunk, ids = cutRowIDs(ids, s.sweepRows(batch))
		if err := g.awaitQueued(ctx, queued); err != nil {
			return total, err
		}
		n, err := s.sweepBatch(ctx, nowMS, chunk, i, ckpt)
		queued = g.queued.Load()
		if err != nil {
			return total, err
		}
		total += n
		swept(n)
		if err := ckpt.afterBatch(ctx); err != nil {
			return total, err
		}
	}
	return total, nil
}

// errEventKeysTaken fails a sweep batch whose events were fewer than the
// rows it deleted: the batch runs again with deleteExpired.
var errEventKeysTaken = errors.New("a ttl_swept event's key was taken")

// sweepBatch deletes the rows of rowIDs, a comma-separated list of
// rowids in the order of ListExpiredWorkers, that are expired at nowMS,
// and records a ttl_swept event for each, in that order, in one write
// transaction; i numbers the batch for inSweepBatch.
func (s *Store) sweepBatch(ctx context.Context, nowMS int64, rowIDs string, i int, ckpt *checkpointer) (int, error) {
	rows := strings.Count(rowIDs, ",") + 1
	array := "[" + rowIDs + "]"
	var n int
	err := s.sweepTx(ctx, i, ckpt, func(q sqliteQueries) error {
		start := time.Now()
		events, err := q.q.InsertSweptEvents(ctx, sqlitedb.InsertSweptEventsParams{
			EventKind: store.EventTTLSwept, EventAtMs: nowMS, RowIds: array})
		if err != nil {
			return err
		}
		deleted, err := q.q.DeleteExpiredWorkerRows(ctx, sqlitedb.DeleteExpiredWorkerRowsParams{RowIds: array, NowMs: nowMS})
		if err != nil {
			return err
		}
		if events != deleted {
			return errEventKeysTaken
		}
		n = int(deleted)
		s.gate.tookSweep(rows, time.Since(start))
		return nil
	})
	if errors.Is(err, errEventKeysTaken) {
		err = s.sweepTx(ctx, i, ckpt, func(q sqliteQueries) error {
			var err error
			n, err = q.deleteExpired(ctx, nowMS, rowIDs)
			return err
		})
	}
	return n, err
}

// sweepTx runs fn in a write transaction, as InTx does, with the writer
// connection's automatic checkpoint off while a checkpointer runs, and
// starts ckpt's checkpoint of the batches before once it holds the turn.
func (s *Store) sweepTx(ctx context.Context, i int, ckpt *checkpointer, fn func(sqliteQueries) error) error {
	defer s.w.preparePending(ctx)
	tx := s.txAttempt(ctx, func(q store.Writer) error {
		if err := fn(q.(sqliteQueries)); err != nil {
			return err
		}
		if inSweepBatch != nil {
			inSweepBatch(i)
		}
		return nil
	})
	return s.write(ctx, func() (time.Duration, error) {
		if s.gate.sweeps.Load() > 0 {
			if err := s.setAutoCheckpoint(ctx, false); err != nil {
				return 0, err
			}
		}
		ckpt.kick()
		return tx()
	})
}

// deleteExpired is sweepBatch's transaction for a batch some of whose
// events' keys are taken: it deletes the rows of rowIDs that are expired
// at nowMS (q must be a transaction's), and records a ttl_swept event for
// each, in the order of rowIDs; an event whose key is taken moves to the
// next free millisecond, as in InsertEvents.
func (s sqliteQueries) deleteExpired(ctx context.Context, nowMS int64, rowIDs string) (int, error) {
	rows, err := s.q.DeleteExpiredWorkers(ctx, sqlitedb.DeleteExpiredWorkersParams{RowIds: "[" + rowIDs + "]", NowMs: nowMS})
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	// RETURNING's order is the DELETE's; the events follow the scan's.
	pos := make(map[int64]int)
	for i, id := range strings.Split(rowIDs, ",") {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return 0, err
		}
		pos[n] = i
	}
	slices.SortFunc(rows, func(a, b sqlitedb.DeleteExpiredWorkersRow) int { return cmp.Compare(pos[a.Rowid], pos[b.Rowid]) })
	keys := make([]store.InstanceKey, len(rows))
	for i, row := range rows {
		keys[i] = store.InstanceKey{Namespace: row.Namespace, InstanceID: row.WorkerInstanceID}
	}
	return len(rows), s.InsertEvents(ctx, store.EventTTLSwept, nowMS, keys)
}

// cutRowIDs cuts the first n (at least 1) rowids off ids, a
// comma-separated list.
func cutRowIDs(ids string, n int) (head, rest string) {
	end := 0
	for range max(1, n) {
		i := strings.IndexByte(ids[end:], ',')
		if i < 0 {
			return ids, ""
		}
		end += i + 1
	}
	return ids[:end-1], ids[end:]
}

// sweepRows is how many rows the next sweep batch takes: enough for
// about sweepHold, at most batch.
func (s *Store) sweepRows(batch int) int {
	return min(batch, sized(&s.gate.perSwept, sweepHold, sweepBatchFirst, sweepBatchMin, sweepBatchMax))
}

// tookSweep reports that a sweep batch's statements took d for rows
// rowids.
func (g *writeGate) tookSweep(rows int, d time.Duration) {
	took(&g.perSwept, rows, sweepBatchMin, d)
}

// sweepWALPages bounds the WAL, in pages of 4 KiB, while sweeps write:
// 64 MB, more than a sweep of 100k rows writes (about 50 MB). Each time it
// is reached, the turn is held for a checkpoint (finish) and the next
// write syncs the WAL's new header: two fsyncs and one, which a busy disk
// can make tens of milliseconds. A variable for tests.
var sweepWALPages int64 = 8 * walSizeLimit / 4096

// checkpointer checkpoints the WAL on a read connection while a sweep
// removes rows, in place of the writer's automatic checkpoint, which its
// batches turn off: one checkpoint at a time, of the batches before, each
// started when a batch has the turn, so that it runs beside the batch on
// the other core and not beside the writes that take turns with it (a
// checkpoint started as a batch ended slowed those, and so the sweep's
// wait for them, threefold). SQLite starts the WAL over only at a write
// that finds all of it copied, which a checkpoint beside the writes
// seldom leaves; so once the WAL has grown past sweepWALPages, the rest
// is copied with the turn held (finish): a short checkpoint, of what a few
// heartbeats wrote.
type checkpointer struct {
	s        *Store
	ctx      context.Context
	wrote    bool         // a batch was written
	walPages atomic.Int64 // in the WAL at the last checkpoint
	running  atomic.Bool
	wg       sync.WaitGroup
}

// startCheckpointer starts a sweep's checkpointer, or returns nil when
// the store reads on the writer's pool (an in-memory database, a
// caller's *sql.DB), where a checkpoint off the writer is not to be had.
func (s *Store) startCheckpointer(ctx context.Context) *checkpointer {
	if s.readerDB == s.writerDB {
		return nil
	}
	s.gate.sweeps.Add(1)
	return &checkpointer{s: s, ctx: ctx}
}

// afterBatch notes that a batch was written, and finishes the WAL when it
// has grown past sweepWALPages.
func (c *checkpointer) afterBatch(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.wrote = true
	if c.walPages.Load() >= sweepWALPages {
		return c.finish(ctx)
	}
	return nil
}

// kick starts a checkpoint of what the batches wrote, unless one runs.
func (c *checkpointer) kick() {
	if c == nil || !c.wrote || !c.running.CompareAndSwap(false, true) {
		return
	}
	c.wg.Go(func() {
		defer c.running.Store(false)
		c.checkpoint(c.ctx)
	})
}

// finish copies the WAL to its end, so that the next write starts it
// over: after the running checkpoint, one more off the turn copies (and
// syncs) what the last batch wrote, and one with the turn held what the
// others wrote meanwhile. Most of a checkpoint's time is its two fsyncs,
// which take the longer the more they flush.
func (c *checkpointer) finish(ctx context.Context) error {
	c.wg.Wait()
	if err := c.checkpoint(ctx); err != nil {
		return err
	}
	err := c.s.write(ctx, func() (time.Duration, error) {
		return 0, c.checkpoint(ctx)
	})
	if err == nil {
		c.walPages.Store(0)
	}
	return err
}

// stop finishes the WAL when the sweep wrote, so that the first commit
// after it, with the writer's automatic checkpoint back on, does not find
// it to copy, and lets the writer checkpoint again.
func (c *checkpointer) stop() {
	if c == nil {
		return
	}
	if c.wrote {
		// A sweep cancelled, or a store closed, leaves the rest to the
		// writer's automatic checkpoint.
		_ = c.finish(c.ctx)
	}
	c.wg.Wait()
	c.s.gate.sweeps.Add(-1)
}

// checkpoint runs a PASSIVE checkpoint on a read connection and notes
// the WAL's length.
func (c *checkpointer) checkpoint(ctx context.Context) error {
	var busy, log, done int64
	err := c.s.readerDB.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done)
	if err == nil {
		c.walPages.Store(log)
	}
	return err
}
