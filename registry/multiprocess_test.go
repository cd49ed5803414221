package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// Shape of the multi-process tests.
const (
	multiChildren     = 4
	multiFirstOpeners = 8   // processes opening a new file at once
	multiOps          = 300 // per child
	multiLeases       = 50  // seeded on a migrated file; every child walks them
	multiFinalTTL     = time.Hour
	multiFinalID      = "pool-final"
	multiLeasesEnv    = "REGISTRY_CHILD_LEASES"           // how many expired leases the file holds; unset: unknown
	multiEventsEnv    = "REGISTRY_CHILD_HEARTBEAT_EVENTS" // "all": every child writes heartbeat events; else the even ones
	multiStartLimit   = 2 * time.Minute                   // bound on a child's start-up, race detector included
)

var multiTTLs = []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond}

// multiTTL is the TTL an instance is always registered with: instance w-i
// gets multiTTLs[i%3].
func multiTTL(k workerKey) time.Duration {
	var i int
	fmt.Sscanf(k.Instance, "w-%d", &i)
	return multiTTLs[i%len(multiTTLs)]
}

// TestMultiProcessNoStorageErrors runs 4 processes (this test binary, re-
// executed) that hammer one database file at once, each with its own
// Registry, the real clock and short TTLs: registers, heartbeats, batches,
// mark-deads, drains, listings, sweeps and expired-lease walks over 8
// shared instances, 300 operations each. SQLite's locks are per file, not
// per process, and the package promises that writers of other processes
// wait for each other (BEGIN IMMEDIATE, busy_timeout) instead of failing
// with SQLITE_BUSY: every child must exit 0 having seen zero errors.
// Afterwards the file must pass integrity_check, each child's last
// registration (TTL 1 h) must be listed, and the audit log must be a
// well-formed history that records exactly the outcomes the children were
// told.
//
// The file is created and migrated by the parent first (concurrent first
// opens are TestMultiProcessConcurrentFirstOpen's subject), and the
// children start together: each waits for the parent's go. When every
// child writes heartbeat events, the replay of the audit log knows each
// registration's expiry and checks every event against the liveness rule
// across processes; when only half of them do, the other half heartbeat
// with a single autocommit statement, not a transaction.
func TestMultiProcessNoStorageErrors(t *testing.T) {
	t.Parallel()
	for _, allEvents := range []bool{true, false} {
		name := map[bool]string{true: "heartbeat events in every process", false: "heartbeat events in half of them"}[allEvents]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.db")
			r, err := registry.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			sqlDB, err := registry.OpenSQLiteDB(path)
			if err != nil {
				t.Fatal(err)
			}
			var leases []registrytest.Lease
			for i := range multiLeases {
				leases = append(leases, registrytest.Lease{
					ExecutionID: registry.ExecutionID{Partition: uint16(i % 12 * 1000)}, Namespace: "ns-a",
					WorkerInstanceID: "w-0", ExpiresAt: time.UnixMilli(int64(1000 + i%7)),
				})
			}
			registrytest.InsertLeases(t, sqlDB, leases...)
			if err := errors.Join(sqlDB.Close(), r.Close()); err != nil {
				t.Fatal(err)
			}
			env := []string{multiLeasesEnv + "=" + strconv.Itoa(multiLeases)}
			if allEvents {
				env = append(env, multiEventsEnv+"=all")
			}
			runMultiProcess(t, path, multiChildren, multiOps, allEvents, env...)
		})
	}
}

// TestMultiProcessConcurrentFirstOpen starts 8 processes that open the
// same new file at the same moment, as the processes of one deployment do
// when they start together, 3 times over. Open creates the file, switches
// it to WAL and migrates it; each process must succeed and register its
// worker, and the file must hold all 8 of them. The package documents
// that several processes may open the same file; nothing says the first
// ones must take turns.
func TestMultiProcessConcurrentFirstOpen(t *testing.T) {
	t.Parallel()
	for round := range 3 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			runMultiProcess(t, filepath.Join(t.TempDir(), "registry.db"), multiFirstOpeners, 0, false)
		})
	}
}

// multiChild is a started child and what it printed.
type multiChild struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   <-chan string
	stderr  bytes.Buffer
	summary map[string]string
}

// startChild starts a child in role on path, with env added to its
// environment, and reads its stdout; it is killed when the test ends.
func startChild(t *testing.T, role, path string, env ...string) *multiChild {
	t.Helper()
	c := &multiChild{cmd: childCommand(role, path, env...)}
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill() }) // after Wait, a no-op
	c.lines = readLines(stdout)
	return c
}

// readAll reads the child's stdout to its end: the summary line into
// c.summary, and every other line into the result.
func (c *multiChild) readAll() (other []string) {
	for line := range c.lines {
		if s, ok := strings.CutPrefix(line, "summary "); ok {
			c.summary = parseSummary(s)
		} else {
			other = append(other, line)
		}
	}
	return other
}

// runMultiProcess runs n children of ops operations each on path,
// together, and checks the result; allEvents says that every child writes
// heartbeat events.
func runMultiProcess(t *testing.T, path string, n, ops int, allEvents bool, env ...string) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	start := time.Now()
	children := make([]*multiChild, n)
	for i := range children {
		children[i] = startChild(t, "hammer", path, append([]string{
			envChildID + "=" + strconv.Itoa(i),
			envChildSeed + "=" + strconv.FormatUint(seed+uint64(i), 10),
			envChildOps + "=" + strconv.Itoa(ops),
		}, env...)...)
	}
	// Start together: each child says ready, then waits for go.
	deadline := time.After(multiStartLimit)
	for i, c := range children {
		if err := waitForLine(c.lines, "ready", deadline); err != nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
			t.Fatal(childFailure(fmt.Sprintf("child %d", i), err, c.stderr.String()))
		}
	}
	for _, c := range children {
		fmt.Fprintln(c.stdin, "go")
		c.stdin.Close()
	}
	for i, c := range children {
		other := c.readAll()
		err := c.cmd.Wait()
		if err != nil || c.summary == nil {
			t.Errorf("%s\n--- stdout ---\n%s", childFailure(fmt.Sprintf("child %d", i), err, c.stderr.String()), strings.Join(other, "\n"))
			continue
		}
		if c.summary["errors"] != "0" || c.summary["ops"] != strconv.Itoa(ops) {
			t.Errorf("child %d: summary %v, want errors=0 ops=%d\n--- stderr ---\n%s", i, c.summary, ops, c.stderr.String())
		}
		t.Logf("child %d: %v", i, c.summary)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d children x %d ops in %v", n, ops, time.Since(start).Round(time.Millisecond))

	integrityCheck(t, path)
	ctx := context.Background()
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after the children: %v", err)
	}
	defer r.Close()
	res, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: "ns-a", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	finals := map[string]registry.WorkerInfo{}
	for _, w := range res.Workers {
		if w.WorkerID == multiFinalID {
			finals[w.WorkerInstanceID] = w
		}
	}
	for i := range n {
		w, ok := finals[fmt.Sprintf("child-%d", i)]
		if !ok || w.LivenessTTL != multiFinalTTL || len(w.Lanes) != 1 || w.Lanes[0] != "final" {
			t.Errorf("child %d's last registration: %+v (listed: %v), want child-%d with TTL %v on lane final", i, w, ok, i, multiFinalTTL)
		}
	}
	equal(t, "final registrations listed", len(finals), n)

	sqlDB, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	events, workers := readState(t, sqlDB)
	// Unless every child writes heartbeat events, last_heartbeat_ms and
	// liveness cannot be checked against the log.
	stats := checkHistory(t, events, workers, historyOptions{exactHeartbeat: allEvents, shiftMS: sqliteShiftMS, ttl: func(k workerKey) time.Duration {
		if strings.HasPrefix(k.Instance, "child-") {
			return multiFinalTTL
		}
		return multiTTL(k)
	}})
	sum := func(key string, only func(c *multiChild) bool) int {
		n := 0
		for i, c := range children {
			if only != nil && !only(c) {
				continue
			}
			v, err := strconv.Atoi(c.summary[key])
			if err != nil {
				t.Fatalf("child %d: summary %v has no integer %s", i, c.summary, key)
			}
			n += v
		}
		return n
	}
	equal(t, "registered events (Registered outcomes)", stats.kinds["registered"], sum("registered", nil))
	equal(t, "refreshed events (Refreshed outcomes)", stats.kinds["refreshed"], sum("refreshed", nil))
	equal(t, "marked_dead events (Marked outcomes)", stats.kinds["marked_dead"], sum("marked", nil))
	equal(t, "drain_requested events (DrainRequested outcomes)", stats.kinds["drain_requested"], sum("drains", nil))
	equal(t, "heartbeat events (refreshed heartbeats of the children writing them)", stats.kinds["heartbeat"],
		sum("beats", func(c *multiChild) bool { return c.summary["heartbeat_events"] == "true" }))
	for i := range children {
		n := 0
		for _, e := range events {
			if e.Kind == "marked_dead" && strings.HasPrefix(e.Reason.String, fmt.Sprintf("p%d ", i)) {
				n++
			}
		}
		equal(t, fmt.Sprintf("child %d's marked_dead events", i), strconv.Itoa(n), children[i].summary["marked"])
	}
	// A sweep's ttl_swept events and a register's (over an expired row)
	// cannot be told apart by time here, but the register's is always
	// followed by its registered event.
	swept := sum("swept", nil)
	if ttl := stats.kinds["ttl_swept"]; swept > ttl || ttl-stats.replaced > swept {
		t.Errorf("ttl_swept events = %d, of which %d directly followed by a registration; sweeps reported %d: want %d-%d <= %d <= %d",
			ttl, stats.replaced, swept, ttl, stats.replaced, swept, ttl)
	}
	t.Logf("events: %v, %d ttl_swept by registers", stats.kinds, stats.replaced)
}

// waitForLine reads lines until one equals want, and fails at EOF or at
// the deadline.
func waitForLine(lines <-chan string, want string, deadline <-chan time.Time) error {
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return fmt.Errorf("exited before printing %q", want)
			}
			if line == want {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("did not print %q within %v", want, multiStartLimit)
		}
	}
}

// parseSummary parses "key=value key=value ...".
func parseSummary(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

// hammerCounts is what a hammer child reports.
type hammerCounts struct {
	ops, errors                              int
	registered, refreshed, reassigned, beats int
	marked, drains, sweeps, swept            int
}

// hammerChild is the body of a child of TestMultiProcessNoStorageErrors:
// wait for go, open the registry, run the operations, register this
// child's final worker, print a summary line; any error fails it.
func hammerChild(t *testing.T) {
	ctx := context.Background()
	path := os.Getenv(envChildDB)
	id, err1 := strconv.Atoi(os.Getenv(envChildID))
	seed, err2 := strconv.ParseUint(os.Getenv(envChildSeed), 10, 64)
	ops, err3 := strconv.Atoi(os.Getenv(envChildOps))
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("bad child environment: %v", err)
	}
	leases := -1
	if s := os.Getenv(multiLeasesEnv); s != "" {
		leases, _ = strconv.Atoi(s)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	heartbeatEvents := id%2 == 0 || os.Getenv(multiEventsEnv) == "all"

	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("waiting for go: %v", err)
	}
	r, err := registry.Open(ctx, path, registry.WithHeartbeatEvents(heartbeatEvents))
	if err != nil {
		t.Fatalf("child %d: %v", id, err)
	}
	defer r.Close()

	var keys []workerKey
	for _, ns := range []string{"ns-a", "ns-b"} {
		for i := range 4 {
			keys = append(keys, workerKey{ns, fmt.Sprintf("w-%d", i)})
		}
	}
	var c hammerCounts
	fail := func(op int, err error) {
		c.errors++
		t.Errorf("child %d, op %d: %v", id, op, err)
	}
	for i := range ops {
		c.ops++
		if err := hammerStep(ctx, r, rng, keys, id, i, leases, &c); err != nil {
			fail(i, err)
		}
	}
	final := registry.RegisterWorkerArgs{
		Namespace: "ns-a", WorkerID: multiFinalID, WorkerInstanceID: fmt.Sprintf("child-%d", id),
		Lanes: []string{"final"}, LivenessTTL: multiFinalTTL,
	}
	if o, err := r.RegisterWorker(ctx, final); err != nil || o != registry.Registered {
		fail(ops, fmt.Errorf("final register: %v, %v", o, err))
	} else {
		c.registered++
	}
	fmt.Printf("summary child=%d ops=%d errors=%d registered=%d refreshed=%d reassigned=%d beats=%d marked=%d drains=%d sweeps=%d swept=%d heartbeat_events=%t\n",
		id, c.ops, c.errors, c.registered, c.refreshed, c.reassigned, c.beats, c.marked, c.drains, c.sweeps, c.swept, heartbeatEvents)
}

// hammerStep runs one random operation on the real clock.
func hammerStep(ctx context.Context, r *registry.Registry, rng *rand.Rand, keys []workerKey, id, i, leases int, c *hammerCounts) error {
	k := keys[rng.IntN(len(keys))]
	countBeat := func(res registry.HeartbeatResult) error {
		switch res.Outcome {
		case registry.HeartbeatRefreshed:
			c.beats++
		case registry.HeartbeatNotRegistered:
		default:
			return fmt.Errorf("heartbeat %s: outcome %v", k, res.Outcome)
		}
		return nil
	}
	switch op := rng.IntN(100); {
	case op < 25:
		args := registry.RegisterWorkerArgs{
			Namespace: k.Namespace, WorkerID: "pool-" + k.Namespace, WorkerInstanceID: k.Instance,
			Lanes: []string{"default"}, LivenessTTL: multiTTL(k),
		}
		if rng.IntN(10) == 0 {
			args.WorkerID = stressIntruderID
		}
		o, err := r.RegisterWorker(ctx, args)
		switch {
		case errors.Is(err, registry.ErrInstanceReassigned):
			c.reassigned++
		case err != nil:
			return err
		case o == registry.Registered:
			c.registered++
		case o == registry.Refreshed:
			c.refreshed++
		default:
			return fmt.Errorf("register %s: outcome %v", k, o)
		}
	case op < 45:
		res, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: k.Namespace, WorkerInstanceID: k.Instance})
		if err != nil {
			return err
		}
		return countBeat(res)
	case op < 55:
		batch := make([]registry.HeartbeatWorkerArgs, 1+rng.IntN(4))
		for j := range batch {
			k := keys[rng.IntN(len(keys))]
			batch[j] = registry.HeartbeatWorkerArgs{Namespace: k.Namespace, WorkerInstanceID: k.Instance}
		}
		res, err := r.HeartbeatWorkers(ctx, batch)
		if err != nil {
			return err
		}
		for _, res := range res {
			if err := countBeat(res); err != nil {
				return err
			}
		}
	case op < 65:
		o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{
			Namespace: k.Namespace, WorkerInstanceID: k.Instance, Reason: fmt.Sprintf("p%d op%d", id, i),
		})
		if err != nil {
			return err
		}
		if o == registry.Marked {
			c.marked++
		}
	case op < 70:
		o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: k.Namespace, WorkerInstanceID: k.Instance})
		if err != nil {
			return err
		}
		if o == registry.DrainRequested {
			c.drains++
		}
	case op < 82:
		now := time.UnixMilli(time.Now().UnixMilli())
		if _, err := walkWorkers(ctx, r, registry.ListWorkersArgs{Limit: 1 + rng.IntN(4), Now: now}); err != nil {
			return err
		}
	case op < 92:
		rep, err := r.SweepExpiredWorkers(ctx, time.Time{})
		if err != nil {
			return err
		}
		c.sweeps++
		c.swept += rep.Swept
	default:
		if leases < 0 {
			return nil
		}
		args := registry.ListExpiredLeasesArgs{Namespace: "ns-a", Limit: 1 + rng.IntN(20)}
		n := 0
		for pages := 0; ; pages++ {
			if pages > leases {
				return fmt.Errorf("expired-lease walk: more than %d pages", leases)
			}
			res, err := r.ListExpiredLeases(ctx, args)
			if err != nil {
				return err
			}
			n += len(res.Leases)
			if res.Next == nil {
				break
			}
			args.After = res.Next
		}
		if n != leases {
			return fmt.Errorf("expired-lease walk in pages of %d: %d leases, want %d", args.Limit, n, leases)
		}
	}
	return nil
}
