package flowfabrictest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
	"github.com/jackc/pgx/v5"
)

// FlowFabric's Postgres database, as a deployment has one: the engine's
// migrations 0001-0022 from ../shared/flowfabric/postgres, applied in order
// as psql -f would apply them, to the schema that dsn names.
func buildFlowFabricPostgres(dir string) func(ctx context.Context, dsn string) error {
	return func(ctx context.Context, dsn string) error {
		files, err := filepath.Glob(filepath.Join(dir, "postgres", "*.sql"))
		if err != nil || len(files) == 0 {
			return fmt.Errorf("no FlowFabric Postgres migrations in %s: %v", dir, err)
		}
		slices.Sort(files)
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return err
		}
		// 0017 creates pgcrypto, which a database has once, in one schema:
		// keep it in public, which outlives the tests' schemas, and look
		// there too.
		if schema := cfg.RuntimeParams["search_path"]; schema != "" {
			cfg.RuntimeParams["search_path"] = schema + ", public"
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `
			SELECT pg_advisory_lock(7370657);
			CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public;
			SELECT pg_advisory_unlock(7370657);`); err != nil {
			return fmt.Errorf("pgcrypto: %w", err)
		}
		for _, f := range files {
			text, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			// Without arguments, Exec sends the file as one simple query,
			// which runs its statements in order, its BEGINs and COMMITs too.
			if _, err := conn.Exec(ctx, string(text)); err != nil {
				return fmt.Errorf("FlowFabric migration %s: %w", filepath.Base(f), err)
			}
		}
		return nil
	}
}

// Postgres is a FlowFabric Postgres database that the registry
// adopted, from the pool of such databases: copies of one built once per
// server (building one takes many seconds).
func Postgres(t testing.TB) registrytest.PooledSchema {
	t.Helper()
	dsn := registrytest.PostgresDSN(t)
	dir := Dir(t)
	return registrytest.PooledPostgresSchema(t, dsn, flowfabricTemplateKey(t, dir), buildFlowFabricPostgres(dir))
}

// PostgresDatabase returns the DSN of a new database of t's own, made
// from a template that FlowFabric's migrations built (not adopted): for
// tests of adoption itself.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	dir := Dir(t)
	return registrytest.PostgresDatabaseFrom(t, registrytest.PostgresDSN(t), flowfabricTemplateKey(t, dir), buildFlowFabricPostgres(dir))
}

// flowfabricTemplateKey names the template database of FlowFabric's
// migrations as they are: another set of files makes another template.
func flowfabricTemplateKey(t testing.TB, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "postgres", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	h := sha256.New()
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(text))
		h.Write(text)
	}
	return fmt.Sprintf("flowfabric_%x", h.Sum(nil)[:8])
}

// PGSQL holds the engine's Postgres worker-registry statements, read
// verbatim from FlowFabric's module (shared/flowfabric/
// postgres_worker_registry.rs.txt), in the order the module has them.
type PGSQL struct {
	RegisterSelect, RegisterExists, RegisterUpsert, RegisterEvent string
	Heartbeat, HeartbeatEvent                                     string
	MarkDead, MarkDeadEvent                                       string
	ListExpiredLeases, ListWorkers, Sweep                         string
}

// PGStatements reads the engine's Postgres statements from
// ../shared/flowfabric.
func PGStatements(t testing.TB) PGSQL {
	t.Helper()
	qs := rustStatements(t, filepath.Join(Dir(t), "postgres_worker_registry.rs.txt"), 11)
	return PGSQL{
		RegisterSelect: qs[0], RegisterExists: qs[1], RegisterUpsert: qs[2], RegisterEvent: qs[3],
		Heartbeat: qs[4], HeartbeatEvent: qs[5],
		MarkDead: qs[6], MarkDeadEvent: qs[7],
		ListExpiredLeases: qs[8], ListWorkers: qs[9], Sweep: qs[10],
	}
}

// PGEngine runs the engine's statements, one transaction per operation as
// the engine does.
type PGEngine struct {
	Conn
	SQL PGSQL
}

// NewPGEngine returns the engine on db, a FlowFabric Postgres database.
func NewPGEngine(t testing.TB, db *sql.DB) *PGEngine {
	return &PGEngine{Conn: Conn{T: t, DB: db}, SQL: PGStatements(t)}
}

// Partition is the engine's worker_partition_key, computed here
// independently of the registry's.
func Partition(instance string) int16 {
	h := fnv.New64a()
	h.Write([]byte(instance))
	return int16(h.Sum64() % 256)
}

// Register is the engine's register_worker transaction.
func (e *PGEngine) Register(ns, instance, workerID string, lanes []string, caps string, ttl time.Duration, now time.Time) {
	e.T.Helper()
	pk := Partition(instance)
	e.Tx(func(tx *sql.Tx) {
		var existing string
		err := tx.QueryRow(e.SQL.RegisterSelect, pk, ns, instance).Scan(&existing)
		if err != nil && err != sql.ErrNoRows {
			e.T.Fatal(err)
		}
		if err == nil && existing != workerID {
			e.T.Fatalf("engine register: instance_id reassigned")
		}
		var one int64
		if err := tx.QueryRow(e.SQL.RegisterExists, pk, ns, instance).Scan(&one); err != nil && err != sql.ErrNoRows {
			e.T.Fatal(err)
		}
		e.Exec(tx, e.SQL.RegisterUpsert, pk, ns, instance, workerID, lanes, caps, now.UnixMilli(), ttl.Milliseconds(), now.UnixMilli())
		e.Exec(tx, e.SQL.RegisterEvent, pk, ns, instance, now.UnixMilli())
	})
}

// Heartbeat is the engine's heartbeat_worker; it reports whether the row
// was live.
func (e *PGEngine) Heartbeat(ns, instance string, now time.Time) bool {
	e.T.Helper()
	pk := Partition(instance)
	found := false
	e.Tx(func(tx *sql.Tx) {
		var ttl int64
		switch err := tx.QueryRow(e.SQL.Heartbeat, pk, ns, instance, now.UnixMilli()).Scan(&ttl); {
		case err == sql.ErrNoRows:
			return
		case err != nil:
			e.T.Fatal(err)
		}
		found = true
		e.Exec(tx, e.SQL.HeartbeatEvent, pk, ns, instance, now.UnixMilli())
	})
	return found
}

// MarkDead is the engine's mark_worker_dead; it reports whether a row went.
func (e *PGEngine) MarkDead(ns, instance, reason string, now time.Time) bool {
	e.T.Helper()
	pk := Partition(instance)
	found := false
	e.Tx(func(tx *sql.Tx) {
		var n int64
		if err := tx.QueryRow(e.SQL.MarkDead, pk, ns, instance).Scan(&n); err != nil {
			e.T.Fatal(err)
		}
		if n == 0 {
			return
		}
		found = true
		e.Exec(tx, e.SQL.MarkDeadEvent, pk, ns, instance, now.UnixMilli(), reason)
	})
	return found
}

// Sweep is the engine's TTL scanner: one tick per partition.
func (e *PGEngine) Sweep(now time.Time) int64 {
	e.T.Helper()
	var total int64
	for pk := range int16(256) {
		var n int64
		if err := e.DB.QueryRow(e.SQL.Sweep, pk, now.UnixMilli()).Scan(&n); err != nil {
			e.T.Fatal(err)
		}
		total += n
	}
	return total
}

// ListWorkers is the engine's list_workers, as "instance lanes caps".
func (e *PGEngine) ListWorkers(ns string) []string { return e.ListWorkersWith(e.SQL.ListWorkers, ns) }

// ListExpiredLeases is the engine's list_expired_leases, as the execution
// UUIDs of one page.
func (e *PGEngine) ListExpiredLeases(asOf time.Time) []string {
	e.T.Helper()
	rows, err := e.DB.Query(e.SQL.ListExpiredLeases, asOf.UnixMilli(), nil, nil, "", 1000)
	if err != nil {
		e.T.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var pk int16
		var exec, holder string
		var attempt int32
		var epoch, expires int64
		if err := rows.Scan(&pk, &exec, &attempt, &epoch, &holder, &expires); err != nil {
			e.T.Fatal(err)
		}
		out = append(out, exec)
	}
	if err := rows.Err(); err != nil {
		e.T.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// PGObjects describes every object of the current schema: relations
// and their kinds, columns with types, nullability and defaults, index and
// constraint definitions, functions and sequences.
func PGObjects(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	out := TextPairs(t, db, `
		SELECT 'relation ' || c.relname, c.relkind::text FROM pg_class AS c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind <> 'i'
		UNION ALL
		SELECT 'index ' || c.relname, pg_get_indexdef(c.oid) FROM pg_class AS c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('i', 'I')
		UNION ALL
		SELECT 'column ' || c.relname || '.' || a.attname,
		       format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
		       coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
		LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
		  AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT 'constraint ' || con.conrelid::regclass::text || '.' || con.conname, pg_get_constraintdef(con.oid)
		FROM pg_constraint AS con WHERE con.connamespace = current_schema()::regnamespace
		UNION ALL
		SELECT 'function ' || p.oid::regprocedure::text, md5(p.prosrc) FROM pg_proc AS p
		WHERE p.pronamespace = current_schema()::regnamespace`)
	// The registry's version table is its own, made at adoption.
	maps.DeleteFunc(out, func(k, _ string) bool { return strings.Contains(k, registry.VersionTable) })
	return out
}

// PGSharedRows returns the engine's columns of every row of the two shared
// tables, as text.
func PGSharedRows(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return registrytest.TextRows(t, db,
		`SELECT format('%s %s %s %s %s %s %s %s %s', partition_key, namespace, worker_instance_id, worker_id, lanes,
			capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms) FROM ff_worker_registry ORDER BY 1`,
		`SELECT format('%s %s %s %s %s %s', partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason)
			FROM ff_worker_registry_event ORDER BY 1`)
}
