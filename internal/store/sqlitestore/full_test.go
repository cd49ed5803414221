//go:build linux

package sqlitestore

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/schema"
)

// TestDiskFullCheckpointsAndRetries heartbeats one registration, commit
// after commit, on a 2 MiB tmpfs: the WAL fills the disk long before
// SQLite's automatic checkpoint (1000 pages) would run, and each write
// that fails with SQLITE_FULL must checkpoint, which frees the WAL, and
// succeed on its retry. The tmpfs is mounted in a mount namespace of the
// test's own, which needs root and unshare(1).
func TestDiskFullCheckpointsAndRetries(t *testing.T) {
	const childEnv = "SQLITESTORE_TEST_FULL_DIR"
	if dir := os.Getenv(childEnv); dir != "" {
		fillDisk(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare(1) to make a private mount namespace")
	}
	dir := t.TempDir()
	const script = `mount -t tmpfs -o size=2m tmpfs "$0" && exec "$@"`
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, dir, "true").CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs in a mount namespace here (%v): %s", err, out)
	}
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, dir,
		os.Args[0], "-test.run=^TestDiskFullCheckpointsAndRetries$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("on a full disk: %v\n%s", err, out)
	}
}

// fillDisk writes on the small tmpfs at dir.
func fillDisk(t *testing.T, dir string) {
	ctx := context.Background()
	path := filepath.Join(dir, "registry.db")
	if _, err := MigrateFile(ctx, path, store.LatestVersion(schema.SQLite)); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.Writer()
	k := store.InstanceKey{Namespace: "ns", InstanceID: "w"}
	if err := w.UpsertWorker(ctx, store.WorkerRow{Namespace: "ns", WorkerInstanceID: "w", WorkerID: "pool",
		Lanes: "default", LastHeartbeatMs: 1, LivenessTTLMs: 1 << 40, RegisteredAtMs: 1}); err != nil {
		t.Fatal(err)
	}
	// About 8 KiB of WAL a commit: 4 MiB in all, twice the disk.
	for i := range 500 {
		if _, found, err := w.HeartbeatLiveWorker(ctx, k, nil, int64(2+i)); err != nil || !found {
			t.Fatalf("heartbeat %d: found %v, %v", i, found, err)
		}
	}
	fmt.Println("wrote 500 heartbeats")
}
