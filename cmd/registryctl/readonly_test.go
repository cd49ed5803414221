package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/flowfabric/workerregistry/internal/clitest"
	"github.com/flowfabric/workerregistry/registry"
)

// readCommands are registryctl's commands that only read, and what each
// must print.
var readCommands = []struct {
	args []string
	want string
}{
	{[]string{"workers", "list"}, "w-1"},
	{[]string{"workers", "get", "-namespace", "ns", "-instance", "w-1"}, "w-1"},
	{[]string{"workers", "events", "-namespace", "ns"}, "registered"},
	{[]string{"leases", "expired"}, ""},
	{[]string{"leases", "orphaned"}, ""},
	{[]string{"stats"}, "ns"},
}

// TestReadOnlyUser: a user who may read the database file but write
// neither it nor its directory runs every read command, and migrate
// status, and leaves the directory as it was, byte for byte; writes fail
// with a message that says the registry is read-only. Then the same with a
// writer live (the -wal and -shm files exist), whose commits the reader
// sees. The commands run as an unprivileged user, which needs root.
func TestReadOnlyUser(t *testing.T) {
	cred := unprivileged(t)
	dir, path := readOnlyDB(t)
	ctl, migrate := sharedBinaries(t)
	runAs := func(bin string, args ...string) clitest.Result {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "REGISTRY_DB=", "GORACE=atexit_sleep_ms=0")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return runCmd(t, cmd)
	}
	checkReadOnly(t, dir, path, runAs, ctl, migrate)

	t.Run("writer live", func(t *testing.T) {
		reg, err := registry.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		live(t, reg, "ns", "w-2") // the -wal and -shm files now exist
		for _, suffix := range []string{"-wal", "-shm"} {
			if _, err := os.Stat(path + suffix); err != nil {
				t.Fatalf("with a writer live: %v", err)
			}
		}
		before := snapshot(t, dir)
		res := runAs(ctl, "-db", path, "workers", "list")
		if res.Code != 0 || !strings.Contains(res.Stdout, "w-2") {
			t.Fatalf("workers list beside a live writer: exit %d, want 0 and w-2 listed\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
		}
		if after := snapshot(t, dir); !slices.Equal(names(before), names(after)) {
			t.Errorf("files after a read beside a live writer: %q, want %q", names(after), names(before))
		}
	})
}

// TestReadOnlyMount: on a read-only bind mount of the database's
// directory, in a mount namespace of the test's own, every read command
// and migrate status work, writes fail saying the registry is read-only,
// and the directory stays as it was. It needs unshare(1) and the right to
// mount (root).
func TestReadOnlyMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a read-only bind mount needs root (unshare -m, mount --bind)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare(1) to make a private mount namespace")
	}
	dir, path := readOnlyDB(t)
	ctl, migrate := sharedBinaries(t)
	const script = `mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"`
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, dir, "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a read-only bind mount here (%v): %s", err, out)
	}
	runRO := func(bin string, args ...string) clitest.Result {
		cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, dir, bin}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "REGISTRY_DB=", "GORACE=atexit_sleep_ms=0")
		return runCmd(t, cmd)
	}
	checkReadOnly(t, dir, path, runRO, ctl, migrate)
}

// checkReadOnly runs the read commands, migrate status and a write through
// runAs on the registry at path, in dir, and checks that dir is unchanged.
func checkReadOnly(t *testing.T, dir, path string, runAs func(bin string, args ...string) clitest.Result, ctl, migrate string) {
	t.Helper()
	before := snapshot(t, dir)
	for _, c := range readCommands {
		for _, json := range []bool{false, true} {
			args := append([]string{"-db", path}, c.args...)
			if json {
				args = append(args, "-json")
			}
			res := runAs(ctl, args...)
			if res.Code != 0 || !strings.Contains(res.Stdout, c.want) {
				t.Errorf("registryctl %q: exit %d, want 0 and %q printed\nstdout: %s\nstderr: %s", args, res.Code, c.want, res.Stdout, res.Stderr)
			}
		}
	}
	res := runAs(migrate, "-db", path, "status")
	if res.Code != 0 || !strings.Contains(res.Stdout, "database version") {
		t.Errorf("migrate status: exit %d, want 0\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	for _, args := range [][]string{
		{"workers", "drain", "-namespace", "ns", "-instance", "w-1"},
		{"sweep"},
	} {
		res := runAs(ctl, append([]string{"-db", path}, args...)...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "read-only") {
			t.Errorf("registryctl %q: exit %d, want 1 and a message that says read-only\nstdout: %s\nstderr: %s", args, res.Code, res.Stdout, res.Stderr)
		}
	}
	if after := snapshot(t, dir); !slices.Equal(before, after) {
		t.Errorf("directory after read-only commands:\n%s\nwant, as before:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
}

// unprivileged returns the credentials of a user who is not root: nobody,
// or a user the test creates. It skips t when the test is not root (it
// cannot switch users) or there is no such user.
func unprivileged(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running commands as an unprivileged user needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		const name = "registry-ro-test"
		if u, err = user.Lookup(name); err != nil {
			if out, err := exec.Command("useradd", "--system", "--no-create-home", name).CombinedOutput(); err != nil {
				t.Skipf("no user nobody, and useradd %s failed (%v): %s", name, err, out)
			}
			if u, err = user.Lookup(name); err != nil {
				t.Skip(err)
			}
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if uid == 0 {
		t.Skipf("user %s is root", u.Username)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
}

// readOnlyDB makes a registry with one live worker in a directory that
// every user may enter and read, and no one but root write, with the
// database file readable by every user (mode 0644: an operator's read
// access; the registry creates it 0600). The registry is closed, so its
// -wal and -shm files are gone.
func readOnlyDB(t *testing.T) (dir, path string) {
	t.Helper()
	path = newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) {
		live(t, reg, "ns", "w-1")
	})
	dir = filepath.Dir(path)
	// t.TempDir's directory and the test's directory above it.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if ns := names(snapshot(t, dir)); !slices.Equal(ns, []string{"registry.db"}) {
		t.Fatalf("files beside the closed registry: %q", ns)
	}
	return dir, path
}

// sharedBinaries returns registryctl (this test binary) and migrate,
// copied where every user may run them: go's build directories are
// root's alone.
func sharedBinaries(t *testing.T) (ctl, migrate string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	copyExec := func(src, name string) string {
		dst := filepath.Join(bin, name)
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	migrateCmd := clitest.Build(t, "../migrate").Cmd("", nil)
	return wrapSelf(t, copyExec(os.Args[0], "registryctl.test")), copyExec(migrateCmd.Path, "migrate")
}

// wrapSelf returns a script that runs the copied test binary as
// registryctl (see clitest.Main).
func wrapSelf(t *testing.T, testBinary string) string {
	t.Helper()
	script := filepath.Join(filepath.Dir(testBinary), "registryctl")
	body := fmt.Sprintf("#!/bin/sh\nCLITEST_RUN_MAIN=1 exec %q \"$@\"\n", testBinary)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func runCmd(t *testing.T, cmd *exec.Cmd) clitest.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return clitest.Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// snapshot lists dir's files, each with its mode and a hash of its bytes.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fmt.Sprintf("%s %v %d %x", e.Name(), info.Mode(), len(b), sha256.Sum256(b)))
	}
	return files
}

// names is the file names of a snapshot.
func names(snap []string) []string {
	var ns []string
	for _, f := range snap {
		ns = append(ns, strings.Fields(f)[0])
	}
	return ns
}
