package registry_test

import (
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
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
			var b *testBundle
			if db == "adopted FlowFabric" {
				_, b = setupAt(t, flowfabrictest.SQLite(t))
			} else {
				_, b = setup(t, sqliteStore)
			}
			checkQueryPlans(t, b)
		})
	}
}

func checkQueryPlans(t *testing.T, b *testBundle) {
	if _, err := b.raw.Exec(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 9999)
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
			if _, err := b.raw.Exec("ANALYZE"); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cases {
			var query string
			if strings.HasSuffix(c.file, ".go") {
				// A Go raw string in the generated package, up to its end.
				query, _, _ = strings.Cut(sqlcQuery(t, "../db/sqlitedb/"+c.file, c.name), "`")
			} else {
				query = sqlcQuery(t, "../queries/sqlite/"+c.file+".sql", c.name)
			}
			plan := queryPlan(t, b, query, c.args...)
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
