package sqlitestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// TestSweepDeleteRechecksExpiry re-registers a worker after the sweep's
// scan found it expired and before the writer deletes it: the registration
// wins, and only the rows still expired are deleted, each with its event.
func TestSweepDeleteRechecksExpiry(t *testing.T) {
	ctx := context.Background()
	s := beatsFixture(t, 3) // w0, w1, w2, live for a minute from now
	nowMS := time.Now().Add(2 * time.Minute).UnixMilli()
	afterSweepScan = func() {
		if err := s.Writer().UpsertWorker(ctx, store.WorkerRow{Namespace: "ns", WorkerInstanceID: "w1",
			WorkerID: "w", Lanes: "default", LastHeartbeatMs: nowMS, LivenessTTLMs: time.Minute.Milliseconds(), RegisteredAtMs: nowMS}); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterSweepScan = nil })
	var batches []int
	n, err := s.sweepExpired(ctx, nowMS, 2, func(n int) { batches = append(batches, n) })
	if err != nil || n != 2 || !slices.Equal(batches, []int{1, 1}) {
		t.Fatalf("sweep = %d in batches %v, %v; want 2 in [1 1]", n, batches, err)
	}
	rows, err := s.Reader().ListWorkers(ctx, store.WorkerQuery{NowMs: nowMS, RowLimit: 10})
	if err != nil || len(rows) != 1 || rows[0].WorkerInstanceID != "w1" {
		t.Fatalf("left after the sweep: %+v, %v; want w1 alone", rows, err)
	}
	events, err := s.Reader().ListEvents(ctx, store.EventQuery{Namespace: "ns", RowLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var swept []string
	for _, e := range events {
		if e.EventKind == store.EventTTLSwept {
			swept = append(swept, e.WorkerInstanceID)
		}
	}
	if !slices.Equal(swept, []string{"w0", "w2"}) {
		t.Errorf("ttl_swept events of %v, want [w0 w2]", swept)
	}
}

// TestSweepNothingExpiredTakesNoWriteTurn holds the store's write turn
// while a sweep with nothing expired runs: the sweep scans on a read
// connection and, finding nothing, never waits for the writer.
func TestSweepNothingExpiredTakesNoWriteTurn(t *testing.T) {
	s := beatsFixture(t, 100)
	s.gate.turn <- struct{}{}
	defer func() { <-s.gate.turn }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := s.SweepExpired(ctx, time.Now().UnixMilli(), func(int) { t.Error("a batch reported") })
	if err != nil || n != 0 {
		t.Fatalf("sweep with nothing expired while the writer was held: %d, %v", n, err)
	}
}

// TestSweepLetsQueuedWritersGoFirst queues a heartbeat and a transaction
// for the write turn while a sweep's first batch holds it: both have
// their turn before the sweep's next batch, so a writer waits for one
// batch of a sweep, never for several.
func TestSweepLetsQueuedWritersGoFirst(t *testing.T) {
	ctx := context.Background()
	s := beatsFixture(t, 6) // w0…w5, live for a minute from now
	nowMS := time.Now().Add(2 * time.Minute).UnixMilli()
	live := store.InstanceKey{Namespace: "ns", InstanceID: "live"}
	if err := s.Writer().UpsertWorker(ctx, store.WorkerRow{Namespace: live.Namespace, WorkerInstanceID: live.InstanceID,
		WorkerID: "w", Lanes: "default", LastHeartbeatMs: nowMS, LivenessTTLMs: time.Hour.Milliseconds(), RegisteredAtMs: nowMS}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	note := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, what)
	}
	var writers sync.WaitGroup
	inSweepBatch = func(i int) {
		note(fmt.Sprint("batch ", i))
		if i > 0 {
			return
		}
		queued := s.gate.queued.Load()
		writers.Go(func() {
			if _, ok, err := s.HeartbeatAt(ctx, live, nil, func() int64 { note("heartbeat"); return nowMS + 1 }); err != nil || !ok {
				t.Errorf("heartbeat: %v, %v", ok, err)
			}
		})
		waitFor(t, func() bool { return s.gate.queued.Load() == queued+1 })
		writers.Go(func() {
			if err := s.InTx(ctx, func(store.Writer) error { note("transaction"); return nil }); err != nil {
				t.Errorf("transaction: %v", err)
			}
		})
		waitFor(t, func() bool { return s.gate.queued.Load() == queued+2 })
	}
	t.Cleanup(func() { inSweepBatch = nil })
	n, err := s.sweepExpired(ctx, nowMS, 3, func(int) {})
	writers.Wait()
	if err != nil || n != 6 {
		t.Fatalf("sweep = %d, %v; want 6", n, err)
	}
	// The two queued writes may go in either order: each counts as queued
	// before it waits on the turn.
	if len(order) != 4 || order[0] != "batch 0" || order[3] != "batch 1" ||
		!slices.Contains(order[1:3], "heartbeat") || !slices.Contains(order[1:3], "transaction") {
		t.Fatalf("order %v, want batch 0, the heartbeat and the transaction, batch 1", order)
	}
}

// TestSweepMovesTakenEventKeys sweeps a worker whose ttl_swept event's
// key (instance, time, kind) is taken: its event moves to the next free
// millisecond and follows the batch's others, as in InsertEvents, which
// keep the scan's order.
func TestSweepMovesTakenEventKeys(t *testing.T) {
	ctx := context.Background()
	s := beatsFixture(t, 3) // w0, w1, w2, live for a minute from now
	nowMS := time.Now().Add(2 * time.Minute).UnixMilli()
	if err := s.Writer().InsertEvent(ctx, store.EventRow{Namespace: "ns", WorkerInstanceID: "w1",
		EventKind: store.EventTTLSwept, EventAtMs: nowMS}); err != nil {
		t.Fatal(err)
	}
	n, err := s.SweepExpired(ctx, nowMS, func(int) {})
	if err != nil || n != 3 {
		t.Fatalf("sweep = %d, %v; want 3", n, err)
	}
	events, err := s.Reader().ListEvents(ctx, store.EventQuery{Namespace: "ns", RowLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.EventKind == store.EventTTLSwept {
			got = append(got, fmt.Sprintf("%s+%d", e.WorkerInstanceID, e.EventAtMs-nowMS))
		}
	}
	if want := []string{"w1+0", "w0+0", "w2+0", "w1+1"}; !slices.Equal(got, want) {
		t.Errorf("ttl_swept events %v, want %v", got, want)
	}
}

// TestSweepCheckpointsOffTheWriter sweeps with no room in the WAL: the
// batches run with the writer's automatic checkpoint off, the WAL is
// copied into the database after each batch, off the batches, and starts
// over at the next one, and the first write after the sweep turns the
// automatic checkpoint back on.
func TestSweepCheckpointsOffTheWriter(t *testing.T) {
	ctx := context.Background()
	s, path := beatsFixtureAt(t, 0)
	nowMS := time.Now().UnixMilli()
	const expired = 500
	if _, err := s.writerDB.Exec(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ?2 - 1)
		INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
			last_heartbeat_ms, liveness_ttl_ms, registered_at_ms)
		SELECT 'ns', printf('x%05d', i), 'pool', 'default', '', ?1, 1000, ?1 FROM c`, nowMS-time.Hour.Milliseconds(), expired); err != nil {
		t.Fatal(err)
	}
	bound := sweepWALPages
	t.Cleanup(func() { sweepWALPages = bound })
	sweepWALPages = 0
	inSweepBatch = func(i int) {
		if !s.gate.noAutoCheckpoint {
			t.Errorf("batch %d: the writer's automatic checkpoint is on", i)
		}
	}
	t.Cleanup(func() { inSweepBatch = nil })
	var restarts []uint32 // the WAL header's checkpoint sequence after each batch
	n, err := s.sweepExpired(ctx, nowMS, 100, func(int) {
		header := make([]byte, 16)
		f, err := os.Open(path + "-wal")
		if err == nil {
			_, err = f.ReadAt(header, 0)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		restarts = append(restarts, binary.BigEndian.Uint32(header[12:]))
	})
	if err != nil || n != expired {
		t.Fatalf("sweep = %d, %v; want %d", n, err, expired)
	}
	if len(restarts) < expired/100 {
		t.Fatalf("%d batches, want at least %d", len(restarts), expired/100)
	}
	for i := 1; i < len(restarts); i++ {
		if restarts[i] != restarts[i-1]+1 {
			t.Errorf("the WAL's checkpoint sequence after each batch: %v; want it started over at each after the first", restarts)
			break
		}
	}
	if err := s.Writer().UpsertWorker(ctx, store.WorkerRow{Namespace: "ns", WorkerInstanceID: "w", WorkerID: "w", Lanes: "default",
		LastHeartbeatMs: nowMS, LivenessTTLMs: 1000, RegisteredAtMs: nowMS}); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.writerDB.QueryRow("PRAGMA wal_autocheckpoint").Scan(&pages); err != nil || pages != autoCheckpointPages || s.gate.noAutoCheckpoint {
		t.Errorf("after the sweep and a write, wal_autocheckpoint = %d, %v (off: %v); want %d", pages, err, s.gate.noAutoCheckpoint, autoCheckpointPages)
	}
}
