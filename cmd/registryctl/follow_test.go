package main

import (
	"bufio"
	"context"
	"database/sql"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/clitest"
	"github.com/flowfabric/workerregistry/registry"
)

// follower is a registryctl process left running, its stdout read line by
// line as it comes.
type follower struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr strings.Builder
	seen   []string
}

func startFollower(t *testing.T, path string, args ...string) *follower {
	t.Helper()
	return startFollowerEnv(t, nil, path, args...)
}

// startFollowerEnv is startFollower with env added to the environment.
func startFollowerEnv(t *testing.T, env []string, path string, args ...string) *follower {
	t.Helper()
	cmd := clitest.Self().Cmd(t.TempDir(), env, append([]string{"-db", path}, args...)...)
	f := &follower{cmd: cmd, lines: make(chan string, 100)}
	cmd.Stderr = &f.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
		close(f.lines)
	}()
	return f
}

// waitFor reads lines until one satisfies ok, and fails the test if none
// does within a while.
func (f *follower) waitFor(t *testing.T, what string, ok func(line string) bool) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, open := <-f.lines:
			if !open {
				t.Fatalf("registryctl ended before printing %s; printed %q, stderr %q", what, f.seen, f.stderr.String())
			}
			f.seen = append(f.seen, line)
			if ok(line) {
				return line
			}
		case <-timeout:
			t.Fatalf("no %s after 20 s; printed %q, stderr %q", what, f.seen, f.stderr.String())
		}
	}
}

// stop sends sig and returns the exit code, after reading what is left.
func (f *follower) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := f.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	for line := range f.lines {
		f.seen = append(f.seen, line)
	}
	err := f.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// openRegistry opens the test's database as a process beside the follower.
func openTestRegistry(t *testing.T, path string) *registry.Registry {
	t.Helper()
	reg, err := registry.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// TestWorkersEventsFollow runs workers events -follow as a process, records
// events from another registry while it runs, sees them printed, and ends it
// with SIGINT: exit status 0, nothing on stderr. Without -since or -after it
// prints only the events recorded after it started.
func TestWorkersEventsFollow(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) { live(t, reg, "ns", "before") })
		f := startFollower(t, path, "workers", "events", "-follow")
		f.waitFor(t, "the header", func(line string) bool { return strings.HasPrefix(line, "ID ") })

		reg := openTestRegistry(t, path)
		live(t, reg, "ns", "w1")
		live(t, reg, "other", "w2")
		if o, err := reg.RequestDrain(context.Background(), registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w1", Reason: "follow me"}); err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		f.waitFor(t, "the drain", func(line string) bool { return strings.Contains(line, "drain_requested") })
		// Later events still arrive, polled again.
		live(t, reg, "ns", "w3")
		f.waitFor(t, "w3's registration", func(line string) bool { return strings.Contains(line, " w3 ") })

		if code := f.stop(t, os.Interrupt); code != 0 || f.stderr.String() != "" {
			t.Fatalf("after SIGINT: exit %d, stderr %q; want 0 and nothing", code, f.stderr.String())
		}
		var got []string
		for _, line := range f.seen[1:] {
			fields := strings.Fields(line)
			got = append(got, strings.Join(fields[2:], " "))
		}
		want := []string{"ns w1 registered -", "other w2 registered -", "ns w1 drain_requested follow me", "ns w3 registered -"}
		if !slices.Equal(got, want) {
			t.Fatalf("followed events (after ID and time) = %q, want %q", got, want)
		}
	})
}

// TestWorkersEventsFollowJSON follows one namespace from -since, with
// -json: the events already recorded print first, then new ones, one JSON
// object a line, and SIGTERM ends it cleanly too.
func TestWorkersEventsFollowJSON(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			register(t, reg, "ns", "old", "pool", []string{"default"}, nil, time.Hour, time.Now().Add(-2*time.Hour))
			live(t, reg, "ns", "recent")
			live(t, reg, "other", "elsewhere")
		})
		f := startFollower(t, path, "workers", "events", "-namespace", "ns", "-since", "1h", "-follow", "-json", "-limit", "1")
		first := decode[eventJSON](t, f.waitFor(t, "the recent event", func(string) bool { return true }))
		if first.WorkerInstanceID != "recent" || first.Kind != "registered" || first.Namespace != "ns" {
			t.Fatalf("first event = %+v, want ns/recent's registration", first)
		}
		reg := openTestRegistry(t, path)
		if _, err := reg.MarkWorkerDead(context.Background(), registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "recent", Reason: "gone"}); err != nil {
			t.Fatal(err)
		}
		live(t, reg, "other", "ignored")
		line := f.waitFor(t, "the kill", func(line string) bool { return strings.Contains(line, "marked_dead") })
		if e := decode[eventJSON](t, line); e.WorkerInstanceID != "recent" || e.Reason != "gone" || e.ID <= first.ID {
			t.Fatalf("marked_dead event = %+v", e)
		}
		if code := f.stop(t, syscall.SIGTERM); code != 0 || f.stderr.String() != "" {
			t.Fatalf("after SIGTERM: exit %d, stderr %q; want 0 and nothing", code, f.stderr.String())
		}
		if len(f.seen) != 2 {
			t.Fatalf("printed %q, want the two events of ns since an hour ago", f.seen)
		}
	})
}

// TestFollowerOfMissingDatabase fails at once rather than polling nothing.
func TestFollowerOfMissingDatabase(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	res := registryctl(t, t.TempDir(), nil, "-db", missing, "workers", "events", "-follow")
	if res.Code != 1 || !strings.Contains(res.Stderr, "no such database file") {
		t.Fatalf("exit %d, stderr %q", res.Code, res.Stderr)
	}
}

// TestFollowNewestN: -follow -newest N prints the newest N events, oldest
// first, then the new ones, as tail -n N -f does; "-newest N" and
// "-newest=N" alike.
func TestFollowNewestN(t *testing.T) {
	for _, newest := range [][]string{{"-newest", "2"}, {"-newest=2"}} {
		path := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) {
			for _, id := range []string{"w1", "w2", "w3", "w4"} {
				live(t, reg, "ns", id)
			}
		})
		f := startFollower(t, path, append([]string{"workers", "events", "-follow"}, newest...)...)
		f.waitFor(t, "w4's registration", func(line string) bool { return strings.Contains(line, " w4 ") })
		reg := openTestRegistry(t, path)
		live(t, reg, "ns", "w5-"+newest[0])
		f.waitFor(t, "a new registration", func(line string) bool { return strings.Contains(line, " w5-") })
		if code := f.stop(t, os.Interrupt); code != 0 {
			t.Fatalf("%q: exit %d, stderr %q", newest, code, f.stderr.String())
		}
		var got []string
		for _, line := range f.seen[1:] {
			got = append(got, strings.Fields(line)[3])
		}
		if want := []string{"w3", "w4", "w5-" + newest[0]}; len(got) < 3 || !slices.Equal(got[:3], want) {
			t.Fatalf("%q: followed instances %q, want %q first", newest, got, want)
		}
		reg.Close()
	}
}

// TestFollowRidesOutFailures: once -follow has read the log, failed reads
// (injected here; a server restart in life) do not end it: it says so on
// stderr, tries again with a growing pause, says when it reads again, and
// prints what was recorded meanwhile.
func TestFollowRidesOutFailures(t *testing.T) {
	path := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) {})
	f := startFollowerEnv(t, []string{followFaultsEnv + "=2"}, path, "workers", "events", "-follow")
	f.waitFor(t, "the header", func(line string) bool { return strings.HasPrefix(line, "ID ") })
	reg := openTestRegistry(t, path)
	live(t, reg, "ns", "during")
	f.waitFor(t, "the registration made while reads failed", func(line string) bool { return strings.Contains(line, " during ") })
	if code := f.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", code, f.stderr.String())
	}
	want := []string{
		"registryctl: workers events -follow: injected fault (" + followFaultsEnv + "); trying again in 500ms",
		"registryctl: workers events -follow: injected fault (" + followFaultsEnv + "); trying again in 1s",
		"registryctl: workers events -follow: reading the log again",
	}
	if got := strings.Split(strings.TrimSpace(f.stderr.String()), "\n"); !slices.Equal(got, want) {
		t.Fatalf("stderr %q, want %q", got, want)
	}
}

// TestFollowRidesOutTerminatedConnections cuts the follower's Postgres
// connections from the server side (pg_terminate_backend, as a server
// restart or a failover does): the follower says so on stderr, connects
// again, and prints what was recorded meanwhile.
func TestFollowRidesOutTerminatedConnections(t *testing.T) {
	path := newDB(t, postgresStore, func(reg *registry.Registry, _ *sql.DB) {})
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "registryctl-follow-test")
	u.RawQuery = q.Encode()
	f := startFollower(t, u.String(), "workers", "events", "-follow")
	f.waitFor(t, "the header", func(line string) bool { return strings.HasPrefix(line, "ID ") })

	admin, err := sql.Open("pgx", path)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'registryctl-follow-test'`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("terminated %d connections of the follower (%v)", n, err)
	}
	reg := openTestRegistry(t, path)
	live(t, reg, "ns", "after-cut")
	f.waitFor(t, "the registration made after the cut", func(line string) bool { return strings.Contains(line, " after-cut ") })
	if code := f.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", code, f.stderr.String())
	}
	if stderr := f.stderr.String(); !strings.Contains(stderr, "trying again in 500ms") || !strings.Contains(stderr, "reading the log again") {
		t.Fatalf("stderr %q, want the failure and the recovery said", stderr)
	}
}
