package sqlitestore

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
)

// DriverName is the database/sql driver of the SQLite store
// (modernc.org/sqlite, pure Go).
const DriverName = "sqlite"

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

// MemoryPath is the path that opens a private in-memory database.
const MemoryPath = ":memory:"

// WriterDSN is the data source name of the writer connection to the
// database file at path: WAL, synchronous=NORMAL, foreign keys, immediate
// write transactions and a busy timeout of a few milliseconds (the write
// path retries SQLITE_BUSY itself: see write.go).
func WriterDSN(path string) string {
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

// IsBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED, in
// any of their extended forms.
func IsBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

// Inspect returns the registry schema version of the file at path,
// 0 for a file that does not exist, is empty or holds no registry. It
// refuses a file that is not a SQLite database. It reads through a
// query-only connection that leaves the file, and its journal mode, as
// they were; one that is read-only (readOnlyDSN) when this process cannot
// write the file.
func Inspect(ctx context.Context, path string) (int64, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Size() == 0) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	dsn := sqliteDSN(path, "_pragma=query_only(1)")
	if !Writable(path) {
		dsn = readOnlyDSN(path)
	}
	ro, err := sql.Open(DriverName, dsn)
	if err != nil {
		return 0, err
	}
	defer ro.Close()
	return SchemaVersion(ctx, ro)
}

// MigrateFile migrates the SQLite file at path up to and including
// version, as Migrate does, and returns what it applied. A missing file
// is built under a temporary name beside path and appears at path only
// once migrated, so a failure leaves no file behind, and a process that
// fails never removes a file that another process is creating or using.
// Temporary files that a process killed while building one left behind are
// removed (removeAbandoned). The journal mode is left alone (see
// OpenForMigration).
func MigrateFile(ctx context.Context, path string, version int64) ([]*goose.MigrationResult, error) {
	removeAbandoned(path)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		res, err := createSQLiteFile(ctx, path, version)
		if !errors.Is(err, fs.ErrExist) {
			return res, err
		}
		// Another process made the file first: migrate theirs, which
		// waits for them to finish.
	}
	db, err := OpenForMigration(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return Migrate(ctx, db, version)
}

// createSQLiteFile migrates a new database under a temporary name in
// path's directory and links it to path, failing with an error matching
// fs.ErrExist when path appeared meanwhile.
func createSQLiteFile(ctx context.Context, path string, version int64) ([]*goose.MigrationResult, error) {
	f, err := createLockedTemp(path)
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer func() {
		// The temporary name is this call's alone. It is removed under
		// the lock, which proves it is being built (see removeAbandoned).
		os.Remove(tmp)
		os.Remove(tmp + "-journal")
		f.Close()
		building.Delete(tmp)
	}()
	db, err := sql.Open(DriverName, sqliteDSN(tmp))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if testHookMigrating != nil {
		testHookMigrating(db)
	}
	res, err := Migrate(ctx, db, version)
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

// testHookMigrating, when set, runs as createSQLiteFile starts migrating
// the temporary file: a test kills the process there.
var testHookMigrating func(db *sql.DB)

// createLockedTemp creates a temporary file for path (tempPattern, mode
// 0600) and holds an exclusive lock on it, which tells removeAbandoned that
// it is being built: an unlocked one was left by a process that died.
func createLockedTemp(path string) (*os.File, error) {
	for {
		f, err := os.CreateTemp(filepath.Dir(path), tempPattern(path)) // mode 0600
		if err != nil {
			return nil, err
		}
		building.Store(f.Name(), struct{}{})
		// Another process's removeAbandoned may have taken the file for
		// abandoned, and removed it, before the lock was taken: then the
		// name is another file's, or none, and a new file is made.
		locked, lerr := tryLock(f)
		if errors.Is(lerr, errors.ErrUnsupported) {
			return f, nil // no locks: nothing is removed either
		}
		fi, serr := f.Stat()
		if locked && serr == nil && sameFile(fi, f.Name()) {
			return f, nil
		}
		f.Close()
		building.Delete(f.Name())
		if lerr != nil {
			return nil, lerr
		}
	}
}

// OpenForMigration opens the SQLite database at path, creating it (mode
// 0600) when missing, to be migrated: one connection with a busy timeout,
// and the journal mode left as the file has it, so that a migration that
// fails, or a command that only reads, never switches a file to WAL. An
// existing file that this process cannot write is opened read-only
// (OpenReadOnly), so that its version and status can be read: migrations
// then fail with SQLite's "attempt to write a readonly database".
func OpenForMigration(path string) (*sql.DB, error) {
	if path != MemoryPath && exists(path) && !Writable(path) {
		return OpenReadOnly(context.Background(), path)
	}
	if path != MemoryPath {
		if _, err := createPrivate(path); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open(DriverName, sqliteDSN(path))
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

// OpenWriter opens the writer connection to the file at path, creating it
// (mode 0600) when missing, and switches it to WAL, retrying the switch
// while ctx lives (for at most maxWALSwitchWait when ctx has no deadline).
func OpenWriter(ctx context.Context, path string) (*sql.DB, error) {
	if path != MemoryPath {
		if _, err := createPrivate(path); err != nil {
			return nil, err
		}
	}
	sqlDB, err := sql.Open(DriverName, WriterDSN(path))
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
		if !IsBusy(err) {
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

// OpenFile opens the store on the migrated file at path: a writer, which
// switches the file to WAL, and a read pool. Close closes both.
func OpenFile(ctx context.Context, path string) (*Store, error) {
	removeAbandoned(path)
	writer, err := OpenWriter(ctx, path)
	if err != nil {
		return nil, err
	}
	reader, err := sql.Open(DriverName, readerDSN(path))
	if err != nil {
		writer.Close()
		return nil, err
	}
	reader.SetMaxOpenConns(readerPoolSize())
	reader.SetMaxIdleConns(readerPoolSize())
	return New(writer, reader, true), nil
}
