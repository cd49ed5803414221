package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
	"github.com/flowfabric/workerregistry/schema"
)

// t0 is the tests' fixed start time.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestAdoptFlowFabricSQLite builds a FlowFabric database with the engine's
// migrations, writes workers and events with the engine's statements, and
// opens the registry on it: the registry adopts it without losing a row or
// touching an engine object, sees what the engine wrote, and the engine's
// statements keep working on what the registry writes.
func TestAdoptFlowFabricSQLite(t *testing.T) {
	ctx := context.Background()
	path := flowfabrictest.SQLite(t)
	eng := flowfabrictest.NewEngine(t, path)
	eng.Register("prod", "e1", "pool", "default,gpu", "cuda", time.Minute, t0)
	eng.Register("prod", "e2", "pool", "default", "", time.Minute, t0)
	if !eng.Heartbeat("prod", "e1", t0.Add(10*time.Second)) {
		t.Fatal("engine heartbeat of a live worker found no row")
	}
	objects, rows := flowfabrictest.Objects(t, eng.DB), flowfabrictest.SharedRows(t, eng.DB)

	r, err := registry.Open(ctx, path, registry.WithClock(func() time.Time { return t0.Add(20 * time.Second) }))
	if err != nil {
		t.Fatalf("Open on a FlowFabric database: %v", err)
	}
	defer r.Close()
	if got := flowfabrictest.Objects(t, eng.DB); !maps.Equal(got, objects) {
		t.Errorf("adoption changed the engine's objects:\n got %v\nwant %v", got, objects)
	}
	if got := flowfabrictest.SharedRows(t, eng.DB); !slices.Equal(got, rows) {
		t.Errorf("adoption changed the registry's rows:\n got %v\nwant %v", got, rows)
	}
	flowfabrictest.CheckIntegrity(t, eng.DB)

	// What the engine wrote, the registry sees.
	page, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Workers) != 2 {
		t.Fatalf("registry lists %d workers the engine registered, want 2", len(page.Workers))
	}
	e1 := page.Workers[0]
	if e1.WorkerInstanceID != "e1" || !slices.Equal(e1.Lanes, []string{"default", "gpu"}) || !slices.Equal(e1.Capabilities, []string{"cuda"}) ||
		!e1.ExpiresAt.Equal(t0.Add(70*time.Second)) || e1.Draining {
		t.Errorf("engine-registered worker as the registry sees it: %+v", e1)
	}
	events, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events.Events {
		kinds = append(kinds, e.WorkerInstanceID+":"+e.Kind)
	}
	if want := []string{"e1:registered", "e2:registered", "e1:heartbeat"}; !slices.Equal(kinds, want) {
		t.Errorf("events the engine wrote, as the registry lists them: %v, want %v", kinds, want)
	}
	// An engine heartbeat moves the expiry the registry reads.
	eng.Heartbeat("prod", "e2", t0.Add(30*time.Second))
	hb, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "prod", WorkerInstanceID: "e2", Now: t0.Add(80 * time.Second)})
	if err != nil || hb.Outcome != registry.HeartbeatRefreshed {
		t.Errorf("registry heartbeat of a worker the engine kept alive: %+v, %v", hb, err)
	}

	// What the registry writes, the engine's statements read and write.
	if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "prod", WorkerID: "pool", WorkerInstanceID: "g1",
		Lanes: []string{"gpu"}, Capabilities: []string{"a100", "cuda"}, LivenessTTL: time.Minute, Now: t0.Add(20 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if got := eng.ListWorkers("prod"); !slices.Contains(got, "g1 gpu a100,cuda") {
		t.Errorf("engine list_workers = %v, want g1 as the registry registered it", got)
	}
	if !eng.Heartbeat("prod", "g1", t0.Add(40*time.Second)) {
		t.Error("engine heartbeat of a registry-registered worker found no row")
	}
	w, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: "prod", Now: t0.Add(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Workers) != 2 || w.Workers[0].WorkerInstanceID != "e2" || w.Workers[1].WorkerInstanceID != "g1" ||
		!w.Workers[1].ExpiresAt.Equal(t0.Add(100*time.Second)) {
		t.Errorf("after the engine's heartbeat of g1 at +40s, live at +90s: %+v", w.Workers)
	}
	if _, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "prod", WorkerInstanceID: "g1", Now: t0.Add(41 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	// The engine's re-registration keeps a drain (its upsert does not know
	// the column); the registry's clears it.
	eng.Register("prod", "g1", "pool", "gpu", "a100,cuda", time.Minute, t0.Add(42*time.Second))
	hb, err = r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "prod", WorkerInstanceID: "g1", Now: t0.Add(43 * time.Second)})
	if err != nil || hb.Directive != registry.DirectiveDrain {
		t.Errorf("heartbeat after the engine re-registered a drained worker: %+v, %v; want the drain kept", hb, err)
	}
	if !eng.MarkDead("prod", "e1", "engine says so", t0.Add(44*time.Second)) {
		t.Error("engine mark dead found no row")
	}
	// Events of both sides, in the order they were written.
	events, err = r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "prod", After: events.Events[len(events.Events)-1].ID})
	if err != nil {
		t.Fatal(err)
	}
	kinds = kinds[:0]
	for _, e := range events.Events {
		kinds = append(kinds, e.WorkerInstanceID+":"+e.Kind+":"+e.Reason)
	}
	if want := []string{"e2:heartbeat:", "g1:registered:", "g1:heartbeat:", "g1:drain_requested:", "g1:registered:", "e1:marked_dead:engine says so"}; !slices.Equal(kinds, want) {
		t.Errorf("events of both sides: %v, want %v", kinds, want)
	}

	// Leases: the engine's walk and the registry's see the same.
	registrytest.InsertLeases(t, eng.DB,
		registrytest.Lease{Namespace: "prod", WorkerInstanceID: "e1", ExpiresAt: t0.Add(time.Second)},
		registrytest.Lease{Namespace: "prod", WorkerInstanceID: "g1", ExpiresAt: t0.Add(time.Hour)})
	if got := eng.ListExpiredLeases(t0.Add(time.Minute)); !slices.Equal(got, []string{"e1"}) {
		t.Errorf("engine list_expired_leases = %v, want [e1]", got)
	}
	leases, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: t0.Add(time.Minute)})
	if err != nil || len(leases.Leases) != 1 || leases.Leases[0].WorkerInstanceID != "e1" {
		t.Errorf("registry ListExpiredLeases = %+v, %v; want e1's lease", leases, err)
	}
	// The engine's sweep and the registry's agree on what expired.
	// g1 was last registered by the engine at +42s, e2 heartbeated by the
	// registry at +80s.
	if got := eng.Sweep(t0.Add(110 * time.Second)); !slices.Equal(got, []string{"prod/g1"}) {
		t.Errorf("engine sweep at +110s = %v, want [prod/g1]", got)
	}
	rep, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Hour))
	if err != nil || rep.Swept != 1 {
		t.Errorf("registry sweep = %+v, %v; want e2 swept", rep, err)
	}
	flowfabrictest.CheckIntegrity(t, eng.DB)
}

// TestFlowFabricMigrateDownAndUp takes an adopted database down to the
// version it was adopted at and up again: every engine object and every
// row survives, the registry's additions go and come back, and no down
// goes below the adoption.
func TestFlowFabricMigrateDownAndUp(t *testing.T) {
	ctx := context.Background()
	path := flowfabrictest.SQLite(t)
	eng := flowfabrictest.NewEngine(t, path)
	eng.Register("prod", "e1", "pool", "default", "", time.Minute, t0)
	objects, names := flowfabrictest.Objects(t, eng.DB), schemaNames(t, eng.DB)
	db, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := registry.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	rows := flowfabrictest.SharedRows(t, eng.DB)
	p, err := registry.NewMigrationProvider(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("down to the adoption: %v", err)
	}
	if got, want := schemaNames(t, db), append(names, "table "+registry.VersionTable); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("objects after down to the adoption:\n got %v\nwant %v", got, want)
	}
	var cols int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info('ff_worker_registry') WHERE name = 'draining'`).Scan(&cols); err != nil || cols != 0 {
		t.Errorf("draining column after down: %d, %v", cols, err)
	}
	if _, err := p.Down(ctx); err == nil || !strings.Contains(err.Error(), "FlowFabric") {
		t.Errorf("down below the adoption: %v, want a refusal naming FlowFabric", err)
	}
	if got := flowfabrictest.Objects(t, db); !maps.Equal(got, objects) {
		t.Errorf("down changed the engine's objects")
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := flowfabrictest.SharedRows(t, db); !slices.Equal(got, rows) {
		t.Errorf("rows after down and up:\n got %v\nwant %v", got, rows)
	}
	if got := flowfabrictest.Objects(t, db); !maps.Equal(got, objects) {
		t.Errorf("down and up changed the engine's objects")
	}
	flowfabrictest.CheckIntegrity(t, db)
}

// TestEngineStatementsOnRegistryDatabase runs the engine's statements on a
// database the registry made from nothing: same shapes, so they work.
func TestEngineStatementsOnRegistryDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	eng := flowfabrictest.NewEngine(t, path)
	eng.Register("prod", "e1", "pool", "default", "", time.Minute, t0)
	if !eng.Heartbeat("prod", "e1", t0.Add(30*time.Second)) {
		t.Fatal("engine heartbeat on a registry database found no row")
	}
	w, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Now: t0.Add(80 * time.Second)})
	if err != nil || len(w.Workers) != 1 || !w.Workers[0].ExpiresAt.Equal(t0.Add(90*time.Second)) {
		t.Errorf("registry listing after the engine's heartbeat: %+v, %v", w.Workers, err)
	}
	if got := eng.Sweep(t0.Add(100 * time.Second)); !slices.Equal(got, []string{"prod/e1"}) {
		t.Errorf("engine sweep = %v", got)
	}
	registrytest.InsertLeases(t, eng.DB, registrytest.Lease{Namespace: "prod", WorkerInstanceID: "e1", ExpiresAt: t0})
	if got := eng.ListExpiredLeases(t0.Add(time.Minute)); !slices.Equal(got, []string{"e1"}) {
		t.Errorf("engine list_expired_leases = %v", got)
	}
	flowfabrictest.CheckIntegrity(t, eng.DB)
}

// TestUpgradeFromVersion2 migrates a database of the previous schema
// (version 2), with registrations, a drain and events that share a
// millisecond, and checks that every row and event survives with its ID.
func TestUpgradeFromVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := registry.MigrateTo(ctx, db, 2); err != nil {
		t.Fatal(err)
	}
	ms := t0.UnixMilli()
	for _, stmt := range []string{
		fmt.Sprintf(`INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
			last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms, draining) VALUES
			('ns', 'a', 'pool', 'default', 'cuda', %[1]d, 1000, %[1]d, %[1]d + 1000, 0),
			('ns', 'b', 'pool', 'default', '', %[1]d, 5000, %[1]d, %[1]d + 5000, 1)`, ms),
		fmt.Sprintf(`INSERT INTO ff_worker_registry_event (event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason) VALUES
			(7, 'ns', 'a', 'registered', %[1]d, NULL),
			(8, 'ns', 'a', 'heartbeat', %[1]d, NULL),
			(9, 'ns', 'a', 'heartbeat', %[1]d, NULL),
			(10, 'ns', 'a', 'heartbeat', %[1]d + 1, NULL),
			(11, 'ns', 'b', 'drain_requested', %[1]d, 'why')`, ms),
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	res, err := registry.MigrateTo(ctx, db, 1<<62)
	if err != nil {
		t.Fatalf("upgrade from version 2: %v", err)
	}
	// Every migration from version 3 on, in order (the versions may have
	// gaps while branches that take numbers are merged).
	migrations, err := store.ReadMigrations(schema.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	var want, applied []int64
	for _, m := range migrations {
		if m.Version >= 3 {
			want = append(want, m.Version)
		}
	}
	for _, m := range res {
		applied = append(applied, m.Source.Version)
	}
	if !slices.Equal(applied, want) {
		t.Errorf("the upgrade applied versions %v, want %v", applied, want)
	}
	if got, want := flowfabrictest.SharedRows(t, db), []string{
		fmt.Sprintf("w ns/a pool default cuda %d 1000 %d", ms, ms),
		fmt.Sprintf("w ns/b pool default  %d 5000 %d", ms, ms),
		fmt.Sprintf("e 7 ns/a registered %d -", ms),
		fmt.Sprintf("e 8 ns/a heartbeat %d -", ms),
		fmt.Sprintf("e 9 ns/a heartbeat %d -", ms+1),
		fmt.Sprintf("e 10 ns/a heartbeat %d -", ms+2),
		fmt.Sprintf("e 11 ns/b drain_requested %d why", ms),
	}; !slices.Equal(got, want) {
		t.Errorf("rows after the upgrade:\n got %q\nwant %q", got, want)
	}
	r := registry.NewSQLite(db)
	hb, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "b", Now: t0.Add(time.Second)})
	if err != nil || hb.Directive != registry.DirectiveDrain {
		t.Errorf("the drain did not survive the upgrade: %+v, %v", hb, err)
	}
	flowfabrictest.CheckIntegrity(t, db)
	// And back down to version 2, with the rows.
	p, err := registry.NewMigrationProvider(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("down to 2: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ff_worker_registry WHERE expires_at_ms = last_heartbeat_ms + liveness_ttl_ms`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows at version 2 after down: %d, %v", n, err)
	}
}

// schemaNames lists every object of the database as "type name", sorted.
func schemaNames(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return registrytest.TextRows(t, db, `SELECT type || ' ' || name FROM sqlite_master ORDER BY 1`)
}
