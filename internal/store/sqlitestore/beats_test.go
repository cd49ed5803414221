package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/schema"
)

// beatsFixture opens a store on a new migrated file with n registered
// workers w0…w(n-1).
func beatsFixture(t *testing.T, n int) *Store {
	t.Helper()
	s, _ := beatsFixtureAt(t, n)
	return s
}

// beatsFixtureAt is beatsFixture that also returns the file's path.
func beatsFixtureAt(t *testing.T, n int) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	if _, err := MigrateFile(ctx, path, store.LatestVersion(schema.SQLite)); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	nowMS := time.Now().UnixMilli()
	for i := range n {
		if err := s.Writer().UpsertWorker(ctx, store.WorkerRow{Namespace: "ns", WorkerInstanceID: fmt.Sprint("w", i),
			WorkerID: "w", Lanes: "default", LastHeartbeatMs: nowMS, LivenessTTLMs: time.Minute.Milliseconds(), RegisteredAtMs: nowMS}); err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

// queueBeats starts one heartbeat per key while the test holds the write
// turn, each in its own goroutine and with its own context, and returns
// once all of them wait in the queue, in the order of keys.
func queueBeats(t *testing.T, s *Store, ctxs []context.Context, keys []store.InstanceKey, now []func() int64) (results []store.HeartbeatRow, found []bool, errs []error, wait func()) {
	t.Helper()
	results, found, errs = make([]store.HeartbeatRow, len(keys)), make([]bool, len(keys)), make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { results[i], found[i], errs[i] = s.HeartbeatAt(ctxs[i], k, nil, now[i]) })
		// One at a time, so that the queue's order is keys' order.
		waitFor(t, func() bool { return queued(s) == i+1 })
	}
	return results, found, errs, wg.Wait
}

// nsKeys returns the keys of instances in namespace "ns".
func nsKeys(ids ...string) []store.InstanceKey {
	keys := make([]store.InstanceKey, len(ids))
	for i, id := range ids {
		keys[i] = store.InstanceKey{Namespace: "ns", InstanceID: id}
	}
	return keys
}

func queued(s *Store) int {
	s.beats.mu.Lock()
	defer s.beats.mu.Unlock()
	return len(s.beats.waiting)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// TestWaitingHeartbeatsShareATransaction queues heartbeats behind a held
// write turn and checks that, once it is free, they are written in arrival
// order, each reading its time inside the write, with their own results.
func TestWaitingHeartbeatsShareATransaction(t *testing.T) {
	s := beatsFixture(t, 3)
	ctx := context.Background()
	if ok, err := s.Writer().RequestDrain(ctx, store.InstanceKey{Namespace: "ns", InstanceID: "w1"}, time.Now().UnixMilli()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	keys := nsKeys("w0", "w1", "absent", "w2")
	var mu sync.Mutex
	var calls []string
	base := time.Now().UnixMilli() + 1000
	now := make([]func() int64, len(keys))
	ctxs := make([]context.Context, len(keys))
	for i, k := range keys {
		ctxs[i] = ctx
		now[i] = func() int64 {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, k.InstanceID)
			return base + int64(i)
		}
	}
	s.gate.turn <- struct{}{}
	rows, found, errs, wait := queueBeats(t, s, ctxs, keys, now)
	if len(calls) != 0 {
		t.Fatalf("times read before the write turn: %v", calls)
	}
	<-s.gate.turn
	wait()
	if want := []string{"w0", "w1", "absent", "w2"}; !slices.Equal(calls, want) {
		t.Fatalf("times read in order %v, want %v (arrival order, once each)", calls, want)
	}
	for i, k := range keys {
		if errs[i] != nil {
			t.Fatalf("%s: %v", k.InstanceID, errs[i])
		}
		if wantFound := k.InstanceID != "absent"; found[i] != wantFound {
			t.Fatalf("%s: found = %v, want %v", k.InstanceID, found[i], wantFound)
		}
		if !found[i] {
			continue
		}
		if want := base + int64(i) + time.Minute.Milliseconds(); rows[i].ExpiresAtMs != want {
			t.Errorf("%s: expiry %d, want %d", k.InstanceID, rows[i].ExpiresAtMs, want)
		}
		if rows[i].Draining != (k.InstanceID == "w1") {
			t.Errorf("%s: draining = %v", k.InstanceID, rows[i].Draining)
		}
		w, ok, err := s.Reader().GetLiveWorker(ctx, k, base)
		if err != nil || !ok || w.LastHeartbeatMs != base+int64(i) {
			t.Errorf("%s: stored heartbeat %d (found %v, %v), want %d", k.InstanceID, w.LastHeartbeatMs, ok, err, base+int64(i))
		}
	}
	if n := queued(s); n != 0 {
		t.Fatalf("%d heartbeats left in the queue", n)
	}
}

// TestQueuedHeartbeatCancelledWritesNothing cancels a heartbeat that waits
// in the queue: it fails with its context's error, the others go on, and
// its row is unchanged.
func TestQueuedHeartbeatCancelledWritesNothing(t *testing.T) {
	s := beatsFixture(t, 2)
	keys := nsKeys("w0", "w1")
	before, _, err := s.Reader().GetLiveWorker(context.Background(), keys[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	later := before.LastHeartbeatMs + 5000
	cctx, cancel := context.WithCancel(context.Background())
	ctxs := []context.Context{cctx, context.Background()}
	now := []func() int64{func() int64 { return later }, func() int64 { return later }}
	s.gate.turn <- struct{}{}
	_, found, errs, wait := queueBeats(t, s, ctxs, keys, now)
	cancel()
	waitFor(t, func() bool { return queued(s) == 1 })
	<-s.gate.turn
	wait()
	if !errors.Is(errs[0], context.Canceled) || errs[1] != nil || !found[1] {
		t.Fatalf("errors %v, found %v; want the cancelled one's context error and the other written", errs, found)
	}
	for i, want := range []int64{before.LastHeartbeatMs, later} {
		w, _, err := s.Reader().GetLiveWorker(context.Background(), keys[i], 0)
		if err != nil || w.LastHeartbeatMs != want {
			t.Fatalf("%s: last heartbeat %d (%v), want %d", keys[i].InstanceID, w.LastHeartbeatMs, err, want)
		}
	}
}

// TestFailedSharedHeartbeatsAreWrittenAlone fails a shared transaction, by
// cancelling the context of the heartbeat that writes it from inside its
// time read: that heartbeat fails and writes nothing, and each of the
// others is then written alone, by its own caller.
func TestFailedSharedHeartbeatsAreWrittenAlone(t *testing.T) {
	s := beatsFixture(t, 3)
	keys := nsKeys("w0", "w1", "w2")
	before, _, err := s.Reader().GetLiveWorker(context.Background(), keys[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	later := before.LastHeartbeatMs + 5000
	// The first to queue is the first the turn goes to, so it writes the
	// group; its time read cancels its own context.
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctxs := []context.Context{cctx, context.Background(), context.Background()}
	var reads sync.Map
	now := make([]func() int64, len(keys))
	for i := range keys {
		now[i] = func() int64 {
			n, _ := reads.LoadOrStore(i, new(int))
			*n.(*int)++
			if i == 0 {
				cancel()
			}
			return later
		}
	}
	s.gate.turn <- struct{}{}
	_, found, errs, wait := queueBeats(t, s, ctxs, keys, now)
	time.Sleep(20 * time.Millisecond) // the first blocks on the turn first
	<-s.gate.turn
	wait()
	if !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("the group's writer got %v, want context.Canceled", errs[0])
	}
	for i, k := range keys {
		want := later
		if i == 0 {
			want = before.LastHeartbeatMs
		} else if errs[i] != nil || !found[i] {
			t.Fatalf("%s: %v (found %v), want written alone", k.InstanceID, errs[i], found[i])
		}
		w, _, err := s.Reader().GetLiveWorker(context.Background(), k, 0)
		if err != nil || w.LastHeartbeatMs != want {
			t.Fatalf("%s: last heartbeat %d (%v), want %d", k.InstanceID, w.LastHeartbeatMs, err, want)
		}
	}
	// The group failed at its first statement; each of the others read
	// its time once, alone.
	for i := 1; i < len(keys); i++ {
		n := 0
		if p, ok := reads.Load(i); ok {
			n = *p.(*int)
		}
		if n != 1 {
			t.Fatalf("%s read its time %d times, want 1", keys[i].InstanceID, n)
		}
	}
}

// TestSharedHeartbeatsReturnAtTheirOwnDeadlines queues two heartbeats
// with different deadlines (300 ms, 1.5 s) while another connection holds
// SQLite's write lock for 3 s: whichever takes the other into its write
// (the first queued, which the rounds alternate), each returns at its own
// deadline, not the other's, and the store writes again once the lock
// goes.
func TestSharedHeartbeatsReturnAtTheirOwnDeadlines(t *testing.T) {
	s, path := beatsFixtureAt(t, 2)
	holder, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	const slack = 150 * time.Millisecond
	for round := range 4 {
		deadlines := []time.Duration{1500 * time.Millisecond, 300 * time.Millisecond}
		if round%2 == 1 {
			slices.Reverse(deadlines)
		}
		ctx := context.Background()
		conn, err := holder.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.gate.turn <- struct{}{}
		start := time.Now()
		ctxs := make([]context.Context, len(deadlines))
		for i, d := range deadlines {
			var cancel context.CancelFunc
			ctxs[i], cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		now := func() int64 { return time.Now().UnixMilli() }
		returned := make([]time.Duration, len(deadlines))
		keys := nsKeys("w0", "w1")
		errs := make([]error, len(keys))
		var wg sync.WaitGroup
		for i, k := range keys {
			wg.Go(func() {
				_, _, errs[i] = s.HeartbeatAt(ctxs[i], k, nil, now)
				returned[i] = time.Since(start)
			})
			waitFor(t, func() bool { return queued(s) == i+1 })
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		<-s.gate.turn
		wg.Wait()
		for i, d := range deadlines {
			if !errors.Is(errs[i], context.DeadlineExceeded) {
				t.Fatalf("round %d: heartbeat %d: %v; want its deadline exceeded", round, i, errs[i])
			}
			if returned[i] < d || returned[i] > d+slack {
				t.Fatalf("round %d: heartbeat with deadline %s returned after %s", round, d, returned[i])
			}
		}
		t.Logf("round %d: returned after %s and %s", round, returned[0].Round(time.Millisecond), returned[1].Round(time.Millisecond))
		time.Sleep(3*time.Second - time.Since(start))
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if _, found, err := s.HeartbeatAt(ctx, keys[0], nil, now); err != nil || !found {
			t.Fatalf("round %d: heartbeat after the lock went: %v, %v", round, found, err)
		}
	}
}
