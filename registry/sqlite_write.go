package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// The SQLite store's write path: how a write waits for the write lock.
//
// SQLite's busy handler sleeps longer and longer between its tries (up to
// 100 ms), so a process that waits on it tries rarely and can starve
// behind processes writing back to back, and it gives up with SQLITE_BUSY
// once busy_timeout has passed. So every write of the store runs through
// write, which queues the process's writes on one turn, in arrival order,
// leaves SQLite's busy handler a short timeout (writerBusyTimeoutMS), and
// tries again itself after a short jittered pause, as long as the call's
// context lives.
const (
	busyPauseMin = 250 * time.Microsecond
	busyPauseMax = time.Millisecond
)

// writeGate is a process's (a store's) turn at SQLite's write lock.
type writeGate struct {
	turn chan struct{} // holds a token while a write runs or waits for the lock
}

func newWriteGate() *writeGate {
	return &writeGate{turn: make(chan struct{}, 1)}
}

// write runs attempt, which tries a write once, and tries again while it
// fails with SQLITE_BUSY (or SQLITE_LOCKED) and ctx lives. attempt must
// leave nothing behind when it fails: a transaction rolled back, or a
// single statement.
func (s *sqliteStore) write(ctx context.Context, attempt func() error) error {
	g := s.gate
	select {
	case g.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.turn }()
	for try := 0; ; try++ {
		err := attempt()
		if !isBusy(err) {
			return err
		}
		pause := min(busyPauseMax, busyPauseMin<<min(try, 4))
		if ctx.Err() != nil || sleepCtx(ctx, jitter(pause/2, pause)) != nil {
			// The caller gave up: say so, not that the database was busy.
			return fmt.Errorf("%w while waiting for the write lock (%v)", ctx.Err(), err)
		}
	}
}

// inTx runs fn in a transaction that the writer's DSN makes BEGIN
// IMMEDIATE: the write lock is taken up front and waits out other writers
// instead of failing half way. That also serialises every write, so
// lockAuditLog has nothing to do. A transaction that fails with
// SQLITE_BUSY has written nothing, so it runs again, fn included.
func (s *sqliteStore) inTx(ctx context.Context, fn func(storeWriter) error) error {
	return s.write(ctx, func() error {
		// A connection of its own, so that a COMMIT that fails with
		// SQLITE_BUSY, which leaves SQLite's transaction open, can be
		// rolled back before the next try.
		conn, err := s.writerDB.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(sqliteQueries{s.w.WithTx(tx)}); err != nil {
			return errors.Join(err, ignoreDone(tx.Rollback()))
		}
		err = tx.Commit()
		if isBusy(err) {
			_, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			err = errors.Join(err, rbErr)
		}
		return err
	})
}

// writer returns the store's single statements, each its own autocommit
// write through write.
func (s *sqliteStore) writer() storeWriter { return sqliteAutocommit{s: s, q: sqliteQueries{s.w}} }

// heartbeatAt heartbeats k in a transaction, at the time now returns once
// the transaction holds the write lock.
func (s *sqliteStore) heartbeatAt(ctx context.Context, k instanceKey, now func() int64) (row heartbeatRow, found bool, err error) {
	err = s.inTx(ctx, func(q storeWriter) error {
		row, found, err = q.heartbeatLiveWorker(ctx, k, now())
		return err
	})
	return row, found, err
}

// sqliteAutocommit runs each statement as a write of its own.
type sqliteAutocommit struct {
	s *sqliteStore
	q sqliteQueries
}

// do runs one autocommit statement through write.
func (a sqliteAutocommit) do(ctx context.Context, stmt func() error) error {
	return a.s.write(ctx, stmt)
}

func (sqliteAutocommit) lockAuditLog(context.Context) error { return nil }

func (sqliteAutocommit) lockWorkers(context.Context, []instanceKey, int64) (map[instanceKey]bool, error) {
	return nil, nil
}

func (a sqliteAutocommit) getWorker(ctx context.Context, k instanceKey) (reg registration, found bool, err error) {
	err = a.do(ctx, func() error {
		reg, found, err = a.q.getWorker(ctx, k)
		return err
	})
	return reg, found, err
}

func (a sqliteAutocommit) upsertWorker(ctx context.Context, w workerRow) error {
	return a.do(ctx, func() error { return a.q.upsertWorker(ctx, w) })
}

func (a sqliteAutocommit) heartbeatLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (row heartbeatRow, found bool, err error) {
	err = a.do(ctx, func() error {
		row, found, err = a.q.heartbeatLiveWorker(ctx, k, nowMS)
		return err
	})
	return row, found, err
}

func (a sqliteAutocommit) heartbeatLiveWorkers(ctx context.Context, nowMS int64, keys []instanceKey) (rows []heartbeatRow, err error) {
	err = a.do(ctx, func() error {
		rows, err = a.q.heartbeatLiveWorkers(ctx, nowMS, keys)
		return err
	})
	return rows, err
}

func (a sqliteAutocommit) deleteLiveWorker(ctx context.Context, k instanceKey, nowMS int64) (ok bool, err error) {
	err = a.do(ctx, func() error {
		ok, err = a.q.deleteLiveWorker(ctx, k, nowMS)
		return err
	})
	return ok, err
}

func (a sqliteAutocommit) requestDrain(ctx context.Context, k instanceKey, nowMS int64) (ok bool, err error) {
	err = a.do(ctx, func() error {
		ok, err = a.q.requestDrain(ctx, k, nowMS)
		return err
	})
	return ok, err
}

func (a sqliteAutocommit) deleteExpiredWorkers(ctx context.Context, nowMS int64, limit int) (keys []instanceKey, err error) {
	err = a.do(ctx, func() error {
		keys, err = a.q.deleteExpiredWorkers(ctx, nowMS, limit)
		return err
	})
	return keys, err
}

func (a sqliteAutocommit) insertEvent(ctx context.Context, e eventRow) error {
	return a.do(ctx, func() error { return a.q.insertEvent(ctx, e) })
}

func (a sqliteAutocommit) insertEvents(ctx context.Context, kind string, atMS int64, keys []instanceKey) error {
	return a.do(ctx, func() error { return a.q.insertEvents(ctx, kind, atMS, keys) })
}

func (a sqliteAutocommit) deleteEventsBefore(ctx context.Context, beforeMS int64, limit int) (n int64, err error) {
	err = a.do(ctx, func() error {
		n, err = a.q.deleteEventsBefore(ctx, beforeMS, limit)
		return err
	})
	return n, err
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
