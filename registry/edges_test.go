package registry_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
)

// A process whose first Open of a new file fails (here: its context ends)
// removes the file and its rollback journal, although another process (here:
// another Registry) opened the same path meanwhile and is migrating it.
func TestFailedFirstOpenSparesAnotherOpenersFile(t *testing.T) {
	t.Parallel()
	failures := 0
	for round := 0; round < 30; round++ {
		path := filepath.Join(t.TempDir(), "new.db")
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the one that gives up
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
			defer cancel()
			if r, err := registry.Open(ctx, path); err == nil {
				r.Close()
			}
		}()
		var errB error
		go func() {
			defer wg.Done()
			time.Sleep(500 * time.Microsecond)
			r, err := registry.Open(context.Background(), path)
			errB = err
			if err == nil {
				_, errB = r.RegisterWorker(context.Background(), registry.RegisterWorkerArgs{
					Namespace: "ns", WorkerID: "w", WorkerInstanceID: "i", Lanes: []string{"a"}, LivenessTTL: time.Minute})
				r.Close()
			}
		}()
		wg.Wait()
		if errB != nil {
			failures++
			t.Logf("round %d: the patient opener failed: %v", round, errB)
		} else if _, err := os.Stat(path); err != nil {
			failures++
			t.Logf("round %d: the patient opener succeeded but its file is gone: %v", round, err)
		}
	}
	if failures > 0 {
		t.Fatalf("%d of 30 rounds: an Open with a live context failed or lost its file", failures)
	}
}

// A worker the engine registers with an empty lane set (its statements
// allow it) makes ListWorkers fail for the whole namespace.
func TestEngineWorkerWithoutLanesIsListed(t *testing.T) {
	t.Parallel()
	r, b := setupAt(t, flowfabrictest.SQLite(t))
	e := flowfabrictest.NewEngine(t, b.path)
	now := time.Now()
	e.Register("ns", "good", "pool", "default", "", time.Minute, now)
	e.Register("ns", "caps-only", "pool", "", "gpu", time.Minute, now)
	res, err := r.ListWorkers(context.Background(), registry.ListWorkersArgs{Namespace: "ns"})
	if err != nil {
		t.Fatalf("ListWorkers: %v", err)
	}
	if len(res.Workers) != 2 {
		t.Fatalf("ListWorkers: %d workers, want 2", len(res.Workers))
	}
}

// The engine stores liveness_ttl_ms as "u64 as i64"; a long TTL makes
// last_heartbeat_ms + liveness_ttl_ms overflow to a REAL.
func TestEngineWorkerWithHugeTTL(t *testing.T) {
	r, b := setupAt(t, flowfabrictest.SQLite(t))
	e := flowfabrictest.NewEngine(t, b.path)
	now := time.Now()
	e.Register("ns", "good", "pool", "default", "", time.Minute, now)
	e.Tx(func(tx *sql.Tx) {
		e.Exec(tx, e.SQL.RegisterUpsert, "ns", "forever", "pool", "default", "", now.UnixMilli(), int64(1<<63-1), now.UnixMilli())
	})
	ctx := context.Background()
	if _, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: "ns"}); err != nil {
		t.Errorf("ListWorkers: %v", err)
	}
	hb, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "forever"})
	if err != nil || hb.NextExpiry.Before(now) {
		t.Errorf("HeartbeatWorker = %+v, %v: NextExpiry before now", hb, err)
	}
}

// A version-2 database whose newest events were pruned (AUTOINCREMENT kept
// their IDs from coming back) hands the pruned IDs out again after the
// upgrade: a reader resuming after the last ID it saw misses new events.
func TestUpgradeFromVersion2KeepsEventIDsUnused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := registry.OpenSQLiteForMigration(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := registry.MigrateTo(ctx, db, 2); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms)
		 VALUES ('ns','a','registered',1000), ('ns','a','marked_dead',2000), ('ns','b','registered',3000)`,
		// Version 2's pruning: everything older than the retention.
		`DELETE FROM ff_worker_registry_event WHERE event_at_ms < 5000`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	lastSeen := int64(3) // a reader saw events 1-3 before they were pruned

	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{
		Namespace: "ns", WorkerID: "w", WorkerInstanceID: "c", Lanes: []string{"a"}, LivenessTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	page, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", After: lastSeen})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 {
		all, _ := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns"})
		t.Fatalf("a reader resuming after ID %d sees %d events, want 1; the new event has ID %d",
			lastSeen, len(page.Events), all.Events[0].ID)
	}
}

// PruneEvents ends after a batch that held the newest event (kept so that
// its rowid is not reused): events older than the cut-off stay.
func TestPruneDoesNotStopAtTheNewestEvent(t *testing.T) {
	t.Parallel()
	r, _ := setupAt(t, filepath.Join(t.TempDir(), "r.db"))
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	register := func(inst string, at time.Time) {
		t.Helper()
		if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "w",
			WorkerInstanceID: inst, Lanes: []string{"a"}, LivenessTTL: time.Second, Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3000 {
		register("w"+time.Duration(i).String(), base.Add(time.Duration(i)*time.Millisecond))
	}
	register("late", base.Add(-time.Minute)) // newest event, oldest time
	if _, err := r.PruneEvents(ctx, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	left, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", Limit: registry.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Events) != 1 {
		t.Fatalf("%d events left after pruning everything before the cut-off, want 1 (the newest)", len(left.Events))
	}
}
