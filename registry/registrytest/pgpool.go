package registrytest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/registry"
)

// A migrated Postgres schema costs seconds to make: FlowFabric's tables
// have 256 partitions each. So the schemas of MigratedPostgresSchema are
// made once and emptied between tests, a few per process (as many as run
// in parallel).
var pgPool struct {
	sync.Mutex
	free map[string][]PooledSchema // pool key → free schemas
	all  []pooledEntry             // every pooled schema, for ClosePostgresPool
}

type pooledEntry struct {
	admin  string
	schema PooledSchema
}

// PooledSchema is a schema of PooledPostgresSchema with connections to it
// that stay open from test to test: a new Postgres session spends seconds
// loading the catalog entries of FlowFabric's partitions and planning its
// first statements on them, which a long-lived process pays once.
type PooledSchema struct {
	DSN  string
	Pool *pgxpool.Pool // for registry.NewPostgres
	DB   *sql.DB       // for fixtures and inspection

	version int64 // the schema version it was made at
}

// MigratedPostgresSchema returns a DSN, as PostgresSchema does, of a schema
// in the database at dsn that the registry has migrated to its latest
// version and that holds no rows. The schema is the test's until it ends;
// it is then emptied and handed to a later test of the process, or dropped
// when the test left it at another version or without its tables. Tests
// that migrate, or change the schema's objects, should use PostgresSchema.
func MigratedPostgresSchema(tb testing.TB, dsn string) string {
	tb.Helper()
	return PooledPostgresSchema(tb, dsn, "registry", nil).DSN
}

// PooledPostgresSchema is MigratedPostgresSchema on a database that build
// prepares first, given its DSN (an engine's own migrations, for instance),
// before the registry migrates it. build runs once per server and key, into
// a template database that later runs reuse too; each pooled database is a
// copy of it. key names the template: it should change whenever what build
// makes does. With a nil build, the pooled objects are schemas of the
// database at dsn. Either way they are pooled by key.
func PooledPostgresSchema(tb testing.TB, dsn, key string, build func(ctx context.Context, schemaDSN string) error) PooledSchema {
	tb.Helper()
	ctx := context.Background()
	poolKey := key + "\x00" + dsn
	pgPool.Lock()
	var s PooledSchema
	found := false
	if free := pgPool.free[poolKey]; len(free) > 0 {
		s, found = free[len(free)-1], true
		pgPool.free[poolKey] = free[:len(free)-1]
	}
	pgPool.Unlock()
	if !found {
		var err error
		if build != nil {
			s, err = newPooledClone(ctx, dsn, key, build)
		} else {
			s, err = newPooledSchema(ctx, dsn)
		}
		if err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
	}
	tb.Cleanup(func() {
		if err := emptySchema(ctx, s.DB, s.version); err != nil {
			tb.Logf("registrytest: schema not reused: %v", err)
			s.Pool.Close()
			s.DB.Close()
			dropSchema(ctx, dsn, s.DSN)
			return
		}
		pgPool.Lock()
		defer pgPool.Unlock()
		if pgPool.free == nil {
			pgPool.free = map[string][]PooledSchema{}
		}
		pgPool.free[poolKey] = append(pgPool.free[poolKey], s)
	})
	return s
}

// ClosePostgresPool drops every schema that MigratedPostgresSchema and
// PooledPostgresSchema made in this process. Call it from TestMain, after
// m.Run.
func ClosePostgresPool() {
	pgPool.Lock()
	all := pgPool.all
	pgPool.all, pgPool.free = nil, nil
	pgPool.Unlock()
	for _, e := range all {
		e.schema.Pool.Close()
		e.schema.DB.Close()
		dropSchema(context.Background(), e.admin, e.schema.DSN)
	}
}

func newPooledSchema(ctx context.Context, dsn string) (PooledSchema, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return PooledSchema{}, fmt.Errorf("postgres DSN: %w", err)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return PooledSchema{}, err
	}
	defer admin.Close()
	name := "registrytest_pool_" + strings.ToLower(rand.Text()[:16])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		return PooledSchema{}, fmt.Errorf("create schema: %w", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return openPooled(ctx, dsn, u.String())
}

// openPooled opens the connections of a new pooled database, which drops
// with the pool, and migrates it.
func openPooled(ctx context.Context, adminDSN, dsn string) (PooledSchema, error) {
	s := PooledSchema{DSN: dsn}
	var err error
	if s.DB, err = sql.Open("pgx", s.DSN); err != nil {
		return PooledSchema{}, err
	}
	if s.Pool, err = pgxpool.New(ctx, s.DSN); err != nil {
		s.DB.Close()
		return PooledSchema{}, err
	}
	pgPool.Lock()
	pgPool.all = append(pgPool.all, pooledEntry{adminDSN, s})
	pgPool.Unlock()
	if err := registry.Migrate(ctx, s.DB); err != nil {
		return PooledSchema{}, err
	}
	s.version, err = registry.SchemaVersion(ctx, s.DB)
	return s, err
}

// emptySchema deletes the rows that tests write, after checking that the
// schema is still at the version it was made at. It locks the tables
// first, which waits out a transaction of the test that is still
// committing: a call whose context was cancelled after it sent COMMIT
// returns at once, and its row would otherwise land after the DELETE, in
// the next test's database.
func emptySchema(ctx context.Context, db *sql.DB, version int64) error {
	v, err := registry.SchemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if v != version {
		return fmt.Errorf("left at version %d, not %d", v, version)
	}
	_, err = db.ExecContext(ctx, `
		BEGIN;
		LOCK TABLE ff_worker_registry, ff_worker_registry_event, ff_worker_registry_directive, ff_attempt, ff_exec_core IN ACCESS EXCLUSIVE MODE;
		DELETE FROM ff_worker_registry;
		DELETE FROM ff_worker_registry_event;
		DELETE FROM ff_worker_registry_directive;
		DELETE FROM ff_attempt;
		DELETE FROM ff_exec_core;
		SELECT setval('ff_worker_registry_event_id_seq', 1, false);
		COMMIT;`)
	return err
}

func dropSchema(ctx context.Context, adminDSN, schemaDSN string) {
	u, err := url.Parse(schemaDSN)
	if err != nil {
		return
	}
	if a, err := url.Parse(adminDSN); err == nil && a.Path != u.Path {
		// A copy of a template: a database of its own.
		if admin, err := sql.Open("pgx", adminDSN); err == nil {
			_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+strings.TrimPrefix(u.Path, "/")+" WITH (FORCE)")
			admin.Close()
		}
		return
	}
	admin, err := sql.Open("pgx", adminDSN)
	if err != nil {
		return
	}
	defer admin.Close()
	// One table at a time: a schema of FlowFabric's has thousands of
	// relations, more than one transaction may lock.
	name := u.Query().Get("search_path")
	rows, err := admin.QueryContext(ctx, `
		SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition`, name)
	if err == nil {
		var tables []string
		for rows.Next() {
			var t string
			if rows.Scan(&t) == nil {
				tables = append(tables, t)
			}
		}
		rows.Close()
		for _, t := range tables {
			_, _ = admin.ExecContext(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s.%s CASCADE", name, t))
		}
	}
	_, _ = admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE")
}

// PostgresDatabaseFrom returns the DSN of a new database in the server at
// dsn, a copy of the template that build makes (see PooledPostgresSchema),
// dropped when the test ends. The registry has not touched it.
func PostgresDatabaseFrom(tb testing.TB, dsn, key string, build func(ctx context.Context, dsn string) error) string {
	tb.Helper()
	ctx := context.Background()
	clone, err := cloneTemplate(ctx, dsn, key, build)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	tb.Cleanup(func() { dropSchema(ctx, dsn, clone) })
	return clone
}

func newPooledClone(ctx context.Context, dsn, key string, build func(context.Context, string) error) (PooledSchema, error) {
	clone, err := cloneTemplate(ctx, dsn, key, build)
	if err != nil {
		return PooledSchema{}, err
	}
	return openPooled(ctx, dsn, clone)
}

// templateLock serialises the making and copying of templates across
// processes: CREATE DATABASE refuses a template that another session is
// connected to.
const templateLock = 0x72_74_6d_70 // "rtmp"

// cloneTemplate makes the template database of key where the server lacks
// it, copies it to a new database and returns that database's DSN.
func cloneTemplate(ctx context.Context, dsn, key string, build func(context.Context, string) error) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("postgres DSN: %w", err)
	}
	withDB := func(name string) string {
		c := *u
		c.Path = "/" + name
		q := c.Query()
		q.Del("search_path")
		c.RawQuery = q.Encode()
		return c.String()
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		return "", err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLock)

	template := "registrytest_tmpl_" + key
	var comment sql.NullString
	err = conn.QueryRowContext(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, template).Scan(&comment)
	switch {
	case err == sql.ErrNoRows:
	case err != nil:
		return "", err
	case comment.String != "complete":
		// A build that did not finish.
		if _, err := conn.ExecContext(ctx, "DROP DATABASE "+template+" WITH (FORCE)"); err != nil {
			return "", err
		}
	}
	if comment.String != "complete" {
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+template); err != nil {
			return "", fmt.Errorf("create template: %w", err)
		}
		if err := build(ctx, withDB(template)); err != nil {
			return "", err
		}
		if _, err := conn.ExecContext(ctx, "COMMENT ON DATABASE "+template+" IS 'complete'"); err != nil {
			return "", err
		}
	}
	name := "registrytest_" + strings.ToLower(rand.Text()[:16])
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template+" STRATEGY FILE_COPY"); err != nil {
		return "", fmt.Errorf("copy template: %w", err)
	}
	return withDB(name), nil
}
