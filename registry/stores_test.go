package registry_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
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
)

// postgresEnv names the variable that holds the DSN of a Postgres database
// the tests may create schemas in.
const postgresEnv = "REGISTRY_TEST_POSTGRES"

func eachStore(t *testing.T, body func(t *testing.T)) {
	for _, store := range []string{storeSQLite, storePostgres} {
		t.Run(store, body)
	}
}

// storeOf returns the store eachStore chose for t, or SQLite.
func storeOf(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	if len(parts) > 1 && parts[1] == storePostgres {
		return storePostgres
	}
	return storeSQLite
}

// postgresDSN returns the test database's DSN. Without one the test skips,
// unless CI is set: there a missing server is a failure, not a skip.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set; CI must run the Postgres tests (see .ci/run)", postgresEnv)
		}
		t.Skipf("%s is not set: no Postgres server to test against (scripts/pg-test-server starts one)", postgresEnv)
	}
	return dsn
}

var (
	adminOnce sync.Once
	adminDB   *sql.DB
	adminErr  error
)

// postgresSchema creates an empty schema for t, dropped when t ends, and
// returns a DSN whose connections use it: each test gets a database of its
// own, as each SQLite test gets its own file.
func postgresSchema(t testing.TB) string {
	t.Helper()
	dsn := postgresDSN(t)
	adminOnce.Do(func() { adminDB, adminErr = sql.Open("pgx", dsn) })
	if adminErr != nil {
		t.Fatal(adminErr)
	}
	name := "registry_test_" + strings.ToLower(rand.Text()[:16])
	ctx := context.Background()
	if _, err := adminDB.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := adminDB.ExecContext(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return withSearchPath(t, dsn, name)
}

// withSearchPath adds search_path=schema to a Postgres URL; pgx sends an
// unknown URL parameter to the server as a run-time setting.
func withSearchPath(t testing.TB, dsn, schema string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
