package pgstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	istore "github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
	"github.com/flowfabric/workerregistry/schema"
)

// t0 is the tests' fixed start time.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// equal fails the test unless got and want are deeply equal.
func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %#v, want %#v", what, got, want)
	}
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
	dsn := flowfabrictest.PostgresDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := flowfabrictest.NewPGEngine(t, db)

	// The engine's rows before the registry comes.
	e.Register("ns", "e1", "w-e1", []string{"a", "b"}, "gpu", 30*time.Second, t0)
	e.Register("ns", "e2", "w-e2", []string{"a"}, "", 30*time.Second, t0)
	if !e.Heartbeat("ns", "e1", t0.Add(time.Second)) {
		t.Fatal("engine heartbeat of e1 found nothing")
	}
	e.Register("ns", "e3", "w-e3", []string{"a"}, "", 30*time.Second, t0)
	if !e.MarkDead("ns", "e3", "bye", t0.Add(2*time.Second)) {
		t.Fatal("engine mark-dead of e3 found nothing")
	}
	engineBefore := flowfabrictest.PGObjects(t, db)
	rowsBefore := flowfabrictest.PGSharedRows(t, db)

	// Adoption: every row and engine object kept; the registry's added.
	r, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, err := registry.SchemaVersion(ctx, db); err != nil || v != istore.LatestVersion(schema.Postgres) {
		t.Fatalf("version after adoption = %d, %v; want %d", v, err, istore.LatestVersion(schema.Postgres))
	}
	adopted := flowfabrictest.PGObjects(t, db)
	checkKept(t, "adoption", engineBefore, adopted)
	for _, added := range []string{"index ff_worker_registry_lease_idx",
		"column ff_worker_registry.draining", "column ff_worker_registry_event.event_id", "relation ff_worker_registry_directive",
		"column ff_worker_registry.report_in_flight", "column ff_worker_registry.report_capacity", "column ff_worker_registry.report_version"} {
		if _, ok := adopted[added]; !ok {
			t.Errorf("adoption did not add %s", added)
		}
	}
	equal(t, "rows after adoption", flowfabrictest.PGSharedRows(t, db), rowsBefore)

	// The registry sees the engine's rows and their times.
	list := func(at time.Time) []string {
		t.Helper()
		res, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: "ns", Now: at})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range res.Workers {
			out = append(out, w.WorkerInstanceID+" "+strings.Join(w.Lanes, ",")+" "+strings.Join(w.Capabilities, ","))
		}
		return out
	}
	equal(t, "registry's list of the engine's workers", list(t0.Add(3*time.Second)), []string{"e1 a,b gpu", "e2 a "})
	equal(t, "after e2's TTL, without an engine heartbeat", list(t0.Add(30*time.Second)), []string{"e1 a,b gpu"})
	if !e.Heartbeat("ns", "e1", t0.Add(25*time.Second)) {
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
	if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "w-r1", WorkerInstanceID: "r1",
		Lanes: []string{"y", "x"}, Capabilities: []string{"cuda"}, LivenessTTL: 30 * time.Second, Now: now}); err != nil {
		t.Fatal(err)
	}
	equal(t, "engine's list", e.ListWorkers("ns"), []string{"e1 a,b gpu", "e2 a ", "r1 x,y cuda"})
	if !e.Heartbeat("ns", "r1", now.Add(20*time.Second)) {
		t.Fatal("the engine's heartbeat does not find the registry's row: partition keys differ")
	}
	equal(t, "registry's list after the engine heartbeat", list(now.Add(40*time.Second)), []string{"r1 x,y cuda"})
	if _, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "r1", Now: now.Add(41 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	// The engine's re-register keeps a drain: it writes no column it does not know.
	e.Register("ns", "r1", "w-r1", []string{"x", "y"}, "cuda", 30*time.Second, now.Add(42*time.Second))
	info, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "r1", Now: now.Add(43 * time.Second)})
	if err != nil || !ok || !info.Draining {
		t.Fatalf("GetWorker after the engine's re-register = %+v, %v, %v; want live and draining", info, ok, err)
	}
	if !e.MarkDead("ns", "r1", "gone", now.Add(44*time.Second)) {
		t.Fatal("the engine's mark-dead does not find the registry's row")
	}
	if _, ok, _ := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "r1", Now: now.Add(45 * time.Second)}); ok {
		t.Fatal("r1 is live after the engine marked it dead")
	}

	// Sweeps: each side's removes what the other wrote, with its event.
	if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "w", WorkerInstanceID: "r2",
		Lanes: []string{"a"}, LivenessTTL: time.Second, Now: now}); err != nil {
		t.Fatal(err)
	}
	if n := e.Sweep(now.Add(time.Hour)); n != 3 { // r2, e1 and e2
		t.Fatalf("engine sweep removed %d, want 3", n)
	}
	e.Register("ns", "e4", "w-e4", []string{"a"}, "", time.Second, now.Add(2*time.Hour))
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
	equal(t, "expired leases, registry's and engine's", mine, e.ListExpiredLeases(t0.Add(time.Hour)))
	equal(t, "expired leases", len(mine), 40)

	// Down removes what the registry added, and nothing of the engine's;
	// below version 6 it refuses; up adds it all again.
	rowsNow := flowfabrictest.PGSharedRows(t, db)
	p, err := registry.NewMigrationProvider(db)
	if err != nil {
		t.Fatal(err)
	}
	// Version 10's down removes its report columns and nothing else.
	withReports := flowfabrictest.PGObjects(t, db)
	if _, err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	maps.DeleteFunc(withReports, func(k, _ string) bool {
		return strings.HasPrefix(k, "column ff_worker_registry") && strings.Contains(k, ".report_")
	})
	sameObjects(t, "objects after version 10's down", flowfabrictest.PGObjects(t, db), withReports)
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	sameObjects(t, "objects after down", flowfabrictest.PGObjects(t, db), engineBefore)
	equal(t, "rows after down", flowfabrictest.PGSharedRows(t, db), rowsNow)
	if _, err := p.Down(ctx); err == nil || !strings.Contains(err.Error(), "does not migrate below version 6") {
		t.Fatalf("down below 6 = %v, want a refusal", err)
	}
	sameObjects(t, "objects after a refused down", flowfabrictest.PGObjects(t, db), engineBefore)
	if err := registry.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	checkKept(t, "up again", engineBefore, flowfabrictest.PGObjects(t, db))
	equal(t, "rows after down and up", flowfabrictest.PGSharedRows(t, db), rowsNow)
	r2, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := r2.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "w", WorkerInstanceID: "r3",
		Lanes: []string{"a"}, LivenessTTL: time.Minute, Now: now.Add(4 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	equal(t, "engine's list after down and up", e.ListWorkers("ns"), []string{"r3 a "})
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
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := registry.MigrateTo(ctx, db, 5); err != nil {
		t.Fatal(err)
	}
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
		if pk != flowfabrictest.Partition(inst) {
			t.Errorf("%s in partition %d, the engine's is %d", inst, pk, flowfabrictest.Partition(inst))
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
	if _, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "id3", WorkerInstanceID: "w3",
		Lanes: []string{"a"}, LivenessTTL: time.Minute, Now: t0}); err != nil {
		t.Fatal(err)
	}
	res, err = r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", NewestFirst: true, Limit: 1})
	if err != nil || len(res.Events) != 1 || res.Events[0].ID != 6 {
		t.Fatalf("newest event after the upgrade = %+v, %v; want ID 6", res.Events, err)
	}
	if info, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "w1", Now: t0}); err != nil || !ok || !info.Draining {
		t.Fatalf("w1 after the upgrade = %+v, %v, %v; want live and draining", info, ok, err)
	}
}
