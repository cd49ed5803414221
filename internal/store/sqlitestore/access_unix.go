//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlitestore

import "syscall"

// canWrite reports whether this process may write path (for a directory:
// create files in it), as access(2) judges: permissions, ACLs and
// read-only mounts. A path that does not exist cannot be written.
func canWrite(path string) bool {
	const wOK = 2 // W_OK
	return syscall.Access(path, wOK) == nil
}
