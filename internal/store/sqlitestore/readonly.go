package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrReadOnly is the error of every write of a store that OpenFileReadOnly
// opened: the process cannot write the database file, or its directory.
var ErrReadOnly = errors.New("registry is read-only: this process cannot write the database file")

// A file that this process cannot write is read without writing anything
// beside it, which takes care in WAL mode, the mode of every file the
// registry has opened (see readOnlyDSN):
//
//   - a file whose -wal or -shm file exists (a process has it open, or
//     one that had it open crashed) is read through them, with SQLite's
//     mode=ro: the -shm file must be readable by this process, and
//     readers see what writers commit meanwhile, as usual;
//   - a file without them, which no process has open, is read as
//     immutable=1: SQLite takes no lock and creates no -wal or -shm
//     file (mode=ro would create them, where the directory allows, and
//     leave them behind, owned by this process; where it does not, it
//     fails with "unable to open database file"). A writer that opens
//     the file afterwards is not seen: commits it makes while the
//     read-only registry is open are invisible to it, and a checkpoint
//     that it runs meanwhile can make a read fail, or read a mixture of
//     pages. A read-only registry is for short reads (registryctl's, an
//     operator's), or for a file that nothing writes.
//
// A file in rollback-journal mode (one the registry has not opened yet,
// FlowFabric's) is read with mode=ro and SQLite's locks.

// Writable reports whether this process can write the database file at
// path and create the files that SQLite writes beside it (its -wal and
// -shm, which may exist already); for a file that does not exist, whether
// it can create it. A file on a read-only mount is not writable.
func Writable(path string) bool {
	dir := filepath.Dir(path)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return canWrite(dir)
	}
	if !canWrite(path) {
		return false
	}
	return canWrite(dir) || (canWrite(path+"-wal") && canWrite(path+"-shm"))
}

// readOnlyDSN is readerDSN for a file this process cannot write: mode=ro,
// and immutable=1 when no process has the file open (see above).
func readOnlyDSN(path string, params ...string) string {
	params = append([]string{"mode=ro", "_pragma=query_only(1)"}, params...)
	if !exists(path+"-wal") && !exists(path+"-shm") {
		params = append(params, "immutable=1")
	}
	return sqliteDSN(path, params...)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// OpenReadOnly opens the existing database file at path for reading only,
// as readOnlyDSN describes, with one connection, and checks that it can
// be read.
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open(DriverName, readOnlyDSN(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenFileReadOnly opens the store on the migrated file at path, which this
// process cannot write, with a read pool alone: its writes fail with
// ErrReadOnly, and it leaves the file, and its directory, as they were.
func OpenFileReadOnly(ctx context.Context, path string) (*Store, error) {
	reader, err := sql.Open(DriverName, readOnlyDSN(path,
		"_pragma=cache_size(-65536)", "_pragma=mmap_size(1073741824)")) // as readerDSN
	if err != nil {
		return nil, err
	}
	reader.SetMaxOpenConns(readerPoolSize())
	reader.SetMaxIdleConns(readerPoolSize())
	if err := reader.PingContext(ctx); err != nil {
		reader.Close()
		return nil, err
	}
	s := New(reader, reader, true)
	s.readOnly = true
	return s, nil
}
