package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
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
	// pooled, on Postgres, returns a migrated database of t's own, emptied
	// after an earlier test, with connections that stay warm from test to
	// test: a new session on 256-way partitioned tables takes seconds to
	// load their catalog entries and plan.
	pooled func(t testing.TB) registrytest.PooledSchema
}

// The engines; a testBundle's engine is one of them.
const (
	engineSQLite   = "sqlite"
	enginePostgres = "postgres"
)

var (
	sqliteStore   = store{name: "sqlite", engine: engineSQLite, database: registrySQLite}
	postgresStore = store{name: "postgres", engine: enginePostgres, database: postgresSchema, pooled: pooledPostgres}
	// flowfabricStore is the SQLite store on a FlowFabric database that
	// the registry adopted, with the engine's ff_exec_core and ff_attempt.
	flowfabricStore = store{name: "flowfabric", engine: engineSQLite, adopted: true, database: adoptedFlowFabricSQLite}
	// flowfabricPostgresStore is the Postgres store on a FlowFabric
	// Postgres database that the registry adopted: the engine's 256-way
	// partitioned tables and everything else its migrations make.
	flowfabricPostgresStore = store{name: "flowfabric-postgres", engine: enginePostgres, adopted: true,
		database: func(t testing.TB) string { return flowfabrictest.Postgres(t).DSN }, pooled: flowfabrictest.Postgres}
)

// stores is every store of the conformance suite, in the order of its
// subtests. A new store is one more entry.
var stores = []store{sqliteStore, postgresStore, flowfabricStore, flowfabricPostgresStore}

// eachStore runs body once per store: see runStores.
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

// runStores runs body on each store in parallel subtests of t, itself
// parallel to the other tests that use it: each test has its own
// databases.
func runStores(t *testing.T, stores []store, body func(t *testing.T, s store)) {
	t.Parallel()
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

// pooledPostgres is a migrated schema of the REGISTRY_TEST_POSTGRES
// database from the process's pool.
func pooledPostgres(t testing.TB) registrytest.PooledSchema {
	t.Helper()
	return registrytest.PooledPostgresSchema(t, registrytest.PostgresDSN(t), "registry", nil)
}

// registrySQLite returns the path of a new SQLite file that Open created
// and migrated.
func registrySQLite(t testing.TB) string {
	t.Helper()
	return registryTemplate.Copy(t, "registry.db", func(dir string) (string, error) {
		path := filepath.Join(dir, "registry.db")
		return path, openAndClose(path)
	})
}

// adoptedFlowFabricSQLite returns the path of a new FlowFabric SQLite
// database (flowfabricSQLite) that Open adopted.
func adoptedFlowFabricSQLite(t testing.TB) string {
	t.Helper()
	flowfabrictest.Dir(t) // skips the test where FlowFabric's files are absent
	return adoptedTemplate.Copy(t, "flowfabric.db", func(string) (string, error) {
		path := flowfabrictest.SQLite(t)
		return path, openAndClose(path)
	})
}

var registryTemplate, adoptedTemplate flowfabrictest.Template

func openAndClose(path string) error {
	r, err := registry.Open(context.Background(), path)
	if err != nil {
		return err
	}
	if err := r.Close(); err != nil {
		return err
	}
	// Closing the last connection checkpoints the WAL into the file, so
	// that the file alone is the whole database.
	if st, err := os.Stat(path + "-wal"); err == nil && st.Size() > 0 {
		return errors.New(path + "-wal holds frames after Close")
	}
	return nil
}
