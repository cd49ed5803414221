package workerregistry_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
	"github.com/flowfabric/workerregistry/schema"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestEndToEnd drives the public API over a file database, closes it and
// opens it again, as a service restart would.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"w1", "w2"} {
		o, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{
			Namespace: "demo", WorkerID: "pool", WorkerInstanceID: id,
			Lanes: []string{"default"}, Capabilities: []string{"cuda"}, LivenessTTL: 10 * time.Second, Now: t0,
		})
		if err != nil || o != registry.Registered {
			t.Fatalf("register %s: %v, %v", id, o, err)
		}
	}
	hb, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "demo", WorkerInstanceID: "w1", Now: t0.Add(5 * time.Second)})
	if err != nil || hb.Outcome != registry.HeartbeatRefreshed || !hb.NextExpiry.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("heartbeat: %+v, %v", hb, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("database file mode = %v, want 0600", mode)
	}

	r, err = registry.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer r.Close()
	res, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Now: t0.Add(12 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Workers) != 1 || res.Workers[0].WorkerInstanceID != "w1" || res.Workers[0].Capabilities[0] != "cuda" {
		t.Fatalf("after reopen at T+12s: %+v, want only w1", res.Workers)
	}
}

// TestMigrationsUpDownUp runs every migration up, down and up again, one
// version at a time, on a database that holds rows.
func TestMigrationsUpDownUp(t *testing.T) {
	ctx := context.Background()
	sqlDB, p := migrationProvider(t, func() (*sql.DB, error) { return registry.OpenSQLiteDB(filepath.Join(t.TempDir(), "m.db")) })
	sources := p.ListSources()

	// Up one version at a time, with rows in place before each step.
	if _, err := p.UpByOne(ctx); err != nil {
		t.Fatal(err)
	}
	insertWorker(t, sqlDB, "before-later-migrations")
	for range sources[1:] {
		if _, err := p.UpByOne(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := registry.NewSQLite(sqlDB)
	register(t, r, "at-latest")
	if got := listed(t, r); !slices.Equal(got, []string{"at-latest", "before-later-migrations"}) {
		t.Fatalf("after up: %v", got)
	}

	// Down to nothing, then up again: the schema comes back whole and works.
	for i := len(sources) - 1; i >= 0; i-- {
		if _, err := p.Down(ctx); err != nil {
			t.Fatalf("down from version %d: %v", sources[i].Version, err)
		}
	}
	if v, _ := p.GetDBVersion(ctx); v != 0 {
		t.Fatalf("version after all downs = %d", v)
	}
	var tables int
	if err := sqlDB.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name LIKE 'ff_%'
		AND name NOT IN ('ff_exec_core', 'ff_attempt', ?)`, registry.VersionTable).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("registry tables left after all downs: %d (%v)", tables, err)
	}
	// The engine's tables stay, without the registry's indexes.
	var indexes int
	if err := sqlDB.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'ff_%_idx'`).Scan(&indexes); err != nil || indexes != 0 {
		t.Fatalf("registry indexes left after all downs: %d (%v)", indexes, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	register(t, r, "after-redo")
	if got := listed(t, r); !slices.Equal(got, []string{"after-redo"}) {
		t.Fatalf("after down and up: %v", got)
	}
}

// migrationProvider opens a database with open, closed when the test ends,
// and returns it with the registry's migration provider on it.
func migrationProvider(t *testing.T, open func() (*sql.DB, error)) (sqlDB *sql.DB, p *goose.Provider) {
	t.Helper()
	sqlDB, err := open()
	if err == nil {
		t.Cleanup(func() { sqlDB.Close() })
		p, err = registry.NewMigrationProvider(sqlDB)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sqlDB, p
}

// TestSchemaWorksWithStockGoose reads the migrations from the directory, as
// `goose -dir schema/sqlite sqlite3 dev.db up` does, and checks that it sees the
// same migrations as the embedded FS (and no stray Go file).
func TestSchemaWorksWithStockGoose(t *testing.T) {
	ctx := context.Background()
	sqlDB, err := registry.OpenSQLiteDB(filepath.Join(t.TempDir(), "stock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	dirProvider, err := goose.NewProvider(goose.DialectSQLite3, sqlDB, os.DirFS("schema/sqlite"), goose.WithTableName(registry.VersionTable))
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := goose.NewProvider(goose.DialectSQLite3, sqlDB, schema.SQLite, goose.WithTableName(registry.VersionTable))
	if err != nil {
		t.Fatal(err)
	}
	var fromDir, fromEmbed []int64
	for _, s := range dirProvider.ListSources() {
		if s.Type != goose.TypeSQL {
			t.Errorf("stock goose would treat %s as a %s migration", s.Path, s.Type)
		}
		fromDir = append(fromDir, s.Version)
	}
	for _, s := range embedded.ListSources() {
		fromEmbed = append(fromEmbed, s.Version)
	}
	if !slices.Equal(fromDir, fromEmbed) || len(fromDir) == 0 {
		t.Fatalf("directory versions %v, embedded %v", fromDir, fromEmbed)
	}
	for i, v := range fromDir {
		if v != int64(i+1) {
			t.Fatalf("migration versions %v are not 1..n", fromDir)
		}
	}
	if _, err := dirProvider.Up(ctx); err != nil {
		t.Fatal(err)
	}
	register(t, registry.NewSQLite(sqlDB), "stock")
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "newer.db")
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	register(t, r, "w")
	r.Close()

	sqlDB, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	if _, err := sqlDB.Exec(`INSERT INTO ` + registry.VersionTable + ` (version_id, is_applied) VALUES (999, 1)`); err != nil {
		t.Fatal(err)
	}
	before := dump(t, sqlDB)
	_, err = registry.Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer than this library") {
		t.Fatalf("Open = %v, want a newer-schema error", err)
	}
	if after := dump(t, sqlDB); !slices.Equal(after, before) {
		t.Fatalf("Open changed the database:\n%s\nwant\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
}

func TestOpenRejectsNonDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	content := []byte(strings.Repeat("this is not a database\n", 200))
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := registry.Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "not a database") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want an error naming the file", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(content) {
		t.Fatal("Open changed the file")
	}
	if _, err := registry.Open(context.Background(), ""); !errors.Is(err, registry.ErrInvalidInput) {
		t.Fatalf("Open(\"\") = %v, want ErrInvalidInput", err)
	}
}

func insertWorker(t *testing.T, sqlDB *sql.DB, id string) {
	t.Helper()
	_, err := sqlDB.Exec(`INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes,
		last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms) VALUES ('ns', ?, 'pool', 'default', ?, 60000, ?, ?)`,
		id, t0.UnixMilli(), t0.UnixMilli(), t0.UnixMilli()+60000)
	if err != nil {
		t.Fatal(err)
	}
}

func register(t *testing.T, r *registry.Registry, id string) {
	t.Helper()
	if _, err := r.RegisterWorker(context.Background(), registry.RegisterWorkerArgs{
		Namespace: "ns", WorkerID: "pool", WorkerInstanceID: id, Lanes: []string{"default"}, LivenessTTL: time.Minute, Now: t0,
	}); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func listed(t *testing.T, r *registry.Registry) []string {
	t.Helper()
	res, err := r.ListWorkers(context.Background(), registry.ListWorkersArgs{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range res.Workers {
		ids = append(ids, w.WorkerInstanceID)
	}
	return ids
}

// dump renders the schema and every row of the registry's tables.
func dump(t *testing.T, sqlDB *sql.DB) []string {
	t.Helper()
	return registrytest.TextRows(t, sqlDB,
		`SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_schema ORDER BY name`,
		`SELECT namespace || '/' || worker_instance_id || ' ' || last_heartbeat_ms || ' ' || liveness_ttl_ms FROM ff_worker_registry ORDER BY 1`,
		`SELECT rowid || ' ' || event_kind FROM ff_worker_registry_event ORDER BY rowid`,
		`SELECT version_id || ' ' || is_applied FROM `+registry.VersionTable+` ORDER BY id`)
}

// TestOpenLeavesNewerRollbackJournalFileAlone checks the bytes of the file,
// not only its rows: connecting for writes would switch it to WAL.
func TestOpenLeavesNewerRollbackJournalFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newer-delete-mode.db")
	plain, err := sql.Open(registry.SQLiteDriverName, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Exec(`CREATE TABLE ` + registry.VersionTable + ` (id INTEGER PRIMARY KEY AUTOINCREMENT,
		version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')));
		INSERT INTO ` + registry.VersionTable + ` (version_id, is_applied) VALUES (0, 1), (99, 1)`); err != nil {
		t.Fatal(err)
	}
	plain.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = registry.Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "version 99 is newer") {
		t.Fatalf("Open = %v, want a newer-schema error", err)
	}
	after, err := os.ReadFile(path)
	if err != nil || string(after) != string(before) {
		t.Fatalf("Open changed the file's bytes (%v)", err)
	}
}
