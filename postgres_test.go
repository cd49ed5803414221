package workerregistry_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
	"github.com/flowfabric/workerregistry/schema"
)

// TestPostgresMigrations walks the Postgres migrations down to nothing and
// up again on a schema of its own, checks that the stock goose CLI would
// see the same files, and that Open refuses a newer schema without
// touching it.
func TestPostgresMigrations(t *testing.T) {
	ctx := context.Background()
	dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
	r, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	register(t, r, "before")
	r.Close()

	sqlDB, p := migrationProvider(t, func() (*sql.DB, error) { return sql.Open("pgx", dsn) })
	dirProvider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, os.DirFS("schema/postgres"), goose.WithTableName(registry.VersionTable))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(dirProvider.ListSources()), len(p.ListSources()); got != want || want == 0 {
		t.Fatalf("goose -dir schema/postgres sees %d migrations, the embedded FS %d", got, want)
	}
	sqliteVersions, postgresVersions := versions(t, schema.SQLite), versions(t, schema.Postgres)
	if !slices.Equal(sqliteVersions, postgresVersions) {
		t.Fatalf("migration versions differ: SQLite %v, Postgres %v", sqliteVersions, postgresVersions)
	}

	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var tables string
	if err := sqlDB.QueryRow(`SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables
		WHERE schemaname = current_schema() AND tablename LIKE 'ff_%' AND tablename <> $1`, registry.VersionTable).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	// The engine's tables stay: down never drops what may be the engine's.
	if tables != "ff_attempt ff_exec_core" {
		t.Fatalf("tables left after all downs: %q, want only the engine's", tables)
	}
	r, err = registry.Open(ctx, dsn) // migrates up again
	if err != nil {
		t.Fatal(err)
	}
	register(t, r, "after")
	if got := listed(t, r); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("after down and up: %v", got)
	}
	r.Close()

	if _, err := sqlDB.Exec(`INSERT INTO ` + registry.VersionTable + ` (version_id, is_applied) VALUES (999, true)`); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := sqlDB.QueryRow(`SELECT count(*) FROM ff_worker_registry`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	if _, err := registry.Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer than this library") {
		t.Fatalf("Open = %v, want a newer-schema error", err)
	}
	if count() != before {
		t.Fatal("Open changed a database it refused")
	}
}

// TestPostgresConcurrentFirstOpen migrates one new schema from many
// registries at once: goose's advisory lock makes the racers take turns.
func TestPostgresConcurrentFirstOpen(t *testing.T) {
	dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			r, err := registry.Open(context.Background(), dsn)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			defer r.Close()
			register(t, r, "w")
		})
	}
	wg.Wait()
}

// TestOpenRedactsPassword checks that a failing Open does not print the
// password of the URL it was given.
func TestOpenRedactsPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=1",
		"postgres://u@127.0.0.1:1/db?password=s3cret&connect_timeout=1",
	} {
		_, err := registry.Open(context.Background(), dsn)
		if err == nil {
			t.Fatalf("Open(%q) succeeded against a closed port", dsn)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// versions lists the migration versions in fsys.
func versions(t *testing.T, fsys fs.FS) []int64 {
	t.Helper()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
	return out
}

// TestOpenKeywordDSN checks that a libpq keyword/value string opens
// Postgres (here a closed port, so a connection error) and one with an
// unknown keyword is refused; neither is taken for the name of a new
// SQLite file, and neither error shows the password.
func TestOpenKeywordDSN(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := registry.Open(context.Background(), "host=127.0.0.1 port=1 dbname=registry password=s3cret connect_timeout=1")
	if err == nil || errors.Is(err, registry.ErrInvalidInput) || !strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open = %v, want a connection error that hides the password", err)
	}
	_, err = registry.Open(context.Background(), "host=127.0.0.1 dbname=registry pasword=s3cret")
	if !errors.Is(err, registry.ErrInvalidInput) || !strings.Contains(err.Error(), `"pasword"`) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open = %v, want an input error naming the keyword and hiding the password", err)
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Fatalf("Open created %v", entries)
	}
}

// TestPostgresUnderSerializableDefault runs racing first registrations on a
// database whose default isolation is SERIALIZABLE: the registry asks for
// READ COMMITTED, so the loser still gets ErrInstanceReassigned, not a
// serialization failure.
func TestPostgresUnderSerializableDefault(t *testing.T) {
	ctx := context.Background()
	dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_transaction_isolation", "serializable")
	u.RawQuery = q.Encode()
	var regs [2]*registry.Registry
	for i := range regs {
		if regs[i], err = registry.Open(ctx, u.String()); err != nil {
			t.Fatal(err)
		}
		defer regs[i].Close()
	}
	for round := range 20 {
		var wg sync.WaitGroup
		var errs [2]error
		for i, r := range regs {
			wg.Go(func() {
				_, errs[i] = r.RegisterWorker(ctx, registry.RegisterWorkerArgs{
					Namespace: "ns", WorkerID: fmt.Sprintf("pool-%d", i), WorkerInstanceID: fmt.Sprintf("w%d", round),
					Lanes: []string{"default"}, LivenessTTL: time.Minute, Now: t0,
				})
			})
		}
		wg.Wait()
		ok, reassigned := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, registry.ErrInstanceReassigned):
				reassigned++
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 || reassigned != 1 {
			t.Fatalf("round %d: %d succeeded, %d reassigned; want one each", round, ok, reassigned)
		}
	}
}

// TestPostgresSharesTheEnginesDatabase opens a registry in a schema where
// the engine already has its tables, its own goose history and a lease:
// the registry migrates beside them, leaves the engine's version history
// alone, and lists the engine's expired lease.
func TestPostgresSharesTheEnginesDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
	sqlDB, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	engineSchema := `
		CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL);
		INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (20260101, true);
		CREATE TABLE ff_exec_core (partition_key integer NOT NULL, execution_id uuid NOT NULL,
			public_state text NOT NULL, raw_fields jsonb NOT NULL DEFAULT '{}', PRIMARY KEY (partition_key, execution_id));
		CREATE TABLE ff_attempt (partition_key integer NOT NULL, execution_id uuid NOT NULL, attempt_index integer NOT NULL,
			worker_instance_id text, lease_epoch bigint NOT NULL DEFAULT 0, lease_expires_at_ms bigint,
			PRIMARY KEY (partition_key, execution_id, attempt_index));
		INSERT INTO ff_exec_core VALUES (7, '6f1c2a3b-0000-4000-8000-000000000001', 'running', '{"namespace": "prod"}');
		INSERT INTO ff_attempt VALUES (7, '6f1c2a3b-0000-4000-8000-000000000001', 0, 'w1', 3, ` +
		strconv.FormatInt(t0.UnixMilli(), 10) + `);`
	if _, err := sqlDB.Exec(engineSchema); err != nil {
		t.Fatal(err)
	}
	r, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{Namespace: "prod", AsOf: t0})
	if err != nil || len(res.Leases) != 1 || res.Leases[0].WorkerInstanceID != "w1" || res.Leases[0].LeaseEpoch != 3 {
		t.Fatalf("ListExpiredLeases = %+v, %v; want the engine's lease", res.Leases, err)
	}
	var engineVersion int64
	if err := sqlDB.QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&engineVersion); err != nil || engineVersion != 20260101 {
		t.Fatalf("engine's goose history: max version %d, %v", engineVersion, err)
	}
}

// TestPostgresRefusesNonUTF8Database opens a registry on a LATIN1 database:
// it must refuse, since it would reject IDs that validation accepts.
func TestPostgresRefusesNonUTF8Database(t *testing.T) {
	dsn := registrytest.PostgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the drop below: cleanups run last first
	name := fmt.Sprintf("registry_latin1_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name + " ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"); err != nil {
		t.Skipf("cannot create a LATIN1 database here: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	_, err = registry.Open(context.Background(), u.String())
	if err == nil || !strings.Contains(err.Error(), "needs UTF8") {
		t.Fatalf("Open = %v, want a refusal of the LATIN1 database", err)
	}
}
