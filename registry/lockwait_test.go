package registry_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/flowfabric/workerregistry/registry"
)

// holdRowLock takes, on a connection of its own, the lock that a heartbeat
// of ns/instance must wait for: SQLite's write lock (BEGIN IMMEDIATE), or
// the row's lock on Postgres (SELECT ... FOR UPDATE). waiters counts the
// Postgres sessions blocked on it, directly or behind another such
// session (a tuple lock's queue); on SQLite, where nothing shows a
// waiter, it is nil.
func (b *testBundle) holdRowLock(t *testing.T, ns, instance string) (release func(), waiters func() int) {
	t.Helper()
	ctx := context.Background()
	conn, err := b.raw.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
	t.Cleanup(release)
	if b.engine == engineSQLite {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return release, nil
	}
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM ff_worker_registry
		WHERE namespace = $1 AND worker_instance_id = $2 FOR UPDATE) AS locked`, ns, instance).Scan(&n); err != nil || n != 1 {
		t.Fatalf("locking %s/%s: %d rows, %v", ns, instance, n, err)
	}
	waiters = func() int {
		var blocked int
		err := b.raw.QueryRow(`SELECT count(*) FROM pg_stat_activity AS a
			WHERE ?1::integer = ANY(pg_blocking_pids(a.pid))
			   OR EXISTS (SELECT 1 FROM unnest(pg_blocking_pids(a.pid)) AS by(pid) WHERE ?1::integer = ANY(pg_blocking_pids(by.pid)))`, pid).Scan(&blocked)
		if err != nil {
			t.Fatal(err)
		}
		return blocked
	}
	return release, waiters
}

// waitFor polls cond until it holds, and fails the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 30*time.Second, what, cond, func() string { return "" })
}

// waitForLogged polls cond until it holds, and fails the test after 10 s,
// showing what was logged to logs.
func waitForLogged(t *testing.T, logs fmt.Stringer, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond, func() string { return "; logs:\n" + logs.String() })
}

// waitWithin polls cond until it holds, and fails the test after limit,
// with detail() after what it waited for.
func waitWithin(t *testing.T, limit time.Duration, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s%s", what, detail())
		}
		time.Sleep(time.Millisecond)
	}
}

// steppedClock is a registry clock that a test moves by hand. firstRead
// receives once the clock has been read after arm.
type steppedClock struct {
	ms        atomic.Int64
	armed     atomic.Bool
	firstRead chan struct{}
}

func newSteppedClock(at time.Time) *steppedClock {
	c := &steppedClock{firstRead: make(chan struct{}, 1)}
	c.ms.Store(at.UnixMilli())
	return c
}

func (c *steppedClock) now() time.Time {
	if c.armed.CompareAndSwap(true, false) {
		c.firstRead <- struct{}{}
	}
	return time.UnixMilli(c.ms.Load())
}

func (c *steppedClock) arm()             { c.armed.Store(true) }
func (c *steppedClock) set(at time.Time) { c.ms.Store(at.UnixMilli()) }

// TestHeartbeatTimeIsReadAfterTheLock starts heartbeats with a zero Now
// while another connection holds the lock they must wait for, moves the
// registry's clock once each has read it, and then lets them through. A
// heartbeat must judge liveness, and compute its expiry, at a time read
// once it holds the lock: the worker that expired during the wait is not
// revived (NotRegistered, its row untouched), and the one still live
// expires a TTL after the later time. With the time read before the wait,
// the first would be refreshed and the second would get an expiry already
// 15 s short.
func TestHeartbeatTimeIsReadAfterTheLock(t *testing.T) {
	type call func(ctx context.Context, r *registry.Registry, instance string) (registry.HeartbeatResult, error)
	single := func(ctx context.Context, r *registry.Registry, instance string) (registry.HeartbeatResult, error) {
		return r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instance})
	}
	batch := func(ctx context.Context, r *registry.Registry, instance string) (registry.HeartbeatResult, error) {
		res, err := r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{{Namespace: "ns", WorkerInstanceID: instance}})
		if err != nil {
			return registry.HeartbeatResult{}, err
		}
		return res[0], nil
	}
	eachStore(t, func(t *testing.T, s store) {
		for _, c := range []struct {
			name   string
			events bool
			call   call
		}{
			{"single", false, single},
			{"single with events", true, single},
			{"batch", false, batch},
			{"batch with events", true, batch},
		} {
			t.Run(c.name, func(t *testing.T) {
				for _, tc := range []struct {
					name       string
					movedTo    time.Duration // the clock during the wait, after t0
					wantResult registry.HeartbeatResult
				}{
					// Registered at t0 with a TTL of 10 s; the clock reads
					// t0+5s when the call starts.
					{"expired during the wait", 20 * time.Second, registry.HeartbeatResult{Outcome: registry.HeartbeatNotRegistered}},
					{"live after the wait", 8 * time.Second, registry.HeartbeatResult{
						Outcome: registry.HeartbeatRefreshed, NextExpiry: t0.Add(18 * time.Second)}},
				} {
					t.Run(tc.name, func(t *testing.T) {
						clock := newSteppedClock(t0.Add(5 * time.Second))
						r, b := setup(t, s, registry.WithClock(clock.now), registry.WithHeartbeatEvents(c.events))
						mustRegister(t, r, registerArgs("ns", "w", t0))
						before := b.snapshot(t)

						release, waiters := b.holdRowLock(t, "ns", "w")
						clock.arm()
						type result struct {
							res registry.HeartbeatResult
							err error
						}
						done := make(chan result, 1)
						go func() {
							res, err := c.call(context.Background(), r, "w")
							done <- result{res, err}
						}()
						<-clock.firstRead // the call has read t0+5s
						if waiters != nil {
							waitFor(t, "the heartbeat to wait for the row's lock", func() bool { return waiters() > 0 })
						}
						clock.set(t0.Add(tc.movedTo))
						release()
						got := <-done
						if got.err != nil {
							t.Fatal(got.err)
						}
						equal(t, "result", got.res, tc.wantResult)
						if tc.wantResult.Outcome == registry.HeartbeatNotRegistered {
							equal(t, "database", b.snapshot(t), before)
							return
						}
						var lastBeat, expires int64
						if err := b.raw.QueryRow(`SELECT last_heartbeat_ms, last_heartbeat_ms + liveness_ttl_ms FROM ff_worker_registry
							WHERE namespace = 'ns' AND worker_instance_id = 'w'`).Scan(&lastBeat, &expires); err != nil {
							t.Fatal(err)
						}
						equal(t, "stored heartbeat", lastBeat, t0.Add(tc.movedTo).UnixMilli())
						equal(t, "stored expiry", expires, tc.wantResult.NextExpiry.UnixMilli())
					})
				}
			})
		}
	})
}

// TestHeartbeatBatchCommitsChunkByChunk cancels a batch larger than a
// chunk as its second chunk starts: the first chunk's heartbeats stay
// written, as HeartbeatWorkers documents, the rest are not, and the call
// returns the cancellation and no results.
func TestHeartbeatBatchCommitsChunkByChunk(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var reads atomic.Int32
		at := t0.Add(5 * time.Second)
		clock := func() time.Time {
			// Read 1 validates the batch, read 2 is the first chunk's,
			// read 3 the second's.
			if reads.Add(1) == 3 {
				cancel()
			}
			return at
		}
		r, b := setup(t, s, registry.WithClock(clock))
		const n = 1200
		batch := make([]registry.HeartbeatWorkerArgs, n)
		for i := range batch {
			batch[i] = registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: fmt.Sprintf("w%04d", i)}
			args := registerArgs("ns", batch[i].WorkerInstanceID, t0)
			args.LivenessTTL = time.Hour
			mustRegister(t, r, args)
		}
		res, err := r.HeartbeatWorkers(ctx, batch)
		if !errors.Is(err, context.Canceled) || res != nil {
			t.Fatalf("HeartbeatWorkers = %d results, %v; want none and context.Canceled", len(res), err)
		}
		rows, err := b.raw.Query(`SELECT worker_instance_id, last_heartbeat_ms FROM ff_worker_registry ORDER BY worker_instance_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		written := 0
		for i := 0; rows.Next(); i++ {
			var id string
			var beat int64
			if err := rows.Scan(&id, &beat); err != nil {
				t.Fatal(err)
			}
			switch {
			case beat == at.UnixMilli() && written == i:
				written++
			case beat != t0.UnixMilli() || i < written:
				t.Fatalf("%s: last heartbeat %d, after %d written: want a prefix of the batch at %d, the rest at %d",
					id, beat, written, at.UnixMilli(), t0.UnixMilli())
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if written == 0 || written == n {
			t.Fatalf("%d of %d heartbeats written; want the first chunk's only", written, n)
		}
	})
}

// TestLargeHeartbeatBatchMatchesSingleCalls is
// TestHeartbeatWorkersMatchesSingleCalls for a batch of several chunks,
// with instances repeated across them, registrations that expire part way
// and times that go back and forth.
func TestLargeHeartbeatBatchMatchesSingleCalls(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		ctx := context.Background()
		const workers, n = 700, 1700
		prepare := func(t *testing.T, r *registry.Registry) {
			var batch []registry.RegisterWorkerArgs
			for i := range workers {
				args := registerArgs("ns", fmt.Sprintf("w%03d", i), t0)
				args.LivenessTTL = time.Duration(1+i%20) * time.Second
				batch = append(batch, args)
			}
			for _, args := range batch {
				mustRegister(t, r, args)
			}
		}
		batch := make([]registry.HeartbeatWorkerArgs, n)
		for i := range batch {
			batch[i] = registry.HeartbeatWorkerArgs{
				Namespace:        "ns",
				WorkerInstanceID: fmt.Sprintf("w%03d", (i*7)%(workers+50)), // some never registered
				Now:              t0.Add(time.Duration(i%13) * 900 * time.Millisecond),
			}
		}
		for _, events := range []bool{false, true} {
			t.Run(fmt.Sprintf("events=%v", events), func(t *testing.T) {
				rb, bb := setup(t, s, registry.WithHeartbeatEvents(events))
				rs, bs := setup(t, s, registry.WithHeartbeatEvents(events))
				prepare(t, rb)
				prepare(t, rs)
				got, err := rb.HeartbeatWorkers(ctx, batch)
				if err != nil {
					t.Fatal(err)
				}
				want := make([]registry.HeartbeatResult, len(batch))
				outcomes := map[registry.HeartbeatOutcome]int{}
				for i, args := range batch {
					want[i] = mustHeartbeat(t, rs, args.Namespace, args.WorkerInstanceID, args.Now)
					outcomes[want[i].Outcome]++
				}
				if outcomes[registry.HeartbeatRefreshed] == 0 || outcomes[registry.HeartbeatNotRegistered] == 0 {
					t.Fatalf("outcomes %v: the script should exercise both", outcomes)
				}
				equal(t, "results", got, want)
				equal(t, "rows", registryRows(bb.snapshot(t)), registryRows(bs.snapshot(t)))
				equal(t, "events", sortedEvents(bb.events(t)), sortedEvents(bs.events(t)))
			})
		}
	})
}

// TestSQLiteWritesOutwaitTheBusyTimeout holds SQLite's write lock from
// another connection for far longer than the writer's busy timeout while
// each kind of write waits for it: none may fail with SQLITE_BUSY, since
// the registry retries while the call's context lives, and each completes
// once the lock is released.
func TestSQLiteWritesOutwaitTheBusyTimeout(t *testing.T) {
	ctx := context.Background()
	r, b := setup(t, sqliteStore)
	mustRegister(t, r, registerArgs("ns", "a", t0))
	mustRegister(t, r, registerArgs("ns", "b", t0))
	mustRegister(t, r, registerArgs("ns", "c", t0))
	writes := map[string]func() error{
		"register": func() error {
			_, err := r.RegisterWorker(ctx, registerArgs("ns", "d", t0))
			return err
		},
		"heartbeat with a Now": func() error {
			_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "a", Now: t0.Add(time.Second)})
			return err
		},
		"heartbeat with the clock": func() error {
			_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "b"})
			return err
		},
		"batch": func() error {
			_, err := r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{{Namespace: "ns", WorkerInstanceID: "c", Now: t0.Add(time.Second)}})
			return err
		},
		"sweep and prune": func() error {
			_, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Second))
			return err
		},
	}
	release := b.holdWriteLock(t)
	done := make(chan error, len(writes))
	for name, write := range writes {
		go func() {
			if err := write(); err != nil {
				done <- fmt.Errorf("%s: %w", name, err)
				return
			}
			done <- nil
		}()
	}
	// Many busy timeouts long: every write has found the lock taken, many
	// times over, by now.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("a write ended while the lock was held: %v", err)
	default:
	}
	release()
	for range writes {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestSQLiteWriteWaitEndsWithTheContext: a write waiting for SQLite's
// write lock gives up when its context's deadline passes, with the
// context's error, not SQLITE_BUSY, and writes nothing.
func TestSQLiteWriteWaitEndsWithTheContext(t *testing.T) {
	r, b := setup(t, sqliteStore)
	mustRegister(t, r, registerArgs("ns", "a", t0))
	before := b.snapshot(t)
	release := b.holdWriteLock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "a", Now: t0.Add(time.Second)})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("HeartbeatWorker = %v, want context.DeadlineExceeded", err)
	}
	if se := (*sqlite.Error)(nil); errors.As(err, &se) {
		t.Fatalf("HeartbeatWorker = %v, which carries flowfabrictest.SQLite's error %v", err, se)
	}
	if took > 5*time.Second {
		t.Fatalf("the call gave up after %v, long after its 100ms deadline", took)
	}
	release()
	equal(t, "database", b.snapshot(t), before)
}
