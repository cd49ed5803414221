package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flowfabric/workerregistry/schema"
)

// SQLiteDriverName is the database/sql driver the registry uses for SQLite
// (modernc.org/sqlite, pure Go).
const SQLiteDriverName = "sqlite"

// busyTimeoutMS bounds how long a statement of a reader, or of a
// connection that migrates, waits for a lock before failing with
// SQLITE_BUSY.
const busyTimeoutMS = 10000

// writerBusyTimeoutMS is the writer's busy timeout. It is short because
// SQLite's busy handler sleeps longer and longer between tries, up to
// 100 ms, and a process that tries that rarely starves behind others: the
// registry's write path retries SQLITE_BUSY itself, every few
// milliseconds, while the call's context lives (see sqlite_write.go).
const writerBusyTimeoutMS = 5

// memoryPath is the path that opens a private in-memory database.
const memoryPath = ":memory:"

// SQLiteDSN returns the data source name that Open uses for its writer connection
// to the database file at path. Use it with sql.Open(SQLiteDriverName, SQLiteDSN(path))
// to build a *sql.DB for New: it turns on WAL, synchronous=NORMAL, foreign
// keys, immediate write transactions and a busy timeout of a few
// milliseconds. The registry retries SQLITE_BUSY itself; statements of your
// own on such a *sql.DB must expect it sooner than with SQLite's defaults.
func SQLiteDSN(path string) string {
	return sqliteDSNBusy(path, writerBusyTimeoutMS, "_txlock=immediate",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=cache_size(-16384)", // 16 MiB
		fmt.Sprintf("_pragma=journal_size_limit(%d)", walSizeLimit))
}

// walSizeLimit is the size to which the writer truncates the WAL when it
// restarts it, so that the file does not stay at a burst's high-water mark
// (a reader holding an old snapshot, a large sweep). It is twice the WAL
// that SQLite's automatic checkpoint lets build up (1000 pages of 4 KiB).
const walSizeLimit = 8 << 20

// readerDSN is for the read pool. query_only makes an accidental write
// through it fail instead of contending with the writer.
func readerDSN(path string) string {
	return sqliteDSN(path, "_pragma=query_only(1)",
		"_pragma=cache_size(-65536)", // 64 MiB: the expired-lease walk's index pages
		"_pragma=mmap_size(1073741824)")
}

func sqliteDSN(path string, params ...string) string {
	return sqliteDSNBusy(path, busyTimeoutMS, params...)
}

// sqliteDSNBusy is sqliteDSN with a busy timeout of busyMS.
func sqliteDSNBusy(path string, busyMS int, params ...string) string {
	common := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyMS),
		"_pragma=foreign_keys(1)",
	}
	// The file: form hands the name to SQLite as a URI, so escape the
	// characters that would end the path part.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + strings.Join(append(common, params...), "&")
}

// readerPoolSize is the number of read connections Open keeps. Reads run in
// parallel in WAL mode; more connections than cores buys nothing.
func readerPoolSize() int {
	return max(2, runtime.GOMAXPROCS(0))
}

// createPrivate creates the database file with mode 0600 when it does not
// exist, so that SQLite (which would use 0644) and its -wal and -shm files,
// which copy the main file's mode, are not readable by other users.
func createPrivate(path string) (created bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED, in
// any of their extended forms.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

// openSQLite opens a writer and a read pool on the file at path, after
// creating and migrating it when cfg allows. A failure leaves the file as
// it was, its journal mode included, and removes a file it created.
func openSQLite(ctx context.Context, path string, opts []Option) (*Registry, error) {
	cfg := newConfig(opts)
	switch path {
	case "":
		return nil, invalid("path", "must not be empty")
	case memoryPath:
		return openSQLiteMemory(ctx, cfg)
	}
	current, err := inspectSQLite(ctx, path)
	if err != nil {
		return nil, err
	}
	latest := latestSchemaVersion(schema.SQLite)
	switch {
	case current > latest:
		return nil, newerSchemaError(current, latest)
	case current < latest && !cfg.autoMigrate:
		return nil, notMigratedError(current, latest)
	case current < latest:
		if _, err := MigrateSQLiteFile(ctx, path, latest); err != nil {
			return nil, err
		}
	}
	// Only now, with the schema in place, does the writer switch the file
	// to WAL.
	writer, err := openWriter(ctx, path)
	if err != nil {
		return nil, err
	}
	reader, err := sql.Open(SQLiteDriverName, readerDSN(path))
	if err != nil {
		writer.Close()
		return nil, err
	}
	reader.SetMaxOpenConns(readerPoolSize())
	reader.SetMaxIdleConns(readerPoolSize())
	st := newSQLiteStore(writer, reader)
	st.owned = true
	return &Registry{st: st, cfg: cfg}, nil
}

// openSQLiteMemory opens a private in-memory database. Every connection to
// :memory: is a database of its own, so the writer's one connection serves
// reads too.
func openSQLiteMemory(ctx context.Context, cfg config) (*Registry, error) {
	db, err := OpenSQLiteDB(memoryPath)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	st := newSQLiteStore(db, db)
	st.owned = true
	return &Registry{st: st, cfg: cfg}, nil
}

// inspectSQLite returns the registry schema version of the file at path,
// 0 for a file that does not exist, is empty or holds no registry. It
// refuses a file that is not a SQLite database. It reads through a
// query-only connection that leaves the file, and its journal mode, as
// they were.
func inspectSQLite(ctx context.Context, path string) (int64, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Size() == 0) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ro, err := sql.Open(SQLiteDriverName, sqliteDSN(path, "_pragma=query_only(1)"))
	if err != nil {
		return 0, err
	}
	defer ro.Close()
	return SchemaVersion(ctx, ro)
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
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		res, err := createSQLiteFile(ctx, path, version)
		if !errors.Is(err, fs.ErrExist) {
			return res, err
		}
		// Another process made the file first: migrate theirs, which
		// waits for them to finish.
	}
	db, err := OpenSQLiteForMigration(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return MigrateTo(ctx, db, version)
}

// createSQLiteFile migrates a new database under a temporary name in
// path's directory and links it to path, failing with an error matching
// fs.ErrExist when path appeared meanwhile.
func createSQLiteFile(ctx context.Context, path string, version int64) ([]*goose.MigrationResult, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*") // mode 0600
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		// The temporary name is this call's alone.
		os.Remove(tmp)
		os.Remove(tmp + "-journal")
	}()
	db, err := sql.Open(SQLiteDriverName, sqliteDSN(tmp))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	res, err := MigrateTo(ctx, db, version)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp, path); err != nil {
		return nil, err
	}
	return res, nil
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
	if path != memoryPath {
		if _, err := createPrivate(path); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open(SQLiteDriverName, sqliteDSN(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// checkMigrated fails, writing nothing, unless db is at the latest version
// of fsys's migrations.
func checkMigrated(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	current, err := SchemaVersion(ctx, db)
	if err != nil {
		return err
	}
	switch latest := latestSchemaVersion(fsys); {
	case current > latest:
		return newerSchemaError(current, latest)
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

// OpenSQLiteDB opens the SQLite database at path for writing, as Open does for its
// writer, without migrating it: one connection, immediate transactions, the
// pragmas of SQLiteDSN, and a new file created with mode 0600. It checks that the
// file is a usable database before returning. Use it with New or Migrate.
func OpenSQLiteDB(path string) (*sql.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return openWriter(ctx, path)
}

// openWriter is OpenSQLiteDB retrying the switch to WAL while ctx lives (for at
// most maxWALSwitchWait when ctx has no deadline).
func openWriter(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" {
		return nil, invalid("path", "must not be empty")
	}
	if path != memoryPath {
		if _, err := createPrivate(path); err != nil {
			return nil, err
		}
	}
	sqlDB, err := sql.Open(SQLiteDriverName, SQLiteDSN(path))
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(1)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxWALSwitchWait)
		defer cancel()
	}
	// Connecting runs the pragmas, which is where a file that is not a
	// database is found out. Switching a file to WAL needs a lock that
	// SQLite does not wait for (another connection reading in
	// rollback-journal mode, a racing opener), so it is retried.
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err = sqlDB.PingContext(ctx)
		if err == nil {
			return sqlDB, nil
		}
		if !isBusy(err) {
			sqlDB.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			sqlDB.Close()
			return nil, err
		case <-time.After(wait + rand.N(wait)):
		}
	}
}

// maxWALSwitchWait bounds how long Open waits to switch a file to WAL
// when its context has no deadline.
const maxWALSwitchWait = 10 * time.Second

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
	cfg := newConfig(opts)
	return &Registry{st: newSQLiteStore(db, db), cfg: cfg}
}
