package sqlitestore

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// A new file is migrated under a temporary name, .<name>.new-<digits>,
// beside it (createSQLiteFile), which the process that builds it holds an
// exclusive flock on until it has linked it to its name, or given up, and
// removed it. A process killed meanwhile leaves the temporary file (and
// SQLite's -journal of it) behind, unlocked: the kernel releases a dead
// process's locks. removeAbandoned removes such files.

// building holds the temporary files that this process is building: it
// never opens them to try their lock, since closing a file that the
// process has open elsewhere drops SQLite's POSIX locks on it.
var building sync.Map // path → struct{}

// tempPattern is the os.CreateTemp pattern of path's temporary files.
func tempPattern(path string) string {
	return "." + filepath.Base(path) + ".new-*"
}

// isTempName reports whether name is one of path's temporary files, or
// the -journal of one: .<name>.new- followed by digits alone (what
// os.CreateTemp puts in place of the pattern's *).
func isTempName(path, name string) (journal bool, ok bool) {
	prefix := "." + filepath.Base(path) + ".new-"
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false, false
	}
	rest, journal = strings.CutSuffix(rest, "-journal")
	if rest == "" || strings.Trim(rest, "0123456789") != "" {
		return false, false
	}
	return journal, true
}

// removeAbandoned removes the temporary files of path that a process
// building them left behind when it died: those named as createSQLiteFile
// names them, regular files, not path itself, that no process holds the
// lock on (tried while removing, so that no builder can take it
// meanwhile); and -journal files whose temporary file is gone. Where it
// cannot prove a file abandoned, it leaves it; it reports nothing, since a
// leftover costs disk space alone.
func removeAbandoned(path string) {
	dir := filepath.Dir(path)
	matches, _ := filepath.Glob(filepath.Join(dir, tempPattern(path)))
	for _, m := range matches {
		journal, ok := isTempName(path, filepath.Base(m))
		if !ok || m == path {
			continue
		}
		if _, mine := building.Load(m); mine {
			continue
		}
		info, err := os.Lstat(m)
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if journal {
			if main := strings.TrimSuffix(m, "-journal"); !exists(main) {
				os.Remove(m)
			}
			continue
		}
		removeIfUnlocked(m)
	}
}

// removeIfUnlocked removes tmp and its -journal when it can take tmp's
// lock, holding it while it removes them.
func removeIfUnlocked(tmp string) {
	f, err := os.Open(tmp)
	if err != nil {
		return
	}
	defer f.Close()
	if ok, _ := tryLock(f); !ok {
		return // being built, or cannot tell
	}
	// Still the file that was locked: not replaced since it was opened.
	if fi, err := f.Stat(); err != nil || !sameFile(fi, tmp) {
		return
	}
	os.Remove(tmp + "-journal")
	os.Remove(tmp)
}

func sameFile(fi os.FileInfo, path string) bool {
	other, err := os.Lstat(path)
	return err == nil && os.SameFile(fi, other)
}
