package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// The Postgres store's clock is the server's: registries on hosts whose
// clocks disagree (registry.WithHostClock moves a registry's host clock,
// not the machine's) judge liveness alike.

// TestPostgresSkewedHostBehindStaysLive runs a worker (TTL 3 s) on a host
// whose clock is 5 s behind, beside a sweeper on a host with a true clock,
// for 10 s: the worker stays live throughout, with no register/sweep
// cycle (on the hosts' own clocks it went through 17), and warns once of
// its host clock.
func TestPostgresSkewedHostBehindStaysLive(t *testing.T) {
	runStores(t, []store{postgresStore}, func(t *testing.T, s store) {
		_, b := setup(t, s)
		logs := &logRecorder{}
		behind := registry.NewPostgres(b.pool, registry.WithLogger(slog.New(logs)),
			registry.WithHostClock(func() time.Time { return time.Now().Add(-5 * time.Second) }))
		t.Cleanup(func() { behind.Close() })
		sweeper := registry.NewPostgres(b.pool)
		t.Cleanup(func() { sweeper.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go sweeper.RunSweeper(ctx, registry.SweeperConfig{Interval: 100 * time.Millisecond})

		rec := &stateRecorder{t: t}
		cfg := workerConfig(t, "w")
		cfg.LivenessTTL, cfg.HeartbeatInterval, cfg.OnStateChange = 3*time.Second, 0, rec.record
		w := startWorker(t, behind, cfg)
		if d := time.Until(w.LiveUntil()); d < 2*time.Second || d > 3*time.Second {
			t.Fatalf("LiveUntil is %s away on the server's clock; want about the TTL, 3s", d)
		}
		stop := make(chan struct{})
		watched := watchState(t, w, stop)
		time.Sleep(10 * time.Second)
		close(stop)
		<-watched
		if ss := rec.states(); len(ss) != 0 {
			t.Fatalf("state changes %v in 10 s; want none. Logs:\n%s", ss, logs)
		}
		equal(t, "state", w.State(), registry.WorkerLive)
		equal(t, "events", b.eventKinds(t), []string{"registered"})
		if n := len(logs.matching("host clock")); n != 1 {
			t.Fatalf("%d clock warnings; want 1. Logs:\n%s", n, logs)
		}
	})
}

// TestPostgresSkewedHostAheadExpiresOnTime registers and heartbeats a
// worker (TTL 3 s) from a host whose clock is an hour ahead, then stops
// heartbeating, as a process that dies does: a sweeper on a host with a
// true clock removes it at its TTL after the last heartbeat (on the
// hosts' own clocks, an hour and a TTL later).
func TestPostgresSkewedHostAheadExpiresOnTime(t *testing.T) {
	runStores(t, []store{postgresStore}, func(t *testing.T, s store) {
		_, b := setup(t, s)
		ahead := registry.NewPostgres(b.pool, registry.WithHostClock(func() time.Time { return time.Now().Add(time.Hour) }))
		t.Cleanup(func() { ahead.Close() })
		sweepLogs := &logRecorder{}
		sweeper := registry.NewPostgres(b.pool, registry.WithLogger(slog.New(sweepLogs)))
		t.Cleanup(func() { sweeper.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()

		go sweeper.RunSweeper(ctx, registry.SweeperConfig{Interval: 100 * time.Millisecond})
		args := registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "pool", WorkerInstanceID: "w-ahead", Lanes: []string{"default"}, LivenessTTL: 3 * time.Second}
		if _, err := ahead.RegisterWorker(ctx, args); err != nil {
			t.Fatal(err)
		}
		var last, expiry time.Time
		for range 3 {
			time.Sleep(500 * time.Millisecond)
			started := time.Now()
			hb, err := ahead.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w-ahead"})
			if err != nil || hb.Outcome != registry.HeartbeatRefreshed {
				t.Fatalf("heartbeat = %+v, %v", hb, err)
			}
			last, expiry = time.Now(), hb.NextExpiry
			// Measured from the call's start and end, so that a slow call on
			// a loaded machine does not count against the clock.
			if d := hb.NextExpiry.Sub(started); d < 2*time.Second || hb.NextExpiry.Sub(last) > 3*time.Second {
				t.Fatalf("the heartbeat's expiry is %s after the call began, %s after it returned; want about the TTL, 3s, on the server's clock", d, hb.NextExpiry.Sub(last))
			}
		}
		waitWithin(t, 10*time.Second, "the dead worker swept", func() bool {
			kinds := b.eventKinds(t)
			return kinds[len(kinds)-1] == "ttl_swept"
		}, func() string { return fmt.Sprint(b.eventKinds(t), "\n", sweepLogs) })
		// The sweep's time, its event's, against the expiry (a sweep of the
		// 256 partitions may take seconds on a loaded machine): it comes
		// within the sweep interval, and on the machine's clock soon after.
		var sweptMS int64
		if err := b.raw.QueryRow(`SELECT event_at_ms FROM ff_worker_registry_event WHERE event_kind = 'ttl_swept'`).Scan(&sweptMS); err != nil {
			t.Fatal(err)
		}
		late := time.UnixMilli(sweptMS).Sub(expiry)
		t.Logf("swept at %s after its expiry (sweeps every 100ms), seen %s after its last heartbeat (TTL 3s)",
			late, time.Since(last).Round(time.Millisecond))
		if late < 0 || late > time.Second {
			t.Fatalf("swept at %s, %s after its expiry %s; want within the sweep interval", time.UnixMilli(sweptMS).UTC(), late, expiry)
		}
	})
}
