package pgstore_test

import (
	"context"
	"database/sql"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/internal/sqlctest"
	"github.com/flowfabric/workerregistry/internal/store/pgstore"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// TestPostgresPartitionPruning checks that each statement about one
// instance reads and writes one partition of the registry's tables: the
// planner prunes the others, with the parameters' values (a custom plan)
// and without them (a generic plan, pruned when it starts).
func TestPostgresPartitionPruning(t *testing.T) {
	for _, s := range []struct {
		name   string
		schema func(testing.TB) registrytest.PooledSchema
	}{
		{"registry", func(t testing.TB) registrytest.PooledSchema {
			return registrytest.PooledPostgresSchema(t, registrytest.PostgresDSN(t), "registry", nil)
		}},
		{"flowfabric", flowfabrictest.Postgres},
	} {
		t.Run(s.name, func(t *testing.T) { checkPartitionPruning(t, s.schema(t).DB) })
	}
}

func checkPartitionPruning(t *testing.T, db *sql.DB) {
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.ExecContext(context.Background(), "RESET plan_cache_mode")
	values := map[string]any{
		"partition_key": flowfabrictest.Partition("w1"), "namespace": "ns", "worker_instance_id": "w1",
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
		query, params := sqlctest.QueryParams(t, "queries/postgres/"+q.file, q.name)
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
			rows, err := conn.QueryContext(context.Background(), "EXPLAIN "+rebind(query), args...)
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
}

// rebind turns sqlctest's ?N placeholders into Postgres's $N.
func rebind(query string) string {
	return regexp.MustCompile(`\?(\d+)`).ReplaceAllString(query, "$$$1")
}

// TestSweepReadsOnePartition checks the sweep's statements as the store
// rewrites them for one partition of FlowFabric's table: each plan reads
// that partition and no other, and deletes the rows it locked by their
// ctids, not by a join back on the key (which doubled its time).
func TestSweepReadsOnePartition(t *testing.T) {
	db := flowfabrictest.Postgres(t).DB
	for _, part := range []string{"ff_worker_registry_p000", "ff_worker_registry_p173"} {
		for _, moving := range []bool{false, true} {
			query, args, err := pgstore.SweepStatement(part, t0.UnixMilli(), 1000, moving)
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				plan := explainIn(t, db, mode, query, args...)
				partitions := regexp.MustCompile(`ff_worker_registry_p\d{3}`).FindAllString(plan, -1)
				slices.Sort(partitions)
				if partitions = slices.Compact(partitions); !slices.Equal(partitions, []string{part}) {
					t.Errorf("%s, moving events %v, %s: the plan reads %v, want only %s:\n%s", part, moving, mode, partitions, part, plan)
				}
				if !strings.Contains(plan, "ctid = ANY") || strings.Contains(plan, "Join") {
					t.Errorf("%s, moving events %v, %s: the delete does not take the locked rows by ctid:\n%s", part, moving, mode, plan)
				}
			}
		}
	}
}

// explainIn returns Postgres's plan of query under plan_cache_mode mode.
func explainIn(t *testing.T, db *sql.DB, mode, query string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.ExecContext(ctx, "RESET plan_cache_mode")
	if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = "+mode); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan += line + "\n"
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
