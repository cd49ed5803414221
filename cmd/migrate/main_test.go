package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/internal/clitest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// TestMain lets the test binary stand in for the command, so that tests
// see real exit codes without building it.
func TestMain(m *testing.M) { clitest.Main(m, main) }

// migrate runs the command in dir with env added to the environment.
var migrate = clitest.Self().Run

// lastVersions returns the versions of the newest two migrations (the
// versions may have gaps while branches that take numbers are merged).
func lastVersions(t *testing.T) (latest, previous int) {
	t.Helper()
	entries, err := filepath.Glob("../../schema/sqlite/*.sql")
	if err != nil || len(entries) < 2 {
		t.Fatalf("no migrations found: %v", err)
	}
	slices.Sort(entries)
	version := func(path string) int {
		v, err := strconv.Atoi(strings.SplitN(filepath.Base(path), "_", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return version(entries[len(entries)-1]), version(entries[len(entries)-2])
}

func TestCommands(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		testCommands(t, dir, nil)
		if _, err := os.Stat(filepath.Join(dir, "registry.db")); err != nil {
			t.Fatalf("up did not create registry.db: %v", err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
		testCommands(t, t.TempDir(), []string{"-db", dsn})
		// The last step left version 0: the version table and the engine's
		// tables, which down never drops.
		sqlDB, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer sqlDB.Close()
		var tables string
		err = sqlDB.QueryRow(`SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables
			WHERE schemaname = current_schema() AND tablename LIKE 'ff_%'`).Scan(&tables)
		if err != nil || tables != "ff_attempt ff_exec_core ff_worker_registry_version" {
			t.Fatalf("tables after down-to 0: %q, %v; want the engine's and the version table", tables, err)
		}
	})
}

// testCommands runs every command against the database that dbArgs name
// (none: registry.db in dir).
func testCommands(t *testing.T, dir string, dbArgs []string) {
	latest, previous := lastVersions(t)
	run := func(args ...string) clitest.Result {
		t.Helper()
		res := migrate(t, dir, nil, append(slices.Clone(dbArgs), args...)...)
		if res.Code != 0 {
			t.Fatalf("migrate %v: exit %d, stderr %q", args, res.Code, res.Stderr)
		}
		return res
	}
	// The schema's version is status's first line: "database version N,
	// latest migration M". The flag goes after the command here.
	version := func() string {
		t.Helper()
		var v, latest int64
		res := run("status")
		if _, err := fmt.Sscanf(res.Stdout, "database version %d, latest migration %d\n", &v, &latest); err != nil {
			t.Fatalf("status printed %q: %v", res.Stdout, err)
		}
		return itoa(int(v))
	}

	if res := run("up"); !strings.Contains(res.Stdout, "OK    up 00001_worker_registry.sql") {
		t.Fatalf("up printed %q", res.Stdout)
	}
	if got, want := version(), itoa(latest); got != want {
		t.Fatalf("version after up = %s, want %s", got, want)
	}
	if res := run("up"); !strings.Contains(res.Stdout, "no migrations to run") {
		t.Fatalf("second up printed %q", res.Stdout)
	}
	if res := run("status"); !strings.Contains(res.Stdout, "applied") || strings.Contains(res.Stdout, "pending") {
		t.Fatalf("status printed %q", res.Stdout)
	}

	run("down")
	if got, want := version(), itoa(previous); got != want {
		t.Fatalf("version after down = %s, want %s", got, want)
	}
	if res := run("status"); !strings.Contains(res.Stdout, "pending") {
		t.Fatalf("status after down printed %q", res.Stdout)
	}
	run("up-to", itoa(latest))
	run("redo")
	if got, want := version(), itoa(latest); got != want {
		t.Fatalf("version after redo = %s, want %s", got, want)
	}
	run("reset")
	if got := version(); got != "0" {
		t.Fatalf("version after reset = %s, want 0", got)
	}
	run("up-to", "1")
	if got := version(); got != "1" {
		t.Fatalf("version after up-to 1 = %s, want 1", got)
	}
	run("up")
	run("down-to", "0")
	if got := version(); got != "0" {
		t.Fatalf("version after down-to 0 = %s, want 0", got)
	}
}

func TestDatabaseFromFlagAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	fromEnv := filepath.Join(dir, "env.db")
	if res := migrate(t, dir, []string{"REGISTRY_DB=" + fromEnv}, "up"); res.Code != 0 {
		t.Fatalf("up with REGISTRY_DB: %+v", res)
	}
	fromFlag := filepath.Join(dir, "flag.db")
	if res := migrate(t, dir, []string{"REGISTRY_DB=" + fromEnv}, "-db", fromFlag, "up"); res.Code != 0 {
		t.Fatalf("up with -db: %+v", res)
	}
	for _, p := range []string{fromEnv, fromFlag} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s mode = %v, want 0600", p, mode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "registry.db")); err == nil {
		t.Error("registry.db was created although -db or REGISTRY_DB named another file")
	}
}

func TestFailures(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.db")
	sqlDB, err := registry.OpenSQLiteDB(newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlDB.Exec(`CREATE TABLE ff_worker_registry_version (id INTEGER PRIMARY KEY AUTOINCREMENT,
		version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')));
		INSERT INTO ff_worker_registry_version (version_id, is_applied) VALUES (0, 1), (999, 1)`); err != nil {
		t.Fatal(err)
	}
	sqlDB.Close()

	cases := []struct {
		name    string
		args    []string
		code    int
		message string
	}{
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"sideways"}, 2, `unknown command "sideways"`},
		{"unknown flag", []string{"-x", "up"}, 2, "flag provided but not defined: -x"},
		{"extra argument", []string{"up", "now"}, 2, "up takes no arguments"},
		{"up-to without version", []string{"up-to"}, 2, "up-to takes one version number"},
		{"bad version", []string{"down-to", "-1"}, 2, `version "-1" is not a number`},
		{"missing file", []string{"-db", filepath.Join(dir, "missing.db"), "status"}, 1, "no such database file"},
		{"not a database", []string{"-db", garbage, "up"}, 1, "file is not a database"},
		{"newer database", []string{"-db", newer, "up"}, 1, "database version 999 is newer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := migrate(t, dir, nil, tc.args...)
			if res.Code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", res.Code, tc.code, res.Stderr)
			}
			lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "migrate: ") || !strings.Contains(lines[0], tc.message) {
				t.Fatalf("stderr = %q, want one line containing %q", res.Stderr, tc.message)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Error("status created the missing database file")
	}
	if b, _ := os.ReadFile(garbage); !bytes.Equal(b, bytes.Repeat([]byte("not a database "), 100)) {
		t.Error("the file that is not a database was changed")
	}

	if res := migrate(t, dir, nil, "-h"); res.Code != 0 || !strings.Contains(res.Stderr, "down-to N") {
		t.Errorf("-h: exit %d, stderr %q", res.Code, res.Stderr)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestFailedUpLeavesFileUnchanged runs up on another application's SQLite
// database whose ff_exec_core the registry cannot index, and the commands
// that read or go down on it, which have nothing to do: the file keeps its
// bytes and journal mode, and nothing is left beside it.
func TestFailedUpLeavesFileUnchanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "other.db")
	db, err := sql.Open(registry.SQLiteDriverName, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE ff_exec_core (id INTEGER PRIMARY KEY, payload TEXT); INSERT INTO ff_exec_core (payload) VALUES ('a')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"version"}, {"up"}, {"up-to", "2"}, {"down"}, {"redo"}, {"reset"}, {"down-to", "0"}} {
		res := migrate(t, dir, nil, append([]string{"-db", path}, args...)...)
		want := 0
		if args[0] == "up" || args[0] == "up-to" {
			want = 1
		}
		if res.Code != want {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, res.Code, want, res.Stderr)
		}
		if want == 1 && !strings.Contains(res.Stderr, "nothing was applied") {
			t.Errorf("%q: stderr %q, want it to say nothing was applied", args, res.Stderr)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, before) {
		t.Error("the file changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files beside the database: %v", entries)
	}
}

// TestFlowFabricUpDownUp adopts a FlowFabric database built by the engine's
// own migrations with migrate up, takes it down to the adoption and up
// again: every engine object and every row survives, and down stops at the
// adoption.
func TestFlowFabricUpDownUp(t *testing.T) {
	src := os.Getenv("REGISTRY_FLOWFABRIC_DIR")
	if src == "" {
		src = filepath.Join("..", "..", "..", "shared", "flowfabric")
	}
	files, _ := filepath.Glob(filepath.Join(src, "sqlite", "*.sql"))
	if len(files) == 0 {
		t.Skipf("FlowFabric's migrations are not in %s; set REGISTRY_FLOWFABRIC_DIR", src)
	}
	slices.Sort(files)
	dir := t.TempDir()
	path := filepath.Join(dir, "flowfabric.db")
	db, err := sql.Open(registry.SQLiteDriverName, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(text)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := db.Exec(`INSERT INTO ff_worker_registry VALUES ('ns', 'w', 'pool', 'default', '', 1, 60000, 1);
		INSERT INTO ff_worker_registry_event VALUES ('ns', 'w', 'registered', 1, NULL)`); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var s string
		if err := db.QueryRow(`SELECT group_concat(x, char(10)) FROM (
			SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS x FROM sqlite_master
			WHERE tbl_name NOT IN ('ff_worker_registry', 'ff_worker_registry_event', ?) AND name NOT LIKE 'ff\_worker\_registry\_%' ESCAPE '\'
			UNION ALL SELECT namespace || worker_instance_id || last_heartbeat_ms FROM ff_worker_registry
			UNION ALL SELECT rowid || event_kind FROM ff_worker_registry_event ORDER BY 1)`, registry.VersionTable).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()
	for _, step := range []struct {
		args []string
		code int
	}{{[]string{"up"}, 0}, {[]string{"down-to", "3"}, 0}, {[]string{"down"}, 1}, {[]string{"up"}, 0}} {
		res := migrate(t, dir, nil, append([]string{"-db", path}, step.args...)...)
		if res.Code != step.code {
			t.Fatalf("%q: exit %d, want %d\nstdout %s\nstderr %s", step.args, res.Code, step.code, res.Stdout, res.Stderr)
		}
		if got := snapshot(); got != before {
			t.Fatalf("after %q the engine's objects or the rows changed:\n%s\nwant\n%s", step.args, got, before)
		}
	}
}
