// Package flowfabrictest builds FlowFabric's own databases and runs the
// engine's own worker-registry statements, for the tests of the registry
// and of its stores: the registry shares its tables with the engine, and
// both must keep working on one database.
//
// FlowFabric's migrations and statements live beside the repository
// (../shared), not in it: the helpers read them from there and skip the
// test, saying so, where they are absent. REGISTRY_FLOWFABRIC_DIR and
// REGISTRY_FLOWFABRIC_SEED point elsewhere.
package flowfabrictest

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/sqlctest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// Dir returns the folder of FlowFabric's files (../shared/flowfabric),
// and skips t where it is absent.
func Dir(t testing.TB) string {
	t.Helper()
	return SharedPath(t, "REGISTRY_FLOWFABRIC_DIR", "flowfabric")
}

// SharedPath returns the folder rel of ../shared beside the repository,
// or the folder that the environment variable env names, and skips t
// where it does not exist.
func SharedPath(t testing.TB, env, rel string) string {
	t.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		root, err := sqlctest.RepoRoot()
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

// SQLite returns the path of a new FlowFabric SQLite database,
// as a deployment has one: the engine's migrations 0001-0022 applied in
// order. They are applied once per test process, and each call gets a copy.
func SQLite(t testing.TB) string {
	t.Helper()
	dir := Dir(t) // skips the test where the files are absent
	return flowfabricTemplate.Copy(t, "flowfabric.db", func(tmp string) (string, error) {
		return buildFlowFabricSQLite(dir, filepath.Join(tmp, "flowfabric.db"))
	})
}

var flowfabricTemplate Template

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

// SQL holds the engine's worker-registry statements, read verbatim
// from FlowFabric's SQLite module (shared/seed/worker_registry.rs.txt), in
// the order the module has them.
type SQL struct {
	RegisterSelect, RegisterUpsert, RegisterEvent string
	Heartbeat, HeartbeatEvent                     string
	MarkDead, MarkDeadEvent                       string
	ListExpiredLeases, ListWorkers                string
	Sweep, SweepEvent                             string
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

// Statements reads the engine's SQLite statements from ../shared/seed.
func Statements(t testing.TB) SQL {
	t.Helper()
	qs := rustStatements(t, filepath.Join(SharedPath(t, "REGISTRY_FLOWFABRIC_SEED", "seed"), "worker_registry.rs.txt"), 11)
	return SQL{
		RegisterSelect: qs[0], RegisterUpsert: qs[1], RegisterEvent: qs[2],
		Heartbeat: qs[3], HeartbeatEvent: qs[4],
		MarkDead: qs[5], MarkDeadEvent: qs[6],
		ListExpiredLeases: qs[7], ListWorkers: qs[8],
		Sweep: qs[9], SweepEvent: qs[10],
	}
}

// Engine runs the engine's statements on a database, one transaction per
// operation as the Engine does.
type Engine struct {
	Conn
	SQL SQL
}

// Conn runs an engine's statements, each operation in a transaction
// of its own, failing the test on any error.
type Conn struct {
	T  testing.TB
	DB *sql.DB
}

// NewEngine returns the engine on the SQLite file at path.
func NewEngine(t testing.TB, path string) *Engine {
	t.Helper()
	db, err := sql.Open(registry.SQLiteDriverName, registry.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Engine{Conn: Conn{T: t, DB: db}, SQL: Statements(t)}
}

// Tx runs fn in a transaction and commits it.
func (e Conn) Tx(fn func(tx *sql.Tx)) {
	e.T.Helper()
	tx, err := e.DB.Begin()
	if err != nil {
		e.T.Fatal(err)
	}
	fn(tx)
	if err := tx.Commit(); err != nil {
		e.T.Fatal(err)
	}
}

// Exec runs one statement in tx, failing the test on an error.
func (e Conn) Exec(tx *sql.Tx, q string, args ...any) sql.Result {
	e.T.Helper()
	res, err := tx.Exec(q, args...)
	if err != nil {
		e.T.Fatalf("engine statement %q: %v", q, err)
	}
	return res
}

// Register is the engine's register_worker: preflight, upsert, event.
func (e *Engine) Register(ns, instance, workerID, lanes, caps string, ttl time.Duration, now time.Time) {
	e.T.Helper()
	e.Tx(func(tx *sql.Tx) {
		var existing string
		err := tx.QueryRow(e.SQL.RegisterSelect, ns, instance).Scan(&existing)
		if err != nil && err != sql.ErrNoRows {
			e.T.Fatal(err)
		}
		ms := now.UnixMilli()
		e.Exec(tx, e.SQL.RegisterUpsert, ns, instance, workerID, lanes, caps, ms, ttl.Milliseconds(), ms)
		e.Exec(tx, e.SQL.RegisterEvent, ns, instance, ms)
	})
}

// Heartbeat is the engine's heartbeat_worker; it reports whether the row
// was live.
func (e *Engine) Heartbeat(ns, instance string, now time.Time) bool {
	e.T.Helper()
	live := false
	e.Tx(func(tx *sql.Tx) {
		var ttl int64
		err := tx.QueryRow(e.SQL.Heartbeat, ns, instance, now.UnixMilli()).Scan(&ttl)
		if err == sql.ErrNoRows {
			return
		}
		if err != nil {
			e.T.Fatalf("engine heartbeat: %v", err)
		}
		live = true
		e.Exec(tx, e.SQL.HeartbeatEvent, ns, instance, now.UnixMilli())
	})
	return live
}

// MarkDead is the engine's mark_worker_dead; it reports whether a row went.
func (e *Engine) MarkDead(ns, instance, reason string, now time.Time) bool {
	e.T.Helper()
	deleted := false
	e.Tx(func(tx *sql.Tx) {
		var one int64
		err := tx.QueryRow(e.SQL.MarkDead, ns, instance).Scan(&one)
		if err == sql.ErrNoRows {
			return
		}
		if err != nil {
			e.T.Fatalf("engine mark dead: %v", err)
		}
		deleted = true
		e.Exec(tx, e.SQL.MarkDeadEvent, ns, instance, now.UnixMilli(), reason)
	})
	return deleted
}

// Sweep is the engine's ttl_sweep_tick at now; it returns the swept keys.
func (e *Engine) Sweep(now time.Time) []string {
	e.T.Helper()
	var swept []string
	e.Tx(func(tx *sql.Tx) {
		rows, err := tx.Query(e.SQL.Sweep, now.UnixMilli())
		if err != nil {
			e.T.Fatal(err)
		}
		for rows.Next() {
			var ns, inst string
			if err := rows.Scan(&ns, &inst); err != nil {
				e.T.Fatal(err)
			}
			swept = append(swept, ns+"/"+inst)
		}
		if err := rows.Err(); err != nil {
			e.T.Fatal(err)
		}
		rows.Close()
		for _, k := range swept {
			ns, inst, _ := strings.Cut(k, "/")
			e.Exec(tx, e.SQL.SweepEvent, ns, inst, now.UnixMilli())
		}
	})
	return swept
}

// ListWorkers is the engine's list_workers for one namespace: every row,
// live or not (the reference's defect 8), as "instance lanes caps".
func (e *Engine) ListWorkers(ns string) []string { return e.ListWorkersWith(e.SQL.ListWorkers, ns) }

// ListWorkersWith runs query, an engine's list_workers, for one namespace,
// and returns its rows as "instance lanes caps". database/sql reads a
// Postgres text[] as its text form, "{a,b}": the lanes lose the braces.
func (e Conn) ListWorkersWith(query, ns string) []string {
	e.T.Helper()
	rows, err := e.DB.Query(query, ns, nil, 1000)
	if err != nil {
		e.T.Fatalf("engine list workers: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var workerID, inst, namespace, lanes, caps string
		var hb, ttl, reg int64
		if err := rows.Scan(&workerID, &inst, &namespace, &lanes, &caps, &hb, &ttl, &reg); err != nil {
			e.T.Fatal(err)
		}
		out = append(out, inst+" "+strings.Trim(lanes, "{}")+" "+caps)
	}
	if err := rows.Err(); err != nil {
		e.T.Fatal(err)
	}
	return out
}

// ListExpiredLeases is the engine's list_expired_leases, first page: the
// holders of the leases it returns.
func (e *Engine) ListExpiredLeases(asOf time.Time) []string {
	e.T.Helper()
	rows, err := e.DB.Query(e.SQL.ListExpiredLeases, asOf.UnixMilli(), nil, nil, "", 1000)
	if err != nil {
		e.T.Fatalf("engine list expired leases: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var part, attempt, epoch, expires int64
		var exec []byte
		var holder string
		var ns sql.NullString
		if err := rows.Scan(&part, &exec, &attempt, &epoch, &holder, &expires, &ns); err != nil {
			e.T.Fatal(err)
		}
		out = append(out, holder)
	}
	return out
}

// Objects returns the schema of everything in the database that is
// not the registry's: sqlite_master rows other than the registry's
// tables and the objects named for the registry.
func Objects(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	return TextPairs(t, db, `SELECT type || ' ' || name, coalesce(sql, '') FROM sqlite_master
		WHERE tbl_name NOT IN ('ff_worker_registry', 'ff_worker_registry_event')
		  AND name NOT LIKE 'ff_worker_registry%' AND name <> 'sqlite_sequence'`)
}

// TextPairs returns the rows of a query that selects two text columns, a
// key and a value, as a map.
func TextPairs(t testing.TB, db *sql.DB, query string) map[string]string {
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

// SharedRows returns every row of the two shared tables, as text.
func SharedRows(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return registrytest.TextRows(t, db,
		`SELECT 'w ' || namespace || '/' || worker_instance_id || ' ' || worker_id || ' ' || lanes || ' ' || capabilities_csv || ' ' ||
			last_heartbeat_ms || ' ' || liveness_ttl_ms || ' ' || registered_at_ms FROM ff_worker_registry ORDER BY 1`,
		`SELECT 'e ' || rowid || ' ' || namespace || '/' || worker_instance_id || ' ' || event_kind || ' ' || event_at_ms || ' ' || coalesce(reason, '-')
			FROM ff_worker_registry_event ORDER BY rowid`)
}

func CheckIntegrity(t testing.TB, db *sql.DB) {
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
