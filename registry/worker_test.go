package registry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/registry"
)

// The worker tests drive liveness with a manual clock: the registry's, which
// the loop stamps its heartbeats with, while its ticks are real time and
// short. Each step of the clock stays within the TTL and waits, with a
// deadline, for a heartbeat at the new time, so that a slow machine
// delays a test but cannot make a worker lapse.
const (
	workerTTL      = 10 * time.Second // on the manual clock
	workerInterval = 3 * time.Millisecond
	waitDeadline   = 20 * time.Second // real time, for conditions polled
)

// manualClock is a clock that moves only when the test moves it.
type manualClock struct{ ms atomic.Int64 }

func newManualClock() *manualClock {
	c := &manualClock{}
	c.ms.Store(t0.UnixMilli())
	return c
}

func (c *manualClock) Now() time.Time { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *manualClock) Advance(d time.Duration) time.Time {
	return time.UnixMilli(c.ms.Add(d.Milliseconds())).UTC()
}

// workerConfig configures a worker whose instance ID is unique to the
// test, so that the goroutines of tests running side by side are told
// apart (see loopsOf).
func workerConfig(t *testing.T, instance string) registry.WorkerConfig {
	return registry.WorkerConfig{
		Namespace: "ns", WorkerID: "pool", WorkerInstanceID: instance + "@" + t.Name(),
		Lanes: []string{"default"}, LivenessTTL: workerTTL, HeartbeatInterval: workerInterval,
	}
}

// setupWorker opens a registry of s on the manual clock, logging to logs, and
// starts a worker on it (workerConfig(t, "w")), stopped when the test ends.
func setupWorker(t *testing.T, s store, opts ...registry.Option) (*registry.Registry, *testBundle, *manualClock, *registry.Worker, *syncBuffer) {
	t.Helper()
	clock := newManualClock()
	logs := &syncBuffer{}
	opts = append([]registry.Option{registry.WithClock(clock.Now), registry.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)
	r, b := setup(t, s, opts...)
	w := startWorker(t, r, workerConfig(t, "w"))
	return r, b, clock, w, logs
}

func startWorker(t *testing.T, r *registry.Registry, cfg registry.WorkerConfig) *registry.Worker {
	t.Helper()
	w, err := r.StartWorker(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartWorker: %v", err)
	}
	t.Cleanup(func() {
		w.Stop(context.Background())
		waitLoopGone(t, cfg)
	})
	return w
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// heartbeatAt waits until the worker's registration carries a heartbeat
// at the clock's time.
func heartbeatAt(t *testing.T, r *registry.Registry, clock *manualClock, instance string) registry.WorkerInfo {
	t.Helper()
	var info registry.WorkerInfo
	waitFor(t, "a heartbeat at "+clock.Now().String(), func() bool {
		var ok bool
		var err error
		info, ok, err = r.GetWorker(context.Background(), registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: instance})
		if err != nil {
			t.Fatal(err)
		}
		return ok && info.LastHeartbeat.Equal(clock.Now())
	})
	return info
}

// loopsOf counts the goroutines labelled as cfg's worker loop: a leak
// check that tests running beside this one cannot disturb.
func loopsOf(t *testing.T, cfg registry.WorkerConfig) int {
	t.Helper()
	var sb strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&sb, 1); err != nil {
		t.Fatal(err)
	}
	// A record is "N @ pcs", the labels, then the stack. Goroutines the
	// loop starts inherit its label (the driver's watch on a call's
	// context, for one): a record counts if its stack is the loop's, or
	// empty (a goroutine not yet started, as the loop is at first).
	label := fmt.Sprintf("%q:%q", "workerregistry.worker", cfg.Namespace+"/"+cfg.WorkerInstanceID)
	n := 0
	for _, rec := range strings.Split(sb.String(), "\n\n") {
		if !strings.Contains(rec, label) || (strings.Contains(rec, "\n#\t0x") && !strings.Contains(rec, ".(*Worker).run+")) {
			continue
		}
		count, _, _ := strings.Cut(rec, " @ ")
		count = count[strings.LastIndex(count, "\n")+1:] // the first record follows the profile's header
		c, err := strconv.Atoi(count)
		if err != nil {
			t.Fatalf("goroutine profile record %q: %v", count, err)
		}
		n += c
	}
	return n
}

func waitLoopGone(t *testing.T, cfg registry.WorkerConfig) {
	t.Helper()
	waitFor(t, "the worker's goroutine to end", func() bool { return loopsOf(t, cfg) == 0 })
}

func TestWorkerStaysLiveAcrossManyTTLs(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b, clock, w, _ := setupWorker(t, s)
		id := workerConfig(t, "w").WorkerInstanceID
		// Waited for: a goroutine the loop starts is counted until it runs.
		waitFor(t, "one labelled loop goroutine", func() bool { return loopsOf(t, workerConfig(t, "w")) == 1 })
		// 40 steps of 4 s: 16 TTLs, each step waiting for the heartbeat
		// that keeps the worker live.
		for range 40 {
			clock.Advance(4 * time.Second)
			info := heartbeatAt(t, r, clock, id)
			equal(t, "expiry", info.ExpiresAt, clock.Now().Add(workerTTL))
			equal(t, "registered at", info.RegisteredAt, t0)
		}
		if closed(w.Done()) || closed(w.Draining()) || w.Err() != nil {
			t.Fatalf("loop: done %v, draining %v, err %v", closed(w.Done()), closed(w.Draining()), w.Err())
		}
		equal(t, "events", b.eventKinds(t), []string{"registered"})
	})
}

func TestWorkerDrainReachesDraining(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		// Heartbeat events show how many heartbeats the drain took.
		clock := newManualClock()
		r, b := setup(t, s, registry.WithClock(clock.Now), registry.WithHeartbeatEvents(true))
		cfg := workerConfig(t, "w")
		cfg.HeartbeatInterval = 200 * time.Millisecond
		id := cfg.WorkerInstanceID
		w := startWorker(t, r, cfg)
		if o, err := r.RequestDrain(context.Background(), registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: id}); err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		select {
		case <-w.Draining():
		case <-time.After(waitDeadline):
			t.Fatal("Draining did not close")
		}
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The first heartbeat after the request closed Draining: it came
		// within one interval.
		kinds := b.eventKinds(t)
		i := len(kinds) - 1
		for kinds[i] != "drain_requested" {
			i--
		}
		equal(t, "events after the request", kinds[i+1:], []string{"heartbeat", "deregistered"})
		if w.Err() != nil {
			t.Fatalf("Err after Stop = %v", w.Err())
		}

		// A drain withdrawn leaves Draining closed: the process was told.
		clock2 := newManualClock()
		r2, _ := setup(t, s, registry.WithClock(clock2.Now))
		cfg2 := workerConfig(t, "w2")
		w2 := startWorker(t, r2, cfg2)
		ctx := context.Background()
		r2.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: cfg2.WorkerInstanceID})
		<-w2.Draining()
		if o, err := r2.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: cfg2.WorkerInstanceID}); err != nil || o != registry.Resumed {
			t.Fatalf("ResumeWorker = %v, %v", o, err)
		}
		clock2.Advance(time.Second)
		if info := heartbeatAt(t, r2, clock2, cfg2.WorkerInstanceID); info.Draining || !closed(w2.Draining()) {
			t.Fatalf("after resume: draining %v, Draining closed %v", info.Draining, closed(w2.Draining()))
		}
	})
}

func TestWorkerRegistersAgainAfterSweep(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b, clock, w, logs := setupWorker(t, s)
		id := workerConfig(t, "w").WorkerInstanceID
		clock.Advance(time.Second)
		heartbeatAt(t, r, clock, id)
		// A pause past the TTL, and the sweeper runs before the loop wakes
		// (or after it: the loop's register records the lapse instead).
		now := clock.Advance(workerTTL + time.Second)
		if _, err := r.SweepExpiredWorkers(context.Background(), now); err != nil {
			t.Fatal(err)
		}
		info := heartbeatAt(t, r, clock, id)
		equal(t, "registered at", info.RegisteredAt, now)
		equal(t, "events", b.eventKinds(t), []string{"registered", "ttl_swept", "registered"})
		if closed(w.Done()) || w.Err() != nil {
			t.Fatalf("loop ended: %v", w.Err())
		}
		// The loop logs after its register returns, which may be after
		// heartbeatAt saw the row.
		waitForLogged(t, logs, "a log of the registration", func() bool {
			return strings.Contains(logs.String(), "registered again")
		})
	})
}

func TestWorkerMarkedDeadEndsLoop(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b, clock, w, _ := setupWorker(t, s)
		id := workerConfig(t, "w").WorkerInstanceID
		if o, err := r.MarkWorkerDead(context.Background(), registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: id, Reason: "bad host"}); err != nil || o != registry.Marked {
			t.Fatalf("MarkWorkerDead = %v, %v", o, err)
		}
		select {
		case <-w.Done():
		case <-time.After(waitDeadline):
			t.Fatal("the loop did not end")
		}
		if err := w.Err(); !errors.Is(err, registry.ErrMarkedDead) || !strings.Contains(err.Error(), "bad host") {
			t.Fatalf("Err = %v, want ErrMarkedDead with the reason", err)
		}
		waitLoopGone(t, workerConfig(t, "w"))
		// Nothing comes back, and Stop has nothing to deregister.
		clock.Advance(time.Second)
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		equal(t, "events", b.eventKinds(t), []string{"registered", "marked_dead"})
		if _, ok, _ := r.GetWorker(context.Background(), registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: id}); ok {
			t.Fatal("the killed worker is live")
		}
		equal(t, "Err after Stop", errors.Is(w.Err(), registry.ErrMarkedDead), true)
	})
}

func TestWorkerStopDeregisters(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b, clock, w, _ := setupWorker(t, s)
		id := workerConfig(t, "w").WorkerInstanceID
		clock.Advance(time.Second)
		heartbeatAt(t, r, clock, id)
		// Many Stops at once: one deregistration, every one returns nil.
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = w.Stop(context.Background()) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("Stop = %v", err)
			}
		}
		if !closed(w.Done()) || w.Err() != nil {
			t.Fatalf("after Stop: done %v, err %v", closed(w.Done()), w.Err())
		}
		waitLoopGone(t, workerConfig(t, "w"))
		equal(t, "events", b.eventKinds(t), []string{"registered", "deregistered"})
		if err := w.Stop(context.Background()); err != nil {
			t.Fatalf("Stop again = %v", err)
		}
		equal(t, "events after another Stop", b.eventKinds(t), []string{"registered", "deregistered"})
		if _, ok, _ := r.GetWorker(context.Background(), registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: id}); ok {
			t.Fatal("live after Stop")
		}
	})
}

func TestWorkerContextEndDeregisters(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		clock := newManualClock()
		r, b := setup(t, s, registry.WithClock(clock.Now))
		ctx, cancel := context.WithCancel(context.Background())
		cfg := workerConfig(t, "w")
		id := cfg.WorkerInstanceID
		w, err := r.StartWorker(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		heartbeatAt(t, r, clock, id)
		cancel()
		select {
		case <-w.Done():
		case <-time.After(waitDeadline):
			t.Fatal("the loop did not end")
		}
		if !errors.Is(w.Err(), context.Canceled) {
			t.Fatalf("Err = %v, want context.Canceled", w.Err())
		}
		waitLoopGone(t, cfg)
		equal(t, "events", b.eventKinds(t), []string{"registered", "deregistered"})
		if err := w.Stop(context.Background()); err != nil {
			t.Fatalf("Stop after the context ended = %v", err)
		}
		equal(t, "events after Stop", b.eventKinds(t), []string{"registered", "deregistered"})
	})
}

// TestWorkerSurvivesStorageErrors closes the database under a running
// worker's registry: its heartbeats fail, are logged and retried, and the
// loop goes on until Stop, whose deregistration fails in turn; then the
// loop's goroutine is gone.
func TestWorkerSurvivesStorageErrors(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		_, b := setup(t, s)
		clock := newManualClock()
		logs := &syncBuffer{}
		opts := []registry.Option{registry.WithClock(clock.Now), registry.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}
		// A registry on a database of the test's, closed underneath it.
		var r *registry.Registry
		var closeDB func()
		if b.engine == enginePostgres {
			pool, err := pgxpool.New(context.Background(), b.path)
			if err != nil {
				t.Fatal(err)
			}
			r, closeDB = registry.NewPostgres(pool, opts...), pool.Close
		} else {
			db, err := registry.OpenSQLiteDB(b.path)
			if err != nil {
				t.Fatal(err)
			}
			r, closeDB = registry.NewSQLite(db, opts...), func() { db.Close() }
		}
		cfg := workerConfig(t, "w")
		w, err := r.StartWorker(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		closeDB()
		waitFor(t, "ten failed heartbeats", func() bool { return strings.Count(logs.String(), "heartbeat failed; retrying") >= 10 })
		if closed(w.Done()) || w.Err() != nil {
			t.Fatalf("the loop ended on storage errors: %v", w.Err())
		}
		waitFor(t, "one loop goroutine while the loop runs", func() bool { return loopsOf(t, cfg) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
		defer cancel()
		if err := w.Stop(ctx); err == nil || !strings.Contains(err.Error(), "deregister worker") {
			t.Fatalf("Stop on a closed database = %v, want the deregistration's error", err)
		}
		if !closed(w.Done()) || w.Err() != nil {
			t.Fatalf("after Stop: done %v, err %v", closed(w.Done()), w.Err())
		}
		waitLoopGone(t, cfg)
		// The registration was left to lapse; nothing else was written.
		equal(t, "events", b.eventKinds(t), []string{"registered"})
		r.Close()
	})
}

func TestStartWorkerRejects(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		before := b.snapshot(t)
		for _, c := range []struct {
			edit  func(*registry.WorkerConfig)
			field string
		}{
			{func(c *registry.WorkerConfig) { c.LivenessTTL = 0 }, "liveness_ttl"},
			{func(c *registry.WorkerConfig) { c.HeartbeatInterval = -time.Second }, "heartbeat_interval"},
			{func(c *registry.WorkerConfig) { c.HeartbeatInterval = c.LivenessTTL }, "heartbeat_interval"},
			{func(c *registry.WorkerConfig) { c.HeartbeatInterval = c.LivenessTTL*10/11 + time.Millisecond }, "heartbeat_interval"},
			{func(c *registry.WorkerConfig) { c.Lanes = nil }, "lanes"},
			{func(c *registry.WorkerConfig) { c.WorkerID = "" }, "worker_id"},
			{func(c *registry.WorkerConfig) { c.Namespace = "bad\n" }, "namespace"},
		} {
			cfg := workerConfig(t, "w")
			c.edit(&cfg)
			w, err := r.StartWorker(ctx, cfg)
			wantValidation(t, err, c.field)
			if w != nil || loopsOf(t, cfg) != 0 {
				t.Fatalf("a worker started on %+v", cfg)
			}
		}
		equal(t, "database", b.snapshot(t), before)

		// An interval just inside the TTL with its jitter is accepted.
		cfg := workerConfig(t, "w")
		cfg.HeartbeatInterval = cfg.LivenessTTL*10/11 - time.Millisecond
		startWorker(t, r, cfg)
		// The instance is live under one worker ID: another is refused.
		other := workerConfig(t, "w")
		other.WorkerID = "other-pool"
		if w, err := r.StartWorker(ctx, other); !errors.Is(err, registry.ErrInstanceReassigned) || w != nil {
			t.Fatalf("StartWorker under another worker ID = %v, %v; want ErrInstanceReassigned", w, err)
		}
		// A context that has ended starts nothing.
		done, cancel := context.WithCancel(ctx)
		cancel()
		if w, err := r.StartWorker(done, workerConfig(t, "w3")); !errors.Is(err, context.Canceled) || w != nil {
			t.Fatalf("StartWorker with an ended context = %v, %v", w, err)
		}
		equal(t, "loops of w3", loopsOf(t, workerConfig(t, "w3")), 0)
	})
}

// TestWorkerEndsWhenRegistryCloses: a Registry closed under a running
// worker is not a storage error that a later tick can cure: the loop ends
// with ErrClosed and its goroutine is gone.
func TestWorkerEndsWhenRegistryCloses(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		cfg := workerConfig(t, "w")
		w, err := r.StartWorker(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the loop to end", func() bool { return closed(w.Done()) })
		if !errors.Is(w.Err(), registry.ErrClosed) {
			t.Errorf("Err() = %v, want ErrClosed", w.Err())
		}
		waitLoopGone(t, cfg)
	})
}
