package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flowfabric/workerregistry/internal/store"
)

// The SQLite store's write path: how a write waits for the write lock, and
// how the processes that share a file take turns at it.
//
// SQLite's busy handler sleeps longer and longer between its tries (up to
// 100 ms), and the goroutines of a busy process hand the write lock from
// one to the next with the file lock free for microseconds in between: a
// process that writes now and then would wait for seconds behind
// processes writing back to back, and then fail with SQLITE_BUSY. So every
// write of the store runs through write, which
//
//   - queues the process's writes on one turn, in arrival order (single
//     heartbeats that wait together are written together, in arrival
//     order: sqlite_beats.go);
//   - leaves SQLite's busy handler a short timeout (writerBusyTimeoutMS)
//     and tries again itself after a short jittered pause, as long as the
//     call's context lives, so that a waiting process tries often;
//   - after writes that held the lock for longHold or more, has the
//     process's next write wait a jittered yield, longer than a waiting
//     process's pause between tries, before it takes the lock again: after
//     each such write while the process has lately found the lock taken
//     (other processes write), else after every sparseYieldEvery of them,
//     so that a process alone pays little and one that waits is let in.
//
// Large writes are split so that each holds the lock briefly: heartbeat
// batches and sweeps by time (batchChunk, sweep.go), prunes by rows
// (pruneBatchSize).
const (
	busyPauseMin = 250 * time.Microsecond
	busyPauseMax = time.Millisecond
	longHold     = 2 * time.Millisecond
	yieldMin     = 2 * time.Millisecond
	yieldMax     = 3 * time.Millisecond

	sparseYieldEvery = 40 * time.Millisecond
	contendedFor     = time.Second
)

// A batch's chunk is sized so that its transaction holds the write lock
// for about chunkHold, from the cost per heartbeat that the chunks before
// it measured: about 5 µs normally, 30 times that under the race
// detector. Longer chunks would keep other processes waiting longer; with
// shorter ones the yields after them would cost more.
const (
	chunkHold      = 10 * time.Millisecond
	chunkMin       = 32
	chunkMax       = 4000
	chunkFirstSize = 500
)

// writeGate is a process's (a store's) turn at SQLite's write lock.
type writeGate struct {
	turn       chan struct{} // holds a token while a write runs or waits for the lock
	yieldUntil atomic.Int64  // UnixNano before which the next write does not start
	perBeat    atomic.Int64  // ns a batch's transaction takes per heartbeat, averaged; 0: not measured yet
	perSwept   atomic.Int64  // ns a sweep batch's statements take per row, averaged; 0: not measured yet

	// Writes that found the turn taken and queued for it, counted as they
	// start to wait, and those of them that have had it or gave up: a
	// sweep lets the writes that queued during its batch go before its
	// next (see awaitQueued).
	queued atomic.Uint64
	leftMu sync.Mutex
	left   uint64
	leftCh chan struct{} // closed at the next leave, when someone waits

	// Sweeps that are removing rows; while there are any, the writer
	// connection does not checkpoint (see sweep.go).
	sweeps atomic.Int32

	// Guarded by turn.
	lastBusy         time.Time     // when a write last found the lock taken
	held             time.Duration // long holds since the last yield
	noAutoCheckpoint bool          // the writer connection's automatic checkpoint is off
}

// take takes the turn, queueing behind the writes that wait for it; it
// fails only when ctx ends first.
func (g *writeGate) take(ctx context.Context) error {
	select {
	case g.turn <- struct{}{}:
		return nil
	default:
	}
	g.queued.Add(1)
	defer g.leave()
	select {
	case g.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave records that a write that queued for the turn has had it, or
// gave up waiting.
func (g *writeGate) leave() {
	g.leftMu.Lock()
	defer g.leftMu.Unlock()
	g.left++
	if g.leftCh != nil {
		close(g.leftCh)
		g.leftCh = nil
	}
}

// awaitQueued waits until the first n writes that queued for the turn
// have had it or gave up, or until ctx ends.
func (g *writeGate) awaitQueued(ctx context.Context, n uint64) error {
	for {
		g.leftMu.Lock()
		if g.left >= n {
			g.leftMu.Unlock()
			return nil
		}
		if g.leftCh == nil {
			g.leftCh = make(chan struct{})
		}
		ch := g.leftCh
		g.leftMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func newWriteGate() *writeGate {
	return &writeGate{turn: make(chan struct{}, 1)}
}

// write runs attempt, which tries a write once and reports how long it held
// the write lock (0 for a write too short to count), and tries again while
// it fails with SQLITE_BUSY (or SQLITE_LOCKED) and ctx lives. attempt must
// leave nothing behind when it fails: a transaction rolled back, or a
// single statement. A write that fails with SQLITE_FULL runs a TRUNCATE
// checkpoint, which frees the WAL's disk space, and is tried once more.
func (s *Store) write(ctx context.Context, attempt func() (held time.Duration, err error)) error {
	g := s.gate
	if err := g.take(ctx); err != nil {
		return err
	}
	defer func() { <-g.turn }()
	return s.writeInTurn(ctx, attempt)
}

// writeInTurn is write for a caller that already holds the turn.
func (s *Store) writeInTurn(ctx context.Context, attempt func() (held time.Duration, err error)) error {
	g := s.gate
	if s.readOnly {
		return ErrReadOnly
	}
	if g.noAutoCheckpoint && g.sweeps.Load() == 0 {
		// The sweeps are over: the writer checkpoints again (see sweep.go).
		if err := s.setAutoCheckpoint(ctx, true); err != nil {
			return err
		}
	}
	if err := sleepCtx(ctx, time.Until(time.Unix(0, g.yieldUntil.Load()))); err != nil {
		return err
	}
	checkpointed := false
	for try := 0; ; try++ {
		held, err := attempt()
		if isFull(err) && !checkpointed {
			// The disk is full, perhaps of WAL frames that a checkpoint
			// would copy into the database and a truncation free: try
			// that, then the write once more.
			checkpointed = true
			if _, cerr := s.writerDB.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); cerr == nil {
				held, err = attempt()
			}
		}
		if err == nil && held >= longHold {
			g.held += held
			if g.held >= sparseYieldEvery || time.Since(g.lastBusy) < contendedFor {
				g.held = 0
				g.yieldUntil.Store(time.Now().Add(jitter(yieldMin, yieldMax)).UnixNano())
			}
		}
		if !IsBusy(err) {
			return err
		}
		g.lastBusy = time.Now()
		pause := min(busyPauseMax, busyPauseMin<<min(try, 4))
		if ctx.Err() != nil || sleepCtx(ctx, jitter(pause/2, pause)) != nil {
			// The caller gave up: say so, not that the database was busy.
			return fmt.Errorf("%w while waiting for the write lock (%v)", ctx.Err(), err)
		}
	}
}

// autoCheckpointPages is the writer connection's automatic checkpoint
// (SQLite's default): a commit that leaves at least this many pages in
// the WAL copies them into the database before it returns.
const autoCheckpointPages = 1000

// setAutoCheckpoint turns the writer connection's automatic checkpoint on
// or off. The caller holds the turn.
func (s *Store) setAutoCheckpoint(ctx context.Context, on bool) error {
	g := s.gate
	if g.noAutoCheckpoint != on {
		return nil
	}
	pages := 0
	if on {
		pages = autoCheckpointPages
	}
	if _, err := s.writerDB.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", pages)); err != nil {
		return err
	}
	g.noAutoCheckpoint = !on
	return nil
}

// InTx runs fn in a transaction that the writer's DSN makes BEGIN
// IMMEDIATE: the write lock is taken up front and waits out other writers
// instead of failing half way. That also serialises every write. A transaction that fails with
// SQLITE_BUSY has written nothing, so it runs again, fn included.
func (s *Store) InTx(ctx context.Context, fn func(store.Writer) error) error {
	defer s.w.preparePending(ctx)
	return s.write(ctx, s.txAttempt(ctx, fn))
}

// txAttempt returns write's attempt for a transaction that runs fn.
func (s *Store) txAttempt(ctx context.Context, fn func(store.Writer) error) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		// A connection of its own, so that a COMMIT that fails with
		// SQLITE_BUSY, which leaves SQLite's transaction open, can be
		// rolled back before the next try.
		conn, err := s.writerDB.Conn(ctx)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		// The hold is counted up to COMMIT, which may go on to run the
		// automatic checkpoint: that takes milliseconds but no write lock.
		start := time.Now()
		err = fn(sqliteQueries{s.w.queries(tx)})
		held := time.Since(start)
		if err != nil {
			return held, errors.Join(err, ignoreDone(tx.Rollback()))
		}
		err = tx.Commit()
		if IsBusy(err) || isFull(err) { // tried again: see writeInTurn
			_, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			err = errors.Join(err, rbErr)
		}
		return held, err
	}
}

// Writer returns the store's single statements, each its own autocommit
// write through write.
func (s *Store) Writer() store.Writer {
	return sqliteAutocommit{s: s, q: sqliteQueries{s.w.queries(nil)}}
}

// HeartbeatAt heartbeats k in a transaction, at the time now returns once
// the transaction holds the write lock.
func (s *Store) HeartbeatAt(ctx context.Context, k store.InstanceKey, rep *store.Report, now func() int64) (store.HeartbeatRow, bool, error) {
	defer s.w.preparePending(ctx)
	return s.heartbeat(ctx, k, rep, now, func(b *beat) func() (time.Duration, error) {
		return s.txAttempt(ctx, func(q store.Writer) error {
			var err error
			b.row, b.found, err = q.HeartbeatLiveWorker(ctx, b.k, b.rep, b.now())
			return err
		})
	})
}

// sqliteAutocommit runs each statement as a write of its own.
type sqliteAutocommit struct {
	s *Store
	q sqliteQueries
}

// do runs one autocommit statement through write. Only a bulk statement
// (rows by the hundred) counts its time as a hold: a single-row one is
// short, and when it takes long, that is the automatic checkpoint it ran
// after committing.
func (a sqliteAutocommit) do(ctx context.Context, stmt func() error) error {
	return a.s.write(ctx, func() (time.Duration, error) { return 0, stmt() })
}

// doBulk is do for a bulk statement.
func (a sqliteAutocommit) doBulk(ctx context.Context, stmt func() error) error {
	return a.s.write(ctx, func() (time.Duration, error) {
		start := time.Now()
		err := stmt()
		return time.Since(start), err
	})
}

func (sqliteAutocommit) LockWorkers(context.Context, []store.InstanceKey, int64) (map[store.InstanceKey]bool, error) {
	return nil, nil
}

func (a sqliteAutocommit) GetWorker(ctx context.Context, k store.InstanceKey) (reg store.Registration, found bool, err error) {
	err = a.do(ctx, func() error {
		reg, found, err = a.q.GetWorker(ctx, k)
		return err
	})
	return reg, found, err
}

func (a sqliteAutocommit) UpsertWorker(ctx context.Context, w store.WorkerRow) error {
	return a.do(ctx, func() error { return a.q.UpsertWorker(ctx, w) })
}

// HeartbeatLiveWorker is one statement, or shares a transaction with other
// goroutines' heartbeats (see heartbeat).
func (a sqliteAutocommit) HeartbeatLiveWorker(ctx context.Context, k store.InstanceKey, rep *store.Report, nowMS int64) (store.HeartbeatRow, bool, error) {
	return a.s.heartbeat(ctx, k, rep, func() int64 { return nowMS }, func(b *beat) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			var err error
			b.row, b.found, err = a.q.HeartbeatLiveWorker(ctx, b.k, b.rep, nowMS)
			return 0, err
		}
	})
}

func (a sqliteAutocommit) HeartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []store.InstanceKey, reports []*store.Report) (rows []store.HeartbeatRow, err error) {
	err = a.doBulk(ctx, func() error {
		rows, err = a.q.HeartbeatLiveWorkers(ctx, nowMS, keys, reports)
		return err
	})
	return rows, err
}

func (a sqliteAutocommit) DeleteLiveWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (ok bool, err error) {
	err = a.do(ctx, func() error {
		ok, err = a.q.DeleteLiveWorker(ctx, k, nowMS)
		return err
	})
	return ok, err
}

func (a sqliteAutocommit) RequestDrain(ctx context.Context, k store.InstanceKey, nowMS int64) (ok bool, err error) {
	err = a.do(ctx, func() error {
		ok, err = a.q.RequestDrain(ctx, k, nowMS)
		return err
	})
	return ok, err
}

func (a sqliteAutocommit) ResumeWorker(ctx context.Context, k store.InstanceKey, nowMS int64) (ok bool, err error) {
	err = a.do(ctx, func() error {
		ok, err = a.q.ResumeWorker(ctx, k, nowMS)
		return err
	})
	return ok, err
}

func (a sqliteAutocommit) InsertEvent(ctx context.Context, e store.EventRow) error {
	return a.do(ctx, func() error { return a.q.InsertEvent(ctx, e) })
}

func (a sqliteAutocommit) InsertEvents(ctx context.Context, kind string, atMS int64, keys []store.InstanceKey) error {
	return a.doBulk(ctx, func() error { return a.q.InsertEvents(ctx, kind, atMS, keys) })
}

func (a sqliteAutocommit) DeleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (n int64, err error) {
	err = a.doBulk(ctx, func() error {
		n, err = a.q.DeleteEventsBefore(ctx, beforeMS, limit)
		return err
	})
	return n, err
}

func (a sqliteAutocommit) SetDrainDirective(ctx context.Context, k store.InstanceKey, draining bool, nowMS int64) error {
	return a.do(ctx, func() error { return a.q.SetDrainDirective(ctx, k, draining, nowMS) })
}

func (a sqliteAutocommit) RecordKill(ctx context.Context, k store.InstanceKey, nowMS int64, reason *string) error {
	return a.do(ctx, func() error { return a.q.RecordKill(ctx, k, nowMS, reason) })
}

func (a sqliteAutocommit) GetKill(ctx context.Context, k store.InstanceKey) (kill store.Kill, found bool, err error) {
	err = a.do(ctx, func() error {
		kill, found, err = a.q.GetKill(ctx, k)
		return err
	})
	return kill, found, err
}

func (a sqliteAutocommit) PruneDirectives(ctx context.Context, drainBeforeMS, killBeforeMS int64) (n int64, err error) {
	err = a.doBulk(ctx, func() error {
		n, err = a.q.PruneDirectives(ctx, drainBeforeMS, killBeforeMS)
		return err
	})
	return n, err
}

func (s *Store) BatchChunk() int {
	return sized(&s.gate.perBeat, chunkHold, chunkFirstSize, chunkMin, chunkMax)
}

func (s *Store) TookChunk(n int, d time.Duration) {
	took(&s.gate.perBeat, n, chunkMin, d)
}

// sized is how many items of a batch fit in hold at per ns an item,
// between lo and hi: first while per is not measured yet.
func sized(per *atomic.Int64, hold time.Duration, first, lo, hi int) int {
	p := per.Load()
	if p <= 0 {
		return first
	}
	return int(min(int64(hi), max(int64(lo), int64(hold)/p)))
}

// took averages into per the ns an item that a batch of n items that
// took d spent on each, unless n is under lo (fixed costs would
// dominate).
func took(per *atomic.Int64, n, lo int, d time.Duration) {
	if n < lo {
		return
	}
	p := int64(d) / int64(n)
	if old := per.Load(); old > 0 {
		p = old + (p-old)/4
	}
	per.Store(max(1, p))
}

// isFull reports whether err is SQLite's SQLITE_FULL: the disk is full.
func isFull(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL
}

// sleepCtx sleeps for d, or until ctx is done and then returns its error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jitter returns a random duration in [lo, hi].
func jitter(lo, hi time.Duration) time.Duration {
	return lo + rand.N(hi-lo+1)
}
