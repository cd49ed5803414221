package registry_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	storepkg "github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
	"github.com/flowfabric/workerregistry/schema"
)

// FlowFabric's own migrations and statements live beside the repository
// (../shared), not in it: the tests read them from there and skip, saying
// so, where they are absent. REGISTRY_FLOWFABRIC_DIR and
// REGISTRY_FLOWFABRIC_SEED point elsewhere.
func flowfabricDir(t testing.TB) string {
	t.Helper()
	return sharedPath(t, "REGISTRY_FLOWFABRIC_DIR", "flowfabric")
}

func sharedPath(t testing.TB, env, rel string) string {
	t.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		root, err := filepath.Abs("..") // the repository, from registry/
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(filepath.Dir(root), "shared", rel)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("FlowFabric's reference files are not here (%s: %v); set %s", dir, err, env)
	}
	return dir
}

// flowfabricSQLite returns the path of a new FlowFabric SQLite database,
// as a deployment has one: the engine's migrations 0001-0022 applied in
// order. They are applied once per test process, and each call gets a copy.
func flowfabricSQLite(t testing.TB) string {
	t.Helper()
	dir := flowfabricDir(t) // skips the test where the files are absent
	return flowfabricTemplate.copy(t, "flowfabric.db", func(tmp string) (string, error) {
		return buildFlowFabricSQLite(dir, filepath.Join(tmp, "flowfabric.db"))
	})
}

var flowfabricTemplate dbTemplate

// buildFlowFabricSQLite applies FlowFabric's migrations in src to a new
// database at path.
func buildFlowFabricSQLite(src, path string) (string, error) {
	files, err := filepath.Glob(filepath.Join(src, "sqlite", "*.sql"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no FlowFabric SQLite migrations: %v", err)
	}
	slices.Sort(files)
	db, err := sql.Open(registry.SQLiteDriverName, "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		return "", err
	}
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			db.Close()
			return "", err
		}
		if _, err := db.Exec(string(text)); err != nil {
			db.Close()
			return "", fmt.Errorf("FlowFabric migration %s: %w", filepath.Base(f), err)
		}
	}
	return path, db.Close()
}

// engineSQL holds the engine's worker-registry statements, read verbatim
// from FlowFabric's SQLite module (shared/seed/worker_registry.rs.txt), in
// the order the module has them.
type engineSQL struct {
	registerSelect, registerUpsert, registerEvent string
	heartbeat, heartbeatEvent                     string
	markDead, markDeadEvent                       string
	listExpiredLeases, listWorkers                string
	sweep, sweepEvent                             string
}

// rustStatements reads the SQL of the sqlx queries in a Rust module, in
// order, and fails unless there are want of them.
func rustStatements(t testing.TB, path string, want int) []string {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	for _, m := range rustQuery.FindAllStringSubmatch(string(text), -1) {
		// A Rust string's "\" at a line end drops the newline and the
		// next line's indentation.
		q := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(m[1], "")
		qs = append(qs, strings.ReplaceAll(q, `\"`, `"`))
	}
	if len(qs) != want {
		t.Fatalf("found %d statements in the engine's module %s, want %d: has it changed?", len(qs), filepath.Base(path), want)
	}
	return qs
}

var rustQuery = regexp.MustCompile(`(?s)sqlx::query(?:_scalar|_as)?(?:::<[^>]*>)?\(\s*"((?:[^"\\]|\\.)*)"`)

func engineStatements(t testing.TB) engineSQL {
	t.Helper()
	qs := rustStatements(t, filepath.Join(sharedPath(t, "REGISTRY_FLOWFABRIC_SEED", "seed"), "worker_registry.rs.txt"), 11)
	return engineSQL{
		registerSelect: qs[0], registerUpsert: qs[1], registerEvent: qs[2],
		heartbeat: qs[3], heartbeatEvent: qs[4],
		markDead: qs[5], markDeadEvent: qs[6],
		listExpiredLeases: qs[7], listWorkers: qs[8],
		sweep: qs[9], sweepEvent: qs[10],
	}
}

// engine runs the engine's statements on a database, one transaction per
// operation as the engine does.
type engine struct {
	engineConn
	sql engineSQL
}

// engineConn runs an engine's statements, each operation in a transaction
// of its own, failing the test on any error.
type engineConn struct {
	t  testing.TB
	db *sql.DB
}

func newEngine(t testing.TB, path string) *engine {
	t.Helper()
	db, err := sql.Open(registry.SQLiteDriverName, registry.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &engine{engineConn: engineConn{t: t, db: db}, sql: engineStatements(t)}
}

func (e engineConn) tx(fn func(tx *sql.Tx)) {
	e.t.Helper()
	tx, err := e.db.Begin()
	if err != nil {
		e.t.Fatal(err)
	}
	fn(tx)
	if err := tx.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

func (e engineConn) exec(tx *sql.Tx, q string, args ...any) sql.Result {
	e.t.Helper()
	res, err := tx.Exec(q, args...)
	if err != nil {
		e.t.Fatalf("engine statement %q: %v", q, err)
	}
	return res
}

// register is the engine's register_worker: preflight, upsert, event.
func (e *engine) register(ns, instance, workerID, lanes, caps string, ttl time.Duration, now time.Time) {
	e.t.Helper()
	e.tx(func(tx *sql.Tx) {
		var existing string
		err := tx.QueryRow(e.sql.registerSelect, ns, instance).Scan(&existing)
		if err != nil && err != sql.ErrNoRows {
			e.t.Fatal(err)
		}
		ms := now.UnixMilli()
		e.exec(tx, e.sql.registerUpsert, ns, instance, workerID, lanes, caps, ms, ttl.Milliseconds(), ms)
		e.exec(tx, e.sql.registerEvent, ns, instance, ms)
	})
}

// heartbeat is the engine's heartbeat_worker; it reports whether the row
// was live.
func (e *engine) heartbeat(ns, instance string, now time.Time) bool {
	e.t.Helper()
	live := false
	e.tx(func(tx *sql.Tx) {
		var ttl int64
		err := tx.QueryRow(e.sql.heartbeat, ns, instance, now.UnixMilli()).Scan(&ttl)
		if err == sql.ErrNoRows {
			return
		}
		if err != nil {
			e.t.Fatalf("engine heartbeat: %v", err)
		}
		live = true
		e.exec(tx, e.sql.heartbeatEvent, ns, instance, now.UnixMilli())
	})
	return live
}

// markDead is the engine's mark_worker_dead; it reports whether a row went.
func (e *engine) markDead(ns, instance, reason string, now time.Time) bool {
	e.t.Helper()
	deleted := false
	e.tx(func(tx *sql.Tx) {
		var one int64
		err := tx.QueryRow(e.sql.markDead, ns, instance).Scan(&one)
		if err == sql.ErrNoRows {
			return
		}
		if err != nil {
			e.t.Fatalf("engine mark dead: %v", err)
		}
		deleted = true
		e.exec(tx, e.sql.markDeadEvent, ns, instance, now.UnixMilli(), reason)
	})
	return deleted
}

// sweep is the engine's ttl_sweep_tick at now; it returns the swept keys.
func (e *engine) sweep(now time.Time) []string {
	e.t.Helper()
	var swept []string
	e.tx(func(tx *sql.Tx) {
		rows, err := tx.Query(e.sql.sweep, now.UnixMilli())
		if err != nil {
			e.t.Fatal(err)
		}
		for rows.Next() {
			var ns, inst string
			if err := rows.Scan(&ns, &inst); err != nil {
				e.t.Fatal(err)
			}
			swept = append(swept, ns+"/"+inst)
		}
		if err := rows.Err(); err != nil {
			e.t.Fatal(err)
		}
		rows.Close()
		for _, k := range swept {
			ns, inst, _ := strings.Cut(k, "/")
			e.exec(tx, e.sql.sweepEvent, ns, inst, now.UnixMilli())
		}
	})
	return swept
}

// listWorkers is the engine's list_workers for one namespace: every row,
// live or not (the reference's defect 8), as "instance lanes caps".
func (e *engine) listWorkers(ns string) []string { return e.listWorkersWith(e.sql.listWorkers, ns) }

// listWorkersWith runs query, an engine's list_workers, for one namespace,
// and returns its rows as "instance lanes caps". database/sql reads a
// Postgres text[] as its text form, "{a,b}": the lanes lose the braces.
func (e engineConn) listWorkersWith(query, ns string) []string {
	e.t.Helper()
	rows, err := e.db.Query(query, ns, nil, 1000)
	if err != nil {
		e.t.Fatalf("engine list workers: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var workerID, inst, namespace, lanes, caps string
		var hb, ttl, reg int64
		if err := rows.Scan(&workerID, &inst, &namespace, &lanes, &caps, &hb, &ttl, &reg); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, inst+" "+strings.Trim(lanes, "{}")+" "+caps)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// listExpiredLeases is the engine's list_expired_leases, first page: the
// holders of the leases it returns.
func (e *engine) listExpiredLeases(asOf time.Time) []string {
	e.t.Helper()
	rows, err := e.db.Query(e.sql.listExpiredLeases, asOf.UnixMilli(), nil, nil, "", 1000)
	if err != nil {
		e.t.Fatalf("engine list expired leases: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var part, attempt, epoch, expires int64
		var exec []byte
		var holder string
		var ns sql.NullString
		if err := rows.Scan(&part, &exec, &attempt, &epoch, &holder, &expires, &ns); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, holder)
	}
	return out
}

// engineObjects returns the schema of everything in the database that is
// not the registry's: sqlite_master rows other than the registry's
// tables and the objects named for the registry.
func engineObjects(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	return textPairs(t, db, `SELECT type || ' ' || name, coalesce(sql, '') FROM sqlite_master
		WHERE tbl_name NOT IN ('ff_worker_registry', 'ff_worker_registry_event')
		  AND name NOT LIKE 'ff_worker_registry%' AND name <> 'sqlite_sequence'`)
}

// textPairs returns the rows of a query that selects two text columns, a
// key and a value, as a map.
func textPairs(t testing.TB, db *sql.DB, query string) map[string]string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sharedRows returns every row of the two shared tables, as text.
func sharedRows(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return registrytest.TextRows(t, db,
		`SELECT 'w ' || namespace || '/' || worker_instance_id || ' ' || worker_id || ' ' || lanes || ' ' || capabilities_csv || ' ' ||
			last_heartbeat_ms || ' ' || liveness_ttl_ms || ' ' || registered_at_ms FROM ff_worker_registry ORDER BY 1`,
		`SELECT 'e ' || rowid || ' ' || namespace || '/' || worker_instance_id || ' ' || event_kind || ' ' || event_at_ms || ' ' || coalesce(reason, '-')
			FROM ff_worker_registry_event ORDER BY rowid`)
}

func checkIntegrity(t testing.TB, db *sql.DB) {
	t.Helper()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
	rows, err := db.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Error("foreign_key_check reports violations")
	}
}

// TestAdoptFlowFabricSQLite builds a FlowFabric database with the engine's
// migrations, writes workers and events with the engine's statements, and
// opens the registry on it: the registry adopts it without losing a row or
// touching an engine object, sees what the engine wrote, and the engine's
// statements keep working on what the registry writes.
func TestAdoptFlowFabricSQLite(t *testing.T) {
	ctx := context.Background()
	path := flowfabricSQLite(t)
	eng := newEngine(t, path)
	eng.register("prod", "e1", "pool", "default,gpu", "cuda", time.Minute, t0)
	eng.register("prod", "e2", "pool", "default", "", time.Minute, t0)
	if !eng.heartbeat("prod", "e1", t0.Add(10*time.Second)) {
		t.Fatal("engine heartbeat of a live worker found no row")
	}
	objects, rows := engineObjects(t, eng.db), sharedRows(t, eng.db)

	r, err := registry.Open(ctx, path, registry.WithClock(func() time.Time { return t0.Add(20 * time.Second) }))
	if err != nil {
		t.Fatalf("Open on a FlowFabric database: %v", err)
	}
	defer r.Close()
	if got := engineObjects(t, eng.db); !mapsEqual(got, objects) {
		t.Errorf("adoption changed the engine's objects:\n got %v\nwant %v", got, objects)
	}
	if got := sharedRows(t, eng.db); !slices.Equal(got, rows) {
		t.Errorf("adoption changed the registry's rows:\n got %v\nwant %v", got, rows)
	}
	checkIntegrity(t, eng.db)

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
	eng.heartbeat("prod", "e2", t0.Add(30*time.Second))
	hb, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "prod", WorkerInstanceID: "e2", Now: t0.Add(80 * time.Second)})
	if err != nil || hb.Outcome != registry.HeartbeatRefreshed {
		t.Errorf("registry heartbeat of a worker the engine kept alive: %+v, %v", hb, err)
	}

	// What the registry writes, the engine's statements read and write.
	if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "prod", WorkerID: "pool", WorkerInstanceID: "g1",
		Lanes: []string{"gpu"}, Capabilities: []string{"a100", "cuda"}, LivenessTTL: time.Minute, Now: t0.Add(20 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if got := eng.listWorkers("prod"); !slices.Contains(got, "g1 gpu a100,cuda") {
		t.Errorf("engine list_workers = %v, want g1 as the registry registered it", got)
	}
	if !eng.heartbeat("prod", "g1", t0.Add(40*time.Second)) {
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
	eng.register("prod", "g1", "pool", "gpu", "a100,cuda", time.Minute, t0.Add(42*time.Second))
	hb, err = r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "prod", WorkerInstanceID: "g1", Now: t0.Add(43 * time.Second)})
	if err != nil || hb.Directive != registry.DirectiveDrain {
		t.Errorf("heartbeat after the engine re-registered a drained worker: %+v, %v; want the drain kept", hb, err)
	}
	if !eng.markDead("prod", "e1", "engine says so", t0.Add(44*time.Second)) {
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
	registrytest.InsertLeases(t, eng.db,
		registrytest.Lease{Namespace: "prod", WorkerInstanceID: "e1", ExpiresAt: t0.Add(time.Second)},
		registrytest.Lease{Namespace: "prod", WorkerInstanceID: "g1", ExpiresAt: t0.Add(time.Hour)})
	if got := eng.listExpiredLeases(t0.Add(time.Minute)); !slices.Equal(got, []string{"e1"}) {
		t.Errorf("engine list_expired_leases = %v, want [e1]", got)
	}
	leases, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: t0.Add(time.Minute)})
	if err != nil || len(leases.Leases) != 1 || leases.Leases[0].WorkerInstanceID != "e1" {
		t.Errorf("registry ListExpiredLeases = %+v, %v; want e1's lease", leases, err)
	}
	// The engine's sweep and the registry's agree on what expired.
	// g1 was last registered by the engine at +42s, e2 heartbeated by the
	// registry at +80s.
	if got := eng.sweep(t0.Add(110 * time.Second)); !slices.Equal(got, []string{"prod/g1"}) {
		t.Errorf("engine sweep at +110s = %v, want [prod/g1]", got)
	}
	rep, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Hour))
	if err != nil || rep.Swept != 1 {
		t.Errorf("registry sweep = %+v, %v; want e2 swept", rep, err)
	}
	checkIntegrity(t, eng.db)
}

// TestFlowFabricMigrateDownAndUp takes an adopted database down to the
// version it was adopted at and up again: every engine object and every
// row survives, the registry's additions go and come back, and no down
// goes below the adoption.
func TestFlowFabricMigrateDownAndUp(t *testing.T) {
	ctx := context.Background()
	path := flowfabricSQLite(t)
	eng := newEngine(t, path)
	eng.register("prod", "e1", "pool", "default", "", time.Minute, t0)
	objects, names := engineObjects(t, eng.db), schemaNames(t, eng.db)
	db, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := registry.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	rows := sharedRows(t, eng.db)
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
	if got := engineObjects(t, db); !mapsEqual(got, objects) {
		t.Errorf("down changed the engine's objects")
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sharedRows(t, db); !slices.Equal(got, rows) {
		t.Errorf("rows after down and up:\n got %v\nwant %v", got, rows)
	}
	if got := engineObjects(t, db); !mapsEqual(got, objects) {
		t.Errorf("down and up changed the engine's objects")
	}
	checkIntegrity(t, db)
}

// TestEngineStatementsOnRegistryDatabase runs the engine's statements on a
// database the registry made from nothing: same shapes, so they work.
func TestEngineStatementsOnRegistryDatabase(t *testing.T) {
	ctx := context.Background()
	r, path := openFile(t)
	defer r.Close()
	eng := newEngine(t, path)
	eng.register("prod", "e1", "pool", "default", "", time.Minute, t0)
	if !eng.heartbeat("prod", "e1", t0.Add(30*time.Second)) {
		t.Fatal("engine heartbeat on a registry database found no row")
	}
	w, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Now: t0.Add(80 * time.Second)})
	if err != nil || len(w.Workers) != 1 || !w.Workers[0].ExpiresAt.Equal(t0.Add(90*time.Second)) {
		t.Errorf("registry listing after the engine's heartbeat: %+v, %v", w.Workers, err)
	}
	if got := eng.sweep(t0.Add(100 * time.Second)); !slices.Equal(got, []string{"prod/e1"}) {
		t.Errorf("engine sweep = %v", got)
	}
	registrytest.InsertLeases(t, eng.db, registrytest.Lease{Namespace: "prod", WorkerInstanceID: "e1", ExpiresAt: t0})
	if got := eng.listExpiredLeases(t0.Add(time.Minute)); !slices.Equal(got, []string{"e1"}) {
		t.Errorf("engine list_expired_leases = %v", got)
	}
	checkIntegrity(t, eng.db)
}

// TestUpgradeFromVersion2 migrates a database of the previous schema
// (version 2), with registrations, a drain and events that share a
// millisecond, and checks that every row and event survives with its ID.
func TestUpgradeFromVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	db := openAtVersion(t, 2, func() (*sql.DB, error) { return registry.OpenSQLiteDB(path) })
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
	// Every version from 3 on, in order (numbers may skip: one reserved
	// by a change not merged yet).
	prev := int64(2)
	for i, m := range res {
		if m.Source.Version <= prev {
			t.Errorf("upgrade applied version %d as its migration %d, after %d", m.Source.Version, i, prev)
		}
		prev = m.Source.Version
	}
	if prev != storepkg.LatestVersion(schema.SQLite) {
		t.Errorf("upgrade stopped at version %d", prev)
	}
	if got, want := sharedRows(t, db), []string{
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
	checkIntegrity(t, db)
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

// schemaNames lists every object of the database as "type name", sorted.
func schemaNames(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return registrytest.TextRows(t, db, `SELECT type || ' ' || name FROM sqlite_master ORDER BY 1`)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
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
