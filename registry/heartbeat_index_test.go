package registry_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
)

// heartbeatColumns are the columns of ff_worker_registry that a heartbeat
// writes, the registry's and the engine's alike. An index that includes
// one of them (as a key, an included column, in an expression or in a
// predicate) turns every heartbeat into an index write: two more pages a
// commit on SQLite, no heap-only-tuple update on Postgres.
var heartbeatColumns = []string{"last_heartbeat_ms"}

// TestNoIndexFollowsHeartbeats reads the catalog of registry-made and
// adopted FlowFabric databases on both stores: no index of the worker
// table (or of a partition of it) may include a column that a heartbeat
// writes, and the expiry index that version 8 dropped is gone.
func TestNoIndexFollowsHeartbeats(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		_, b := setup(t, s)
		defs := workerIndexes(t, b)
		if len(defs) == 0 {
			t.Fatal("no index of ff_worker_registry found: the catalog query is wrong")
		}
		for name, def := range defs {
			if strings.HasPrefix(name, "ff_worker_registry_expiry_idx") {
				t.Errorf("index %s is still there: %s", name, def)
			}
			for _, col := range heartbeatColumns {
				if regexp.MustCompile(`\b` + col + `\b`).MatchString(def) {
					t.Errorf("index %s includes %s, which every heartbeat writes: %s", name, col, def)
				}
			}
		}
	})
}

// workerIndexes returns every index of ff_worker_registry, and on
// Postgres of its partitions, by name: its definition and, on SQLite, the
// names of its columns (an automatic index has no SQL).
func workerIndexes(t *testing.T, b *testBundle) map[string]string {
	t.Helper()
	query := `SELECT m.name, coalesce(m.sql, '') || ' ' || coalesce((
			SELECT group_concat(coalesce(x.name, '<expr>'), ',') FROM pragma_index_xinfo(m.name) AS x WHERE x.cid <> -1), '')
		FROM sqlite_master AS m
		WHERE m.type = 'index' AND m.tbl_name = 'ff_worker_registry'`
	if b.engine == enginePostgres {
		// pg_indexes names each partition's index too; pg_index has the
		// partitioned (parent) indexes with their expressions and
		// predicates, which pg_get_indexdef spells out.
		query = `SELECT c.relname, pg_get_indexdef(i.indexrelid)
			FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
			WHERE i.indrelid = 'ff_worker_registry'::regclass
			   OR i.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'ff_worker_registry'::regclass)
			UNION
			SELECT indexname, indexdef FROM pg_indexes
			WHERE schemaname = current_schema()
			  AND (tablename = 'ff_worker_registry' OR tablename LIKE 'ff\_worker\_registry\_p___')`
	}
	return flowfabrictest.TextPairs(t, b.raw.DB, query) // no placeholders to rebind
}
