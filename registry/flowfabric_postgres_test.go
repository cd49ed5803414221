package registry_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	storepkg "github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
	"github.com/flowfabric/workerregistry/schema"
)

// latestPostgresVersion is the Postgres store's newest migration, which an
// adopted database reaches.
var latestPostgresVersion = storepkg.LatestVersion(schema.Postgres)

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

// flowfabricPostgres is a FlowFabric Postgres database that the registry
// adopted, from the pool of such databases: copies of one built once per
// server (building one takes many seconds).
func flowfabricPostgres(t testing.TB) registrytest.PooledSchema {
	t.Helper()
	dsn := registrytest.PostgresDSN(t)
	dir := flowfabricDir(t)
	return registrytest.PooledPostgresSchema(t, dsn, flowfabricTemplateKey(t, dir), buildFlowFabricPostgres(dir))
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

// pgEngineSQL holds the engine's Postgres worker-registry statements, read
// verbatim from FlowFabric's module (shared/flowfabric/
// postgres_worker_registry.rs.txt), in the order the module has them.
type pgEngineSQL struct {
	registerSelect, registerExists, registerUpsert, registerEvent string
	heartbeat, heartbeatEvent                                     string
	markDead, markDeadEvent                                       string
	listExpiredLeases, listWorkers, sweep                         string
}

func pgEngineStatements(t testing.TB) pgEngineSQL {
	t.Helper()
	qs := rustStatements(t, filepath.Join(flowfabricDir(t), "postgres_worker_registry.rs.txt"), 11)
	return pgEngineSQL{
		registerSelect: qs[0], registerExists: qs[1], registerUpsert: qs[2], registerEvent: qs[3],
		heartbeat: qs[4], heartbeatEvent: qs[5],
		markDead: qs[6], markDeadEvent: qs[7],
		listExpiredLeases: qs[8], listWorkers: qs[9], sweep: qs[10],
	}
}

// pgEngine runs the engine's statements, one transaction per operation as
// the engine does.
type pgEngine struct {
	engineConn
	sql pgEngineSQL
}

func newPGEngine(t testing.TB, db *sql.DB) *pgEngine {
	return &pgEngine{engineConn: engineConn{t: t, db: db}, sql: pgEngineStatements(t)}
}

// enginePartition is the engine's worker_partition_key, computed here
// independently of the registry's.
func enginePartition(instance string) int16 {
	h := fnv.New64a()
	h.Write([]byte(instance))
	return int16(h.Sum64() % 256)
}

func (e *pgEngine) register(ns, instance, workerID string, lanes []string, caps string, ttl time.Duration, now time.Time) {
	e.t.Helper()
	pk := enginePartition(instance)
	e.tx(func(tx *sql.Tx) {
		var existing string
		err := tx.QueryRow(e.sql.registerSelect, pk, ns, instance).Scan(&existing)
		if err != nil && err != sql.ErrNoRows {
			e.t.Fatal(err)
		}
		if err == nil && existing != workerID {
			e.t.Fatalf("engine register: instance_id reassigned")
		}
		var one int64
		if err := tx.QueryRow(e.sql.registerExists, pk, ns, instance).Scan(&one); err != nil && err != sql.ErrNoRows {
			e.t.Fatal(err)
		}
		e.exec(tx, e.sql.registerUpsert, pk, ns, instance, workerID, lanes, caps, now.UnixMilli(), ttl.Milliseconds(), now.UnixMilli())
		e.exec(tx, e.sql.registerEvent, pk, ns, instance, now.UnixMilli())
	})
}

func (e *pgEngine) heartbeat(ns, instance string, now time.Time) bool {
	e.t.Helper()
	pk := enginePartition(instance)
	found := false
	e.tx(func(tx *sql.Tx) {
		var ttl int64
		switch err := tx.QueryRow(e.sql.heartbeat, pk, ns, instance, now.UnixMilli()).Scan(&ttl); {
		case err == sql.ErrNoRows:
			return
		case err != nil:
			e.t.Fatal(err)
		}
		found = true
		e.exec(tx, e.sql.heartbeatEvent, pk, ns, instance, now.UnixMilli())
	})
	return found
}

func (e *pgEngine) markDead(ns, instance, reason string, now time.Time) bool {
	e.t.Helper()
	pk := enginePartition(instance)
	found := false
	e.tx(func(tx *sql.Tx) {
		var n int64
		if err := tx.QueryRow(e.sql.markDead, pk, ns, instance).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		found = true
		e.exec(tx, e.sql.markDeadEvent, pk, ns, instance, now.UnixMilli(), reason)
	})
	return found
}

// sweep is the engine's TTL scanner: one tick per partition.
func (e *pgEngine) sweep(now time.Time) int64 {
	e.t.Helper()
	var total int64
	for pk := range int16(256) {
		var n int64
		if err := e.db.QueryRow(e.sql.sweep, pk, now.UnixMilli()).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		total += n
	}
	return total
}

// listWorkers is the engine's list_workers, as "instance lanes caps".
func (e *pgEngine) listWorkers(ns string) []string { return e.listWorkersWith(e.sql.listWorkers, ns) }

// listExpiredLeases is the engine's list_expired_leases, as the execution
// UUIDs of one page.
func (e *pgEngine) listExpiredLeases(asOf time.Time) []string {
	e.t.Helper()
	rows, err := e.db.Query(e.sql.listExpiredLeases, asOf.UnixMilli(), nil, nil, "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var pk int16
		var exec, holder string
		var attempt int32
		var epoch, expires int64
		if err := rows.Scan(&pk, &exec, &attempt, &epoch, &holder, &expires); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, exec)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// pgSchemaObjects describes every object of the current schema: relations
// and their kinds, columns with types, nullability and defaults, index and
// constraint definitions, functions and sequences.
func pgSchemaObjects(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	out := textPairs(t, db, `
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

// pgSharedRows returns the engine's columns of every row of the two shared
// tables, as text.
func pgSharedRows(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return registrytest.TextRows(t, db,
		`SELECT format('%s %s %s %s %s %s %s %s %s', partition_key, namespace, worker_instance_id, worker_id, lanes,
			capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms) FROM ff_worker_registry ORDER BY 1`,
		`SELECT format('%s %s %s %s %s %s', partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason)
			FROM ff_worker_registry_event ORDER BY 1`)
}

// checkKept fails unless every object of before is in after, unchanged.
func checkKept(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	n := 0
	for k, v := range before {
		if got, ok := after[k]; (!ok || got != v) && n < 8 {
			t.Errorf("%s: engine object %s changed: %q, was %q", what, k, got, v)
			n++
		}
	}
}

// sameObjects fails, naming the first differences, unless got and want
// describe the same objects (they are thousands: FlowFabric's partitions).
func sameObjects(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q, want %q", k, g, v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %q, not expected", k, v))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s: %d differences, first %q", what, len(diffs), diffs[:min(len(diffs), 8)])
	}
}

func TestAdoptFlowFabricPostgres(t *testing.T) {
	t.Parallel() // a database of its own
	ctx := context.Background()
	dir := flowfabricDir(t)
	dsn := registrytest.PostgresDatabaseFrom(t, registrytest.PostgresDSN(t), flowfabricTemplateKey(t, dir), buildFlowFabricPostgres(dir))
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := newPGEngine(t, db)

	// The engine's rows before the registry comes.
	e.register("ns", "e1", "w-e1", []string{"a", "b"}, "gpu", 30*time.Second, t0)
	e.register("ns", "e2", "w-e2", []string{"a"}, "", 30*time.Second, t0)
	if !e.heartbeat("ns", "e1", t0.Add(time.Second)) {
		t.Fatal("engine heartbeat of e1 found nothing")
	}
	e.register("ns", "e3", "w-e3", []string{"a"}, "", 30*time.Second, t0)
	if !e.markDead("ns", "e3", "bye", t0.Add(2*time.Second)) {
		t.Fatal("engine mark-dead of e3 found nothing")
	}
	engineBefore := pgSchemaObjects(t, db)
	rowsBefore := pgSharedRows(t, db)

	// Adoption: every row and engine object kept; the registry's added.
	r, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, err := registry.SchemaVersion(ctx, db); err != nil || v != latestPostgresVersion {
		t.Fatalf("version after adoption = %d, %v; want %d", v, err, latestPostgresVersion)
	}
	adopted := pgSchemaObjects(t, db)
	checkKept(t, "adoption", engineBefore, adopted)
	for _, added := range []string{"index ff_worker_registry_expiry_idx", "index ff_worker_registry_lease_idx",
		"column ff_worker_registry.draining", "column ff_worker_registry_event.event_id",
		"column ff_worker_registry.report_in_flight", "column ff_worker_registry.report_capacity", "column ff_worker_registry.report_version"} {
		if _, ok := adopted[added]; !ok {
			t.Errorf("adoption did not add %s", added)
		}
	}
	equal(t, "rows after adoption", pgSharedRows(t, db), rowsBefore)

	// The registry sees the engine's rows and their times.
	list := func(at time.Time) []string {
		t.Helper()
		res := mustList(t, r, registry.ListWorkersArgs{Namespace: "ns", Now: at})
		var out []string
		for _, w := range res.Workers {
			out = append(out, w.WorkerInstanceID+" "+strings.Join(w.Lanes, ",")+" "+strings.Join(w.Capabilities, ","))
		}
		return out
	}
	equal(t, "registry's list of the engine's workers", list(t0.Add(3*time.Second)), []string{"e1 a,b gpu", "e2 a "})
	equal(t, "after e2's TTL, without an engine heartbeat", list(t0.Add(30*time.Second)), []string{"e1 a,b gpu"})
	if !e.heartbeat("ns", "e1", t0.Add(25*time.Second)) {
		t.Fatal("engine heartbeat of e1 found nothing")
	}
	equal(t, "after the engine's heartbeat", list(t0.Add(50*time.Second)), []string{"e1 a,b gpu"})
	res, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, ev := range res.Events {
		kinds = append(kinds, ev.WorkerInstanceID+" "+ev.Kind)
		if i > 0 && ev.ID <= res.Events[i-1].ID {
			t.Errorf("event IDs out of order: %d after %d", ev.ID, res.Events[i-1].ID)
		}
	}
	// Numbered in time order: the three registrations of t0 first (in
	// partition order), then the later events as they came.
	slices.Sort(kinds[:3])
	equal(t, "the engine's events", kinds, []string{
		"e1 registered", "e2 registered", "e3 registered", "e1 heartbeat", "e3 marked_dead", "e1 heartbeat"})

	// The engine sees the registry's rows, in the partitions it computes.
	now := t0.Add(60 * time.Second)
	mustRegister(t, r, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "w-r1", WorkerInstanceID: "r1",
		Lanes: []string{"y", "x"}, Capabilities: []string{"cuda"}, LivenessTTL: 30 * time.Second, Now: now})
	equal(t, "engine's list", e.listWorkers("ns"), []string{"e1 a,b gpu", "e2 a ", "r1 x,y cuda"})
	if !e.heartbeat("ns", "r1", now.Add(20*time.Second)) {
		t.Fatal("the engine's heartbeat does not find the registry's row: partition keys differ")
	}
	equal(t, "registry's list after the engine heartbeat", list(now.Add(40*time.Second)), []string{"r1 x,y cuda"})
	if _, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "r1", Now: now.Add(41 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	// The engine's re-register keeps a drain: it writes no column it does not know.
	e.register("ns", "r1", "w-r1", []string{"x", "y"}, "cuda", 30*time.Second, now.Add(42*time.Second))
	info, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "r1", Now: now.Add(43 * time.Second)})
	if err != nil || !ok || !info.Draining {
		t.Fatalf("GetWorker after the engine's re-register = %+v, %v, %v; want live and draining", info, ok, err)
	}
	if !e.markDead("ns", "r1", "gone", now.Add(44*time.Second)) {
		t.Fatal("the engine's mark-dead does not find the registry's row")
	}
	if _, ok, _ := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "r1", Now: now.Add(45 * time.Second)}); ok {
		t.Fatal("r1 is live after the engine marked it dead")
	}

	// Sweeps: each side's removes what the other wrote, with its event.
	mustRegister(t, r, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "w", WorkerInstanceID: "r2",
		Lanes: []string{"a"}, LivenessTTL: time.Second, Now: now})
	if n := e.sweep(now.Add(time.Hour)); n != 3 { // r2, e1 and e2
		t.Fatalf("engine sweep removed %d, want 3", n)
	}
	e.register("ns", "e4", "w-e4", []string{"a"}, "", time.Second, now.Add(2*time.Hour))
	rep, err := r.SweepExpiredWorkers(ctx, now.Add(3*time.Hour))
	if err != nil || rep.Swept != 1 {
		t.Fatalf("registry sweep = %+v, %v; want e4 swept", rep, err)
	}
	res, err = r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", NewestFirst: true, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	kinds = kinds[:0]
	for _, ev := range res.Events {
		kinds = append(kinds, ev.WorkerInstanceID+" "+ev.Kind)
	}
	equal(t, "newest events", kinds, []string{"e4 ttl_swept", "e4 registered"})

	// Leases in the engine's partitioned ff_attempt: both walks agree.
	var leases []registrytest.Lease
	for i := range 40 {
		leases = append(leases, registrytest.Lease{ExecutionID: registry.ExecutionID{Partition: uint16(i % 256)},
			Namespace: "ns", WorkerInstanceID: fmt.Sprintf("h%d", i%3), ExpiresAt: t0.Add(time.Duration(i) * time.Second)})
	}
	registrytest.InsertLeases(t, db, leases...)
	var mine []string
	lres, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: t0.Add(time.Hour), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lres.Leases {
		mine = append(mine, l.ExecutionID.UUID.String())
	}
	slices.Sort(mine)
	equal(t, "expired leases, registry's and engine's", mine, e.listExpiredLeases(t0.Add(time.Hour)))
	equal(t, "expired leases", len(mine), 40)

	// Down removes what the registry added, and nothing of the engine's;
	// below version 6 it refuses; up adds it all again.
	rowsNow := pgSharedRows(t, db)
	p, err := registry.NewMigrationProvider(db)
	if err != nil {
		t.Fatal(err)
	}
	// Version 10's down removes its report columns and nothing else.
	withReports := pgSchemaObjects(t, db)
	if _, err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	maps.DeleteFunc(withReports, func(k, _ string) bool {
		return strings.HasPrefix(k, "column ff_worker_registry") && strings.Contains(k, ".report_")
	})
	sameObjects(t, "objects after version 10's down", pgSchemaObjects(t, db), withReports)
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	sameObjects(t, "objects after down", pgSchemaObjects(t, db), engineBefore)
	equal(t, "rows after down", pgSharedRows(t, db), rowsNow)
	if _, err := p.Down(ctx); err == nil || !strings.Contains(err.Error(), "does not migrate below version 6") {
		t.Fatalf("down below 6 = %v, want a refusal", err)
	}
	sameObjects(t, "objects after a refused down", pgSchemaObjects(t, db), engineBefore)
	if err := registry.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	checkKept(t, "up again", engineBefore, pgSchemaObjects(t, db))
	equal(t, "rows after down and up", pgSharedRows(t, db), rowsNow)
	r2, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	mustRegister(t, r2, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "w", WorkerInstanceID: "r3",
		Lanes: []string{"a"}, LivenessTTL: time.Minute, Now: now.Add(4 * time.Hour)})
	equal(t, "engine's list after down and up", e.listWorkers("ns"), []string{"r3 a "})
}

// TestPostgresUpgradeFromVersion5 migrates a database of the registry's
// own, at the version before FlowFabric's shapes, with rows in it: they are
// kept, in the partitions the engine computes, with their drain flags and
// event IDs, and a second event of one kind in one millisecond moves to the
// next free one.
func TestPostgresUpgradeFromVersion5(t *testing.T) {
	t.Parallel() // a schema of its own
	ctx := context.Background()
	dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
	db := openAtVersion(t, 5, func() (*sql.DB, error) { return sql.Open("pgx", dsn) })
	ms := t0.UnixMilli()
	for _, q := range []string{`
		INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
			last_heartbeat_ms, liveness_ttl_ms, registered_at_ms, expires_at_ms, draining)
		VALUES ('ns', 'w1', 'id1', 'a,b', 'gpu', $1::bigint, 30000, $1, $1 + 30000, true),
		       ('ns', 'w2', 'id2', 'a', '', $1, 30000, $1, $1 + 30000, false)`, `
		INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
		VALUES ('ns', 'w1', 'registered', $1::bigint, NULL), ('ns', 'w1', 'heartbeat', $1, NULL),
		       ('ns', 'w1', 'heartbeat', $1, NULL), ('ns', 'w2', 'registered', $1, NULL),
		       ('ns', 'w2', 'drain_requested', $1, 'why')`, `
		DELETE FROM ff_worker_registry_event WHERE event_kind = 'drain_requested' AND event_at_ms = $1`,
	} {
		if _, err := db.Exec(q, ms); err != nil {
			t.Fatal(err)
		}
	}
	if err := registry.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT partition_key, worker_instance_id, array_to_string(lanes, '|'), draining
		FROM ff_worker_registry ORDER BY worker_instance_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var pk int16
		var inst, lanes string
		var draining bool
		if err := rows.Scan(&pk, &inst, &lanes, &draining); err != nil {
			t.Fatal(err)
		}
		if pk != enginePartition(inst) {
			t.Errorf("%s in partition %d, the engine's is %d", inst, pk, enginePartition(inst))
		}
		got = append(got, fmt.Sprintf("%s %s %v", inst, lanes, draining))
	}
	rows.Close()
	equal(t, "workers", got, []string{"w1 a|b true", "w2 a false"})

	r, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, e := range res.Events {
		got = append(got, fmt.Sprintf("%d %s %s %d", e.ID, e.WorkerInstanceID, e.Kind, e.At.UnixMilli()-ms))
	}
	equal(t, "events", got, []string{"1 w1 registered 0", "2 w1 heartbeat 0", "3 w1 heartbeat 1", "4 w2 registered 0"})
	// IDs go on after the last one ever issued (5, pruned).
	mustRegister(t, r, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "id3", WorkerInstanceID: "w3",
		Lanes: []string{"a"}, LivenessTTL: time.Minute, Now: t0})
	res, err = r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", NewestFirst: true, Limit: 1})
	if err != nil || len(res.Events) != 1 || res.Events[0].ID != 6 {
		t.Fatalf("newest event after the upgrade = %+v, %v; want ID 6", res.Events, err)
	}
	if info, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "w1", Now: t0}); err != nil || !ok || !info.Draining {
		t.Fatalf("w1 after the upgrade = %+v, %v, %v; want live and draining", info, ok, err)
	}
}

// TestPostgresPartitionPruning checks that each statement about one
// instance reads and writes one partition of the registry's tables: the
// planner prunes the others, with the parameters' values (a custom plan)
// and without them (a generic plan, pruned when it starts).
func TestPostgresPartitionPruning(t *testing.T) {
	eachPostgres(t, func(t *testing.T, s store) {
		_, b := setup(t, s)
		conn, err := b.raw.DB.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		defer conn.ExecContext(context.Background(), "RESET plan_cache_mode")
		values := map[string]any{
			"partition_key": enginePartition("w1"), "namespace": "ns", "worker_instance_id": "w1",
			"now_ms": t0.UnixMilli(), "after_id": int64(0), "before_id": int64(1 << 62), "row_limit": int64(10),
			"event_kind": "heartbeat", "event_at_ms": t0.UnixMilli(), "reason": nil,
			"report_in_flight": 3, "report_capacity": 8, "report_version": "v1",
		}
		for _, q := range []struct{ file, name string }{
			{"workers.sql", "GetWorker"}, {"workers.sql", "HeartbeatLiveWorker"}, {"workers.sql", "HeartbeatLiveWorkerNoWait"},
			{"workers.sql", "DeleteLiveWorker"}, {"workers.sql", "RequestDrain"}, {"workers.sql", "ResumeWorker"},
			{"workers.sql", "GetLiveWorker"}, {"events.sql", "InsertEvent"},
			{"events.sql", "ListInstanceEventsAsc"}, {"events.sql", "ListInstanceEventsDesc"},
		} {
			query, params := sqlcQueryParams(t, "../queries/postgres/"+q.file, q.name)
			args := make([]any, len(params))
			for i, name := range params {
				v, ok := values[name]
				if !ok {
					t.Fatalf("%s: no value for %s", q.name, name)
				}
				args[i] = v
			}
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				if _, err := conn.ExecContext(context.Background(), "SET plan_cache_mode = "+mode); err != nil {
					t.Fatal(err)
				}
				var plan string
				rows, err := conn.QueryContext(context.Background(), "EXPLAIN "+b.raw.rebind(query), args...)
				if err != nil {
					t.Fatalf("%s: %v", q.name, err)
				}
				for rows.Next() {
					var line string
					if err := rows.Scan(&line); err != nil {
						t.Fatal(err)
					}
					plan += line + "\n"
				}
				rows.Close()
				partitions := regexp.MustCompile(`ff_worker_registry(_event)?_p\d{3}`).FindAllString(plan, -1)
				slices.Sort(partitions)
				partitions = slices.Compact(partitions)
				// An INSERT routes its row to one partition as it runs;
				// its plan names none.
				if len(partitions) != 1 && !(len(partitions) == 0 && strings.HasPrefix(q.name, "Insert")) {
					t.Errorf("%s, %s: the plan touches %d partitions, want 1:\n%s", q.name, mode, len(partitions), plan)
				}
			}
		}
	})
}
