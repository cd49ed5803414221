package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DriverName is the database/sql driver the registry uses for SQLite
// (modernc.org/sqlite, pure Go).
const DriverName = "sqlite"

// busyTimeoutMS bounds how long a statement waits for another connection's
// write lock before failing with SQLITE_BUSY. Write transactions are short,
// so a wait this long only happens under pathological load.
const busyTimeoutMS = 10000

// memoryPath is the path that opens a private in-memory database.
const memoryPath = ":memory:"

// DSN returns the data source name that Open uses for its writer connection
// to the database file at path. Use it with sql.Open(DriverName, DSN(path))
// to build a *sql.DB for New: it turns on WAL, synchronous=NORMAL, foreign
// keys, a busy timeout and immediate write transactions.
func DSN(path string) string {
	return sqliteDSN(path, "_txlock=immediate",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=cache_size(-16384)") // 16 MiB
}

// readerDSN is for the read pool. query_only makes an accidental write
// through it fail instead of contending with the writer.
func readerDSN(path string) string {
	return sqliteDSN(path, "_pragma=query_only(1)",
		"_pragma=cache_size(-65536)", // 64 MiB: the expired-lease walk's index pages
		"_pragma=mmap_size(1073741824)")
}

func sqliteDSN(path string, params ...string) string {
	common := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS),
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
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
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
