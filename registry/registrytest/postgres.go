package registrytest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/flowfabric/workerregistry/registry"
)

// PostgresEnv names the environment variable that holds the DSN of a
// Postgres database that tests may create schemas in.
const PostgresEnv = "REGISTRY_TEST_POSTGRES"

// PostgresRequiredEnv names the environment variable that, when set, makes
// a missing REGISTRY_TEST_POSTGRES fail a test instead of skipping it: CI
// sets it so that it never silently tests less.
const PostgresRequiredEnv = "REGISTRY_TEST_POSTGRES_REQUIRED"

// PostgresDSN returns $REGISTRY_TEST_POSTGRES. When it is unset the test
// is skipped, with a message saying why, unless
// $REGISTRY_TEST_POSTGRES_REQUIRED is set.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(PostgresEnv)
	if dsn == "" {
		if os.Getenv(PostgresRequiredEnv) != "" {
			tb.Fatalf("registrytest: %s is not set, and %s says the Postgres tests must run", PostgresEnv, PostgresRequiredEnv)
		}
		tb.Skipf("registrytest: %s is not set: no Postgres server to test against", PostgresEnv)
	}
	return dsn
}

// PostgresDSNForms returns two other spellings of the Postgres URL dsn
// (one that PostgresSchema returns, say) that reach the same database and
// schema: the URL with its scheme in upper case, and a keyword/value DSN
// with the URL's host, port, user, password, database and search_path.
func PostgresDSNForms(tb testing.TB, dsn string) (upperScheme, keywordValue string) {
	tb.Helper()
	ds, err := registry.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	c := ds.PoolConfig().ConnConfig
	keywordValue = fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable options='-c search_path=%s'",
		c.Host, c.Port, c.User, c.Database, c.RuntimeParams["search_path"])
	if c.Password != "" {
		keywordValue += " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(c.Password) + "'"
	}
	scheme, rest, _ := strings.Cut(dsn, "://")
	return strings.ToUpper(scheme) + "://" + rest, keywordValue
}

// PostgresSchema creates an empty schema in the database at dsn, dropped
// with everything in it when the test ends, and returns dsn with its
// search_path set to that schema: a private database for one test, as
// Open's file in tb.TempDir is for SQLite.
func PostgresSchema(tb testing.TB, dsn string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("registrytest: postgres DSN: %v", err)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	defer admin.Close()
	name := "registrytest_" + strings.ToLower(rand.Text()[:16])
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+name); err != nil {
		tb.Fatalf("registrytest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		admin, err := sql.Open("pgx", dsn)
		if err != nil {
			tb.Errorf("registrytest: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			tb.Errorf("registrytest: drop schema: %v", err)
		}
	})
	// pgx sends an unknown URL parameter to the server as a setting.
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	// A connection pooler may drop the setting, and the test would then
	// share the default schema with every other test.
	check, err := sql.Open("pgx", u.String())
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	defer check.Close()
	var current string
	if err := check.QueryRowContext(context.Background(), "SELECT current_schema()").Scan(&current); err != nil || current != name {
		tb.Fatalf("registrytest: connections use schema %q (%v), not %q: does something between the test and the server drop search_path?", current, err, name)
	}
	return u.String()
}

// OpenPostgres is Open for Postgres: a registry on a new schema in the
// database at dsn (see PostgresSchema), and a database/sql handle on the
// same schema for fixtures and inspection. Both are closed when the test
// ends.
func OpenPostgres(tb testing.TB, dsn string, opts ...registry.Option) (*registry.Registry, *sql.DB) {
	tb.Helper()
	dsn = PostgresSchema(tb, dsn)
	r, err := registry.Open(context.Background(), dsn, opts...)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	sqlDB, err := sql.Open("pgx", dsn)
	if err != nil {
		r.Close()
		tb.Fatalf("registrytest: %v", err)
	}
	// Cleanups run last-in first-out: close both before the schema drops.
	tb.Cleanup(func() {
		sqlDB.Close()
		r.Close()
	})
	return r, sqlDB
}
