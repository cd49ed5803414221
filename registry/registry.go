package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/flowfabric/workerregistry/db"
	"github.com/flowfabric/workerregistry/schema"
)

// Registry is a worker registry backed by one SQLite database. It is safe
// for concurrent use by many goroutines, and several processes may open the
// same file.
type Registry struct {
	writer *sql.DB // at most one connection: SQLite has one writer at a time
	reader *sql.DB // the read pool; the same *sql.DB as writer when not split
	w, r   *db.Queries
	owned  bool // Close closes the databases
	cfg    config
}

// Open opens the SQLite database at path, creating it (mode 0600) when it
// does not exist, sets its pragmas and migrates it to the latest schema. The
// path ":memory:" opens a private in-memory database that lives as long as
// the Registry.
//
// Open fails, changing nothing, when the file is not a SQLite database or
// was migrated by a newer version of this library.
func Open(ctx context.Context, path string, opts ...Option) (*Registry, error) {
	r, err := open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("open registry %q: %w", path, err)
	}
	return r, nil
}

func open(ctx context.Context, path string, opts []Option) (*Registry, error) {
	if path != memoryPath {
		if err := checkExisting(ctx, path); err != nil {
			return nil, err
		}
	}
	writer, err := OpenDB(path)
	if err != nil {
		return nil, err
	}
	// Every connection to :memory: is a database of its own, so there the
	// writer's one connection serves reads too.
	reader := writer
	if path != memoryPath {
		if reader, err = sql.Open(DriverName, readerDSN(path)); err != nil {
			writer.Close()
			return nil, err
		}
		reader.SetMaxOpenConns(readerPoolSize())
		reader.SetMaxIdleConns(readerPoolSize())
	}
	closeAll := func() {
		writer.Close()
		if reader != writer {
			reader.Close()
		}
	}
	if err := Migrate(ctx, writer); err != nil {
		closeAll()
		return nil, err
	}
	r, err := newRegistry(ctx, writer, reader, opts)
	if err != nil {
		closeAll()
		return nil, err
	}
	r.owned = true
	return r, nil
}

// checkExisting refuses, through a query-only connection, an existing file
// that is not a database or whose schema is newer than this library's.
// It runs before the writer connects because connecting switches the file
// to WAL, which must not happen to a file that Open then refuses.
func checkExisting(ctx context.Context, path string) error {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Size() == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	ro, err := sql.Open(DriverName, sqliteDSN(path, "_pragma=query_only(1)"))
	if err != nil {
		return err
	}
	defer ro.Close()
	var current int64
	err = ro.QueryRowContext(ctx, `SELECT coalesce((SELECT max(version_id) FROM goose_db_version), 0)`).Scan(&current)
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return nil // a SQLite database this library has not migrated yet
	}
	if err != nil {
		return err
	}
	if latest := latestSchemaVersion(); current > latest {
		return newerSchemaError(current, latest)
	}
	return nil
}

// latestSchemaVersion is the version of the newest embedded migration.
func latestSchemaVersion() int64 {
	names, _ := fs.Glob(schema.FS, "*.sql")
	var latest int64
	for _, name := range names {
		if v, err := goose.NumericComponent(name); err == nil {
			latest = max(latest, v)
		}
	}
	return latest
}

func newerSchemaError(current, latest int64) error {
	return fmt.Errorf("database schema version %d is newer than this library's latest (%d): upgrade the library", current, latest)
}

// OpenDB opens the SQLite database at path for writing, as Open does for its
// writer, without migrating it: one connection, immediate transactions, the
// pragmas of DSN, and a new file created with mode 0600. It checks that the
// file is a usable database before returning. Use it with New or Migrate.
func OpenDB(path string) (*sql.DB, error) {
	if path == "" {
		return nil, invalid("path", "must not be empty")
	}
	if path != memoryPath {
		if err := createPrivate(path); err != nil {
			return nil, err
		}
	}
	sqlDB, err := sql.Open(DriverName, DSN(path))
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(1)
	// Connecting runs the pragmas, which is where a file that is not a
	// database is found out. Switching a new file to WAL needs a lock that
	// SQLite does not wait for, so a connection that loses that race
	// retries.
	for wait := time.Millisecond; ; wait *= 2 {
		err = sqlDB.Ping()
		if err == nil {
			return sqlDB, nil
		}
		if !isBusy(err) || wait > 500*time.Millisecond {
			sqlDB.Close()
			return nil, err
		}
		time.Sleep(wait)
	}
}

// New returns a Registry over a database the caller owns and has already
// migrated (see Migrate). Close does not close it. Build db with OpenDB,
// or with sql.Open(DriverName, DSN(path)), so that write transactions are immediate:
// with SQLite's default deferred transactions, concurrent writers fail with
// SQLITE_BUSY instead of waiting.
//
// New prepares its statements on db. If that fails, because db is not
// migrated yet for instance, the Registry runs them unprepared: slower, but
// correct once the schema is in place.
func New(db *sql.DB, opts ...Option) *Registry {
	r, err := newRegistry(context.Background(), db, db, opts)
	if err != nil {
		r = newUnprepared(db, db, opts)
		r.cfg.logger.Warn("registry: running statements unprepared", "err", err)
	}
	return r
}

// newRegistry prepares every statement once, since SQLite spends more time
// parsing a short statement than running it.
func newRegistry(ctx context.Context, writer, reader *sql.DB, opts []Option) (*Registry, error) {
	r := newUnprepared(writer, reader, opts)
	var err error
	if r.w, err = db.Prepare(ctx, writer); err != nil {
		return nil, err
	}
	if r.r, err = db.Prepare(ctx, reader); err != nil {
		r.w.Close()
		return nil, err
	}
	return r, nil
}

func newUnprepared(writer, reader *sql.DB, opts []Option) *Registry {
	return &Registry{
		writer: writer,
		reader: reader,
		w:      db.New(writer),
		r:      db.New(reader),
		cfg:    newConfig(opts),
	}
}

// Close releases the Registry's prepared statements and closes the
// databases that Open opened; a database given to New stays open.
func (r *Registry) Close() error {
	err := errors.Join(r.w.Close(), r.r.Close())
	if !r.owned {
		return err
	}
	err = errors.Join(err, r.writer.Close())
	if r.reader != r.writer {
		err = errors.Join(err, r.reader.Close())
	}
	return err
}

// Migrate brings the database to the latest schema version with goose. It
// fails without changing anything when the database's version is newer than
// the newest migration this library has.
func Migrate(ctx context.Context, sqlDB *sql.DB) error {
	p, err := NewMigrationProvider(sqlDB)
	if err != nil {
		return err
	}
	// goose has no lock for SQLite, so processes opening a new file at once
	// race to migrate it. Every migration runs in an immediate transaction,
	// so a loser fails cleanly ("table already exists", SQLITE_BUSY) and
	// changes nothing; once the winner is done, the database is current.
	var lastErr error
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		current, latest, err := p.GetVersions(ctx)
		switch {
		case err == nil && current > latest:
			return newerSchemaError(current, latest)
		case err == nil && current == latest:
			return nil
		case err == nil:
			if _, err = p.Up(ctx); err == nil {
				return nil
			}
			lastErr = fmt.Errorf("migrate: %w", err)
		default:
			lastErr = fmt.Errorf("read schema version: %w", err)
		}
		if wait > maxMigrateWait || ctx.Err() != nil {
			return lastErr
		}
		select {
		case <-ctx.Done():
			return lastErr
		case <-time.After(wait):
		}
	}
}

// maxMigrateWait bounds the retries of a migration that keeps failing,
// which a migration broken for good does: about 2.5 s in all.
const maxMigrateWait = 1280 * time.Millisecond

// NewMigrationProvider returns a goose provider over the embedded schema,
// for tools that need more than Migrate (status, down, redo).
func NewMigrationProvider(sqlDB *sql.DB) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectSQLite3, sqlDB, schema.FS)
}

// inTx runs fn in one write transaction and commits it when fn returns nil.
// The writer's DSN makes it BEGIN IMMEDIATE, so the write lock is taken up
// front and waits out other writers instead of failing half way.
func (r *Registry) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := r.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(r.w.WithTx(tx)); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	return tx.Commit()
}

// ignoreDone drops the error that Rollback returns after a cancelled
// context already rolled the transaction back.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

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

// fromMillis is the inverse of millis, in UTC so that results compare and
// print the same everywhere.
func fromMillis(ms int64) time.Time {
	return time.UnixMilli(ms).UTC()
}
