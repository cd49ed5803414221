package registry_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// fileState is what a failed Open must leave exactly as it was: the
// database's bytes and the files beside it.
type fileState struct {
	hash  [32]byte
	files []string
}

func stateOf(t *testing.T, path string) fileState {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return fileState{hash: sha256.Sum256(b), files: names}
}

func (s fileState) equal(o fileState) bool {
	return s.hash == o.hash && slices.Equal(s.files, o.files)
}

// foreignDB writes a SQLite database of another application whose table
// shares a name with one the registry creates, in the given journal mode.
func foreignDB(t *testing.T, journalMode string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open(registry.SQLiteDriverName, "file:"+path+"?_pragma=journal_mode("+journalMode+")")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE ff_exec_core (id INTEGER PRIMARY KEY, payload TEXT)`,
		`INSERT INTO ff_exec_core (payload) VALUES ('a'), ('b')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func journalMode(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open(registry.SQLiteDriverName, "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return mode
}

// TestFailedOpenLeavesFileUnchanged opens the database of another
// application whose ff_exec_core has another shape, so that a migration
// fails half way: the file keeps its bytes, its journal mode and its
// neighbours, and Open fails at once rather than retrying.
func TestFailedOpenLeavesFileUnchanged(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			path := foreignDB(t, mode)
			before := stateOf(t, path)
			start := time.Now()
			_, err := registry.Open(context.Background(), path)
			if err == nil {
				t.Fatal("Open succeeded on another application's database")
			}
			if !strings.Contains(err.Error(), "nothing was applied") {
				t.Errorf("Open: %v; want it to say that nothing was applied", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Open took %v to fail; a failed migration is not worth retrying", d)
			}
			if after := stateOf(t, path); !after.equal(before) {
				t.Errorf("the failed Open changed the file: files %v -> %v", before.files, after.files)
			}
			if got := journalMode(t, path); got != mode {
				t.Errorf("journal mode is %s after a failed Open, want %s", got, mode)
			}
		})
	}
}

// TestCancelledOpenRemovesFileItCreated: an Open that fails on a path that
// did not exist leaves no file behind.
func TestCancelledOpenRemovesFileItCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := registry.Open(ctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 0 {
		t.Errorf("a failed Open left %v behind", entries)
	}
}

// TestOpenWithoutAutoMigrate: WithAutoMigrate(false) opens a current
// registry and refuses, changing nothing, a missing file, an empty one,
// another application's database and an older registry.
func TestOpenWithoutAutoMigrate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	noMigrate := registry.WithAutoMigrate(false)

	current := filepath.Join(dir, "current.db")
	r, err := registry.Open(ctx, current)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = registry.Open(ctx, current, noMigrate)
	if err != nil {
		t.Fatalf("Open of a current registry without migrating: %v", err)
	}
	r.Close()

	older := filepath.Join(dir, "older.db")
	db, err := registry.OpenSQLiteDB(older)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.MigrateTo(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	db.Close()

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing": filepath.Join(dir, "missing.db"),
		"empty":   empty,
		"foreign": foreignDB(t, "delete"),
		"older":   older,
	} {
		t.Run(name, func(t *testing.T) {
			_, statErr := os.Stat(path)
			var before fileState
			if statErr == nil {
				before = stateOf(t, path)
			}
			_, err := registry.Open(ctx, path, noMigrate)
			if !errors.Is(err, registry.ErrNotMigrated) {
				t.Fatalf("Open: %v, want ErrNotMigrated", err)
			}
			if !strings.Contains(err.Error(), "migrate up") {
				t.Errorf("Open: %v; want it to say what to run", err)
			}
			if statErr != nil {
				if _, err := os.Stat(path); err == nil {
					t.Error("Open without migrating created the file")
				}
				return
			}
			if after := stateOf(t, path); !after.equal(before) {
				t.Errorf("Open without migrating changed the file: files %v -> %v", before.files, after.files)
			}
		})
	}
}

// TestMigrateAppliesPendingInOneTransaction: a database at version 1 that
// cannot take version 2 stays at version 1 with its rows.
func TestMigrateAppliesPendingInOneTransaction(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	db := openAtVersion(t, 1, func() (*sql.DB, error) { return registry.OpenSQLiteDB(path) })
	// Something else took the name that version 2 creates, in a shape it
	// cannot index.
	if _, err := db.Exec(`CREATE TABLE ff_exec_core (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if err := registry.Migrate(ctx, db); err == nil {
		t.Fatal("Migrate succeeded over a foreign ff_exec_core")
	}
	var version int64
	if err := db.QueryRow(`SELECT max(version_id) FROM ` + registry.VersionTable).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != 1 {
		t.Errorf("version after a failed Migrate = %d, want 1", version)
	}
	// The connection went back to the pool outside any transaction.
	if _, err := db.Exec(`BEGIN IMMEDIATE; ROLLBACK`); err != nil {
		t.Errorf("the pool's connection is unusable after a failed Migrate: %v", err)
	}
}

// TestOpenWaitsToSwitchToWAL: a registry file in rollback-journal mode (as
// migrate up leaves a new one) that another connection is reading cannot
// switch to WAL until the read ends; Open waits for it rather than failing
// with SQLITE_BUSY while its context lives.
func TestOpenWaitsToSwitchToWAL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	if _, err := registry.MigrateSQLiteFile(ctx, path, 1<<62); err != nil {
		t.Fatal(err)
	}
	if got := journalMode(t, path); got != "delete" {
		t.Fatalf("journal mode after MigrateSQLiteFile = %s, want delete", got)
	}
	reader, err := sql.Open(registry.SQLiteDriverName, "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM ff_worker_registry`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(1500*time.Millisecond, func() { tx.Rollback() })
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open behind a reader: %v", err)
	}
	r.Close()
	if got := journalMode(t, path); got != "wal" {
		t.Errorf("journal mode after Open = %s, want wal", got)
	}
}

// TestRunnerMatchesGoose: the registry's own SQLite runner, which applies
// the goose files' Up sections in one transaction, builds the same schema
// and version history as goose does running them file by file.
func TestRunnerMatchesGoose(t *testing.T) {
	ctx := context.Background()
	schemaOf := func(db *sql.DB) string {
		var s string
		if err := db.QueryRow(`SELECT group_concat(type || ' ' || name || ' ' || coalesce(sql, ''), char(10))
			FROM (SELECT * FROM sqlite_master ORDER BY name)`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		var versions string
		if err := db.QueryRow(`SELECT group_concat(version_id || ':' || is_applied, ',') FROM (SELECT * FROM ` + registry.VersionTable + ` ORDER BY id)`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		return s + "\n" + versions
	}
	ours, err := registry.OpenSQLiteForMigration(filepath.Join(t.TempDir(), "ours.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	if err := registry.Migrate(ctx, ours); err != nil {
		t.Fatal(err)
	}
	theirs, err := registry.OpenSQLiteForMigration(filepath.Join(t.TempDir(), "goose.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	p, err := registry.NewMigrationProvider(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := schemaOf(ours), schemaOf(theirs); a != b {
		t.Errorf("the runner's schema:\n%s\ngoose's:\n%s", a, b)
	}
}
