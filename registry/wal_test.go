package registry_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// walSize returns the size of path's -wal file.
func walSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestWALBoundedByEachWrite runs each kind of write alone, long enough to
// write several times SQLite's checkpoint interval, and checks that the
// automatic checkpoint keeps the WAL near that interval. Single heartbeats
// once grew it by 8 KB a call: they ran outside a transaction as a statement
// reset after its first row, which commits without the WAL hook that runs
// the checkpoint.
func TestWALBoundedByEachWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const workers, calls = 100, 1500 // about 12 MB of frames without checkpoints
	kinds := []struct {
		name string
		opts []registry.Option
		call func(r *registry.Registry, i int, now time.Time) error
	}{
		{"single heartbeats", nil, func(r *registry.Registry, i int, now time.Time) error {
			_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: fmt.Sprint("w", i%workers), Now: now})
			return err
		}},
		{"single heartbeats with events", []registry.Option{registry.WithHeartbeatEvents(true)}, func(r *registry.Registry, i int, now time.Time) error {
			_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: fmt.Sprint("w", i%workers), Now: now})
			return err
		}},
		{"batch heartbeats", nil, func(r *registry.Registry, i int, now time.Time) error {
			_, err := r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
				{Namespace: "ns", WorkerInstanceID: fmt.Sprint("w", i%workers), Now: now},
				{Namespace: "ns", WorkerInstanceID: fmt.Sprint("w", (i+1)%workers), Now: now},
			})
			return err
		}},
		{"registers", nil, func(r *registry.Registry, i int, now time.Time) error {
			return registerAt(ctx, r, fmt.Sprint("w", i%workers), now)
		}},
		{"drains", nil, func(r *registry.Registry, i int, now time.Time) error {
			_, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: fmt.Sprint("w", i%workers), Now: now})
			return err
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.db")
			r, err := registry.Open(ctx, path, k.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for i := range workers {
				if err := registerAt(ctx, r, fmt.Sprint("w", i), t0); err != nil {
					t.Fatal(err)
				}
			}
			var most int64
			for i := range calls {
				if err := k.call(r, i, t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				if i%100 == 0 {
					most = max(most, walSize(t, path))
				}
			}
			if most > 6<<20 {
				t.Errorf("the WAL reached %.1f MB; the automatic checkpoint should hold it near 4 MB", mb(most))
			}
		})
	}
}

// TestWALShrinksAfterBurst holds a read snapshot open while heartbeats
// continue, which keeps the checkpoint from reaching the end of the WAL, so
// it grows; once the reader is gone the WAL restarts and journal_size_limit
// cuts the file back.
func TestWALShrinksAfterBurst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, path := openFile(t)
	defer r.Close()
	const workers = 100
	for i := range workers {
		if err := registerAt(ctx, r, fmt.Sprint("w", i), t0); err != nil {
			t.Fatal(err)
		}
	}
	heartbeats := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			now := t0.Add(time.Duration(i) * time.Millisecond)
			if _, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: fmt.Sprint("w", i%workers), Now: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	reader, err := sql.Open(registry.SQLiteDriverName, "file:"+path+"?_pragma=query_only(1)") // deferred transactions
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM ff_worker_registry`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	// A heartbeat writes about one page (4 KiB) to the WAL: 5,000 of them
	// make a burst of some 20 MB.
	heartbeats(0, 5000)
	burst := walSize(t, path)
	if burst < 16<<20 {
		t.Fatalf("the WAL reached only %.1f MB behind an open snapshot; the test needs a burst", mb(burst))
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	heartbeats(5000, 1000) // a checkpoint, then a restart
	if after := walSize(t, path); after > 8<<20 {
		t.Errorf("after a burst of %.1f MB the WAL stays at %.1f MB; journal_size_limit should cut it to 8 MB", mb(burst), mb(after))
	}
}

func registerAt(ctx context.Context, r *registry.Registry, instance string, now time.Time) error {
	_, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{
		Namespace: "ns", WorkerID: "pool", WorkerInstanceID: instance,
		Lanes: []string{"default"}, LivenessTTL: time.Hour, Now: now,
	})
	return err
}
