//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlitestore

import (
	"errors"
	"io/fs"
	"os"
)

// canWrite reports whether path exists: where access(2) is not at hand,
// every file is taken for writable, and SQLite says otherwise when it is
// not.
func canWrite(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// tryLock locks nothing where flock(2) is not at hand: no temporary file
// is then proved abandoned, and none is removed (see removeAbandoned).
func tryLock(*os.File) (bool, error) { return false, errors.ErrUnsupported }
