package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/internal/store/pgstore"
	"github.com/flowfabric/workerregistry/internal/store/sqlitestore"
	"github.com/flowfabric/workerregistry/schema"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Registry is a worker registry backed by a SQLite file or a Postgres
// database. It is safe for concurrent use by many goroutines, and many
// processes may share one database.
type Registry struct {
	st     store.Store
	cfg    config
	closed atomic.Bool
	// nextPrune is the sweep time (ms) from which a sweep prunes again;
	// zero, before the first, lets any sweep prune.
	nextPrune atomic.Int64
	// serverClock, on Postgres without WithClock, is the clock; Close
	// stops its refreshes.
	serverClock *pgstore.ServerClock
}

// Open opens a registry and migrates its database to the latest schema.
// dsn chooses the store, as ParseDSN describes:
//
//   - a postgres:// or postgresql:// URL (in any case), or a libpq
//     keyword/value string ("host=db dbname=registry ..."), opens a pgx
//     pool on that Postgres database; the DSN's parameters configure the
//     pool as pgxpool.ParseConfig documents (pool_max_conns, for instance).
//     pool_max_conns (default: the larger of 4 and the number of CPUs) is
//     every connection the Registry opens: writes get half of them,
//     rounded up, and reads (listings, lease walks) the rest, so that long
//     reads never hold the connections that heartbeats wait for;
//     pool_min_conns splits the same way, and with pool_max_conns=1 reads
//     and writes share the one connection. Open logs a warning (see
//     WithLogger) when pool_max_conns is more than the server's
//     max_connections allows.
//   - anything else is the path of a SQLite file, created (mode 0600) when
//     it does not exist. The path ":memory:" opens a private in-memory
//     database that lives as long as the Registry.
//
// Open fails, changing nothing, when dsn is malformed, the file is not a
// SQLite database or the database was migrated by a newer version of this
// library. Its errors show dsn with its secrets masked (see RedactDSN).
func Open(ctx context.Context, dsn string, opts ...Option) (*Registry, error) {
	ds, err := ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	var r *Registry
	switch ds.Store() {
	case StorePostgres:
		r, err = openPostgres(ctx, ds, opts)
	default:
		r, err = openSQLite(ctx, ds.Path(), opts)
	}
	if err != nil {
		return nil, fmt.Errorf("open registry %q: %w", ds, err)
	}
	return r, nil
}

// IsPostgresDSN reports whether ParseDSN takes dsn for a well-formed
// Postgres DSN. Code that goes on to open the database can call ParseDSN
// once instead, and see why a DSN is refused.
func IsPostgresDSN(dsn string) bool {
	d, err := ParseDSN(dsn)
	return err == nil && d.Store() == StorePostgres
}

// Close releases what the Registry holds and closes the databases that
// Open opened; a database given to NewSQLite or NewPostgres stays open.
// Calls after Close fail with an error matching ErrClosed, and so do calls
// in flight when it runs that it makes fail; a second Close does nothing.
func (r *Registry) Close() error {
	if r == nil || r.st == nil || r.closed.Swap(true) {
		return nil
	}
	r.cfg.obs.close()
	if r.serverClock != nil {
		r.serverClock.Close()
	}
	return r.st.Close()
}

// check refuses a call on a Registry that is closed or that no constructor
// made (the zero Registry).
func (r *Registry) check() error {
	switch {
	case r == nil || r.st == nil:
		return fmt.Errorf("%w: a Registry comes from Open, NewSQLite or NewPostgres", ErrClosed)
	case r.closed.Load():
		return ErrClosed
	}
	return nil
}

// opError is the package's opError for a call on r. Once r is closed, the
// error of a call that was in flight when Close closed the store (the
// pools' own "sql: database is closed", "closed pool" and the like)
// matches ErrClosed, as the calls that start after Close do.
func (r *Registry) opError(ctx context.Context, op string, err error) error {
	if err != nil && r != nil && r.closed.Load() && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w (%w)", ErrClosed, err)
	}
	return opError(ctx, op, err)
}

// inTx runs fn in one write transaction of the store.
func (r *Registry) inTx(ctx context.Context, fn func(q store.Writer) error) error {
	return r.st.InTx(ctx, fn)
}

// Migrate brings the database to the latest schema version. The database
// is SQLite or Postgres according to db's driver (modernc.org/sqlite, or
// pgx's database/sql driver, github.com/jackc/pgx/v5/stdlib). It fails
// without changing anything when the database's version is newer than the
// newest migration this library has. On SQLite every pending migration is
// applied in one transaction: a failure leaves the database as it was.
func Migrate(ctx context.Context, db *sql.DB) error {
	_, err := MigrateTo(ctx, db, math.MaxInt64)
	return err
}

// MigrateTo applies the pending migrations up to and including version
// and returns what it applied, in order (nothing when the database is
// there already). On SQLite they are applied in one transaction, so a
// failure leaves the database as it was; processes that migrate one file
// at once wait for each other. On Postgres each migration is a transaction
// of its own, under an advisory lock that serialises migrators (goose's
// commands in cmd/migrate take it too), and a FlowFabric database is
// adopted in the transaction of the first migration that runs.
func MigrateTo(ctx context.Context, db *sql.DB, version int64) ([]*goose.MigrationResult, error) {
	if isPostgresDB(db) {
		return pgstore.Migrate(ctx, db, version)
	}
	return sqlitestore.Migrate(ctx, db, version)
}

// SchemaVersion returns the registry schema version of the database, 0
// when it holds no registry, without writing anything: goose's own version
// calls create the version table where it is missing.
func SchemaVersion(ctx context.Context, db *sql.DB) (int64, error) {
	if isPostgresDB(db) {
		return pgstore.SchemaVersion(ctx, db)
	}
	return sqlitestore.SchemaVersion(ctx, db)
}

// NewMigrationProvider returns a goose provider over the embedded schema of
// db's store (see Migrate), for tools that need more than Migrate (status,
// down, redo).
func NewMigrationProvider(db *sql.DB) (*goose.Provider, error) {
	if isPostgresDB(db) {
		// The registry's own lock ID, so that its migrations never wait on
		// an application's goose runs; losers poll every second, not every
		// five, for up to two minutes.
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(store.MigrationLockID),
			lock.WithLockTimeout(1, 120))
		if err != nil {
			return nil, err
		}
		return goose.NewProvider(goose.DialectPostgres, db, schema.Postgres,
			goose.WithTableName(VersionTable), goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(goose.DialectSQLite3, db, schema.SQLite, goose.WithTableName(VersionTable))
}

// VersionTable is the table in which goose records the registry's schema
// version, in place of goose's default goose_db_version: the registry's
// tables often live in a database that the engine migrates with goose too,
// and the two histories must not mix. The stock goose CLI needs
// -table ff_worker_registry_version.
const VersionTable = store.VersionTable

// millis resolves an args struct's time to milliseconds: zero means the
// registry's clock.
func (r *Registry) millis(field string, t time.Time) (int64, error) {
	if t.IsZero() {
		t = r.cfg.clock()
	}
	if t.Before(minTime) {
		return 0, invalid(field, "is before 1970-01-01 (got %s)", t.Format(time.RFC3339Nano))
	}
	if t.After(maxTime) {
		return 0, invalid(field, "is after 9999-12-31 (got %s)", t.Format(time.RFC3339Nano))
	}
	return t.UnixMilli(), nil
}

// lockedNow re-reads the clock for a call whose Now was zero, once its
// transaction holds its locks: a call that waited for another writer must
// not then judge liveness, or stamp its event, at a time already past. It
// never goes back before the time read first, and keeps that one when the
// clock now reads out of range (UnixMilli could wrap, or Now plus a TTL
// overflow).
func (r *Registry) lockedNow(t time.Time, firstMS int64) int64 {
	if !t.IsZero() {
		return firstMS
	}
	if ms, err := r.millis("now", r.cfg.clock()); err == nil {
		return max(firstMS, ms)
	}
	return firstMS
}

// fromMillis is the inverse of millis, in UTC so that results compare and
// print the same everywhere.
func fromMillis(ms int64) time.Time {
	return time.UnixMilli(ms).UTC()
}
