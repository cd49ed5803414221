package sqlitestore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/internal/sqlctest"
	"github.com/flowfabric/workerregistry/registry"
)

// TestQueryPlansSurviveAnalyze checks that every hot statement keeps its
// index plan on a populated database, before and after ANALYZE: statistics
// once made the batch heartbeat scan the (since dropped) expiry index (13
// ms for 100 heartbeats instead of 2) and the worker listing sort. The
// sweep's scan, the one statement that reads the whole table, is
// TestSweepQueryPlans'.
func TestQueryPlansSurviveAnalyze(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"registry's own", "adopted FlowFabric"} {
		t.Run(db, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.db")
			if db == "adopted FlowFabric" {
				path = flowfabrictest.SQLite(t)
			}
			checkQueryPlans(t, migratedDB(t, path))
		})
	}
}

func checkQueryPlans(t *testing.T, db *sql.DB) {
	if _, err := db.Exec(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 9999)
		INSERT INTO ff_worker_registry (namespace, worker_instance_id, worker_id, lanes, capabilities_csv,
			last_heartbeat_ms, liveness_ttl_ms, registered_at_ms)
		SELECT 'ns-1', printf('w%05d', i), 'pool', 'default', '', ?1, 1000, ?1 FROM s`, t0.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	keys := `[["ns-1","w00001"],["ns-2","w00002"]]`
	reports := `[["ns-1","w00001",3,8,"v1"],["ns-2","w00002"]]`
	// One namespace of a fleet that registered together: one expiry shared
	// by every row is what made statistics favour the expiry index.
	now := t0.UnixMilli()
	cases := []struct {
		file, name string
		args       []any
		want       []string // substrings of the plan, in order
	}{
		{"workers", "GetWorker", []any{"ns-1", "w00001"}, []string{"SEARCH ff_worker_registry USING ", "(namespace=? AND worker_instance_id=?)"}},
		{"workers", "RefreshLiveWorker", []any{"default", "", now, 1000, nil, nil, nil, "ns-1", "w00001", "pool"}, []string{"SEARCH ff_worker_registry USING ", "(namespace=? AND worker_instance_id=?)"}},
		{"workers", "HeartbeatLiveWorker", []any{now, nil, nil, nil, "ns-1", "w00001"}, []string{"SEARCH ff_worker_registry USING ", "(namespace=? AND worker_instance_id=?)"}},
		// Written by hand (UPDATE ... FROM): driven by the keys, a probe each.
		{"heartbeat_batch.go", "HeartbeatLiveWorkers", []any{now, keys}, []string{"json_each", "SEARCH ff_worker_registry USING ", "(namespace=? AND worker_instance_id=?)"}},
		{"heartbeat_batch.go", "HeartbeatLiveWorkers", []any{now, reports}, []string{"json_each", "SEARCH ff_worker_registry USING ", "(namespace=? AND worker_instance_id=?)"}},
		{"workers", "DeleteLiveWorker", []any{"ns-1", "w00001", now}, []string{"SEARCH ff_worker_registry USING ", "(namespace=? AND worker_instance_id=?)"}},
		{"workers", "RequestDrain", []any{"ns-1", "w00001", now}, []string{"SEARCH ff_worker_registry USING ", "(namespace=? AND worker_instance_id=?)"}},
		{"workers", "ListLiveWorkers", []any{"", "", now, "", "", 1001}, []string{"SEARCH ff_worker_registry USING INDEX ", "(namespace>?)"}},
		{"workers", "ListLiveWorkersInNamespace", []any{"ns-1", "", now, "", "", 1001}, []string{"SEARCH ff_worker_registry USING INDEX ", "(namespace=? AND worker_instance_id>?)"}},
		{"workers", "DeleteExpiredWorkerRows", []any{"[1,2]", now}, []string{"SEARCH ff_worker_registry USING INTEGER PRIMARY KEY (rowid=?)", "json_each"}},
		{"workers", "DeleteExpiredWorkers", []any{"[1,2]", now}, []string{"SEARCH ff_worker_registry USING INTEGER PRIMARY KEY (rowid=?)", "json_each"}},
		{"events", "DeleteEventsBefore", []any{now, 500}, []string{"USING COVERING INDEX ff_worker_registry_event_at_idx (event_at_ms<?)"}},
		{"events", "ListEventsAsc", []any{"ns-1", 0, 1001}, []string{"USING INDEX ff_worker_registry_event_namespace_idx (namespace=? AND rowid>?)"}},
		{"events", "ListEventsDesc", []any{"ns-1", 1 << 62, 1001}, []string{"USING INDEX ff_worker_registry_event_namespace_idx (namespace=? AND rowid<?)"}},
		{"events", "ListInstanceEventsAsc", []any{"ns-1", "w", 0, 1001}, []string{"ff_worker_registry_event_instance_idx (namespace=? AND worker_instance_id=? AND rowid>?)"}},
		{"events", "ListInstanceEventsDesc", []any{"ns-1", "w", 1 << 62, 1001}, []string{"ff_worker_registry_event_instance_idx (namespace=? AND worker_instance_id=? AND rowid<?)"}},
		{"leases", "ListExpiredLeases", []any{now, now, 3, make([]byte, 16), 0, "", 1001}, []string{
			"SEARCH a USING COVERING INDEX ff_worker_registry_lease_idx ((lease_expires_at_ms,partition_key,execution_id,attempt_index)>(?,?,?,?)",
			"SEARCH c USING ", "(partition_key=? AND execution_id=?)"}},
	}
	for _, stats := range []string{"without statistics", "after ANALYZE"} {
		if stats == "after ANALYZE" {
			if _, err := db.Exec("ANALYZE"); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cases {
			var query string
			if strings.HasSuffix(c.file, ".go") {
				// A Go raw string in the generated package, up to its end.
				query, _, _ = strings.Cut(sqlctest.Query(t, "db/sqlitedb/"+c.file, c.name), "`")
			} else {
				query = sqlctest.Query(t, "queries/sqlite/"+c.file+".sql", c.name)
			}
			plan := sqlctest.SQLitePlan(t, db, query, c.args...)
			rest := plan
			for _, w := range c.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("%s, %s: plan lacks %q:\n%s", stats, c.name, w, plan)
					break
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "SCAN ff_") {
				t.Errorf("%s, %s: plan sorts or scans:\n%s", stats, c.name, plan)
			}
		}
	}
}

// TestSweepQueryPlans checks the sweep's and the pruning's plans: the
// sweep's scan (on a read connection) reads the table once and sorts only
// what it found; its batches find their rows by rowid (the events' sort
// is of the batch's rows, into the scan's order); pruning walks the event
// time index, so that pruning with nothing to do is a probe.
func TestSweepQueryPlans(t *testing.T) {
	db := migratedDB(t, filepath.Join(t.TempDir(), "registry.db"))
	for _, q := range []struct {
		file, name string
		args       []any
		want       string
		scans      bool
	}{
		{"queries/sqlite/workers.sql", "ListExpiredWorkers", []any{t0.UnixMilli()}, "SCAN ff_worker_registry\nUSE TEMP B-TREE FOR ORDER BY", true},
		{"queries/sqlite/events.sql", "InsertSweptEvents", []any{"ttl_swept", t0.UnixMilli(), "[1,2]"}, "SCAN j VIRTUAL TABLE INDEX 1:\nSEARCH w USING INTEGER PRIMARY KEY (rowid=?)\nUSE TEMP B-TREE FOR ORDER BY", true},
		{"queries/sqlite/workers.sql", "DeleteExpiredWorkerRows", []any{"[1,2]", t0.UnixMilli()}, "SEARCH ff_worker_registry USING INTEGER PRIMARY KEY (rowid=?)", false},
		{"queries/sqlite/workers.sql", "DeleteExpiredWorkers", []any{"[1,2]", t0.UnixMilli()}, "SEARCH ff_worker_registry USING INTEGER PRIMARY KEY (rowid=?)", false},
		{"queries/sqlite/events.sql", "DeleteEventsBefore", []any{t0.UnixMilli(), 500}, "USING COVERING INDEX ff_worker_registry_event_at_idx (event_at_ms<?)", false},
	} {
		plan := sqlctest.SQLitePlan(t, db, sqlctest.Query(t, q.file, q.name), q.args...)
		want := q.want
		if !strings.Contains(plan, want) || (!q.scans && (strings.Contains(plan, "SCAN ff_") || strings.Contains(plan, "SCAN old") || strings.Contains(plan, "TEMP B-TREE"))) {
			t.Errorf("%s plan:\n%s\nwant %q", q.name, plan, want)
		}
	}
}

// migratedDB opens the database at path, which registry.Open creates or
// adopts and migrates first, on a connection of the test's own.
func migratedDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	r, err := registry.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
