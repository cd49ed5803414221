package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// Shape of TestCrashKeepsCommittedWrites.
const (
	crashKills      = 20
	crashNamespace  = "crash"
	crashTTL        = time.Hour // nothing expires during the test: every row's fate is the child's doing
	crashChildLimit = 20 * time.Second
	crashIterLimit  = 30 * time.Second // bound on one start-to-kill cycle, race detector included
)

// TestCrashKeepsCommittedWrites kills a writing process with SIGKILL, 20
// times in a row on the same database file, and checks what SQLite's WAL
// with synchronous=NORMAL promises against process crashes: the file is
// intact and every write the process saw committed survives, all or
// nothing with its audit event.
//
// The child (this test binary, re-executed) registers, heartbeats and marks
// dead a dozen instances in a loop, one call at a time, and prints
// "begin <op> <instance> <now_ms>" before each call and
// "committed <op> <instance> <outcome> <expires_ms>" after it returns, on
// unbuffered stdout. The parent kills it at a random moment: shortly after
// it starts opening the file (during Open and its migration), after a
// random number of committed lines, or 20-200 ms into its writes. After
// each kill, integrity_check must say ok, registry.Open must succeed, and
// each instance's row must be exactly what the committed calls left,
// except that the one call in flight may or may not have committed (all
// of it or none). The audit log must still be a well-formed history of
// the rows, with one event per committed change (plus the in-flight one's
// if it committed). The child's own outcomes must agree with that state:
// a lost write would show as a heartbeat refreshing a row that should not
// exist, or the reverse.
func TestCrashKeepsCommittedWrites(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "registry.db")
	c := &crashCheck{t: t, path: path, model: map[string]crashRow{}}
	start := time.Now()
	for kill := range crashKills {
		c.round(kill, rng, seed+uint64(kill))
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d kills in %v: %d committed calls seen, %d in-flight calls found committed, %d not; %d events",
		crashKills, time.Since(start).Round(time.Millisecond), c.committed, c.inflightApplied, c.inflightLost, c.events)
	if c.committed == 0 {
		t.Error("the child never reported a committed call: nothing was tested")
	}
}

// crashRow is an instance's row as the parent expects it.
type crashRow struct {
	present   bool
	expiresMS int64
}

// crashOp is a call the child began.
type crashOp struct {
	op, instance string
	nowMS        int64
}

// apply returns the row after op, and the number of events op writes.
func (o crashOp) apply(row crashRow) (crashRow, int) {
	switch {
	case o.op == "register", o.op == "heartbeat" && row.present:
		return crashRow{true, o.nowMS + crashTTL.Milliseconds()}, 1
	case o.op == "markdead" && row.present:
		return crashRow{}, 1
	}
	return row, 0
}

// crashCheck is the parent's model of the database across kills.
type crashCheck struct {
	t     *testing.T
	path  string
	model map[string]crashRow // instance → row; absent means no row
	// events is the number of events the file holds.
	events int
	// Totals, for the log.
	committed, inflightApplied, inflightLost int
}

// round starts a child, kills it, and checks the file.
func (c *crashCheck) round(kill int, rng *rand.Rand, seed uint64) {
	t := c.t
	cmd := childCommand("crash", c.path, envChildSeed+"="+strconv.FormatUint(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(stdout)

	// When to kill: a trigger line, then a delay.
	var plan string
	trigger, nth, delay := "committed", 1, time.Duration(0)
	switch kill % 3 {
	case 0:
		trigger, delay = "opening", time.Duration(rng.IntN(40))*time.Millisecond
		plan = fmt.Sprintf("%v after it starts opening the file", delay)
	case 1:
		nth = 1 + rng.IntN(400)
		plan = fmt.Sprintf("at its committed call #%d", nth)
	default:
		delay = time.Duration(20+rng.IntN(181)) * time.Millisecond
		plan = fmt.Sprintf("%v after its first committed call", delay)
	}
	var got []string
	var killAt <-chan time.Time
	seen, killed := 0, false
	limit := time.After(crashIterLimit)
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			got = append(got, line)
			if !killed && killAt == nil && strings.HasPrefix(line, trigger) {
				if seen++; seen == nth {
					killAt = time.After(delay)
				}
			}
		case <-killAt:
			killAt, killed = nil, true
			cmd.Process.Kill()
		case <-limit:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kill %d: no kill %s within %v\n--- stderr ---\n%s", kill, plan, crashIterLimit, stderr.String())
		}
	}
	err = cmd.Wait()
	if !killed || (runtime.GOOS != "windows" && cmd.ProcessState.ExitCode() != -1) {
		t.Fatalf("kill %d (%s): the child ended by itself (%v)\n--- stdout ---\n%s\n--- stderr ---\n%s",
			kill, plan, err, strings.Join(got, "\n"), stderr.String())
	}

	// Replay what the child reported onto the model.
	var inflight *crashOp
	committed := 0
	for _, line := range got {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "begin":
			now, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil || inflight != nil {
				t.Fatalf("kill %d: bad line %q after %+v", kill, line, inflight)
			}
			inflight = &crashOp{op: f[1], instance: f[2], nowMS: now}
		case len(f) == 5 && f[0] == "committed":
			expires, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil || inflight == nil || inflight.op != f[1] || inflight.instance != f[2] {
				t.Fatalf("kill %d: bad line %q after %+v", kill, line, inflight)
			}
			before := c.model[inflight.instance]
			after, events := inflight.apply(before)
			if want := crashOutcome(inflight.op, before.present); f[3] != want || expires != after.expiresMS {
				t.Errorf("kill %d: child reported %q, but from the rows it started with and the calls it committed since, %s/%s had row %+v: want outcome %s, expiry %d (a committed write lost, or a phantom one)",
					kill, line, crashNamespace, inflight.instance, before, want, after.expiresMS)
			}
			c.set(inflight.instance, after)
			c.events += events
			committed++
			inflight = nil
		}
	}
	c.committed += committed
	t.Logf("kill %d (%s): %d committed calls, in flight: %+v", kill, plan, committed, inflight)

	// The file after the kill.
	integrityCheck(t, c.path)
	ctx := context.Background()
	r, err := registry.Open(ctx, c.path)
	if err != nil {
		t.Fatalf("kill %d: Open after the kill: %v", kill, err)
	}
	defer r.Close()
	sqlDB, err := registry.OpenSQLiteDB(c.path)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	events, workers := readState(t, sqlDB)
	checkHistory(t, events, workers, historyOptions{
		exactHeartbeat: true,
		ttl:            func(workerKey) time.Duration { return crashTTL },
		shiftMS:        sqliteShiftMS,
	})

	actual := map[string]crashRow{}
	for k, w := range workers {
		if k.Namespace != crashNamespace {
			t.Errorf("kill %d: row of unexpected namespace: %+v", kill, w)
		}
		actual[k.Instance] = crashRow{true, w.ExpiresMS}
	}
	instances := map[string]bool{}
	for inst := range c.model {
		instances[inst] = true
	}
	for inst := range actual {
		instances[inst] = true
	}
	eventsLo, eventsHi := c.events, c.events
	for inst := range instances {
		want, got := c.model[inst], actual[inst]
		if inflight == nil || inflight.instance != inst {
			if got != want {
				t.Errorf("kill %d: %s/%s has row %+v, want %+v: a committed write was lost or a phantom one appeared", kill, crashNamespace, inst, got, want)
			}
			continue
		}
		applied, n := inflight.apply(want)
		switch {
		case got == want && got == applied:
			eventsHi += n
		case got == applied:
			eventsLo, eventsHi = eventsLo+n, eventsHi+n
			c.inflightApplied++
		case got == want:
			c.inflightLost++
		default:
			t.Errorf("kill %d: %s/%s has row %+v; want %+v, or %+v if the call in flight (%+v) committed",
				kill, crashNamespace, inst, got, want, applied, *inflight)
		}
	}
	if len(events) < eventsLo || len(events) > eventsHi {
		t.Errorf("kill %d: %d events, want %d to %d: one per committed change, plus the in-flight call's if it committed",
			kill, len(events), eventsLo, eventsHi)
	}

	// The reopened registry lists exactly those rows.
	res, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: crashNamespace, Now: time.Now()})
	if err != nil {
		t.Fatalf("kill %d: ListWorkers after the kill: %v", kill, err)
	}
	listed := map[string]crashRow{}
	for _, w := range res.Workers {
		listed[w.WorkerInstanceID] = crashRow{true, w.ExpiresAt.UnixMilli()}
	}
	equal(t, fmt.Sprintf("kill %d: listed workers", kill), listed, actual)

	// The next child starts from what the file holds.
	c.model = actual
	c.events = len(events)
}

func (c *crashCheck) set(instance string, row crashRow) {
	if row.present {
		c.model[instance] = row
	} else {
		delete(c.model, instance)
	}
}

// crashOutcome is the outcome a call must report, given whether the
// instance had a (live) row.
func crashOutcome(op string, present bool) string {
	switch {
	case op == "register" && present:
		return registry.Refreshed.String()
	case op == "register":
		return registry.Registered.String()
	case op == "heartbeat" && present:
		return registry.HeartbeatRefreshed.String()
	case op == "heartbeat":
		return registry.HeartbeatNotRegistered.String()
	case op == "markdead" && present:
		return registry.Marked.String()
	}
	return registry.MarkNotRegistered.String()
}

// crashChild is the body of the child of TestCrashKeepsCommittedWrites: it
// writes until killed, reporting each call before and after. It never
// stops by itself before crashChildLimit, well past the parent's kill.
func crashChild(t *testing.T) {
	ctx := context.Background()
	seed, err := strconv.ParseUint(os.Getenv(envChildSeed), 10, 64)
	if err != nil {
		t.Fatalf("bad child environment: %v", err)
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	fmt.Println("opening")
	// Heartbeat events on: a heartbeat is then a transaction of two writes,
	// and every write of last_heartbeat_ms is in the log.
	r, err := registry.Open(ctx, os.Getenv(envChildDB), registry.WithHeartbeatEvents(true))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fmt.Println("opened")
	deadline := time.Now().Add(crashChildLimit)
	for time.Now().Before(deadline) {
		// w-* are never marked dead; m-* are, now and then.
		instance := fmt.Sprintf("w-%d", rng.IntN(8))
		op := []string{"register", "heartbeat", "heartbeat"}[rng.IntN(3)]
		if rng.IntN(3) == 0 {
			instance = fmt.Sprintf("m-%d", rng.IntN(4))
			op = []string{"register", "heartbeat", "markdead"}[rng.IntN(3)]
		}
		nowMS := time.Now().UnixMilli()
		now := time.UnixMilli(nowMS)
		fmt.Printf("begin %s %s %d\n", op, instance, nowMS)
		var outcome fmt.Stringer
		var expires int64
		switch op {
		case "register":
			o, err := r.RegisterWorker(ctx, registry.RegisterWorkerArgs{
				Namespace: crashNamespace, WorkerID: "crash-pool", WorkerInstanceID: instance,
				Lanes: []string{"default"}, LivenessTTL: crashTTL, Now: now,
			})
			if err != nil {
				t.Fatal(err)
			}
			outcome, expires = o, nowMS+crashTTL.Milliseconds()
		case "heartbeat":
			res, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: crashNamespace, WorkerInstanceID: instance, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			outcome = res.Outcome
			if res.Outcome == registry.HeartbeatRefreshed {
				expires = res.NextExpiry.UnixMilli()
			}
		default:
			o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: crashNamespace, WorkerInstanceID: instance, Reason: "crash test", Now: now})
			if err != nil {
				t.Fatal(err)
			}
			outcome = o
		}
		fmt.Printf("committed %s %s %s %d\n", op, instance, outcome, expires)
	}
	t.Fatalf("not killed within %v", crashChildLimit)
}
