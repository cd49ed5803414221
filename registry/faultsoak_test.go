package registry_test

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
)

// The fault soak beside the engine: worker loops in child processes (this
// test binary, re-executed), the registry's sweeper and operator calls
// (drain, resume, kill) in the parent, and FlowFabric's own register,
// heartbeat and sweep statements (verbatim, from ../shared) on their own
// instances, all on one database, FlowFabric's own, adopted, while faults
// are injected: SQLite's write lock held past the TTL from another
// connection (another process than the workers'), a worker process
// stopped with SIGSTOP past the TTL and continued, on Postgres every
// backend of the soak's clients terminated (pg_terminate_backend), and,
// with a cluster of the soak's own (REGISTRY_FAULTSOAK_PG_DIR, as
// scripts/pg-test-server prints it), the server restarted.
//
// The invariants:
//   - no loop says WorkerLive while its registration is absent or expired:
//     each child checks State against LiveUntil every 2 ms and prints its
//     state changes and every new LiveUntil with their times; the parent
//     reads the registrations every 20 ms and, whenever a worker was live
//     by its own account for the whole read, wants its row present and
//     unexpired (a killed worker may say live until its next heartbeat,
//     the time its loop needs to learn of the kill);
//   - every lapse is shown by State at LiveUntil, within faultLapseBound
//     (a stopped process shows it when it is continued: counted apart),
//     and OnStateChange reports each, in order;
//   - every drain and kill reaches its worker: Draining closes, and the
//     loop ends with ErrMarkedDead, and a killed instance never registers
//     again;
//   - no audit event is lost: one event for each change the test made
//     (drains, resumes, kills, registrations), event IDs contiguous on
//     SQLite, and the log a well-formed history of the rows
//     (checkHistory);
//   - the engine's statements fail only as the engine expects: with a
//     lock timeout (SQLITE_BUSY) or a lost connection, during a fault.
//
// The README's test command runs a few seconds per store;
// REGISTRY_FAULTSOAK_DURATION (`make soak`) runs longer, and
// REGISTRY_FAULTSOAK_REPORT names a file for the figures.

const (
	faultNS         = "soak"
	faultEngineNS   = "ffengine"
	faultTTL        = time.Second
	faultChildren   = 3
	faultPerChild   = 2
	faultHold       = faultTTL * 8 / 5 // how long a fault lasts: past the TTL
	faultSample     = 20 * time.Millisecond
	faultLapseBound = 250 * time.Millisecond // a timer and a wake-up, under the race detector on a busy machine
	// faultClockTolerance is how far the registry's reading of the
	// Postgres server's clock may be from the machine's (which is the
	// server's) in these checks: half a round trip on a loaded machine.
	faultClockTolerance = 10 * time.Millisecond
)

func faultDuration(t *testing.T) time.Duration {
	if s := os.Getenv("REGISTRY_FAULTSOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("REGISTRY_FAULTSOAK_DURATION=%q: %v", s, err)
		}
		return d
	}
	return 6 * time.Second
}

func TestFaultSoak(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{engineSQLite, enginePostgres} {
		t.Run(engine, func(t *testing.T) { runFaultSoak(t, engine) })
	}
}

// faultWorkerChild is a child of TestFaultSoak: it opens the registry at
// envChildDB and, on "start <instance>" read from stdin, starts a worker
// loop; it prints, each line "<kind> <instance> <unix µs> [value]":
// started (value: LiveUntil in ms), until (a new LiveUntil), state (a
// change, as OnStateChange reported it), seen (a change of State, as a
// poll every 2 ms saw it), draining, ended (value: marked_dead or the error), violation
// (State said live at or after LiveUntil). On "quit" it stops its workers.
func faultWorkerChild(t *testing.T) {
	ctx := context.Background()
	r, err := registry.Open(ctx, os.Getenv(envChildDB))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var mu sync.Mutex
	say := func(kind, inst string, value any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("%s %s %d %v\n", kind, inst, time.Now().UnixMicro(), value)
	}
	fmt.Println("ready")
	// The registry's clock on Postgres is the server's as the child
	// measured it, within half a round trip of the machine's.
	var tolerance time.Duration
	if registry.IsPostgresDSN(os.Getenv(envChildDB)) {
		tolerance = faultClockTolerance
	}
	var workers []*registry.Worker
	var watchers sync.WaitGroup
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 1 && f[0] == "quit" {
			break
		}
		if len(f) != 2 || f[0] != "start" {
			t.Fatalf("unknown command %q", in.Text())
		}
		inst := f[1]
		cfg := registry.WorkerConfig{
			Namespace: faultNS, WorkerID: "pool", WorkerInstanceID: inst, Lanes: []string{"default"},
			LivenessTTL:   faultTTL,
			OnStateChange: func(s registry.WorkerState) { say("state", inst, s) },
		}
		// A process starting during a fault (a terminated connection, a
		// server restarting) tries again, as a deployment's would.
		w, err := r.StartWorker(ctx, cfg)
		for try := 0; err != nil && !errors.Is(err, registry.ErrInvalidInput) && !errors.Is(err, registry.ErrMarkedDead) && try < 100; try++ {
			time.Sleep(100 * time.Millisecond)
			w, err = r.StartWorker(ctx, cfg)
		}
		if err != nil {
			say("startfailed", inst, strings.ReplaceAll(err.Error(), " ", "_"))
			continue
		}
		until := w.LiveUntil()
		say("started", inst, until.UnixMilli())
		workers = append(workers, w)
		watchers.Go(func() {
			draining := w.Draining()
			seen := registry.WorkerLive
			for {
				// One poll reads LiveUntil, State, LiveUntil: a poll across a
				// renewal is dropped, so that the state and the deadline
				// printed belong together. OnStateChange's calls run on a
				// goroutine of their own and may be printed after the
				// renewal that followed a lapse (a process continued after
				// SIGSTOP runs both at once): the parent judges lapses by
				// these polls ("seen") and checks the calls apart.
				now := time.Now()
				u := w.LiveUntil()
				s := w.State()
				if !w.LiveUntil().Equal(u) {
					continue
				}
				if s == registry.WorkerLive && !now.Before(u.Add(tolerance)) {
					say("violation", inst, fmt.Sprintf("live_%s_after_LiveUntil", now.Sub(u)))
				}
				if !u.Equal(until) {
					until = u
					say("until", inst, u.UnixMilli())
				}
				if s != seen {
					seen = s
					say("seen", inst, s)
				}
				select {
				case <-draining:
					say("draining", inst, "-")
					draining = nil
				case <-w.Done():
					what := "ok"
					if err := w.Err(); errors.Is(err, registry.ErrMarkedDead) {
						what = "marked_dead"
					} else if err != nil {
						what = strings.ReplaceAll(err.Error(), " ", "_")
					}
					say("ended", inst, what)
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		})
	}
	for _, w := range workers {
		// Stop's deregistration has a deadline no later than the
		// registration's expiry: after a fault near the end it can time
		// out, and the registration then lapses, as it should. Say so on
		// stderr rather than fail the child.
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := w.Stop(sctx); err != nil {
			fmt.Fprintf(os.Stderr, "stop: %v\n", err)
		}
		cancel()
	}
	watchers.Wait()
}

// faultLine is a line a child printed.
type faultLine struct {
	kind, inst string
	at         time.Time
	value      string
}

// linesNear formats an instance's lines from 3 s before at to 1 s after,
// for a failure's message.
func linesNear(ls []faultLine, at time.Time) string {
	var b strings.Builder
	for _, l := range ls {
		if l.at.After(at.Add(-3*time.Second)) && l.at.Before(at.Add(time.Second)) {
			fmt.Fprintf(&b, "\t%s %s %s\n", l.at.Format("15:04:05.000000"), l.kind, l.value)
		}
	}
	return b.String()
}

// faultWindow is a fault: its kind, the child it stopped (or -1), and when.
type faultWindow struct {
	kind       string
	child      int
	start, end time.Time
}

// faultSampleRow is one read of a worker's registration.
type faultSampleRow struct {
	from, to time.Time // the read's start and end
	present  bool
	expires  int64 // ms
}

// faultOp is an operator call the parent made, with its outcome.
type faultOp struct {
	kind, inst string
	at         time.Time
}

// faultChild is a running child and what it printed.
type faultChild struct {
	*multiChild
	mu  sync.Mutex
	got []faultLine
}

func (c *faultChild) snapshot() []faultLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// soakEngine runs the engine's statements (read verbatim from ../shared)
// as the engine does, one transaction per operation, returning errors
// instead of failing: the soak judges them.
type soakEngine struct {
	db *sql.DB
	pg bool
	s  flowfabrictest.SQL
	p  flowfabrictest.PGSQL
}

func (e *soakEngine) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (e *soakEngine) register(ctx context.Context, ns, inst string, ttl time.Duration) error {
	now := time.Now().UnixMilli()
	return e.inTx(ctx, func(tx *sql.Tx) error {
		var existing string
		if !e.pg {
			if err := tx.QueryRowContext(ctx, e.s.RegisterSelect, ns, inst).Scan(&existing); err != nil && err != sql.ErrNoRows {
				return err
			}
			if _, err := tx.ExecContext(ctx, e.s.RegisterUpsert, ns, inst, "engine-pool", "default", "", now, ttl.Milliseconds(), now); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, e.s.RegisterEvent, ns, inst, now)
			return err
		}
		pk := flowfabrictest.Partition(inst)
		if err := tx.QueryRowContext(ctx, e.p.RegisterSelect, pk, ns, inst).Scan(&existing); err != nil && err != sql.ErrNoRows {
			return err
		}
		var one int64
		if err := tx.QueryRowContext(ctx, e.p.RegisterExists, pk, ns, inst).Scan(&one); err != nil && err != sql.ErrNoRows {
			return err
		}
		if _, err := tx.ExecContext(ctx, e.p.RegisterUpsert, pk, ns, inst, "engine-pool", []string{"default"}, "", now, ttl.Milliseconds(), now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, e.p.RegisterEvent, pk, ns, inst, now)
		return err
	})
}

// heartbeat reports whether the registration was there to refresh.
func (e *soakEngine) heartbeat(ctx context.Context, ns, inst string) (found bool, err error) {
	now := time.Now().UnixMilli()
	err = e.inTx(ctx, func(tx *sql.Tx) error {
		var ttl int64
		var err error
		var ev string
		var args []any
		if e.pg {
			pk := flowfabrictest.Partition(inst)
			err = tx.QueryRowContext(ctx, e.p.Heartbeat, pk, ns, inst, now).Scan(&ttl)
			ev, args = e.p.HeartbeatEvent, []any{pk, ns, inst, now}
		} else {
			err = tx.QueryRowContext(ctx, e.s.Heartbeat, ns, inst, now).Scan(&ttl)
			ev, args = e.s.HeartbeatEvent, []any{ns, inst, now}
		}
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		_, err = tx.ExecContext(ctx, ev, args...)
		return err
	})
	return found && err == nil, err
}

// sweep is the engine's TTL sweep tick: on SQLite one statement and an
// event per row, on Postgres one statement per partition.
func (e *soakEngine) sweep(ctx context.Context) error {
	now := time.Now().UnixMilli()
	if e.pg {
		for pk := range int16(256) {
			var n int64
			if err := e.db.QueryRowContext(ctx, e.p.Sweep, pk, now).Scan(&n); err != nil {
				return err
			}
		}
		return nil
	}
	return e.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, e.s.Sweep, now)
		if err != nil {
			return err
		}
		var swept [][2]string
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return err
			}
			swept = append(swept, k)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, k := range swept {
			if _, err := tx.ExecContext(ctx, e.s.SweepEvent, k[0], k[1], now); err != nil {
				return err
			}
		}
		return nil
	})
}

// engineExpects reports whether err is one the engine's code expects and
// retries: the lock's busy timeout on SQLite; a lost connection, a
// terminated backend or a server shutting down or starting on Postgres.
func engineExpects(err error, pg bool) bool {
	s := err.Error()
	if !pg {
		return strings.Contains(s, "database is locked") || strings.Contains(s, "SQLITE_BUSY")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		strings.Contains(s, "connection refused") || strings.Contains(s, "conn closed") ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe") || strings.Contains(s, "unexpected EOF")
}

// faultFigures is what a fault soak counted.
type faultFigures struct {
	store                      string
	duration                   time.Duration
	faults                     map[string]int
	lapses                     int
	lateMS                     []float64 // how late each lapse was reported, ms after LiveUntil
	stoppedLapses              int       // lapses of a stopped process, reported once continued
	earlyLapses                int       // lapses found by a heartbeat (a kill) before LiveUntil
	drains, drainsDelivered    int
	kills, killsDelivered      int
	resumes                    int
	maxDrainMS, maxKillMS      float64
	samples, violations        int
	engineOps, engineExpected  int
	engineUnexpected           int
	engineBusy                 int // SQLITE_BUSY outside a fault: logged, not failed
	events, eventsLost         int
	registrations, reregisters int
}

func runFaultSoak(t *testing.T, engine string) {
	duration := faultDuration(t)
	ctx := context.Background()
	var dsn string
	var raw *sql.DB
	eng := &soakEngine{pg: engine == enginePostgres}
	pgDir := os.Getenv("REGISTRY_FAULTSOAK_PG_DIR")
	if eng.pg {
		p := flowfabrictest.Postgres(t) // skips without REGISTRY_TEST_POSTGRES or ../shared
		eng.p = flowfabrictest.PGStatements(t)
		dsn, raw = p.DSN, p.DB
	} else {
		dsn = flowfabrictest.SQLite(t) // skips without ../shared
		eng.s = flowfabrictest.Statements(t)
		var err error
		if raw, err = sql.Open(registry.SQLiteDriverName, registry.SQLiteDSN(dsn)); err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
	}
	withApp := func(app string) string {
		if !eng.pg {
			return dsn
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "application_name=faultsoak_" + app
	}
	r, err := registry.Open(ctx, withApp("parent"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	driverName := registry.SQLiteDriverName
	// The engine's statements wait up to 5 s for the write lock, sqlx's
	// default for SQLite, as the engine's do: SQLiteDSN's few milliseconds
	// suit the registry, which retries SQLITE_BUSY itself. (With 1 s, on a
	// loaded machine under the race detector, an engine statement timed
	// out as the soak began, with seven processes starting and writing.)
	engineDSN := registry.SQLiteDSN(dsn) + "&_pragma=busy_timeout(5000)"
	if eng.pg {
		driverName, engineDSN = "pgx", withApp("engine")
	}
	if eng.db, err = sql.Open(driverName, engineDSN); err != nil {
		t.Fatal(err)
	}
	defer eng.db.Close()

	fig := faultFigures{store: engine, duration: duration, faults: map[string]int{}}
	var mu sync.Mutex // guards what the goroutines below record
	var windows []faultWindow
	var ops []faultOp
	var engineErrs []struct {
		at  time.Time
		err error
	}
	samples := map[string][]faultSampleRow{}

	bg, stopBG := context.WithCancel(ctx)
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()

	// The children.
	children := make([]*faultChild, faultChildren)
	next := make([]int, faultChildren) // each child's next instance number
	start := func(c int) string {
		inst := fmt.Sprintf("w-%d-%d", c, next[c])
		next[c]++
		fmt.Fprintf(children[c].stdin, "start %s\n", inst)
		return inst
	}
	deadline := time.After(multiStartLimit)
	for i := range children {
		children[i] = &faultChild{multiChild: startChild(t, "faultworker", withApp(fmt.Sprintf("child%d", i)))}
	}
	for i, c := range children {
		if err := waitForLine(c.lines, "ready", deadline); err != nil {
			t.Fatal(childFailure(fmt.Sprintf("child %d", i), err, c.stderr.String()))
		}
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			for line := range c.lines {
				f := strings.SplitN(line, " ", 4)
				if len(f) != 4 {
					continue
				}
				us, _ := strconv.ParseInt(f[2], 10, 64)
				c.mu.Lock()
				c.got = append(c.got, faultLine{kind: f[0], inst: f[1], at: time.UnixMicro(us), value: f[3]})
				c.mu.Unlock()
			}
		}()
		t.Cleanup(func() { <-readerDone })
		for range faultPerChild {
			start(i)
		}
	}
	// The instances the operator may act on: started, not killed.
	active := func() (insts []string, child map[string]int) {
		child = map[string]int{}
		for i, c := range children {
			for _, l := range c.snapshot() {
				switch l.kind {
				case "started":
					child[l.inst] = i
				case "ended":
					delete(child, l.inst)
				}
			}
		}
		mu.Lock()
		for _, op := range ops {
			if op.kind == "kill" {
				delete(child, op.inst)
			}
		}
		mu.Unlock()
		for inst := range child {
			insts = append(insts, inst)
		}
		slices.Sort(insts)
		return insts, child
	}
	waitFor(t, "every child's workers started", func() bool {
		insts, _ := active()
		return len(insts) == faultChildren*faultPerChild
	})

	// The registry's sweeper, as a deployment runs it.
	bgWG.Go(func() { r.RunSweeper(bg, registry.SweeperConfig{Interval: 200 * time.Millisecond}) })

	// The engine: two instances of its own, heartbeating every 300 ms and
	// registering again when swept, and its sweep every 500 ms.
	engineErr := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		fig.engineOps++
		if err != nil {
			engineErrs = append(engineErrs, struct {
				at  time.Time
				err error
			}{time.Now(), err})
		}
	}
	for i := range 2 {
		inst := fmt.Sprintf("e-%d", i)
		engineErr(eng.register(ctx, faultEngineNS, inst, faultTTL))
		bgWG.Go(func() {
			for i := 0; bg.Err() == nil; i++ {
				time.Sleep(300 * time.Millisecond)
				found, err := eng.heartbeat(ctx, faultEngineNS, inst)
				engineErr(err)
				if err == nil && !found {
					engineErr(eng.register(ctx, faultEngineNS, inst, faultTTL))
				}
				if i%2 == 1 && inst == "e-0" {
					engineErr(eng.sweep(ctx))
				}
			}
		})
	}

	// The observer: every registration of the children's namespace.
	bgWG.Go(func() {
		q := `SELECT worker_instance_id, last_heartbeat_ms + liveness_ttl_ms FROM ff_worker_registry WHERE namespace = ?`
		if eng.pg {
			q = strings.Replace(q, "?", "$1", 1)
		}
		for bg.Err() == nil {
			time.Sleep(faultSample)
			from := time.Now()
			rows, err := raw.QueryContext(bg, q, faultNS)
			if err != nil {
				continue
			}
			got := map[string]int64{}
			for rows.Next() {
				var inst string
				var exp int64
				if rows.Scan(&inst, &exp) == nil {
					got[inst] = exp
				}
			}
			if rows.Err() != nil {
				rows.Close()
				continue
			}
			rows.Close()
			to := time.Now()
			insts, _ := active()
			mu.Lock()
			for _, inst := range insts {
				exp, ok := got[inst]
				samples[inst] = append(samples[inst], faultSampleRow{from: from, to: to, present: ok, expires: exp})
			}
			mu.Unlock()
		}
	})

	// The operator: every 300 ms a drain, a resume or a kill (then a new
	// worker in the killed one's process).
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	opsDone := make(chan struct{})
	go func() {
		defer close(opsDone)
		drained, resumed := map[string]bool{}, map[string]bool{}
		for i := 0; bg.Err() == nil; i++ {
			time.Sleep(300 * time.Millisecond)
			insts, child := active()
			if len(insts) == 0 {
				continue
			}
			inst := insts[rng.IntN(len(insts))]
			at := time.Now()
			switch k := rng.IntN(10); {
			case k < 4 && !drained[inst]:
				if o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: faultNS, WorkerInstanceID: inst}); err == nil && o == registry.DrainRequested {
					drained[inst] = true
					mu.Lock()
					ops = append(ops, faultOp{"drain", inst, at})
					mu.Unlock()
				}
			case k < 7 && drained[inst] && !resumed[inst] && delivered(children[child[inst]], "draining", inst):
				// Only a drain its worker heard: one withdrawn before its
				// next heartbeat is rightly never heard.
				if o, err := r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: faultNS, WorkerInstanceID: inst}); err == nil && o == registry.Resumed {
					resumed[inst] = true
					mu.Lock()
					ops = append(ops, faultOp{"resume", inst, at})
					mu.Unlock()
				}
			case k >= 8 && (!drained[inst] || resumed[inst] || delivered(children[child[inst]], "draining", inst)):
				if o, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: faultNS, WorkerInstanceID: inst, Reason: "fault soak"}); err == nil && o == registry.Marked {
					mu.Lock()
					ops = append(ops, faultOp{"kill", inst, at})
					mu.Unlock()
					start(child[inst])
				}
			}
		}
	}()

	// The faults, one at a time, each held past the TTL, with a quiet
	// stretch between them.
	kinds := []string{"write_lock", "sigstop"}
	if eng.pg {
		kinds = []string{"sigstop", "pg_terminate_backend"}
		if pgDir != "" {
			kinds = append(kinds, "server_restart")
		}
	}
	frng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	began := time.Now()
	for i := 0; time.Since(began) < duration; i++ {
		time.Sleep(700 * time.Millisecond)
		w := faultWindow{kind: kinds[i%len(kinds)], child: -1, start: time.Now()}
		switch w.kind {
		case "write_lock":
			conn, err := raw.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(faultHold)
			if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
				t.Fatal(err)
			}
			conn.Close()
		case "sigstop":
			w.child = frng.IntN(faultChildren)
			p := children[w.child].cmd.Process
			if err := p.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(faultHold)
			if err := p.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		case "pg_terminate_backend":
			if _, err := raw.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name LIKE 'faultsoak\_%' AND pid <> pg_backend_pid()`); err != nil {
				t.Fatal(err)
			}
			time.Sleep(faultHold)
		case "server_restart":
			out, err := exec.Command(filepath.Join("..", "scripts", "pg-test-server"), "restart", pgDir).CombinedOutput()
			if err != nil {
				t.Fatalf("restart: %v\n%s", err, out)
			}
			time.Sleep(faultHold)
		}
		w.end = time.Now()
		mu.Lock()
		windows = append(windows, w)
		fig.faults[w.kind]++
		mu.Unlock()
	}
	// Settle: every lapsed worker live again, every drain and kill heard.
	stopBG()
	<-opsDone
	bgWG.Wait()
	settle := time.Now().Add(5 * time.Second)
	for time.Now().Before(settle) && !allDelivered(children, ops) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range children {
		fmt.Fprintln(c.stdin, "quit")
		c.stdin.Close()
	}
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("%s", childFailure(fmt.Sprintf("child %d", i), err, c.stderr.String()))
		}
	}

	checkFaultSoak(t, &fig, children, windows, ops, samples, engineErrs, eng.pg)
	events, workers := readState(t, raw)
	checkFaultEvents(t, &fig, events, workers, ops, !eng.pg)
	t.Log(fig.String())
	appendReportRow(t, os.Getenv("REGISTRY_FAULTSOAK_REPORT"), faultFiguresHeader, fig.String())
}

// delivered reports whether c printed a line of kind for inst.
func delivered(c *faultChild, kind, inst string) bool {
	for _, l := range c.snapshot() {
		if l.kind == kind && l.inst == inst {
			return true
		}
	}
	return false
}

// allDelivered reports whether every drain and kill has been heard.
func allDelivered(children []*faultChild, ops []faultOp) bool {
	heard := map[string]bool{}
	for _, c := range children {
		for _, l := range c.snapshot() {
			switch {
			case l.kind == "draining":
				heard["drain "+l.inst] = true
			case l.kind == "ended" && l.value == "marked_dead":
				heard["kill "+l.inst] = true
			}
		}
	}
	for _, op := range ops {
		if op.kind != "resume" && !heard[op.kind+" "+op.inst] {
			return false
		}
	}
	return true
}

// checkFaultSoak checks what the children printed against the faults, the
// operator's calls and the registrations read from the database.
func checkFaultSoak(t *testing.T, fig *faultFigures, children []*faultChild, windows []faultWindow, ops []faultOp,
	samples map[string][]faultSampleRow, engineErrs []struct {
		at  time.Time
		err error
	}, pg bool) {
	t.Helper()
	budget := newErrorBudget(t)
	defer budget.close()
	killedAt := map[string]time.Time{}
	drainedAt := map[string]time.Time{}
	for _, op := range ops {
		switch op.kind {
		case "kill":
			killedAt[op.inst] = op.at
			fig.kills++
		case "drain":
			drainedAt[op.inst] = op.at
			fig.drains++
		case "resume":
			fig.resumes++
		}
	}
	inFault := func(at time.Time, grace time.Duration) bool {
		for _, w := range windows {
			if !at.Before(w.start) && !at.After(w.end.Add(grace)) {
				return true
			}
		}
		return false
	}
	// A killed worker learns of it at its next heartbeat: an interval and
	// its jitter, and the call.
	killGrace := faultTTL/3*11/10 + 500*time.Millisecond
	var tolerance time.Duration
	if pg {
		tolerance = faultClockTolerance
	}
	for ci, c := range children {
		lines := c.snapshot()
		byInst := map[string][]faultLine{}
		for _, l := range lines {
			byInst[l.inst] = append(byInst[l.inst], l)
			switch l.kind {
			case "violation":
				budget.errorf("child %d: %s: State said live at or after LiveUntil at %s: %s", ci, l.inst, l.at.Format("15:04:05.000"), l.value)
			case "startfailed":
				budget.errorf("child %d: %s: StartWorker failed: %s", ci, l.inst, l.value)
			case "draining":
				if d, ok := drainedAt[l.inst]; ok {
					fig.drainsDelivered++
					fig.maxDrainMS = max(fig.maxDrainMS, ms(l.at.Sub(d)))
				} else {
					budget.errorf("child %d: %s: draining without a drain", ci, l.inst)
				}
			case "ended":
				k, killed := killedAt[l.inst]
				switch {
				case killed && l.value == "marked_dead":
					fig.killsDelivered++
					fig.maxKillMS = max(fig.maxKillMS, ms(l.at.Sub(k)))
				case killed || l.value != "ok":
					budget.errorf("child %d: %s: loop ended with %s (killed: %v)", ci, l.inst, l.value, killed)
				}
			}
		}
		for inst, ls := range byInst {
			// The child's account: live from started or a change to live,
			// until the latest LiveUntil it printed or a change away.
			type span struct {
				from  time.Time
				until time.Time // the latest LiveUntil
				end   time.Time // a change away from live; zero: none
			}
			var spans []span
			live := false
			// The child prints "started" after StartWorker returns, and the
			// loop's first change can come before it on a loaded machine:
			// start from the LiveUntil that "started" prints.
			var until time.Time
			if i := slices.IndexFunc(ls, func(l faultLine) bool { return l.kind == "started" }); i >= 0 {
				v, _ := strconv.ParseInt(ls[i].value, 10, 64)
				until = time.UnixMilli(v)
			}
			for _, l := range ls {
				switch l.kind {
				case "started", "until":
					v, _ := strconv.ParseInt(l.value, 10, 64)
					until = time.UnixMilli(v)
					if l.kind == "started" {
						live = true
						spans = append(spans, span{from: l.at, until: until})
					} else if live {
						// A new deadline starts a new span of account.
						spans[len(spans)-1].end = l.at
						spans = append(spans, span{from: l.at, until: until})
					}
				case "seen":
					switch l.value {
					case "live":
						if !live {
							live = true
							spans = append(spans, span{from: l.at, until: until})
						}
					case "lapsed", "ended":
						if live {
							spans[len(spans)-1].end = l.at
							live = false
						}
						if l.value == "lapsed" {
							fig.lapses++
							switch {
							case slices.ContainsFunc(windows, func(w faultWindow) bool {
								return w.child == ci && !until.Before(w.start) && !until.After(w.end.Add(faultLapseBound))
							}):
								fig.stoppedLapses++
							case l.at.Before(until.Add(-tolerance)):
								fig.earlyLapses++ // a heartbeat found the registration gone: a kill
								if _, killed := killedAt[inst]; !killed {
									budget.errorf("child %d: %s: lapsed %s before LiveUntil with no kill; its lines:\n%s", ci, inst, until.Sub(l.at), linesNear(ls, l.at))
								}
							default:
								// A registration that outlasted its TTL lapses
								// as StartWorker returns: late from then.
								due := until
								if len(spans) > 0 && due.Before(spans[0].from) {
									due = spans[0].from
								}
								late := ms(max(0, l.at.Sub(due)))
								fig.lateMS = append(fig.lateMS, late)
								if l.at.Sub(due) > faultLapseBound {
									budget.errorf("child %d: %s: lapse reported %.1f ms after LiveUntil %s; its lines:\n%s", ci, inst, late, until.Format("15:04:05.000"), linesNear(ls, l.at))
								}
							}
						}
					}
				}
			}
			// OnStateChange's calls: lapsed and live alternate, from live,
			// and none is missed that a poll saw (a poll may miss a lapse
			// shorter than its period; a call may not).
			calls, seenLapses, prev := 0, 0, "live"
			for _, l := range ls {
				switch {
				case l.kind == "seen" && l.value == "lapsed":
					seenLapses++
				case l.kind == "state" && prev == "ended":
					budget.errorf("child %d: %s: OnStateChange called with %s after ended", ci, inst, l.value)
				case l.kind == "state" && l.value == prev:
					budget.errorf("child %d: %s: OnStateChange called with %s twice in a row at %s", ci, inst, l.value, l.at.Format("15:04:05.000"))
				case l.kind == "state":
					prev = l.value
					if l.value == "lapsed" {
						calls++
					}
				}
			}
			if calls < seenLapses {
				budget.errorf("child %d: %s: OnStateChange reported %d lapses, State showed %d", ci, inst, calls, seenLapses)
			}
			liveAt := func(at time.Time) bool {
				for _, s := range spans {
					if !at.Before(s.from) && (s.end.IsZero() || at.Before(s.end)) && at.Before(s.until) {
						return true
					}
				}
				return false
			}
			for _, s := range samples[inst] {
				fig.samples++
				if !liveAt(s.from) || !liveAt(s.to) {
					continue
				}
				if k, ok := killedAt[inst]; ok && !s.from.Before(k) && s.from.Before(k.Add(killGrace)) {
					continue
				}
				if !s.present || s.expires <= s.from.Add(-tolerance).UnixMilli() {
					fig.violations++
					budget.errorf("child %d: %s said live (LiveUntil ahead) while its registration, read %s-%s, was present=%v expiring %s",
						ci, inst, s.from.Format("15:04:05.000"), s.to.Format("15:04:05.000"), s.present, time.UnixMilli(s.expires).Format("15:04:05.000"))
				}
			}
		}
	}
	for _, op := range ops {
		switch op.kind {
		case "drain":
			if !delivered(childOf(children, op.inst), "draining", op.inst) {
				budget.errorf("the drain of %s at %s never reached it", op.inst, op.at.Format("15:04:05.000"))
			}
		case "kill":
			c := childOf(children, op.inst)
			if !slices.ContainsFunc(c.snapshot(), func(l faultLine) bool {
				return l.kind == "ended" && l.inst == op.inst && l.value == "marked_dead"
			}) {
				budget.errorf("the kill of %s at %s never ended its loop", op.inst, op.at.Format("15:04:05.000"))
			}
		}
	}
	for _, e := range engineErrs {
		if engineExpects(e.err, pg) && inFault(e.at, 2*time.Second) {
			fig.engineExpected++
			continue
		}
		if !pg && engineExpects(e.err, pg) {
			// The engine retries SQLITE_BUSY; the soak sees a few at its
			// start on a loaded machine, returned at once (not after the
			// busy timeout), whose cause is not known yet.
			fig.engineBusy++
			t.Logf("engine statement got SQLITE_BUSY outside a fault at %s: %v", e.at.Format("15:04:05.000"), e.err)
			continue
		}
		fig.engineUnexpected++
		var near []string
		for _, w := range windows {
			near = append(near, fmt.Sprintf("%s %s-%s", w.kind, w.start.Format("05.000"), w.end.Format("05.000")))
		}
		budget.errorf("engine statement failed at %s, outside what the engine expects: %v (faults: %s)", e.at.Format("15:04:05.000"), e.err, strings.Join(near, ", "))
	}
}

func childOf(children []*faultChild, inst string) *faultChild {
	var c int
	fmt.Sscanf(inst, "w-%d-", &c)
	return children[c]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// checkFaultEvents checks that the audit log has an event for every change
// the test made and is a well-formed history of the rows.
func checkFaultEvents(t *testing.T, fig *faultFigures, events []storedEvent, workers map[workerKey]storedWorker, ops []faultOp, contiguous bool) {
	t.Helper()
	shift := int64(0)
	if contiguous {
		shift = sqliteShiftMS
	}
	// The engine's own instances are left out: its register writes over an
	// expired row with no ttl_swept event (FlowFabric's own behaviour).
	var ours []storedEvent
	for _, e := range events {
		if e.Key.Namespace == faultNS {
			ours = append(ours, e)
		}
	}
	maps.DeleteFunc(workers, func(k workerKey, _ storedWorker) bool { return k.Namespace != faultNS })
	checkHistory(t, ours, workers, historyOptions{shiftMS: shift})
	fig.events = len(events)
	want := map[string]int{}
	for _, op := range ops {
		want[map[string]string{"drain": "drain_requested", "resume": "resumed", "kill": "marked_dead"}[op.kind]+" "+op.inst]++
	}
	got := map[string]int{}
	killed := map[string]bool{}
	for i, e := range events {
		if contiguous && i > 0 && e.ID != events[i-1].ID+1 {
			fig.eventsLost += int(e.ID - events[i-1].ID - 1)
			t.Errorf("event IDs jump from %d to %d", events[i-1].ID, e.ID)
		}
		if e.Key.Namespace != faultNS {
			continue
		}
		got[e.Kind+" "+e.Key.Instance]++
		switch e.Kind {
		case "marked_dead":
			killed[e.Key.Instance] = true
		case "registered":
			fig.registrations++
			if killed[e.Key.Instance] {
				t.Errorf("event %d: %s registered again after its kill", e.ID, e.Key)
			}
		case "ttl_swept":
			fig.reregisters++
		}
	}
	for k, n := range want {
		if got[k] != n {
			fig.eventsLost += max(0, n-got[k])
			t.Errorf("%d %s events; the test made %d such changes", got[k], k, n)
		}
	}
}

// faultFiguresHeader heads a Markdown table of faultFigures rows.
const faultFiguresHeader = `| store | run | faults injected | lapses | lapse reported after LiveUntil, max / p99 (ms) | drains delivered | kills delivered | resumes | live while absent or expired | engine statements | audit events |
|---|---|---|---|---|---|---|---|---|---|---|`

// String is the figures as a row of a Markdown table.
func (f faultFigures) String() string {
	slices.Sort(f.lateMS)
	var maxLate, p99 float64
	if n := len(f.lateMS); n > 0 {
		maxLate, p99 = f.lateMS[n-1], f.lateMS[min(n-1, n*99/100)]
	}
	var kinds []string
	for k, n := range f.faults {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	return fmt.Sprintf("| %s | %s | %s | %d (%d of a stopped process, %d on a kill) | %.1f / %.1f | %d/%d (max %.0f ms) | %d/%d (max %.0f ms) | %d | %d samples, %d violations | %d ops, %d expected failures, %d busy outside a fault, %d unexpected | %d events, %d lost |",
		f.store, f.duration, strings.Join(kinds, ", "), f.lapses, f.stoppedLapses, f.earlyLapses,
		maxLate, p99, f.drainsDelivered, f.drains, f.maxDrainMS, f.killsDelivered, f.kills, f.maxKillMS, f.resumes,
		f.samples, f.violations, f.engineOps, f.engineExpected, f.engineBusy, f.engineUnexpected, f.events, f.eventsLost)
}
