package registry_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/registry"
)

// t0 is the start of every test's timeline. Tests pass times explicitly so
// TTL boundaries are exact.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testBundle holds what a test needs besides the Registry.
type testBundle struct {
	engine string // engineSQLite or enginePostgres
	path   string // the SQLite file, or the Postgres DSN with the test's schema
	raw    rawDB  // a separate connection for inspecting rows
	// pool, on Postgres, is the connection pool that the test's registries
	// share, open from test to test (see registrytest.PooledSchema).
	pool *pgxpool.Pool
	// lockHolder, on Postgres, is the backend of holdWriteLock's
	// connection while it holds the locks.
	lockHolder int
}

// setup opens a fresh registry on a database of s of t's own: a file in
// t.TempDir, or a schema of its own in the REGISTRY_TEST_POSTGRES database.
func setup(t testing.TB, s store, opts ...registry.Option) (*registry.Registry, *testBundle) {
	t.Helper()
	if s.engine == engineSQLite {
		return setupAt(t, s.database(t), opts...)
	}
	// A schema and connections that earlier tests warmed up.
	p := s.pooled(t)
	b := &testBundle{engine: s.engine, path: p.DSN, pool: p.Pool, raw: rawDB{DB: p.DB, postgres: true}}
	return b.open(t, opts...), b
}

// setupAt is setup on the SQLite file at path, which may hold a database
// already (FlowFabric's, for instance).
func setupAt(t testing.TB, path string, opts ...registry.Option) (*registry.Registry, *testBundle) {
	t.Helper()
	b := &testBundle{engine: engineSQLite, path: path}
	r := b.open(t, opts...)
	raw, err := sql.Open(registry.SQLiteDriverName, registry.SQLiteDSN(b.path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	b.raw = rawDB{DB: raw}
	return r, b
}

// openFile opens a registry on a new SQLite file in t.TempDir, closed when
// the test ends, and returns it with the file's path.
func openFile(t testing.TB, opts ...registry.Option) (*registry.Registry, string) {
	t.Helper()
	b := &testBundle{engine: engineSQLite, path: filepath.Join(t.TempDir(), "registry.db")}
	return b.open(t, opts...), b.path
}

// openAtVersion opens a database with open, closed when the test ends,
// and migrates it to version: a database of an earlier schema, to fill and
// then upgrade.
func openAtVersion(t testing.TB, version int64, open func() (*sql.DB, error)) *sql.DB {
	t.Helper()
	db, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := registry.MigrateTo(context.Background(), db, version); err != nil {
		t.Fatal(err)
	}
	return db
}

// open opens another Registry on the test's database, closed when the test
// ends.
func (b *testBundle) open(t testing.TB, opts ...registry.Option) *registry.Registry {
	t.Helper()
	if b.pool != nil {
		r := registry.NewPostgres(b.pool, opts...)
		t.Cleanup(func() {
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return r
	}
	if b.engine == enginePostgres {
		// Open takes the migration lock, one for the whole database, which
		// goose polls once a second: tests that open at once wait for each
		// other here instead.
		postgresOpens.Lock()
		defer postgresOpens.Unlock()
	}
	r, err := registry.Open(context.Background(), b.path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

var postgresOpens sync.Mutex

// rawDB is a *sql.DB whose Exec, Query and QueryRow take SQLite's "?" and
// "?N" placeholders on both stores, so that a test's inspection SQL is
// written once.
type rawDB struct {
	*sql.DB
	postgres bool
}

func (d rawDB) Exec(query string, args ...any) (sql.Result, error) {
	return d.DB.Exec(d.rebind(query), args...)
}

func (d rawDB) Query(query string, args ...any) (*sql.Rows, error) {
	return d.DB.Query(d.rebind(query), args...)
}

func (d rawDB) QueryRow(query string, args ...any) *sql.Row {
	return d.DB.QueryRow(d.rebind(query), args...)
}

var placeholder = regexp.MustCompile(`\?(\d*)`)

// On SQLite, whose tables are FlowFabric's, the audit log's ID is the rowid
// and a registration's expiry is computed; Postgres has columns for both.
var (
	eventID   = regexp.MustCompile(`\bevent_id\b`)
	expiresAt = regexp.MustCompile(`\bexpires_at_ms\b`)
)

// rebind turns "?" into "$1", "$2"... and "?N" into "$N" for Postgres, and
// event_id and expires_at_ms into their SQLite expressions, so that
// inspection SQL is written once.
func (d rawDB) rebind(query string) string {
	if !d.postgres {
		query = eventID.ReplaceAllString(query, "rowid")
		return expiresAt.ReplaceAllString(query, "(last_heartbeat_ms + liveness_ttl_ms)")
	}
	n := 0
	return placeholder.ReplaceAllStringFunc(query, func(m string) string {
		if len(m) > 1 {
			return "$" + m[1:]
		}
		n++
		return "$" + strconv.Itoa(n)
	})
}

// lanesLiteral is the SQL literal of comma-joined lanes in the store's
// lanes column: text on SQLite, the engine's text[] on Postgres.
func (b *testBundle) lanesLiteral(lanes string) string {
	if b.engine == enginePostgres {
		return "'{" + lanes + "}'"
	}
	return "'" + lanes + "'"
}

// partitionColumn returns what an INSERT into ff_worker_registry adds for
// the partition key, given the instance ID's SQL expression: a column on
// Postgres, whose tables are partitioned, nothing on SQLite.
func (b *testBundle) partitionColumn(instance string) (column, value string) {
	if b.engine == enginePostgres {
		return ", partition_key", ", ff_worker_registry_partition_key(" + instance + ")"
	}
	return "", ""
}

// eventTime is when the store dates an event written at ms that is the
// n-th (from 0) of its kind for its instance in that millisecond: the audit
// log is FlowFabric's, keyed by (instance, time, kind), so each one moves
// to the next free millisecond.
func (b *testBundle) eventTime(ms int64, n int) int64 {
	return ms + int64(n)
}

// pruned is what PruneEvents reports when it finds n events to remove and
// they are all there is: on SQLite the newest event stays, since its rowid
// keeps the next event ID from going back.
func (b *testBundle) pruned(n int) int {
	if b.engine == engineSQLite {
		return n - 1
	}
	return n
}

// event is an audit-log row as a test sees it.
type event struct {
	Namespace, Instance, Kind string
	AtMS                      int64
	Reason                    sql.NullString
}

// events returns the audit log in id order.
func (b *testBundle) events(t *testing.T) []event {
	t.Helper()
	rows, err := b.raw.Query(`SELECT namespace, worker_instance_id, event_kind, event_at_ms, reason
		FROM ff_worker_registry_event ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []event
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.Namespace, &e.Instance, &e.Kind, &e.AtMS, &e.Reason); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// eventKinds returns the kinds of the audit log, in order.
func (b *testBundle) eventKinds(t *testing.T) []string {
	t.Helper()
	var kinds []string
	for _, e := range b.events(t) {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

// snapshot renders every row of every table, so that a test can prove a
// call changed nothing. It reads in one transaction: on Postgres, a commit
// whose caller gave up can still be landing, and tables read one by one
// could see half of it.
func (b *testBundle) snapshot(t testing.TB) string {
	t.Helper()
	var opts *sql.TxOptions
	if b.engine == enginePostgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := b.raw.DB.BeginTx(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	tables := []string{"ff_worker_registry", "ff_worker_registry_event", registry.VersionTable, "sqlite_sequence"}
	if b.engine == enginePostgres {
		// The identity sequence stands in for sqlite_sequence.
		tables[3] = "ff_worker_registry_event_id_seq"
	}
	var sb strings.Builder
	for _, table := range tables {
		query := "SELECT * FROM " + table + " ORDER BY 1, 2, 3"
		switch {
		case table == "ff_worker_registry_event" && b.engine == enginePostgres:
			// Without the event ID, which a rolled-back transaction may
			// have drawn from the sequence (the sequence's row shows
			// that); the key orders the rows.
			query = `SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason
				FROM ff_worker_registry_event ORDER BY 1, 2, 3, 5, 4`
		case table == "ff_worker_registry_event":
			query = "SELECT * FROM ff_worker_registry_event ORDER BY 1, 2, 4, 3"
		case table != "ff_worker_registry":
			query = "SELECT * FROM " + table + " ORDER BY 1, 2"
		}
		rows, err := tx.Query(query)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sb, "%s %v\n", table, vals)
		}
		rows.Close()
	}
	return sb.String()
}

// rowCount counts the registry rows, live or not.
func (b *testBundle) rowCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.raw.QueryRow("SELECT count(*) FROM ff_worker_registry").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func registerArgs(ns, instance string, now time.Time) registry.RegisterWorkerArgs {
	return registry.RegisterWorkerArgs{
		Namespace:        ns,
		WorkerID:         "pool-" + ns,
		WorkerInstanceID: instance,
		Lanes:            []string{"default"},
		LivenessTTL:      10 * time.Second,
		Now:              now,
	}
}

func mustRegister(t testing.TB, r *registry.Registry, args registry.RegisterWorkerArgs) registry.RegisterOutcome {
	t.Helper()
	o, err := r.RegisterWorker(context.Background(), args)
	if err != nil {
		t.Fatalf("RegisterWorker(%s/%s): %v", args.Namespace, args.WorkerInstanceID, err)
	}
	return o
}

// mustListEvents is ListWorkerEvents that fails the test on error.
func mustListEvents(t *testing.T, r *registry.Registry, args registry.ListWorkerEventsArgs) registry.ListWorkerEventsResult {
	t.Helper()
	res, err := r.ListWorkerEvents(context.Background(), args)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustHeartbeat(t *testing.T, r *registry.Registry, ns, instance string, now time.Time) registry.HeartbeatResult {
	t.Helper()
	res, err := r.HeartbeatWorker(context.Background(), registry.HeartbeatWorkerArgs{
		Namespace: ns, WorkerInstanceID: instance, Now: now,
	})
	if err != nil {
		t.Fatalf("HeartbeatWorker(%s/%s): %v", ns, instance, err)
	}
	return res
}

func mustList(t *testing.T, r *registry.Registry, args registry.ListWorkersArgs) registry.ListWorkersResult {
	t.Helper()
	res, err := r.ListWorkers(context.Background(), args)
	if err != nil {
		t.Fatalf("ListWorkers: %v", err)
	}
	return res
}

// instances returns "namespace/instance" for each listed worker.
func instances(ws []registry.WorkerInfo) []string {
	out := []string{}
	for _, w := range ws {
		out = append(out, w.Namespace+"/"+w.WorkerInstanceID)
	}
	return out
}

func wantValidation(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, registry.ErrInvalidInput) {
		t.Fatalf("err = %v, want ErrInvalidInput", err)
	}
	var ve *registry.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v (%T), want *ValidationError", err, err)
	}
	if ve.Field != field {
		t.Fatalf("ValidationError.Field = %q, want %q (err %v)", ve.Field, field, err)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %#v, want %#v", what, got, want)
	}
}

// TestConcurrentFirstOpen opens one new file from many goroutines at once:
// each must succeed, although only one can switch it to WAL and migrate it.
func TestConcurrentFirstOpen(t *testing.T) {
	t.Parallel()
	for round := range 3 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("first-%d.db", round))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				r, err := registry.Open(context.Background(), path)
				if err != nil {
					t.Errorf("Open: %v", err)
					return
				}
				defer r.Close()
				if _, err := r.RegisterWorker(context.Background(), registerArgs("ns", "w", t0)); err != nil {
					t.Errorf("RegisterWorker: %v", err)
				}
			})
		}
		wg.Wait()
	}
}

// holdWriteLock takes, on a connection of its own, the locks that the
// registry's writers of existing rows wait for: SQLite's write lock, or on
// Postgres every registration's row lock and the audit-log lock. It
// returns the release.
func (b *testBundle) holdWriteLock(t *testing.T) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := b.raw.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lock, unlock := "BEGIN IMMEDIATE", "COMMIT"
	if b.engine == enginePostgres {
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		lock = `SELECT pg_advisory_xact_lock(1717657458, ('ff_worker_registry_event_id_seq'::regclass::oid::bigint % 2147483647)::integer),
			(SELECT count(*) FROM (SELECT 1 FROM ff_worker_registry FOR UPDATE) AS rows)`
		if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&b.lockHolder); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.ExecContext(ctx, lock); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(ctx, unlock); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
}

// waitForLockWaiter waits, on Postgres, until another connection waits for
// a lock that holdWriteLock's connection holds. (On SQLite, whose writers
// retry a busy lock rather than queue for it, it returns at once.)
func (b *testBundle) waitForLockWaiter(t *testing.T) {
	t.Helper()
	if b.engine != enginePostgres {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := b.raw.QueryRow("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE ?::integer = ANY (pg_blocking_pids(pid)))",
			b.lockHolder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection waited for the locks held")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
