//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlitestore

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/schema"
)

// TestAbandonedTempFilesRemoved: the next MigrateFile removes the
// temporary files that no process holds the lock on, and their -journal
// files, and leaves a locked one (being built) and every file whose name
// only looks like one.
func TestAbandonedTempFilesRemoved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.db")
	for _, name := range []string{
		".registry.db.new-111",         // abandoned
		".registry.db.new-222",         // abandoned, with its journal
		".registry.db.new-222-journal", //
		".registry.db.new-333-journal", // a journal whose file is gone
		".registry.db.new-444",         // being built: locked
		".registry.db.new-abc",         // not CreateTemp's digits
		".registry.db.new-",            //
		".other.db.new-555",            // another database's
		"registry.db.new-666",          // no leading dot
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".registry.db.new-777"), 0o700); err != nil {
		t.Fatal(err)
	}
	locked, err := os.Open(filepath.Join(dir, ".registry.db.new-444"))
	if err != nil {
		t.Fatal(err)
	}
	defer locked.Close()
	if err := syscall.Flock(int(locked.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	latest := store.LatestVersion(schema.SQLite)
	if _, err := MigrateFile(ctx, path, latest); err != nil {
		t.Fatal(err)
	}
	want := []string{".other.db.new-555", ".registry.db.new-", ".registry.db.new-444", ".registry.db.new-777", ".registry.db.new-abc", "registry.db", "registry.db.new-666"}
	if got := list(t, dir); !slices.Equal(got, want) {
		t.Errorf("after MigrateFile: %q, want %q", got, want)
	}
	locked.Close() // its builder is gone
	s, err := OpenFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	want = slices.DeleteFunc(want, func(n string) bool { return n == ".registry.db.new-444" })
	if got := list(t, dir); !slices.Equal(got, want) {
		t.Errorf("after OpenFile: %q, want %q", got, want)
	}
}

// TestKilledFirstOpenCleanedUp kills (SIGKILL) a process while it migrates
// a new file under its temporary name, and shows that the next MigrateFile
// removes what it left and creates the file.
func TestKilledFirstOpenCleanedUp(t *testing.T) {
	const childEnv = "SQLITESTORE_TEST_MIGRATE_AND_HANG"
	if path := os.Getenv(childEnv); path != "" {
		testHookMigrating = func(db *sql.DB) {
			// Mid-migration: a transaction open, its journal written.
			if _, err := db.Exec("BEGIN IMMEDIATE; CREATE TABLE half_done (x); INSERT INTO half_done VALUES (1)"); err != nil {
				fmt.Println("error:", err)
				return
			}
			fmt.Println("migrating")
			time.Sleep(time.Minute)
		}
		MigrateFile(context.Background(), path, store.LatestVersion(schema.SQLite))
		os.Exit(0)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.db")
	child := exec.Command(os.Args[0], "-test.run=^TestKilledFirstOpenCleanedUp$")
	child.Env = append(os.Environ(), childEnv+"="+path)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "migrating\n" {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	left := list(t, dir)
	if len(left) != 2 {
		t.Fatalf("a killed first open left %q, want a temporary file and its journal", left)
	}
	latest := store.LatestVersion(schema.SQLite)
	if _, err := MigrateFile(context.Background(), path, latest); err != nil {
		t.Fatal(err)
	}
	if got := list(t, dir); !slices.Equal(got, []string{"registry.db"}) {
		t.Errorf("after the next MigrateFile: %q, want registry.db alone", got)
	}
	if v, err := Inspect(context.Background(), path); err != nil || v != latest {
		t.Errorf("registry.db at version %d (%v), want %d", v, err, latest)
	}
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
