package sqlitestore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// Single heartbeats from many goroutines of one process (group commit).
//
// Each write of a SQLite store is a commit: WAL frames, shm locks and the
// turn handed from goroutine to goroutine. Heartbeats that wait for the
// write turn together are therefore written together: whichever of them
// gets the turn writes every heartbeat waiting at that moment, in arrival
// order, in one transaction, and hands each its own result. A heartbeat
// that finds nobody else waiting is written alone, exactly as before.
//
// Each heartbeat's time is still read once the transaction holds the write
// lock (now is called just before its statement), and a caller whose
// context ends while its heartbeat waits takes it out of the queue and has
// written nothing. Every caller returns when its own context ends, even
// once a write has taken its heartbeat: a shared write runs on a goroutine
// of its own, which holds the write turn, and may still write a heartbeat
// whose caller gave up (harmless: a heartbeat that the caller will retry).
// A shared write that finds the lock taken (another process, a lock held
// past a worker's TTL) retries while any of its callers' contexts lives,
// and leaves out, at each try, the heartbeats whose callers' contexts have
// ended: no caller waits past its own deadline, and no write runs on past
// all of them. If a shared transaction fails, every heartbeat in it is
// written again alone by its own caller, so one caller's cancelled context
// or failure is not another's.

// beat is one single heartbeat waiting for the write turn.
type beat struct {
	ctx context.Context // its caller's
	k   store.InstanceKey
	rep *store.Report // nil: none, the stored one is kept
	now func() int64

	// Set by the write that took the beat, before it closes done.
	row   store.HeartbeatRow
	found bool
	err   error
	done  chan struct{}
}

// errWriteAlone tells a beat's caller that the shared transaction failed
// and that it must write its heartbeat alone.
var errWriteAlone = errors.New("write the heartbeat alone")

// beatQueue holds the beats waiting for the write turn, oldest first.
type beatQueue struct {
	mu      sync.Mutex
	waiting []*beat
}

func (q *beatQueue) push(b *beat) {
	q.mu.Lock()
	q.waiting = append(q.waiting, b)
	q.mu.Unlock()
}

// remove takes b out of the queue and reports whether it was still there.
func (q *beatQueue) remove(b *beat) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.waiting, b)
	if i < 0 {
		return false
	}
	q.waiting = slices.Delete(q.waiting, i, i+1)
	return true
}

// take removes and returns up to n of the oldest beats.
func (q *beatQueue) take(n int) []*beat {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.waiting))
	taken := slices.Clone(q.waiting[:n])
	q.waiting = slices.Delete(q.waiting, 0, n)
	return taken
}

// heartbeat writes one heartbeat of k at the time now returns, together
// with the other single heartbeats waiting for the write turn. alone
// returns write's attempt that writes b by itself, setting b.row and
// b.found; it is used when no other heartbeat waits, or after a shared
// transaction failed.
func (s *Store) heartbeat(ctx context.Context, k store.InstanceKey, rep *store.Report, now func() int64,
	alone func(b *beat) func() (time.Duration, error)) (store.HeartbeatRow, bool, error) {
	g := s.gate
	select {
	case g.turn <- struct{}{}: // nobody writes: no queue
		defer func() { <-g.turn }()
		b := beat{k: k, rep: rep, now: now}
		err := s.writeInTurn(ctx, alone(&b))
		return b.row, b.found, err
	default:
	}
	b := &beat{ctx: ctx, k: k, rep: rep, now: now, done: make(chan struct{})}
	g.queued.Add(1)
	s.beats.push(b)
	select {
	case g.turn <- struct{}{}:
		g.leave()
		group := s.beats.take(s.BatchChunk())
		if len(group) == 1 && group[0] == b {
			defer func() { <-g.turn }()
			err := s.writeInTurn(ctx, alone(b))
			return b.row, b.found, err
		}
		if len(group) == 0 { // an earlier write, which closed done before it gave up the turn, took b
			<-g.turn
		} else {
			go func() {
				defer func() { <-g.turn }()
				s.writeBeats(group)
			}()
		}
	case <-b.done:
		g.leave()
	case <-ctx.Done():
		g.leave()
		if s.beats.remove(b) {
			return store.HeartbeatRow{}, false, ctx.Err()
		}
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return store.HeartbeatRow{}, false, ctx.Err() // taken, and perhaps written yet
	}
	if b.err != errWriteAlone {
		return b.row, b.found, b.err
	}
	if err := ctx.Err(); err != nil {
		return store.HeartbeatRow{}, false, err
	}
	err := s.write(ctx, alone(b))
	return b.row, b.found, err
}

// writeBeats writes group in one transaction, in order, and closes each
// beat's done; the caller holds the turn. It tries, and retries while the
// lock is taken, as long as any beat's context lives; each try leaves out
// the beats whose contexts have ended, which get their context's error.
func (s *Store) writeBeats(group []*beat) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	left := len(group)
	for _, b := range group {
		stop := context.AfterFunc(b.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		})
		defer stop()
	}
	defer s.w.preparePending(ctx)
	ended := make([]bool, len(group))
	err := s.writeInTurn(ctx, s.txAttempt(ctx, func(q store.Writer) error {
		for i, b := range group {
			if ended[i] = b.ctx.Err() != nil; ended[i] {
				continue
			}
			// The beat's own context: a caller that gives up during its
			// statement fails the transaction, and the others write alone.
			var err error
			if b.row, b.found, err = q.HeartbeatLiveWorker(b.ctx, b.k, b.rep, b.now()); err != nil {
				return err
			}
		}
		return nil
	}))
	for i, b := range group {
		switch {
		case ended[i]:
			b.row, b.found, b.err = store.HeartbeatRow{}, false, b.ctx.Err()
		case err != nil:
			b.row, b.found, b.err = store.HeartbeatRow{}, false, errWriteAlone
		}
		close(b.done)
	}
}
