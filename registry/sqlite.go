package registry

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/internal/store/sqlitestore"
	"github.com/flowfabric/workerregistry/schema"
)

// SQLiteDriverName is the database/sql driver the registry uses for SQLite
// (modernc.org/sqlite, pure Go).
const SQLiteDriverName = sqlitestore.DriverName

// SQLiteDSN returns the data source name that Open uses for its writer
// connection to the database file at path. Use it with
// sql.Open(SQLiteDriverName, SQLiteDSN(path)) to build a *sql.DB for
// NewSQLite: it turns on WAL, synchronous=NORMAL, foreign keys, immediate
// write transactions and a busy timeout of a few milliseconds. The
// registry retries SQLITE_BUSY itself; statements of your own on such a
// *sql.DB must expect it sooner than with SQLite's defaults.
func SQLiteDSN(path string) string {
	return sqlitestore.WriterDSN(path)
}

// openSQLite opens a writer and a read pool on the file at path, after
// creating and migrating it when cfg allows. A failure leaves the file as
// it was, its journal mode included, and removes a file it created. A
// file this process cannot write gets a read pool alone, without
// auto-migration; otherwise Open fails with ErrReadOnly.
func openSQLite(ctx context.Context, path string, opts []Option) (*Registry, error) {
	cfg := newConfig(opts)
	switch path {
	case "":
		return nil, invalid("path", "must not be empty")
	case sqlitestore.MemoryPath:
		return openSQLiteMemory(ctx, cfg)
	}
	current, err := sqlitestore.Inspect(ctx, path)
	if err != nil {
		return nil, err
	}
	latest := store.LatestVersion(schema.SQLite)
	writable := current == 0 || sqlitestore.Writable(path)
	switch {
	case current > latest:
		return nil, store.NewerSchemaError(current, latest)
	case current < latest && !cfg.autoMigrate:
		return nil, notMigratedError(current, latest)
	case !writable && cfg.autoMigrate:
		return nil, fmt.Errorf("%w (to read it, open it with WithAutoMigrate(false))", ErrReadOnly)
	case current < latest:
		if _, err := sqlitestore.MigrateFile(ctx, path, latest); err != nil {
			return nil, err
		}
	}
	if !writable {
		st, err := sqlitestore.OpenFileReadOnly(ctx, path)
		if err != nil {
			return nil, err
		}
		return &Registry{st: st, cfg: cfg}, nil
	}
	// Only now, with the schema in place, does the writer switch the file
	// to WAL.
	st, err := sqlitestore.OpenFile(ctx, path)
	if err != nil {
		return nil, err
	}
	return &Registry{st: st, cfg: cfg}, nil
}

// openSQLiteMemory opens a private in-memory database. Every connection to
// :memory: is a database of its own, so the writer's one connection serves
// reads too.
func openSQLiteMemory(ctx context.Context, cfg config) (*Registry, error) {
	db, err := OpenSQLiteDB(sqlitestore.MemoryPath)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return &Registry{st: sqlitestore.New(db, db, true), cfg: cfg}, nil
}

// MigrateSQLiteFile migrates the SQLite file at path up to and including
// version, as MigrateTo does, and returns what it applied. A missing file
// is built under a temporary name beside path and appears at path only
// once migrated, so a failure leaves no file behind, and a process that
// fails never removes a file that another process is creating or using.
// The journal mode is left alone (see OpenSQLiteForMigration).
func MigrateSQLiteFile(ctx context.Context, path string, version int64) ([]*goose.MigrationResult, error) {
	if path == "" {
		return nil, invalid("path", "must not be empty")
	}
	return sqlitestore.MigrateFile(ctx, path, version)
}

// OpenSQLiteForMigration opens the SQLite database at path, creating it
// (mode 0600) when missing, as Open migrates it: one connection with a busy
// timeout, and the journal mode left as the file has it, so that a
// migration that fails, or a command that only reads, never switches a
// file to WAL. Use it with Migrate, MigrateTo, SchemaVersion and
// NewMigrationProvider; Open and OpenSQLiteDB switch a migrated file to WAL.
func OpenSQLiteForMigration(path string) (*sql.DB, error) {
	if path == "" {
		return nil, invalid("path", "must not be empty")
	}
	return sqlitestore.OpenForMigration(path)
}

// checkMigrated fails, writing nothing, unless db is at the latest version
// of fsys's migrations.
func checkMigrated(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	current, err := SchemaVersion(ctx, db)
	if err != nil {
		return err
	}
	switch latest := store.LatestVersion(fsys); {
	case current > latest:
		return store.NewerSchemaError(current, latest)
	case current < latest:
		return notMigratedError(current, latest)
	}
	return nil
}

// notMigratedError reports a database that Open was told not to migrate
// (WithAutoMigrate(false)) at another version than the library's.
func notMigratedError(current, latest int64) error {
	if current == 0 {
		return fmt.Errorf("%w: no worker registry in this database (create one with 'migrate up')", ErrNotMigrated)
	}
	return fmt.Errorf("%w: database schema version %d, this library's is %d (upgrade it with 'migrate up')", ErrNotMigrated, current, latest)
}

// OpenSQLiteDB opens the SQLite database at path for writing, as Open does
// for its writer, without migrating it: one connection, immediate
// transactions, the pragmas of SQLiteDSN, and a new file created with mode
// 0600. It checks that the file is a usable database before returning. Use
// it with NewSQLite or Migrate.
func OpenSQLiteDB(path string) (*sql.DB, error) {
	if path == "" {
		return nil, invalid("path", "must not be empty")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return sqlitestore.OpenWriter(ctx, path)
}

// NewSQLite returns a Registry over a SQLite database the caller owns and has
// already migrated (see Migrate). Close does not close it. Build db with
// OpenSQLiteDB, or with sql.Open(SQLiteDriverName, SQLiteDSN(path)), so that write
// transactions are immediate: with SQLite's default deferred transactions,
// concurrent writers fail with SQLITE_BUSY instead of waiting. NewSQLite panics
// when db is a Postgres database: use NewPostgres.
//
// The Registry prepares each statement on db the first time it runs it, so
// db may be migrated after NewSQLite returns, before the first call.
func NewSQLite(db *sql.DB, opts ...Option) *Registry {
	if isPostgresDB(db) {
		// SQLite's statements would fail one by one on the first call
		// instead; say what is wrong where it happens.
		panic("registry.NewSQLite: db uses pgx's driver; use NewPostgres with a pgxpool.Pool")
	}
	return &Registry{st: sqlitestore.New(db, db, false), cfg: newConfig(opts)}
}
