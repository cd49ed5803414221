package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/registry"
)

// The tests of what a worker knows of its registration (Worker.State)
// under faults injected while its loop runs. They run on the real clock:
// a lapse is a matter of real time, and how late it is reported is what
// they measure.

// lapseSlack is how late after LiveUntil a lapse may be reported: a timer
// and a goroutine's wake-up, on a shared machine under the race detector.
const lapseSlack = 50 * time.Millisecond

// stateChange is one call of OnStateChange, with when it came.
type stateChange struct {
	state registry.WorkerState
	at    time.Time
}

// stateRecorder records OnStateChange's calls and fails the test if two
// overlap.
type stateRecorder struct {
	t        *testing.T
	inFlight atomic.Int32
	mu       sync.Mutex
	changes  []stateChange
	hold     time.Duration // each call lasts this long
}

func (r *stateRecorder) record(s registry.WorkerState) {
	if r.inFlight.Add(1) != 1 {
		r.t.Errorf("OnStateChange(%v) called while another call runs", s)
	}
	defer r.inFlight.Add(-1)
	at := time.Now()
	r.mu.Lock()
	r.changes = append(r.changes, stateChange{s, at})
	r.mu.Unlock()
	time.Sleep(r.hold)
}

func (r *stateRecorder) all() []stateChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]stateChange(nil), r.changes...)
}

func (r *stateRecorder) states() []registry.WorkerState {
	var ss []registry.WorkerState
	for _, c := range r.all() {
		ss = append(ss, c.state)
	}
	return ss
}

// logRecorder is a slog.Handler that keeps every record, with its time.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}

// matching returns the records whose message, with their attributes,
// contains s.
func (l *logRecorder) matching(s string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.recs {
		text := r.Message
		r.Attrs(func(a slog.Attr) bool {
			text += " " + a.String()
			return true
		})
		if strings.Contains(text, s) {
			out = append(out, r)
		}
	}
	return out
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	for _, r := range l.recs {
		fmt.Fprintf(&sb, "%s %s %s", r.Time.Format("15:04:05.000"), r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&sb, " %s", a)
			return true
		})
		sb.WriteByte('\n')
	}
	return sb.String()
}

// realTimeWorkerConfig is a worker with a TTL of 2 s and the default
// interval (667 ms), reporting its states to rec.
func realTimeWorkerConfig(t *testing.T, rec *stateRecorder) registry.WorkerConfig {
	cfg := workerConfig(t, "w")
	cfg.LivenessTTL = 2 * time.Second
	cfg.HeartbeatInterval = 0
	cfg.OnStateChange = rec.record
	return cfg
}

// watchState polls w.State until stop is closed, and fails the test if it
// says live at or after LiveUntil: the clock is read before State, which
// reads it again, so live means that time was before LiveUntil.
func watchState(t *testing.T, w *registry.Worker, stop <-chan struct{}) (done <-chan struct{}) {
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for !closed(stop) {
			now := time.Now()
			until := w.LiveUntil()
			if s := w.State(); s == registry.WorkerLive && !now.Before(until) && w.LiveUntil().Equal(until) {
				t.Errorf("State() = live at %s, %s after LiveUntil %s", now.Format("15:04:05.000"), now.Sub(until), until.Format("15:04:05.000"))
				return
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()
	return finished
}

// checkLapseReported checks that the first change rec saw after since is
// a lapse, reported at or after until and within lapseSlack of it, and
// returns how late it came.
func checkLapseReported(t *testing.T, rec *stateRecorder, since, until time.Time) time.Duration {
	t.Helper()
	for _, c := range rec.all() {
		if c.at.Before(since) {
			continue
		}
		if c.state != registry.WorkerLapsed {
			t.Fatalf("the first change after the fault is %v at %s; want lapsed (LiveUntil %s)", c.state, c.at.Format("15:04:05.000"), until.Format("15:04:05.000"))
		}
		late := c.at.Sub(until)
		t.Logf("lapse reported %.1f ms after LiveUntil", float64(late.Microseconds())/1000)
		if late < 0 || late > lapseSlack {
			t.Fatalf("lapse reported at %s, %s after LiveUntil %s; want within %s", c.at.Format("15:04:05.000"), late, until.Format("15:04:05.000"), lapseSlack)
		}
		return late
	}
	t.Fatalf("no change reported after %s", since.Format("15:04:05.000"))
	return 0
}

// TestWorkerLapsesWhileTheWriteLockIsHeld holds SQLite's write lock from
// another connection for 6 s, three TTLs, while a worker runs: the worker
// reports its lapse within milliseconds of LiveUntil (not when the lock
// goes), State never says live after LiveUntil, the loop's calls give up
// at their deadline and are tried again at once, and once the lock goes
// the worker is live again, within a second, with no tick lost.
func TestWorkerLapsesWhileTheWriteLockIsHeld(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	r, b := setup(t, sqliteStore, registry.WithLogger(slog.New(logs)))
	rec := &stateRecorder{t: t}
	w := startWorker(t, r, realTimeWorkerConfig(t, rec))
	time.Sleep(time.Second) // a heartbeat or two

	release := b.holdWriteLock(t)
	locked := time.Now()
	stopWatch := make(chan struct{})
	watched := watchState(t, w, stopWatch)
	// A heartbeat that committed just before the lock has recorded its
	// expiry by now; nothing commits from here on.
	time.Sleep(50 * time.Millisecond)
	until := w.LiveUntil()
	if d := until.Sub(locked); d <= 0 || d > 2*time.Second {
		t.Fatalf("LiveUntil is %s after the lock was taken; want within the TTL", d)
	}
	time.Sleep(6*time.Second - time.Since(locked))
	if s := w.State(); s != registry.WorkerLapsed {
		t.Fatalf("State() = %v with the lock held for 6 s; want lapsed", s)
	}
	equal(t, "LiveUntil while the lock is held", w.LiveUntil(), until)
	release()
	released := time.Now()
	waitWithin(t, time.Second, "live again after the lock went", func() bool { return w.State() == registry.WorkerLive }, logs.String)
	t.Logf("live again %.1f ms after the lock went", float64(time.Since(released).Microseconds())/1000)
	close(stopWatch)
	<-watched

	checkLapseReported(t, rec, locked, until)
	waitWithin(t, time.Second, "the change back to live", func() bool {
		return len(rec.all()) == 2
	}, func() string { return fmt.Sprint(rec.states()) })
	equal(t, "changes", rec.states(), []registry.WorkerState{registry.WorkerLapsed, registry.WorkerLive})

	// The heartbeat that the lock held gave up at its deadline, LiveUntil,
	// and the retries came at once, each at its own deadline.
	timeouts := logs.matching("no answer by the call's deadline")
	if len(timeouts) < 2 {
		t.Fatalf("%d calls timed out while the lock was held; want the first at LiveUntil and retries. Logs:\n%s", len(timeouts), logs)
	}
	if first := timeouts[0].Time.Sub(until); first < -5*time.Millisecond || first > 100*time.Millisecond {
		t.Fatalf("the first call gave up %s after LiveUntil, its deadline. Logs:\n%s", first, logs)
	}
	for i := 1; i < len(timeouts); i++ {
		if !strings.Contains(fmt.Sprint(timeouts[i].Message), "retrying at once") {
			t.Fatalf("a timed-out call is not retried at once: %q", timeouts[i].Message)
		}
	}
	if closed(w.Done()) {
		t.Fatalf("the loop ended: %v", w.Err())
	}
	// The registration that follows records the lapse (ttl_swept).
	equal(t, "events", b.eventKinds(t), []string{"registered", "ttl_swept", "registered"})
}

// TestWorkerLapsesWhileItsBackendIsStopped stops, with SIGSTOP, every
// Postgres backend of a worker's connection pool for longer than the TTL:
// the worker reports its lapse within milliseconds of LiveUntil, State
// never says live after it, and the worker is live again by the time the
// backends are continued (on a fresh connection, perhaps long before).
// Then it terminates the pool's backends (pg_terminate_backend): the
// heartbeat that finds its connection gone is retried at once, and the
// worker never lapses.
func TestWorkerLapsesWhileItsBackendIsStopped(t *testing.T) {
	runStores(t, []store{postgresStore}, func(t *testing.T, s store) {
		_, b := setup(t, s)
		logs := &logRecorder{}
		app := "worker_state_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
		cfg, err := pgxpool.ParseConfig(b.path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = app
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		// The test's clock is the server's (one machine), and the lapse's
		// time is measured on it: the registry reads it directly rather
		// than through its offset, which may be off by half a round trip.
		r := registry.NewPostgres(pool, registry.WithLogger(slog.New(logs)), registry.WithClock(time.Now))
		t.Cleanup(func() { r.Close() })
		rec := &stateRecorder{t: t}
		w := startWorker(t, r, realTimeWorkerConfig(t, rec))
		time.Sleep(time.Second)

		backends := func() []int {
			rows, err := b.raw.Query(`SELECT pid FROM pg_stat_activity WHERE application_name = ?1`, app)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var pids []int
			for rows.Next() {
				var pid int
				if err := rows.Scan(&pid); err != nil {
					t.Fatal(err)
				}
				pids = append(pids, pid)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(pids) == 0 {
				t.Fatalf("no backend has application_name %s", app)
			}
			return pids
		}
		stopped := backends()
		cont := func() {
			for _, pid := range stopped {
				syscall.Kill(pid, syscall.SIGCONT)
			}
		}
		t.Cleanup(cont)
		for _, pid := range stopped {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatalf("SIGSTOP %d: %v", pid, err)
			}
		}
		stoppedAt := time.Now()
		stopWatch := make(chan struct{})
		watched := watchState(t, w, stopWatch)
		time.Sleep(50 * time.Millisecond)
		until := w.LiveUntil()
		waitWithin(t, 3*time.Second, "a lapse", func() bool { return len(rec.all()) > 0 }, logs.String)
		time.Sleep(3*time.Second - time.Since(stoppedAt)) // longer than the TTL
		cont()
		waitWithin(t, 5*time.Second, "live after SIGCONT", func() bool { return w.State() == registry.WorkerLive }, logs.String)
		close(stopWatch)
		<-watched
		checkLapseReported(t, rec, stoppedAt, until)
		if ss := rec.states(); len(ss) < 2 || ss[len(ss)-1] != registry.WorkerLive {
			t.Fatalf("changes %v; want lapsed, then live", ss)
		}

		// A statement that a stopped backend had in its socket runs when it
		// is continued, with the time its heartbeat read before the stop:
		// it must not move the expiry back (HeartbeatLiveWorkerNoWait), so
		// the worker stays live.
		changes := len(rec.all())
		time.Sleep(1500 * time.Millisecond)
		if n := len(rec.all()); n != changes {
			t.Fatalf("after SIGCONT: changes %v; want none. Logs:\n%s", rec.states()[changes:], logs)
		}
		equal(t, "state after SIGCONT", w.State(), registry.WorkerLive)
		if _, err := b.raw.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?1`, app); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		before := w.LiveUntil()
		waitWithin(t, 3*time.Second, "a heartbeat after pg_terminate_backend", func() bool { return w.LiveUntil().After(before) }, logs.String)
		renewed := time.Now()
		failed := logs.matching("heartbeat failed")
		var afterKill []slog.Record
		for _, f := range failed {
			if f.Time.After(killed) {
				afterKill = append(afterKill, f)
			}
		}
		if len(afterKill) > 0 {
			if gap := renewed.Sub(afterKill[0].Time); gap > 300*time.Millisecond {
				t.Fatalf("the heartbeat that found its backend gone was retried %s later; want at once. Logs:\n%s", gap, logs)
			}
			t.Logf("after pg_terminate_backend: %d failed call(s), live again %.1f ms after the first", len(afterKill),
				float64(renewed.Sub(afterKill[0].Time).Microseconds())/1000)
		}
		if len(rec.all()) != changes {
			t.Fatalf("changes %v (killed at %s); logs:\n%s", rec.all(), killed.Format("15:04:05.000"), logs)
		}
		equal(t, "state", w.State(), registry.WorkerLive)
	})
}

// TestWorkerStateChangesInOrderOneAtATime makes a worker lapse and come
// back many times (a registry clock moved past its TTL, read at once by
// goroutines calling State and by the loop) while OnStateChange takes a
// millisecond a call: the calls never overlap, come in the order of the
// changes (alternating, never the same state twice), and end with
// WorkerEnded after Stop. Under the race detector, this also checks the
// state's locking.
func TestWorkerStateChangesInOrderOneAtATime(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		clock := newManualClock()
		r, _ := setup(t, s, registry.WithClock(clock.Now))
		rec := &stateRecorder{t: t, hold: time.Millisecond}
		cfg := workerConfig(t, "w")
		cfg.OnStateChange = rec.record
		w := startWorker(t, r, cfg)
		equal(t, "state at start", w.State(), registry.WorkerLive)
		equal(t, "LiveUntil at start", w.LiveUntil(), t0.Add(workerTTL))

		stop := make(chan struct{})
		var readers sync.WaitGroup
		for range 4 {
			readers.Go(func() {
				for !closed(stop) {
					w.State()
					time.Sleep(100 * time.Microsecond)
				}
			})
		}
		const lapses = 20
		for i := range lapses {
			now := clock.Advance(workerTTL + time.Second)
			// The loop may have registered again already, at the new time.
			if s := w.State(); s != registry.WorkerLapsed && w.LiveUntil().Before(now) {
				t.Fatalf("lapse %d: State() = %v with the clock past LiveUntil", i, s)
			}
			waitFor(t, "live again", func() bool { return w.State() == registry.WorkerLive && !w.LiveUntil().Before(now.Add(workerTTL)) })
		}
		close(stop)
		readers.Wait()
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		equal(t, "state after Stop", w.State(), registry.WorkerEnded)
		waitFor(t, "WorkerEnded reported", func() bool {
			ss := rec.states()
			return len(ss) > 0 && ss[len(ss)-1] == registry.WorkerEnded
		})
		ss := rec.states()
		var want []registry.WorkerState
		for range lapses {
			want = append(want, registry.WorkerLapsed, registry.WorkerLive)
		}
		equal(t, "changes", ss, append(want, registry.WorkerEnded))
	})
}

// TestWorkerWarnsOnceOfAClockOffset runs workers on a registry clock
// ahead of the host's: by 5 s (more than a tenth of the TTL of 10 s), the
// loop warns once however many heartbeats it makes; by 500 ms, never.
func TestWorkerWarnsOnceOfAClockOffset(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		offset time.Duration
		warns  int
	}{
		{5 * time.Second, 1},
		{-5 * time.Second, 1},
		{500 * time.Millisecond, 0},
	} {
		t.Run(c.offset.String(), func(t *testing.T) {
			t.Parallel()
			logs := &logRecorder{}
			r, _ := setup(t, sqliteStore, registry.WithLogger(slog.New(logs)),
				registry.WithClock(func() time.Time { return time.Now().Add(c.offset) }))
			cfg := workerConfig(t, "w")
			cfg.HeartbeatInterval = 5 * time.Millisecond
			w := startWorker(t, r, cfg)
			first := w.LiveUntil()
			// Twenty intervals or more: many heartbeats.
			waitFor(t, "heartbeats", func() bool { return w.LiveUntil().Sub(first) >= 100*time.Millisecond })
			warnings := logs.matching("clock")
			if len(warnings) != c.warns {
				t.Fatalf("%d clock warnings; want %d. Logs:\n%s", len(warnings), c.warns, logs)
			}
			if c.warns > 0 && warnings[0].Level != slog.LevelWarn {
				t.Fatalf("the clock warning is at level %v", warnings[0].Level)
			}
		})
	}
}

// TestWorkerLapsesWhenItsRegistrationIsRemoved: a heartbeat that finds
// the registration gone before LiveUntil (an operator deregistered it)
// reports the lapse at once, and the registration that follows makes the
// worker live again; a kill ends it, with WorkerEnded last.
func TestWorkerLapsesWhenItsRegistrationIsRemoved(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		clock := newManualClock()
		r, _ := setup(t, s, registry.WithClock(clock.Now))
		rec := &stateRecorder{t: t}
		cfg := workerConfig(t, "w")
		cfg.OnStateChange = rec.record
		w := startWorker(t, r, cfg)
		ctx := context.Background()
		if o, err := r.DeregisterWorker(ctx, registry.DeregisterWorkerArgs{Namespace: "ns", WorkerInstanceID: cfg.WorkerInstanceID}); err != nil || o != registry.Deregistered {
			t.Fatalf("DeregisterWorker = %v, %v", o, err)
		}
		waitFor(t, "lapsed, then live", func() bool { return len(rec.all()) == 2 })
		equal(t, "changes", rec.states(), []registry.WorkerState{registry.WorkerLapsed, registry.WorkerLive})
		if o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: cfg.WorkerInstanceID}); err != nil || o != registry.Marked {
			t.Fatalf("MarkWorkerDead = %v, %v", o, err)
		}
		<-w.Done()
		equal(t, "state", w.State(), registry.WorkerEnded)
		waitFor(t, "ended", func() bool { return len(rec.all()) == 4 })
		equal(t, "changes", rec.states(), []registry.WorkerState{registry.WorkerLapsed, registry.WorkerLive, registry.WorkerLapsed, registry.WorkerEnded})
	})
}

// TestWorkerStateAsWords: WorkerState encodes as "live", "lapsed" and
// "ended" and decodes back; other values and words are refused.
func TestWorkerStateAsWords(t *testing.T) {
	for s, word := range map[registry.WorkerState]string{registry.WorkerLive: "live", registry.WorkerLapsed: "lapsed", registry.WorkerEnded: "ended"} {
		b, err := json.Marshal(s)
		if err != nil || string(b) != `"`+word+`"` || s.String() != word {
			t.Errorf("%d: json %s, %v, String %q; want %q", int(s), b, err, s.String(), word)
		}
		var back registry.WorkerState
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("json.Unmarshal(%s) = %v, %v", b, back, err)
		}
	}
	if _, err := json.Marshal(registry.WorkerState(0)); err == nil {
		t.Error("WorkerState(0) marshalled")
	}
	var s registry.WorkerState
	if err := s.UnmarshalText([]byte("Live")); err == nil {
		t.Error(`"Live" unmarshalled`)
	}
}
