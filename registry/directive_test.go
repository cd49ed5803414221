package registry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// The tests of the directives that outlive a registration: a drain until
// ResumeWorker, a kill for good (ff_worker_registry_directive).

func TestDrainOutlivesLapseSweepAndRegistration(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		if o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second)}); err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		// The registration lapses and is swept; the instance registers
		// again, under another worker ID even: it is draining.
		if rep, err := r.SweepExpiredWorkers(ctx, t0.Add(20*time.Second)); err != nil || rep.Swept != 1 {
			t.Fatalf("sweep = %+v, %v", rep, err)
		}
		args := registerArgs("ns", "w", t0.Add(21*time.Second))
		args.WorkerID = "another-pool"
		equal(t, "register after the sweep", mustRegister(t, r, args), registry.Registered)
		equal(t, "directive after the sweep", mustHeartbeat(t, r, "ns", "w", t0.Add(22*time.Second)).Directive, registry.DirectiveDrain)
		equal(t, "listed as draining", mustList(t, r, registry.ListWorkersArgs{Now: t0.Add(22 * time.Second)}).Workers[0].Draining, true)
		// A lapse that a registration finds (no sweep between) keeps it too.
		equal(t, "register over the expired row", mustRegister(t, r, registerArgs("ns", "w", t0.Add(40*time.Second))), registry.Registered)
		equal(t, "directive after a lapse", mustHeartbeat(t, r, "ns", "w", t0.Add(41*time.Second)).Directive, registry.DirectiveDrain)

		if o, err := r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(42 * time.Second)}); err != nil || o != registry.Resumed {
			t.Fatalf("ResumeWorker = %v, %v", o, err)
		}
		equal(t, "directive after resume", mustHeartbeat(t, r, "ns", "w", t0.Add(43*time.Second)).Directive, registry.DirectiveNone)
		if _, err := r.SweepExpiredWorkers(ctx, t0.Add(60*time.Second)); err != nil {
			t.Fatal(err)
		}
		equal(t, "register after resume and sweep", mustRegister(t, r, registerArgs("ns", "w", t0.Add(61*time.Second))), registry.Registered)
		equal(t, "directive after resume and sweep", mustHeartbeat(t, r, "ns", "w", t0.Add(62*time.Second)).Directive, registry.DirectiveNone)
		equal(t, "events", b.eventKinds(t), []string{"registered", "drain_requested", "ttl_swept", "registered",
			"ttl_swept", "registered", "resumed", "ttl_swept", "registered"})
		// The next sweep that prunes (at most one a minute) prunes the
		// withdrawn drain.
		if _, err := r.SweepExpiredWorkers(ctx, t0.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		equal(t, "directives left", b.directiveCount(t), 0)
	})
}

// TestDrainRecordIsPruned: a drain of an instance absent (no
// registration, no event) for longer than the event retention is pruned;
// one whose instance is still registered, or was lately, is kept.
func TestDrainRecordIsPruned(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s, registry.WithEventRetention(time.Hour))
		ctx := context.Background()
		for _, id := range []string{"gone", "live"} {
			mustRegister(t, r, registerArgs("ns", id, t0))
			if _, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: id, Now: t0}); err != nil {
				t.Fatal(err)
			}
		}
		// "live" stays registered; "gone" is swept at t0+10s.
		for at := t0.Add(5 * time.Second); at.Before(t0.Add(2 * time.Hour)); at = at.Add(5 * time.Second) {
			mustHeartbeat(t, r, "ns", "live", at)
		}
		if _, err := r.SweepExpiredWorkers(ctx, t0.Add(30*time.Minute)); err != nil {
			t.Fatal(err)
		}
		equal(t, "directives within the retention", b.directiveCount(t), 2)
		if _, err := r.SweepExpiredWorkers(ctx, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		equal(t, "directives after the retention", b.directiveCount(t), 1)
		equal(t, "live worker still draining", mustHeartbeat(t, r, "ns", "live", t0.Add(2*time.Hour+time.Second)).Directive, registry.DirectiveDrain)
	})
}

// TestKillOutlivesEventPruning kills an instance, and then another
// process with a retention of a millisecond prunes the whole audit log:
// a worker loop still refuses to register the instance, until the kill
// itself is pruned, a month later.
func TestKillOutlivesEventPruning(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		now := time.Now()
		args := registerArgs("ns", "w", now)
		mustRegister(t, r, args)
		if o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "w", Reason: "bad host", Now: now.Add(time.Millisecond)}); err != nil || o != registry.Marked {
			t.Fatalf("MarkWorkerDead = %v, %v", o, err)
		}
		// Another instance's event, so that the kill's is not the newest
		// (which SQLite's pruning keeps: see testBundle.pruned).
		mustRegister(t, r, registerArgs("ns", "x", now.Add(2*time.Millisecond)))
		other := b.open(t, registry.WithEventRetention(time.Millisecond))
		if rep, err := other.SweepExpiredWorkers(ctx, now.Add(time.Second)); err != nil || rep.PrunedEvents != b.pruned(3) {
			t.Fatalf("the other process's sweep = %+v, %v; want %d events pruned", rep, err, b.pruned(3))
		}
		for _, e := range b.events(t) {
			if e.Kind == "marked_dead" {
				t.Fatal("the marked_dead event was not pruned")
			}
		}

		cfg := registry.WorkerConfig{Namespace: "ns", WorkerID: args.WorkerID, WorkerInstanceID: "w", Lanes: args.Lanes, LivenessTTL: time.Minute}
		w, err := r.StartWorker(ctx, cfg)
		if err == nil {
			w.Stop(ctx)
			t.Fatal("StartWorker registered a killed instance")
		}
		if !errors.Is(err, registry.ErrMarkedDead) || !strings.Contains(err.Error(), "bad host") {
			t.Fatalf("StartWorker = %v; want ErrMarkedDead with the kill's reason", err)
		}
		if _, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "w"}); err != nil || ok {
			t.Fatalf("GetWorker of the killed instance = %v, %v; want none", ok, err)
		}

		// RegisterWorker itself is not the loop: it may register the
		// instance (an operator's act), and the kill stays.
		mustRegister(t, r, registerArgs("ns", "w", now.Add(3*time.Second)))
		equal(t, "directives", b.directiveCount(t), 1)

		// A month on, the kill is pruned too.
		if _, err := other.SweepExpiredWorkers(ctx, now.Add(31*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		equal(t, "directives a month on", b.directiveCount(t), 0)
	})
}

// TestWorkerDrainOutlivesLapse requests a drain of a running worker and at
// once holds the lock its heartbeats need (SQLite's write lock, the
// worker's row on Postgres) for longer than its TTL: the drain reaches no
// heartbeat before the registration lapses, and the loop registers again
// once the lock goes. The registration that follows is draining, so
// Draining closes.
func TestWorkerDrainOutlivesLapse(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		logs := &logRecorder{}
		r, b := setup(t, s, registry.WithLogger(slog.New(logs)))
		rec := &stateRecorder{t: t}
		cfg := realTimeWorkerConfig(t, rec)
		cfg.HeartbeatInterval = 1500 * time.Millisecond // the next heartbeat at least 1.35 s after one
		w := startWorker(t, r, cfg)
		ctx := context.Background()
		// Just after a heartbeat: the next one is well after the lock.
		first := w.LiveUntil()
		waitWithin(t, 5*time.Second, "a heartbeat", func() bool { return w.LiveUntil().After(first) }, logs.String)
		if o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: cfg.Namespace, WorkerInstanceID: cfg.WorkerInstanceID}); err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		release := b.holdWriteLock(t)
		locked := time.Now()
		time.Sleep(3500 * time.Millisecond) // past the TTL (2 s) of the last heartbeat
		if closed(w.Draining()) {
			t.Fatal("Draining closed while the lock was held: the drain reached a heartbeat before the lapse; the test proves nothing")
		}
		equal(t, "state with the lock held", w.State(), registry.WorkerLapsed)
		release()
		t.Logf("lock held %s", time.Since(locked).Round(time.Millisecond))
		select {
		case <-w.Draining():
		case <-time.After(5 * time.Second):
			t.Fatalf("Draining did not close after the lapse; events %v; logs:\n%s", b.eventKinds(t), logs)
		}
		info, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: cfg.Namespace, WorkerInstanceID: cfg.WorkerInstanceID})
		if err != nil || !ok || !info.Draining {
			t.Fatalf("GetWorker = %+v, %v, %v; want a draining registration", info, ok, err)
		}
		kinds := b.eventKinds(t)
		equal(t, "events", kinds[len(kinds)-3:], []string{"drain_requested", "ttl_swept", "registered"})
	})
}

// directiveCount counts the rows of ff_worker_registry_directive.
func (b *testBundle) directiveCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.raw.QueryRow("SELECT count(*) FROM ff_worker_registry_directive").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKillDuringRegistrationIsFinal kills a live instance while a worker
// loop's registration of it is under way: another connection holds the
// registration's row, MarkWorkerDead waits for it, then StartWorker does
// (a loop's registration refuses killed instances), and the row is let
// go. The kill commits first; the registration, which began before it,
// must still see it and refuse. (SQLite's transactions hold the write lock
// from their start, so there the two cannot interleave.)
func TestKillDuringRegistrationIsFinal(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		if s.engine != enginePostgres {
			t.Skip("SQLite's transactions hold the write lock from their start")
		}
		r, b := setup(t, s)
		ctx := context.Background()
		args := registerArgs("ns", "w", time.Time{})
		args.LivenessTTL = time.Minute
		mustRegister(t, r, args)
		// Counted behind the row's holder, not across the database, which
		// other tests' schemas share.
		release, waiters := b.holdRowLock(t, "ns", "w")
		waiting := func(n int) func() bool { return func() bool { return waiters() >= n } }
		killed := markDeadAsync(r, "ns", "w")
		waitFor(t, "the kill to wait for the row", waiting(1))
		started := make(chan error, 1)
		go func() {
			cfg := registry.WorkerConfig{Namespace: "ns", WorkerID: args.WorkerID, WorkerInstanceID: "w", Lanes: args.Lanes, LivenessTTL: time.Minute}
			w, err := r.StartWorker(ctx, cfg)
			if err == nil {
				w.Stop(ctx)
			}
			started <- err
		}()
		waitFor(t, "the registration to wait for the row", waiting(2))
		release()
		if err := <-killed; err != nil {
			t.Fatalf("MarkWorkerDead: %v", err)
		}
		if err := <-started; !errors.Is(err, registry.ErrMarkedDead) {
			t.Fatalf("StartWorker during the kill = %v; want ErrMarkedDead", err)
		}
		if _, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "w"}); err != nil || ok {
			t.Fatalf("GetWorker of the killed instance = %v, %v; want none", ok, err)
		}
	})
}

// TestDrainBehindAKillWritesNothing queues a drain behind a kill of the
// same instance while another connection holds its row: the kill goes
// first and deletes the row, and the drain (one statement on Postgres:
// the row's drain, its directive and its event) must then find no
// registration and write none of the three. Released without the kill, the
// same queued drain writes all three.
func TestDrainBehindAKillWritesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		if s.engine != enginePostgres {
			t.Skip("SQLite's transactions hold the write lock from their start")
		}
		r, b := setup(t, s)
		ctx := context.Background()
		drain := func(instance string) <-chan registry.DrainOutcome {
			out := make(chan registry.DrainOutcome, 1)
			go func() {
				o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: instance, Reason: "rollout"})
				if err != nil {
					t.Errorf("RequestDrain(%s): %v", instance, err)
				}
				out <- o
			}()
			return out
		}
		// written reports the drain_requested events of instance and
		// whether its directive says drain.
		written := func(instance string) (events int, directive bool) {
			t.Helper()
			page, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", WorkerInstanceID: instance})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Events {
				if e.Kind == "drain_requested" {
					events++
				}
			}
			err = b.raw.QueryRow(`SELECT coalesce(bool_or(draining), false) FROM ff_worker_registry_directive
				WHERE namespace = 'ns' AND worker_instance_id = ?1`, instance).Scan(&directive)
			if err != nil {
				t.Fatal(err)
			}
			return events, directive
		}
		for _, id := range []string{"killed", "kept"} {
			args := registerArgs("ns", id, time.Time{})
			args.LivenessTTL = time.Minute
			mustRegister(t, r, args)
		}

		release, waiters := b.holdRowLock(t, "ns", "killed")
		killed := markDeadAsync(r, "ns", "killed")
		waitFor(t, "the kill to wait for the row", func() bool { return waiters() >= 1 })
		drained := drain("killed")
		waitFor(t, "the drain to wait behind the kill", func() bool { return waiters() >= 2 })
		release()
		if err := <-killed; err != nil {
			t.Fatalf("MarkWorkerDead: %v", err)
		}
		if o := <-drained; o != registry.DrainNotRegistered {
			t.Fatalf("a drain behind a kill = %v; want DrainNotRegistered", o)
		}
		if events, directive := written("killed"); events != 0 || directive {
			t.Fatalf("a drain that found no registration wrote %d drain events, directive drain %v; want none", events, directive)
		}

		release, waiters = b.holdRowLock(t, "ns", "kept")
		drained = drain("kept")
		waitFor(t, "the drain to wait for the row", func() bool { return waiters() >= 1 })
		release()
		if o := <-drained; o != registry.DrainRequested {
			t.Fatalf("a drain that waited for the row = %v; want DrainRequested", o)
		}
		if events, directive := written("kept"); events != 1 || !directive {
			t.Fatalf("a drain that waited for the row wrote %d drain events, directive drain %v; want 1, true", events, directive)
		}
		if w, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "kept"}); err != nil || !ok || !w.Draining {
			t.Fatalf("GetWorker after the drain = %+v, %v, %v; want draining", w, ok, err)
		}
	})
}

// markDeadAsync marks an instance dead on another goroutine, and sends nil
// when it was marked, else why not.
func markDeadAsync(r *registry.Registry, namespace, instance string) <-chan error {
	out := make(chan error, 1)
	go func() {
		o, err := r.MarkWorkerDead(context.Background(), registry.MarkWorkerDeadArgs{Namespace: namespace, WorkerInstanceID: instance, Reason: "bad host"})
		if err == nil && o != registry.Marked {
			err = fmt.Errorf("outcome %v", o)
		}
		out <- err
	}()
	return out
}
