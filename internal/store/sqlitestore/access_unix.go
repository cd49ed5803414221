//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlitestore

import (
	"errors"
	"os"
	"syscall"
)

// canWrite reports whether this process may write path (for a directory:
// create files in it), as access(2) judges: permissions, ACLs and
// read-only mounts. A path that does not exist cannot be written.
func canWrite(path string) bool {
	const wOK = 2 // W_OK
	return syscall.Access(path, wOK) == nil
}

// tryLock takes an exclusive flock(2) on f without waiting, and reports
// whether it did: false when another open file holds one. flock's locks
// belong to an open file, not to a process, and are not SQLite's (POSIX
// fcntl locks), so the two never interfere.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
