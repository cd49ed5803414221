package registry_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/registry"
)

// TestSameMillisecondEventsKept: the engine's event key includes the time,
// so events of one kind for one instance in one millisecond move to the
// next free one; none is lost.
func TestSameMillisecondEventsKept(t *testing.T) {
	ctx := context.Background()
	r, b := setup(t, sqliteStore, registry.WithHeartbeatEvents(true))
	mustRegister(t, r, registerArgs("ns", "w", t0))
	for range 3 {
		if _, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{{Namespace: "ns", WorkerInstanceID: "w", Now: t0}}); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, e := range b.events(t) {
		if e.Kind == "heartbeat" {
			got = append(got, e.AtMS-t0.UnixMilli())
		}
	}
	if want := []int64{0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("heartbeat event times (ms after t0) = %v, want %v", got, want)
	}
}

// TestAdoptionRefusesOtherShapes: a database with an ff_worker_registry
// that is not FlowFabric's is refused, naming what is missing, and left as
// it was.
func TestAdoptionRefusesOtherShapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open(registry.SQLiteDriverName, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE ff_worker_registry (namespace TEXT, worker_instance_id TEXT); INSERT INTO ff_worker_registry VALUES ('ns', 'w')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := stateOf(t, path)
	_, err = registry.Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "ff_worker_registry has no column worker_id") {
		t.Fatalf("Open = %v, want a refusal naming the missing column", err)
	}
	if after := stateOf(t, path); !after.equal(before) {
		t.Error("the refused adoption changed the file")
	}
}
