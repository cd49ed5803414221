package registry_test

import (
	"path/filepath"
	"testing"

	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// store is one store the conformance tests run on. A test written as
//
//	func TestX(t *testing.T) {
//		eachStore(t, func(t *testing.T, s store) {
//			r, b := setup(t, s)
//			...
//		})
//	}
//
// runs its body once per entry of stores, as the subtests TestX/sqlite,
// TestX/postgres and so on; helpers take the store as an argument.
type store struct {
	name   string // the subtest's name
	engine string // engineSQLite or enginePostgres: the code path it runs
	// adopted marks a database that FlowFabric's own migrations built and
	// the registry adopted. It runs the same code as its engine's own
	// store, so the long tests of concurrency, cancellation and scale
	// (eachEngine) leave it out.
	adopted bool
	// database returns the path or DSN of a fresh database of t's own,
	// removed when t ends; it skips t where the store is unavailable.
	database func(t testing.TB) string
}

// The engines; a testBundle's engine is one of them.
const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

var (
	sqliteStore = store{name: "sqlite", engine: engineSQLite, database: func(t testing.TB) string {
		return filepath.Join(t.TempDir(), "registry.db")
	}}
	postgresStore = store{name: "postgres", engine: enginePostgres, database: postgresSchema}
	// flowfabricStore is the SQLite store on a FlowFabric database that
	// the registry adopted, with the engine's ff_exec_core and ff_attempt.
	flowfabricStore = store{name: "flowfabric", engine: engineSQLite, adopted: true, database: flowfabricSQLite}
)

// stores is every store of the conformance suite, in the order of its
// subtests. A new store is one more entry.
var stores = []store{sqliteStore, postgresStore, flowfabricStore}

// eachStore runs body once per store, in parallel subtests: each has a
// database of its own, and Postgres round trips overlap SQLite's work.
func eachStore(t *testing.T, body func(t *testing.T, s store)) {
	runStores(t, stores, body)
}

// eachEngine is eachStore without the adopted stores, for the long tests
// that exercise an engine's code paths rather than a database's shape.
func eachEngine(t *testing.T, body func(t *testing.T, s store)) {
	runStores(t, engineStores(), body)
}

// engineStores returns the stores that are not adopted: one per engine.
func engineStores() []store {
	var own []store
	for _, s := range stores {
		if !s.adopted {
			own = append(own, s)
		}
	}
	return own
}

func runStores(t *testing.T, stores []store, body func(t *testing.T, s store)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			body(t, s)
		})
	}
}

// postgresSchema creates an empty schema for t, dropped when t ends, and
// returns a DSN whose connections use it: each test gets a database of its
// own, as each SQLite test gets its own file. Without
// REGISTRY_TEST_POSTGRES the test skips (fails when
// REGISTRY_TEST_POSTGRES_REQUIRED is set).
func postgresSchema(t testing.TB) string {
	t.Helper()
	return registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
}
