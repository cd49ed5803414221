package registry_test

import (
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// The stores the conformance tests run on. A test written as
//
//	func TestX(t *testing.T) {
//		eachStore(t, func(t *testing.T) {
//			r, b := setup(t)
//			...
//		})
//	}
//
// runs its body once per store, as the subtests TestX/sqlite and
// TestX/postgres; setup reads the store from that name, so helpers and
// nested subtests need no store argument.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
	// storeFlowFabric is the SQLite store on a FlowFabric database that
	// the registry adopted: built by the engine's own migrations, with the
	// engine's ff_exec_core and ff_attempt. Its bundles say storeSQLite.
	storeFlowFabric = "flowfabric"
	// storeFlowFabricPostgres is the Postgres store on a FlowFabric
	// Postgres database that the registry adopted: the engine's 256-way
	// partitioned tables and everything else its migrations make. Its
	// bundles say storePostgres.
	storeFlowFabricPostgres = "flowfabric-postgres"
)

// eachStore runs the stores' subtests in parallel: each has a database of
// its own, and Postgres round trips overlap SQLite's work.
func eachStore(t *testing.T, body func(t *testing.T)) {
	runStores(t, body, storeSQLite, storePostgres, storeFlowFabric, storeFlowFabricPostgres)
}

// eachEngine is eachStore for the long tests of concurrency, cancellation
// and scale, which exercise the engines' code paths rather than the
// database's shape: on SQLite, an adopted database runs the same code as
// the registry's own, so they run on sqlite and postgres only.
func eachEngine(t *testing.T, body func(t *testing.T)) {
	runStores(t, body, storeSQLite, storePostgres)
}

// eachPostgres is eachStore for tests of the Postgres store's statements:
// on the registry's own database and on an adopted FlowFabric one.
func eachPostgres(t *testing.T, body func(t *testing.T)) {
	runStores(t, body, storePostgres, storeFlowFabricPostgres)
}

func runStores(t *testing.T, body func(t *testing.T), stores ...string) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			body(t)
		})
	}
}

// storeOf returns the store eachStore chose for t, or SQLite.
func storeOf(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	if len(parts) > 1 && (parts[1] == storePostgres || parts[1] == storeFlowFabric || parts[1] == storeFlowFabricPostgres) {
		return parts[1]
	}
	return storeSQLite
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
