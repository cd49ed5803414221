package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

func TestSweepRemovesExactlyTheExpired(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		for i, ttl := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
			args := registerArgs("ns", []string{"a", "b", "c"}[i], t0)
			args.LivenessTTL = ttl
			mustRegister(t, r, args)
		}
		// At b's expiry, a and b are not live; c is.
		rep, err := r.SweepExpiredWorkers(ctx, t0.Add(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "report", rep, registry.SweepReport{Swept: 2})
		equal(t, "rows left", b.rowCount(t), 1)
		equal(t, "listed", instances(mustList(t, r, registry.ListWorkersArgs{Now: t0}).Workers), []string{"ns/c"})
		var swept []string
		for _, e := range b.events(t) {
			if e.Kind == "ttl_swept" {
				swept = append(swept, e.Instance)
				equal(t, "swept at", e.AtMS, t0.Add(2*time.Second).UnixMilli())
			}
		}
		if b.engine == enginePostgres {
			// Postgres sweeps partition by partition, as the engine does:
			// events are in partition order, then by key.
			slices.Sort(swept)
		}
		equal(t, "swept events", swept, []string{"a", "b"})

		// Nothing more to sweep: no write at all.
		before := b.snapshot(t)
		rep, err = r.SweepExpiredWorkers(ctx, t0.Add(2*time.Second))
		if err != nil || rep != (registry.SweepReport{}) {
			t.Fatalf("second sweep = %+v, %v", rep, err)
		}
		equal(t, "database", b.snapshot(t), before)
	})
}

func TestSweepInBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		// More than one batch of expired rows, written directly for speed.
		const n = 1234
		col, val := b.partitionColumn("'w' || (100000 + i)")
		if _, err := b.raw.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < CAST(?2 AS INTEGER))
		INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
			last_heartbeat_ms, liveness_ttl_ms, registered_at_ms`+col+`)
		SELECT 'ns', 'w' || (100000 + i), 'w', `+b.lanesLiteral("default")+`, '', CAST(?1 AS BIGINT) + i, 1000, ?1`+val+` FROM s`, t0.UnixMilli(), n); err != nil {
			t.Fatal(err)
		}
		mustRegister(t, r, registerArgs("ns", "live", t0.Add(time.Hour)))
		rep, err := r.SweepExpiredWorkers(context.Background(), t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "swept", rep.Swept, n)
		equal(t, "rows left", b.rowCount(t), 1)
		var events int
		if err := b.raw.QueryRow(`SELECT count(DISTINCT worker_instance_id) FROM ff_worker_registry_event WHERE event_kind = 'ttl_swept'`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		equal(t, "one ttl_swept event per row", events, n)
	})
}

// TestSweepsPruneOnceAMinute: a registry's sweeps prune the audit log at
// most once a minute of sweep time (a clock set back far prunes again),
// while PruneEvents prunes at once.
func TestSweepsPruneOnceAMinute(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		r, _ := setup(t, s, registry.WithEventRetention(time.Millisecond))
		ctx := context.Background()
		sweep := func(at time.Time) int {
			t.Helper()
			rep, err := r.SweepExpiredWorkers(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			return rep.PrunedEvents
		}
		// Two events each time: pruning always keeps the newest event.
		register := func(id string, at time.Time) {
			t.Helper()
			mustRegister(t, r, registerArgs("ns", id, at))
			mustRegister(t, r, registerArgs("ns", id+"2", at))
		}
		prunes := func(what string, at time.Time, want bool) {
			t.Helper()
			if n := sweep(at); (n > 0) != want {
				t.Errorf("%s: pruned %d events, want pruning %v", what, n, want)
			}
		}
		register("a", t0)
		prunes("first sweep", t0.Add(time.Second), true)
		register("b", t0.Add(2*time.Second))
		prunes("sweep 59 s later", t0.Add(60*time.Second), false)
		prunes("sweep a minute later", t0.Add(61*time.Second), true)
		register("c", t0.Add(61500*time.Millisecond))
		prunes("sweep 1 s later", t0.Add(62*time.Second), false)
		prunes("sweep with the clock set back 100 ms", t0.Add(61900*time.Millisecond), false)
		register("d", t0.Add(-11*time.Minute))
		prunes("sweep with the clock set back 11 min", t0.Add(-10*time.Minute), true)
		register("e", t0.Add(-9*time.Minute))
		if n, err := r.PruneEvents(ctx, t0.Add(time.Hour)); err != nil || n == 0 {
			t.Fatalf("PruneEvents = %d, %v; want events pruned at once", n, err)
		}
	})
}

func TestSweepPrunesOldEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s, registry.WithEventRetention(time.Hour))
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "old", t0))
		mustRegister(t, r, registerArgs("ns", "new", t0.Add(90*time.Minute)))
		rep, err := r.SweepExpiredWorkers(ctx, t0.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// "old" registered more than an hour before the sweep; both rows expire.
		equal(t, "report", rep, registry.SweepReport{Swept: 2, PrunedEvents: 1})
		equal(t, "events", b.eventKinds(t), []string{"registered", "ttl_swept", "ttl_swept"})

		n, err := r.PruneEvents(ctx, t0.Add(3*time.Hour))
		if want := int64(b.pruned(3)); err != nil || n != want {
			t.Fatalf("PruneEvents = %d, %v; want %d", n, err, want)
		}
		_, err = r.PruneEvents(ctx, time.Time{})
		wantValidation(t, err, "before")
	})
}

// syncBuffer is a log sink that the sweeper goroutine and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestRunSweeper(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		var (
			mu  sync.Mutex
			now = t0
		)
		clock := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
		setNow := func(t time.Time) {
			mu.Lock()
			defer mu.Unlock()
			now = t
		}
		logs := &syncBuffer{}
		// A sweep that removes nothing logs at DEBUG.
		logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		r, b := setup(t, s, registry.WithClock(clock), registry.WithLogger(logger))
		mustRegister(t, r, registerArgs("ns", "w", t0)) // TTL 10 s

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.RunSweeper(ctx, registry.SweeperConfig{Interval: time.Millisecond}) }()

		waitForLogged(t, logs, "a first sweep", func() bool { return strings.Contains(logs.String(), "worker registry sweep") })
		equal(t, "rows while live", b.rowCount(t), 1)

		// A clock before 1970 makes sweeps fail; the sweeper logs and goes on.
		setNow(time.Unix(-100, 0))
		waitForLogged(t, logs, "a failed sweep", func() bool { return strings.Contains(logs.String(), "sweep failed") })

		// The registry's clock, not the wall clock, decides expiry.
		setNow(t0.Add(10 * time.Second))
		waitForLogged(t, logs, "the expired worker to be swept", func() bool { return b.rowCount(t) == 0 })
		waitForLogged(t, logs, "a logged sweep of it", func() bool { return strings.Contains(logs.String(), "swept=1") })

		cancel()
		select {
		case err := <-done:
			if err != context.Canceled {
				t.Fatalf("RunSweeper returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("RunSweeper did not return after cancel")
		}
	})
}

// TestRunSweeperSweepsAtOnce: the first sweep does not wait an interval,
// and prunes by the registry's retention.
func TestRunSweeperSweepsAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s, registry.WithClock(func() time.Time { return t0.Add(time.Minute) }),
			registry.WithEventRetention(30*time.Second))
		mustRegister(t, r, registerArgs("ns", "w", t0)) // expired by the clock's time
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.RunSweeper(ctx, registry.SweeperConfig{Interval: time.Hour})
		deadline := time.Now().Add(10 * time.Second)
		// The registration's event, at t0, is older than the retention.
		for b.rowCount(t) != 0 || len(b.eventKinds(t)) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("RunSweeper with a one-hour interval did not sweep and prune at once: events %v", b.eventKinds(t))
			}
			time.Sleep(5 * time.Millisecond)
		}
		equal(t, "events", b.eventKinds(t), []string{"ttl_swept"})
	})
}

// TestSweepMovesEventsWhoseKeyIsTaken: a sweep batch writes its ttl_swept
// events from the expired rows in one statement; an event whose key
// (instance, time, kind) another writer already took moves to the next free
// millisecond, in a full batch and in the last, partial one alike, and none
// is lost.
func TestSweepMovesEventsWhoseKeyIsTaken(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		testSweepMovesEventsWhoseKeyIsTaken(t, s)
	})
}

func testSweepMovesEventsWhoseKeyIsTaken(t *testing.T, s store) {
	r, b := setup(t, s)
	const n = 2500 // two full batches and a partial one
	now := t0.Add(time.Hour)
	id := "printf('w%05d', i)"
	if b.engine == enginePostgres {
		id = "'w' || lpad(i::text, 5, '0')"
	}
	col, val := b.partitionColumn(id)
	if _, err := b.raw.Exec(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < CAST(?2 AS INTEGER) - 1)
		INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
			last_heartbeat_ms, liveness_ttl_ms, registered_at_ms`+col+`)
		SELECT 'ns', `+id+`, 'w', `+b.lanesLiteral("default")+`, '', CAST(?1 AS BIGINT) + i, 1000, ?1`+val+` FROM s`, t0.UnixMilli(), n); err != nil {
		t.Fatal(err)
	}
	taken := []string{"w00005", "w01500", "w02400", "w02499"}
	for _, instance := range taken {
		// As the engine writes its events.
		col, val := b.partitionColumn("?1")
		if _, err := b.raw.Exec(`INSERT INTO ff_worker_registry_event
			(namespace, worker_instance_id, event_kind, event_at_ms, reason`+col+`)
			VALUES ('ns', ?1, 'ttl_swept', ?2, NULL`+val+`) ON CONFLICT DO NOTHING`,
			instance, now.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.SweepExpiredWorkers(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "swept", rep.Swept, n)
	equal(t, "rows left", b.rowCount(t), 0)
	at := map[string][]int64{}
	for _, e := range b.events(t) {
		if e.Kind == "ttl_swept" {
			at[e.Instance] = append(at[e.Instance], e.AtMS-now.UnixMilli())
		}
	}
	equal(t, "instances with a ttl_swept event", len(at), n)
	for i := range n {
		id := fmt.Sprintf("w%05d", i)
		want := []int64{0}
		if slices.Contains(taken, id) {
			want = []int64{0, 1}
		}
		if !slices.Equal(at[id], want) {
			t.Errorf("%s: ttl_swept events at %v ms after the sweep's time, want %v", id, at[id], want)
		}
	}
}

// TestSweepLeavesHeldRowsToTheirHolder: on Postgres a sweep skips an
// expired row that another transaction holds (a registration refreshing
// it, say) rather than wait for it, and sweeps it once it is free. The
// lock is held on another connection while the sweep runs; a sweep that
// waited would run into the context's deadline. So too when an event's
// key is taken and the batch runs its second pass. (SQLite's writers take
// turns: there a held write lock is waited for, as every write waits.)
func TestSweepLeavesHeldRowsToTheirHolder(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		if s.engine != enginePostgres {
			t.Skip("SQLite's writers take turns at one lock")
		}
		for _, taken := range []bool{false, true} {
			t.Run(fmt.Sprintf("event key taken=%v", taken), func(t *testing.T) {
				r, b := setup(t, s)
				for _, id := range []string{"a", "held", "z"} {
					args := registerArgs("ns", id, t0)
					args.LivenessTTL = time.Second
					mustRegister(t, r, args)
				}
				if taken {
					// "a"'s ttl_swept event key is taken: the batch runs
					// its second pass, which must skip the held row too.
					col, val := b.partitionColumn("'a'")
					if _, err := b.raw.Exec(`INSERT INTO ff_worker_registry_event
						(namespace, worker_instance_id, event_kind, event_at_ms, reason`+col+`)
						VALUES ('ns', 'a', 'ttl_swept', ?1, NULL`+val+`)`, t0.Add(time.Hour).UnixMilli()); err != nil {
						t.Fatal(err)
					}
				}
				release, _ := b.holdRowLock(t, "ns", "held")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				rep, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Hour))
				if err != nil {
					t.Fatalf("sweep with a row held: %v", err)
				}
				equal(t, "swept with a row held", rep.Swept, 2)
				release()
				rep, err = r.SweepExpiredWorkers(context.Background(), t0.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				equal(t, "swept once it is free", rep.Swept, 1)
				equal(t, "rows left", b.rowCount(t), 0)
				want := 3
				if taken {
					want = 4 // the taken one and "a"'s, a millisecond later
				}
				equal(t, "ttl_swept events", len(slices.DeleteFunc(b.eventKinds(t), func(k string) bool { return k != "ttl_swept" })), want)
			})
		}
	})
}
