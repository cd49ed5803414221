package registry_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// Times at the edges of what the API accepts.
var (
	// year300M's UnixMilli wraps to -8979720640928751616.
	year300M = time.Date(300_000_000, 1, 1, 0, 0, 0, 0, time.UTC)
	unix62   = time.Unix(1<<62, 0)
	// lastNow is the latest Now, AsOf or before a call accepts.
	lastNow     = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)
	pastLastNow = lastNow.Add(time.Nanosecond)
	// yearOnePlus is the zero time's neighbour: not IsZero, so not "the clock".
	yearOnePlus = time.Time{}.Add(time.Nanosecond)
	// The first and last instants int64 milliseconds since 1970 can hold.
	firstStored = time.UnixMilli(math.MinInt64)
	lastStored  = time.UnixMilli(math.MaxInt64).Add(time.Millisecond - time.Nanosecond)
)

// TestTimesOutOfRangeAreRejected passes every public entry point that takes
// a time or a duration a value it cannot store, and checks that the call
// is rejected naming the field and that nothing is written.
func TestTimesOutOfRangeAreRejected(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		// The clock is an hour past t0, so a sweep that ran would remove
		// the worker below and write an event.
		r, b := setup(t, s, registry.WithClock(func() time.Time { return t0.Add(time.Hour) }))
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "i", t0))
		mustRegister(t, r, registerArgs("ns", "j", t0))
		registrytest.InsertLeases(t, b.raw.DB,
			registrytest.Lease{WorkerInstanceID: "w1", ExpiresAt: time.UnixMilli(-5)},
			registrytest.Lease{WorkerInstanceID: "w2", ExpiresAt: t0},
		)
		// A registry whose clock is out of range: zero times must not
		// slip past the bounds through it.
		badClock := b.open(t, registry.WithClock(func() time.Time { return year300M }))
		before := b.snapshot(t)

		register := func(now time.Time) func() error {
			return func() error {
				_, err := r.RegisterWorker(ctx, registerArgs("ns", "i", now))
				return err
			}
		}
		heartbeat := func(now time.Time) func() error {
			return func() error {
				_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "i", Now: now})
				return err
			}
		}
		batch := func(r *registry.Registry, nows ...time.Time) func() error {
			return func() error {
				args := make([]registry.HeartbeatWorkerArgs, len(nows))
				for k, now := range nows {
					args[k] = registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: []string{"i", "j"}[k%2], Now: now}
				}
				_, err := r.HeartbeatWorkers(ctx, args)
				return err
			}
		}
		markDead := func(now time.Time) func() error {
			return func() error {
				_, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "i", Now: now})
				return err
			}
		}
		drain := func(now time.Time) func() error {
			return func() error {
				_, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "i", Now: now})
				return err
			}
		}
		listWorkers := func(now time.Time) func() error {
			return func() error {
				_, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Now: now})
				return err
			}
		}
		leases := func(r *registry.Registry, asOf time.Time, after *registry.LeaseCursor) func() error {
			return func() error {
				_, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: asOf, After: after})
				return err
			}
		}
		cursor := func(at time.Time) *registry.LeaseCursor { return &registry.LeaseCursor{ExpiresAt: at} }
		sweep := func(r *registry.Registry, now time.Time) func() error {
			return func() error {
				_, err := r.SweepExpiredWorkers(ctx, now)
				return err
			}
		}
		prune := func(before time.Time) func() error {
			return func() error {
				_, err := r.PruneEvents(ctx, before)
				return err
			}
		}
		runSweeper := func(cfg registry.SweeperConfig) func() error {
			return func() error {
				// A sweeper that accepted cfg would run until the timeout.
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				return r.RunSweeper(ctx, cfg)
			}
		}

		cases := []struct {
			name  string
			call  func() error
			field string
		}{
			{"register in year 300,000,000", register(year300M), "now"},
			{"register at 2^62 s", register(unix62), "now"},
			{"register just past the last time", register(pastLastNow), "now"},
			{"register a nanosecond before 1970", register(time.Unix(0, -1)), "now"},
			{"register at the zero time plus 1ns", register(yearOnePlus), "now"},
			{"register by an out-of-range clock", func() error {
				_, err := badClock.RegisterWorker(ctx, registerArgs("ns", "i", time.Time{}))
				return err
			}, "now"},
			{"heartbeat in year 300,000,000", heartbeat(year300M), "now"},
			{"heartbeat just past the last time", heartbeat(pastLastNow), "now"},
			{"heartbeat at the zero time plus 1ns", heartbeat(yearOnePlus), "now"},
			{"batch entry at 2^62 s", batch(r, unix62), "[0].now"},
			{"batch entry after a valid one", batch(r, t0.Add(time.Second), year300M), "[1].now"},
			{"batch entry after a clock one", batch(r, time.Time{}, pastLastNow), "[1].now"},
			{"batch by an out-of-range clock", batch(badClock, t0, time.Time{}), "[1].now"},
			{"mark dead at 2^62 s", markDead(unix62), "now"},
			{"mark dead just past the last time", markDead(pastLastNow), "now"},
			{"drain in year 300,000,000", drain(year300M), "now"},
			{"drain at the zero time plus 1ns", drain(yearOnePlus), "now"},
			{"list workers at 2^62 s", listWorkers(unix62), "now"},
			{"list workers just past the last time", listWorkers(pastLastNow), "now"},
			{"leases as of year 300,000,000", leases(r, year300M, nil), "as_of"},
			{"leases as of just past the last time", leases(r, pastLastNow, nil), "as_of"},
			{"leases as of the zero time plus 1ns", leases(r, yearOnePlus, nil), "as_of"},
			{"leases as of an out-of-range clock", leases(badClock, time.Time{}, nil), "as_of"},
			{"lease cursor in year 300,000,000", leases(r, t0, cursor(year300M)), "after.expires_at"},
			{"lease cursor at 2^62 s", leases(r, t0, cursor(unix62)), "after.expires_at"},
			{"lease cursor at -2^62 s", leases(r, t0, cursor(time.Unix(-1<<62, 0))), "after.expires_at"},
			{"lease cursor just past the last stored time", leases(r, t0, cursor(lastStored.Add(time.Nanosecond))), "after.expires_at"},
			{"lease cursor just before the first stored time", leases(r, t0, cursor(firstStored.Add(-time.Nanosecond))), "after.expires_at"},
			{"sweep in year 300,000,000", sweep(r, year300M), "now"},
			{"sweep at 2^62 s", sweep(r, unix62), "now"},
			{"sweep just past the last time", sweep(r, pastLastNow), "now"},
			{"sweep a nanosecond before 1970", sweep(r, time.Unix(0, -1)), "now"},
			{"sweep by an out-of-range clock", sweep(badClock, time.Time{}), "now"},
			{"prune before year 300,000,000", prune(year300M), "before"},
			{"prune before 2^62 s", prune(unix62), "before"},
			{"prune before just past the last time", prune(pastLastNow), "before"},
			{"prune before the zero time plus 1ns", prune(yearOnePlus), "before"},
			{"sweeper with a negative interval", runSweeper(registry.SweeperConfig{Interval: -time.Second}), "interval"},
			{"sweeper with an interval under 1ms", runSweeper(registry.SweeperConfig{Interval: time.Millisecond - 1}), "interval"},
			{"sweeper with the most negative interval", runSweeper(registry.SweeperConfig{Interval: math.MinInt64}), "interval"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantValidation(t, tc.call(), tc.field)
				equal(t, "database", b.snapshot(t), before)
			})
		}
	})
}

// TestTimesAtTheirEdgesAreAccepted: the last time a call accepts works
// end to end, with the longest TTL added, and the epoch is a time, not
// "the clock".
func TestTimesAtTheirEdgesAreAccepted(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s, registry.WithClock(func() time.Time { return t0 }))
		ctx := context.Background()
		args := registerArgs("ns", "last", lastNow)
		args.LivenessTTL = 24 * time.Hour
		equal(t, "register at the last time", mustRegister(t, r, args), registry.Registered)
		equal(t, "heartbeat at the last time", mustHeartbeat(t, r, "ns", "last", lastNow),
			registry.HeartbeatResult{Outcome: registry.HeartbeatRefreshed, NextExpiry: lastNow.Add(24 * time.Hour)})
		res, err := r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{{Namespace: "ns", WorkerInstanceID: "last", Now: lastNow}})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "batch at the last time", res[0].NextExpiry, lastNow.Add(24*time.Hour))
		if o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "last", Now: lastNow}); err != nil || o != registry.DrainRequested {
			t.Fatalf("drain at the last time = %v, %v", o, err)
		}
		workers := mustList(t, r, registry.ListWorkersArgs{Now: lastNow}).Workers
		equal(t, "workers at the last time", instances(workers), []string{"ns/last"})
		equal(t, "last heartbeat", workers[0].LastHeartbeat, lastNow)
		equal(t, "expiry", workers[0].ExpiresAt, lastNow.Add(24*time.Hour))

		// The epoch is not the zero time: it is stored as 0, not as the clock.
		mustRegister(t, r, registerArgs("ns", "epoch", time.Unix(0, 0)))
		var heartbeatMS int64
		if err := b.raw.QueryRow(`SELECT last_heartbeat_ms FROM ff_worker_registry WHERE worker_instance_id = 'epoch'`).Scan(&heartbeatMS); err != nil {
			t.Fatal(err)
		}
		equal(t, "epoch heartbeat", heartbeatMS, int64(0))

		if o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "last", Now: lastNow}); err != nil || o != registry.Marked {
			t.Fatalf("mark dead at the last time = %v, %v", o, err)
		}
		for _, e := range b.events(t) {
			if e.Instance == "last" {
				equal(t, e.Kind+" event time", e.AtMS, lastNow.UnixMilli())
			}
		}
		rep, err := r.SweepExpiredWorkers(ctx, lastNow)
		if err != nil {
			t.Fatal(err)
		}
		// The epoch worker is swept; the retention (7 days) prunes every
		// event but the sweep's own and the ones at the last time.
		equal(t, "sweep at the last time", rep, registry.SweepReport{Swept: 1, PrunedEvents: 1})
		n, err := r.PruneEvents(ctx, lastNow)
		if err != nil || n != 0 {
			t.Fatalf("PruneEvents(last time) = %d, %v; want 0: no event is before it", n, err)
		}
	})
}

// TestLeaseCursorAtTheEdgesOfStorage walks leases at the extremes of int64
// milliseconds: every cursor a page returns is accepted back, and cursors
// at the edges of the representable range are positions, not errors.
func TestLeaseCursorAtTheEdgesOfStorage(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, sqlDB := setupLeases(t, s)
		ctx := context.Background()
		exec := func(p uint16) registry.ExecutionID {
			return registry.ExecutionID{Partition: p, UUID: uuid.New()}
		}
		registrytest.InsertLeases(t, sqlDB,
			registrytest.Lease{ExecutionID: exec(1), WorkerInstanceID: "min", ExpiresAt: firstStored},
			registrytest.Lease{ExecutionID: exec(0), WorkerInstanceID: "pre-epoch", ExpiresAt: time.UnixMilli(-5)},
			registrytest.Lease{ExecutionID: exec(0), WorkerInstanceID: "epoch", ExpiresAt: time.Unix(0, 0)},
			registrytest.Lease{ExecutionID: exec(0), WorkerInstanceID: "t0", ExpiresAt: t0},
			registrytest.Lease{ExecutionID: exec(0), WorkerInstanceID: "max", ExpiresAt: lastStored},
		)
		list := func(asOf time.Time, after *registry.LeaseCursor) []string {
			t.Helper()
			res, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: asOf, After: after})
			if err != nil {
				t.Fatal(err)
			}
			if res.Next != nil {
				t.Fatalf("Next = %+v on a short page", res.Next)
			}
			out := []string{}
			for _, l := range res.Leases {
				out = append(out, l.WorkerInstanceID)
			}
			return out
		}
		at := func(ts time.Time) *registry.LeaseCursor { return &registry.LeaseCursor{ExpiresAt: ts} }
		equal(t, "as of the last time", list(lastNow, nil), []string{"min", "pre-epoch", "epoch", "t0"})
		equal(t, "after the first stored time", list(t0, at(firstStored)), []string{"min", "pre-epoch", "epoch", "t0"})
		equal(t, "after the zero time plus 1ns", list(t0, at(yearOnePlus)), []string{"pre-epoch", "epoch", "t0"})
		equal(t, "after the epoch", list(t0, at(time.Unix(0, 0))), []string{"epoch", "t0"})
		equal(t, "after the last stored millisecond", list(t0, at(time.UnixMilli(math.MaxInt64))), []string{})
		equal(t, "after the last stored time", list(t0, at(lastStored)), []string{})

		// A walk a lease at a time: the first cursor is at MinInt64 ms.
		var got []string
		var after *registry.LeaseCursor
		for range 10 {
			res, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: lastNow, After: after, Limit: 1})
			if err != nil {
				t.Fatalf("page after %+v: %v", after, err)
			}
			for _, l := range res.Leases {
				got = append(got, l.WorkerInstanceID)
			}
			if after = res.Next; after == nil {
				break
			}
		}
		equal(t, "walk", got, []string{"min", "pre-epoch", "epoch", "t0"})
	})
}

// TestEventRetentionWithoutOverflow: the longest retention a Duration
// holds is subtracted from now without wrapping, by SweepExpiredWorkers
// and by RunSweeper.
func TestEventRetentionWithoutOverflow(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		const longest = time.Duration(math.MaxInt64) // about 292 years
		var now atomic.Pointer[time.Time]
		now.Store(&t0)
		r, b := setup(t, s, registry.WithEventRetention(longest),
			registry.WithClock(func() time.Time { return *now.Load() }))
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "a", time.Unix(0, 0)))
		mustRegister(t, r, registerArgs("ns", "b", t0))
		rep, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "sweep an hour after t0", rep, registry.SweepReport{Swept: 2})
		// 292 years before the last time is after every event but the sweep's.
		rep, err = r.SweepExpiredWorkers(ctx, lastNow)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "sweep at the last time", rep, registry.SweepReport{PrunedEvents: b.pruned(4)})

		// RunSweeper takes the same bounds and sweeps at once.
		mustRegister(t, r, registerArgs("ns", "c", t0))
		later := t0.Add(time.Hour)
		now.Store(&later)
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- r.RunSweeper(ctx, registry.SweeperConfig{Interval: time.Duration(math.MaxInt64)})
		}()
		deadline := time.Now().Add(10 * time.Second)
		for b.rowCount(t) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("RunSweeper with the longest durations did not sweep")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("RunSweeper = %v, want context.Canceled", err)
		}
	})
}

// TestClockReadAgainOutOfRange: a call with a zero Now reads the clock
// again once it holds its locks; a second reading out of range (a clock
// gone wrong) must not be stored: the call keeps its first reading.
func TestClockReadAgainOutOfRange(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		var calls atomic.Int64
		var second atomic.Pointer[time.Time]
		clock := func() time.Time {
			if calls.Add(1) == 1 {
				return t0
			}
			return *second.Load()
		}
		r, b := setup(t, s, registry.WithClock(clock), registry.WithHeartbeatEvents(true))
		ctx := context.Background()
		for _, bad := range []time.Time{lastNow.Add(time.Hour), time.UnixMilli(math.MaxInt64 - 1000), year300M, unix62} {
			second.Store(&bad)
			calls.Store(0)
			mustRegister(t, r, registerArgs("ns", "i", time.Time{}))
			calls.Store(0)
			mustHeartbeat(t, r, "ns", "i", time.Time{})
			calls.Store(0)
			if _, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "i"}); err != nil {
				t.Fatal(err)
			}
			var heartbeatMS, expiresMS int64
			if err := b.raw.QueryRow(`SELECT last_heartbeat_ms, last_heartbeat_ms + liveness_ttl_ms FROM ff_worker_registry WHERE worker_instance_id = 'i'`).Scan(&heartbeatMS, &expiresMS); err != nil {
				t.Fatal(err)
			}
			equal(t, "stored heartbeat after a clock read of "+bad.String(), heartbeatMS, t0.UnixMilli())
			equal(t, "stored expiry", expiresMS, t0.Add(10*time.Second).UnixMilli())
			calls.Store(0)
			if o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "i"}); err != nil || o != registry.Marked {
				t.Fatalf("mark dead = %v, %v", o, err)
			}
			seen := map[string]int{}
			for _, e := range b.events(t) {
				equal(t, e.Kind+" event time", e.AtMS, b.eventTime(t0.UnixMilli(), seen[e.Kind]))
				seen[e.Kind]++
			}
		}
	})
}
