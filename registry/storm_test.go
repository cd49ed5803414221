package registry_test

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// The storm (`make storm`): a fleet of worker loops (StartWorker, the
// default heartbeat interval of a third of the TTL) in child processes
// (this test binary, re-executed), started staggered over the first
// interval as a fleet comes up, heartbeating one Postgres database for a
// while, with the registry's sweeper in the parent (every TTL, the
// default's 30 s at the default TTL). It runs only when
// REGISTRY_STORM_DURATION is set:
//
//	REGISTRY_STORM_DURATION   how long the fleet runs, from the first start (required)
//	REGISTRY_STORM_WORKERS    worker loops in all (default 10000)
//	REGISTRY_STORM_PROCESSES  child processes they are spread over (default 4)
//	REGISTRY_STORM_TTL        their liveness TTL (default 30s)
//	REGISTRY_STORM_REPORT     a file to append the figures to, a Markdown table row
//	REGISTRY_STORM_FLOWFABRIC set: also storm an adopted FlowFabric database
//
// on the server that REGISTRY_TEST_POSTGRES names, in a schema of its own
// that registry.Open creates (TestStorm/postgres), and, with
// REGISTRY_STORM_FLOWFABRIC, in a FlowFabric database the registry adopted
// (TestStorm/flowfabric-postgres). `make storm` starts a durable server
// (fsync on) of its own.
//
// The figures:
//   - heartbeat latency, each HeartbeatWorker call of the loops, timed in
//     the children by a tracer (WithTracerProvider) from the call's span
//     start to its end: the whole call as the loop makes it, a wait for a
//     pool connection included; p50, p99 and max over every heartbeat, and
//     p99 over those that began after the start-up (once every worker had
//     registered, and at least two intervals after the first start, when
//     every worker has made its first heartbeat);
//     heartbeats that end once the workers begin to stop are left out;
//   - the start-up: how long after its start time each worker was
//     registered (StartWorker returned; a child makes
//     stormStartsInFlight calls at a time), and when the last was, after
//     the first start;
//   - the HOT share: the table's n_tup_hot_upd over n_tup_upd
//     (pg_stat_user_tables, summed over its partitions), the change from
//     before the children start to after they exit;
//   - the Postgres server's CPU: utime+stime of the postmaster and its
//     children from /proc/<pid>/stat (plus the postmaster's cutime+cstime:
//     backends that exited meanwhile), the change from just before the
//     first start to the end of the run (before the workers stop), for a
//     server on this machine (found by its data_directory); the parent's
//     reads, below, on a backend of their own, are part of it, and said
//     apart;
//   - the invariant: the parent reads every registration once a second;
//     each child prints, once a second, each worker's LiveUntil when its
//     State is WorkerLive (a worker live at a time is live until that
//     LiveUntil, unless a state change says otherwise, which the child
//     prints too). A read during which a worker was live by its latest
//     account (printed before the read began, LiveUntil after it ended)
//     must find its registration present and unexpired. Also counted: every
//     lapse (a change to WorkerLapsed), the registrations the sweeper
//     removed (ttl_swept events), and loops that ended early.
//
// It fails when a worker was seen expired or absent while live, when any
// worker lapsed, was swept, failed to start or ended early, and when the
// heartbeat p99 is over 100 ms.

const (
	stormNS             = "storm"
	stormMaxP99         = 100 * time.Millisecond
	stormSampleEvery    = time.Second           // the parent's reads and the children's accounts
	stormClockTolerance = 10 * time.Millisecond // as faultClockTolerance
)

// stormConfig is the storm's shape, from the environment.
type stormConfig struct {
	duration       time.Duration
	workers, procs int
	ttl            time.Duration
	report         string
}

// interval is the loop's default heartbeat interval.
func (c stormConfig) interval() time.Duration { return c.ttl / 3 }

// startOffset is when the fleet's g-th worker starts, after the first:
// the starts spread evenly over the first interval.
func (c stormConfig) startOffset(g int) time.Duration {
	return time.Duration(int64(c.interval()) * int64(g) / int64(c.workers))
}

// workersOf returns how many workers child i runs: the fleet's
// workers g = j*procs + i, for j from 0.
func (c stormConfig) workersOf(i int) int {
	return (c.workers - i + c.procs - 1) / c.procs
}

func stormInstance(child, j int) string { return fmt.Sprintf("storm-%d-%d", child, j) }

// stormSettings reads the storm's environment; without
// REGISTRY_STORM_DURATION it skips t.
func stormSettings(t *testing.T) stormConfig {
	t.Helper()
	d := os.Getenv("REGISTRY_STORM_DURATION")
	if d == "" {
		t.Skip("REGISTRY_STORM_DURATION is not set: no storm (make storm runs one)")
	}
	c := stormConfig{workers: 10000, procs: 4, ttl: 30 * time.Second, report: os.Getenv("REGISTRY_STORM_REPORT")}
	var err error
	if c.duration, err = time.ParseDuration(d); err != nil || c.duration <= 0 {
		t.Fatalf("REGISTRY_STORM_DURATION=%q: want a positive duration (%v)", d, err)
	}
	for _, v := range []struct {
		name string
		n    *int
	}{{"REGISTRY_STORM_WORKERS", &c.workers}, {"REGISTRY_STORM_PROCESSES", &c.procs}} {
		if s := os.Getenv(v.name); s != "" {
			if *v.n, err = strconv.Atoi(s); err != nil || *v.n < 1 {
				t.Fatalf("%s=%q: want a positive number", v.name, s)
			}
		}
	}
	if s := os.Getenv("REGISTRY_STORM_TTL"); s != "" {
		if c.ttl, err = time.ParseDuration(s); err != nil || c.ttl < 300*time.Millisecond {
			t.Fatalf("REGISTRY_STORM_TTL=%q: want a duration of at least 300ms", s)
		}
	}
	c.procs = min(c.procs, c.workers)
	return c
}

func TestStorm(t *testing.T) {
	cfg := stormSettings(t)
	t.Run("postgres", func(t *testing.T) {
		runStorm(t, cfg, "postgres", registrytest.PostgresSchema(t, registrytest.PostgresDSN(t)))
	})
	t.Run("flowfabric-postgres", func(t *testing.T) {
		if os.Getenv("REGISTRY_STORM_FLOWFABRIC") == "" {
			t.Skip("REGISTRY_STORM_FLOWFABRIC is not set: no storm on an adopted FlowFabric database")
		}
		runStorm(t, cfg, "flowfabric-postgres", flowfabrictest.Postgres(t).DSN) // skips without ../shared
	})
}

// stormStartsInFlight is how many StartWorker calls a child makes at once.
// A fleet's processes register each on a connection of its own, so that a
// backlog of registrations (each writes an audit event, and such
// transactions commit one at a time) waits at the server without holding
// up another process's heartbeats; a child's workers share its pool (4
// connections by default), which a backlog of starts would fill, and
// heartbeats would queue behind them. Two at a time leave the rest to
// heartbeats; a start waits for its turn, which its delay includes.
const stormStartsInFlight = 2

// heartbeatTimer is a tracer provider that times the registry's
// heartbeat_worker spans, and ignores every other span.
type heartbeatTimer struct {
	tracenoop.TracerProvider
	t0 time.Time // the first start
	// stopping is set once the workers start to stop: a heartbeat that
	// ends after it may be cut short by its Stop, or have waited for a
	// connection behind the deregistrations, and is not timed.
	stopping atomic.Bool

	mu     sync.Mutex
	beats  []stormBeat
	errors int // heartbeats that failed
}

// stormBeat is a timed heartbeat.
type stormBeat struct {
	atMS int32 // when it began, after the first start
	us   int32 // how long it took
}

func (p *heartbeatTimer) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return heartbeatTracer{p: p}
}

type heartbeatTracer struct {
	tracenoop.Tracer
	p *heartbeatTimer
}

func (t heartbeatTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if name != "workerregistry.heartbeat_worker" {
		return t.Tracer.Start(ctx, name, opts...)
	}
	s := &heartbeatSpan{p: t.p, start: time.Now()}
	return trace.ContextWithSpan(ctx, s), s
}

// heartbeatSpan is one heartbeat; the registry ends it once, from the
// call's goroutine.
type heartbeatSpan struct {
	tracenoop.Span
	p      *heartbeatTimer
	start  time.Time
	failed bool
}

func (s *heartbeatSpan) SetStatus(code codes.Code, _ string) { s.failed = code == codes.Error }

func (s *heartbeatSpan) End(...trace.SpanEndOption) {
	b := stormBeat{atMS: int32(s.start.Sub(s.p.t0).Milliseconds()), us: micros(time.Since(s.start))}
	if s.p.stopping.Load() {
		return
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.beats = append(s.p.beats, b)
	if s.failed {
		s.p.errors++
	}
}

// micros is d in microseconds, at most 2^31-1 (35 minutes).
func micros(d time.Duration) int32 { return int32(min(d.Microseconds(), 1<<31-1)) }

// stormWorkerChild is a child of TestStorm: it opens the registry at
// envChildDB, prints "ready", and on "go <unix µs>" read from stdin starts
// its workers, the fleet's g-th at that time plus its offset, each on a
// goroutine of its own, stormStartsInFlight at a time. It prints, each a
// line:
//   - "live <unix µs> <ms> <ms> ...": once a second, each worker's
//     LiveUntil (unix ms) if its State is WorkerLive, else 0; the time is
//     read after every worker's;
//   - "state <j> <unix µs> <state>": each change of worker j's state;
//   - "startfailed <j> <error>".
//
// On "quit" it stops its workers, prints its heartbeats ("hb <ms> <µs>
// ...": when each began, after the first start, and how long it took),
// how long after its start time each worker was registered ("reg <µs>
// ..."), and "summary ...", and exits.
func stormWorkerChild(t *testing.T) {
	ctx := context.Background()
	cfg := stormSettings(t) // the parent's environment, and its settings
	id, _ := strconv.Atoi(os.Getenv(envChildID))
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	timer := &heartbeatTimer{}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := registry.Open(ctx, os.Getenv(envChildDB), registry.WithTracerProvider(timer), registry.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	say("ready")

	in := bufio.NewScanner(os.Stdin)
	var t0 time.Time
	if in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 2 && f[0] == "go" {
			us, _ := strconv.ParseInt(f[1], 10, 64)
			t0 = time.UnixMicro(us)
		}
	}
	if t0.IsZero() {
		t.Fatalf("storm child: want \"go <unix µs>\", got %q", in.Text())
	}
	timer.t0 = t0 // before any heartbeat

	n := cfg.workersOf(id)
	workers := make([]atomic.Pointer[registry.Worker], n)
	var started, startFailed atomic.Int64
	var startMu sync.Mutex
	var delays []int32          // µs from each worker's start time to its registration
	var lastStart time.Duration // after t0, the last registration
	startCtx, stopStarting := context.WithCancel(ctx)
	defer stopStarting()
	turns := make(chan struct{}, stormStartsInFlight)
	start := func(j int, at time.Time) {
		select {
		case turns <- struct{}{}:
			defer func() { <-turns }()
		case <-startCtx.Done():
			return
		}
		inst := stormInstance(id, j)
		wc := registry.WorkerConfig{
			Namespace: stormNS, WorkerID: "storm-pool", WorkerInstanceID: inst, Lanes: []string{"default"},
			LivenessTTL:   cfg.ttl,
			OnStateChange: func(s registry.WorkerState) { say("state %d %d %s", j, time.Now().UnixMicro(), s) },
		}
		w, err := r.StartWorker(ctx, wc)
		// A start that fails (a connection refused at the peak) tries
		// again, as a deployment's process would.
		for try := 0; err != nil && !errors.Is(err, registry.ErrInvalidInput) && !errors.Is(err, registry.ErrMarkedDead) && try < 20 && startCtx.Err() == nil; try++ {
			time.Sleep(100 * time.Millisecond)
			w, err = r.StartWorker(ctx, wc)
		}
		if err != nil {
			startFailed.Add(1)
			say("startfailed %d %s", j, strings.ReplaceAll(err.Error(), "\n", " "))
			return
		}
		startMu.Lock()
		delays = append(delays, micros(time.Since(at)))
		lastStart = max(lastStart, time.Since(t0))
		startMu.Unlock()
		started.Add(1)
		workers[j].Store(w)
	}
	var starts sync.WaitGroup
	scheduled := make(chan struct{})
	go func() {
		defer close(scheduled)
		for j := range n {
			at := t0.Add(cfg.startOffset(j*cfg.procs + id))
			select {
			case <-time.After(time.Until(at)):
			case <-startCtx.Done():
				return
			}
			starts.Go(func() { start(j, at) })
		}
	}()

	// The accounts, once a second.
	accountsDone := make(chan struct{})
	stopAccounts := make(chan struct{})
	go func() {
		defer close(accountsDone)
		tick := time.NewTicker(stormSampleEvery)
		defer tick.Stop()
		buf := make([]byte, 0, 16*n)
		vals := make([]int64, n)
		for {
			select {
			case <-stopAccounts:
				return
			case <-tick.C:
			}
			for j := range workers {
				vals[j] = 0
				if w := workers[j].Load(); w != nil {
					// LiveUntil first: a worker live after it was read is
					// live until then at least.
					until := w.LiveUntil()
					if w.State() == registry.WorkerLive {
						vals[j] = until.UnixMilli()
					}
				}
			}
			buf = append(buf[:0], "live "...)
			buf = strconv.AppendInt(buf, time.Now().UnixMicro(), 10)
			for _, v := range vals {
				buf = append(buf, ' ')
				buf = strconv.AppendInt(buf, v, 10)
			}
			say("%s", buf)
		}
	}()

	for in.Scan() {
		if in.Text() == "quit" {
			break
		}
	}
	timer.stopping.Store(true)
	stopStarting()
	<-scheduled
	starts.Wait()
	close(stopAccounts)
	<-accountsDone
	var stops sync.WaitGroup
	sem := make(chan struct{}, 32)
	for j := range workers {
		w := workers[j].Load()
		if w == nil {
			continue
		}
		sem <- struct{}{}
		stops.Go(func() {
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := w.Stop(sctx); err != nil {
				fmt.Fprintf(os.Stderr, "stop %s: %v\n", stormInstance(id, j), err)
			}
		})
	}
	stops.Wait()
	timer.mu.Lock()
	defer timer.mu.Unlock()
	for chunk := range slices.Chunk(timer.beats, 500) {
		buf := []byte("hb")
		for _, b := range chunk {
			buf = fmt.Appendf(buf, " %d %d", b.atMS, b.us)
		}
		say("%s", buf)
	}
	for chunk := range slices.Chunk(delays, 1000) {
		buf := []byte("reg")
		for _, v := range chunk {
			buf = fmt.Appendf(buf, " %d", v)
		}
		say("%s", buf)
	}
	say("summary started=%d startfailed=%d laststart=%d heartbeats=%d errors=%d", started.Load(), startFailed.Load(),
		lastStart.Milliseconds(), len(timer.beats), timer.errors)
}

// stormClaim is a child's account of a worker: live from before at (unix
// µs) until untilMS (unix ms); untilMS 0: not live.
type stormClaim struct{ at, untilMS int64 }

// stormChild is a running child and what it printed.
type stormChild struct {
	*multiChild
	readerDone chan struct{}

	mu          sync.Mutex
	claims      []stormClaim    // the latest account, one per worker
	lapses      map[int][]int64 // worker -> unix µs of each change to lapsed
	ended       map[int]int64   // worker -> unix µs of its change to ended
	startFailed []string
	beats       []stormBeat
	delays      []int32 // µs from a worker's start time to its registration
	summary     map[string]string
}

func (c *stormChild) read() {
	defer close(c.readerDone)
	for line := range c.lines {
		kind, rest, _ := strings.Cut(line, " ")
		f := strings.Fields(rest)
		c.mu.Lock()
		switch kind {
		case "live":
			if len(f) >= 1 {
				at, _ := strconv.ParseInt(f[0], 10, 64)
				claims := make([]stormClaim, len(f)-1)
				for j, s := range f[1:] {
					claims[j].at = at
					claims[j].untilMS, _ = strconv.ParseInt(s, 10, 64)
				}
				c.claims = claims
			}
		case "state":
			if len(f) == 3 {
				j, _ := strconv.Atoi(f[0])
				at, _ := strconv.ParseInt(f[1], 10, 64)
				switch f[2] {
				case "lapsed":
					c.lapses[j] = append(c.lapses[j], at)
				case "ended":
					c.ended[j] = at
				}
			}
		case "startfailed":
			c.startFailed = append(c.startFailed, rest)
		case "hb":
			for i := 0; i+1 < len(f); i += 2 {
				at, _ := strconv.Atoi(f[i])
				us, _ := strconv.Atoi(f[i+1])
				c.beats = append(c.beats, stormBeat{atMS: int32(at), us: int32(us)})
			}
		case "reg":
			for _, s := range f {
				v, _ := strconv.Atoi(s)
				c.delays = append(c.delays, int32(v))
			}
		case "summary":
			c.summary = parseSummary(rest)
		}
		c.mu.Unlock()
	}
}

// stormCandidate is a read that found a worker absent or expired while its
// latest account said live.
type stormCandidate struct {
	child, worker int
	claim         stormClaim
	from, to      time.Time
	present       bool
	expiresMS     int64
}

// stormFigures is what a storm measured.
type stormFigures struct {
	store                    string
	cfg                      stormConfig
	durable                  string // fsync and synchronous_commit
	run                      time.Duration
	lat, steady              []int32       // µs, sorted
	delays                   []int32       // µs, sorted: from a worker's start time to its registration
	lastStart                time.Duration // after the first start, the last registration
	heartbeatErrors          int
	hotUpd, upd              int64
	pgCPU                    time.Duration // -1: not measured
	pgWall                   time.Duration // the time pgCPU was measured over
	readsCPU                 time.Duration // of pgCPU, the backend of the parent's reads
	swept                    int           // ttl_swept events of the storm's workers
	clientCPU                time.Duration
	load                     string
	reads, readErrors        int
	maxReadMS                float64
	checked, stale           int
	violations, violatedWkrs int
	lapses, lapsedWkrs       int
	endedEarly, startFailed  int
}

func runStorm(t *testing.T, cfg stormConfig, storeName, dsn string) {
	ctx := context.Background()
	fig := stormFigures{store: storeName, cfg: cfg, pgCPU: -1}
	r, err := registry.Open(ctx, dsn) // creates the registry's tables in a fresh schema
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var fsync, syncCommit string
	if err := raw.QueryRowContext(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit); err != nil {
		t.Fatal(err)
	}
	fig.durable = fmt.Sprintf("fsync %s, synchronous_commit %s", fsync, syncCommit)
	if fsync != "on" {
		t.Logf("the server runs with fsync %s: not the durable server a storm is meant for", fsync)
	}
	// The reads' own connection, so that its backend's CPU can be told
	// apart.
	reader, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var readerPID int
	if err := reader.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&readerPID); err != nil {
		t.Fatal(err)
	}
	postmaster, why := stormPostmaster(ctx, raw)
	if postmaster == 0 {
		t.Logf("the Postgres server's CPU is not measured: %s", why)
	}
	t.Logf("storm: %d workers in %d processes, TTL %s (heartbeats every %s), %s, on %s",
		cfg.workers, cfg.procs, cfg.ttl, cfg.interval(), cfg.duration, fig.durable)

	children := make([]*stormChild, cfg.procs)
	deadline := time.After(multiStartLimit)
	for i := range children {
		c := &stormChild{
			multiChild: startChild(t, "stormworker", dsn,
				envChildID+"="+strconv.Itoa(i),
				"REGISTRY_STORM_WORKERS="+strconv.Itoa(cfg.workers),
				"REGISTRY_STORM_PROCESSES="+strconv.Itoa(cfg.procs),
				"REGISTRY_STORM_TTL="+cfg.ttl.String()),
			readerDone: make(chan struct{}),
			lapses:     map[int][]int64{},
			ended:      map[int]int64{},
		}
		children[i] = c
		if err := waitForLine(c.lines, "ready", deadline); err != nil {
			t.Fatal(childFailure(fmt.Sprintf("child %d", i), err, c.stderr.String()))
		}
		go c.read()
		t.Cleanup(func() { c.cmd.Process.Kill(); <-c.readerDone }) // a no-op kill after Wait
	}

	hot0, upd0 := stormHOT(t, raw)
	cpu0, reads0, cpuErr := stormCPU(postmaster, readerPID)
	cpuFrom := time.Now()
	t0 := time.Now().Add(200 * time.Millisecond)
	for _, c := range children {
		fmt.Fprintf(c.stdin, "go %d\n", t0.UnixMicro())
	}

	bg, stopBG := context.WithCancel(ctx)
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()
	// The registry's sweeper, as the engine runs it.
	bgWG.Go(func() { r.RunSweeper(bg, registry.SweeperConfig{Interval: cfg.ttl}) })

	// The reads of every registration, judged against the accounts that
	// the children printed before each began.
	var candidates []stormCandidate
	names := make([][]string, cfg.procs)
	for i := range names {
		for j := range cfg.workersOf(i) {
			names[i] = append(names[i], stormInstance(i, j))
		}
	}
	q := `SELECT worker_instance_id, last_heartbeat_ms + liveness_ttl_ms FROM ff_worker_registry WHERE namespace = $1`
	bgWG.Go(func() {
		tick := time.NewTicker(stormSampleEvery)
		defer tick.Stop()
		got := make(map[string]int64, cfg.workers)
		for {
			select {
			case <-bg.Done():
				return
			case <-tick.C:
			}
			accounts := make([][]stormClaim, len(children))
			for i, c := range children {
				c.mu.Lock()
				accounts[i] = c.claims
				c.mu.Unlock()
			}
			from := time.Now()
			clear(got)
			err := func() error {
				rows, err := reader.QueryContext(bg, q, stormNS)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var inst string
					var exp int64
					if err := rows.Scan(&inst, &exp); err != nil {
						return err
					}
					got[inst] = exp
				}
				return rows.Err()
			}()
			to := time.Now()
			if err != nil {
				if bg.Err() == nil {
					fig.readErrors++
					t.Logf("read of the registrations failed: %v", err)
				}
				continue
			}
			fig.reads++
			fig.maxReadMS = max(fig.maxReadMS, ms(to.Sub(from)))
			for i, claims := range accounts {
				for j, cl := range claims {
					if cl.untilMS == 0 {
						continue
					}
					if cl.untilMS <= to.UnixMilli() {
						fig.stale++ // live by an account that ends before the read did
						continue
					}
					fig.checked++
					exp, ok := got[names[i][j]]
					if !ok || exp <= from.Add(-stormClockTolerance).UnixMilli() {
						candidates = append(candidates, stormCandidate{i, j, cl, from, to, ok, exp})
					}
				}
			}
		}
	})

	time.Sleep(time.Until(t0.Add(cfg.duration)))
	stopBG()
	bgWG.Wait()
	fig.run = time.Since(t0)
	cpu1, reads1, cpuErr1 := stormCPU(postmaster, readerPID)
	cpuWall := time.Since(cpuFrom)
	quitAt := time.Now()
	for _, c := range children {
		fmt.Fprintln(c.stdin, "quit")
		c.stdin.Close()
	}
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("%s", childFailure(fmt.Sprintf("child %d", i), err, c.stderr.String()))
		} else if s := c.stderr.String(); s != "" {
			t.Logf("child %d's stderr:\n%s", i, s)
		}
		fig.clientCPU += c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
		<-c.readerDone
	}
	// The children's backends report their counts as they exit.
	hot1, upd1 := stormHOT(t, raw)
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		h, u := stormHOT(t, raw)
		if h == hot1 && u == upd1 {
			break
		}
		hot1, upd1 = h, u
	}
	fig.hotUpd, fig.upd = hot1-hot0, upd1-upd0
	if postmaster != 0 {
		if err := errors.Join(cpuErr, cpuErr1); err != nil {
			t.Logf("the Postgres server's CPU is not measured: %v", err)
		} else {
			fig.pgCPU = time.Duration(cpu1-cpu0) * time.Second / stormClockTicks
			fig.readsCPU = time.Duration(reads1-reads0) * time.Second / stormClockTicks
			fig.pgWall = cpuWall
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fig.load = strings.Join(strings.Fields(string(b))[:3], " ")
	}

	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM ff_worker_registry_event WHERE namespace = $1 AND event_kind = 'ttl_swept'`,
		stormNS).Scan(&fig.swept); err != nil {
		t.Fatal(err)
	}
	checkStorm(t, &fig, children, candidates, quitAt)
	t.Log(stormFiguresHeader + "\n" + fig.String())
	appendReportRow(t, cfg.report, stormFiguresHeader, fig.String())
}

// checkStorm gathers what the children printed into fig and fails t on a
// broken invariant or a p99 over stormMaxP99.
func checkStorm(t *testing.T, fig *stormFigures, children []*stormChild, candidates []stormCandidate, quitAt time.Time) {
	t.Helper()
	budget := newErrorBudget(t)
	defer budget.close()
	violated := map[[2]int]bool{}
	for _, v := range candidates {
		c := children[v.child]
		// A lapse after the account and during the read (printed by the
		// loop's callback, a moment after the change) ends the account:
		// the lapse is counted below instead.
		if slices.ContainsFunc(c.lapses[v.worker], func(at int64) bool {
			return at > v.claim.at && at <= v.to.Add(time.Second).UnixMicro()
		}) {
			continue
		}
		fig.violations++
		violated[[2]int{v.child, v.worker}] = true
		what := "absent"
		if v.present {
			what = "expired at " + time.UnixMilli(v.expiresMS).Format("15:04:05.000")
		}
		budget.errorf("%s: read %s-%s, %s, while its loop said live until %s (account of %s)",
			stormInstance(v.child, v.worker), v.from.Format("15:04:05.000"), v.to.Format("15:04:05.000"), what,
			time.UnixMilli(v.claim.untilMS).Format("15:04:05.000"), time.UnixMicro(v.claim.at).Format("15:04:05.000"))
	}
	fig.violatedWkrs = len(violated)
	for i, c := range children {
		for j, lapses := range c.lapses {
			fig.lapses += len(lapses)
			fig.lapsedWkrs++
			budget.errorf("%s lapsed %d times, first at %s", stormInstance(i, j), len(lapses), time.UnixMicro(lapses[0]).Format("15:04:05.000"))
		}
		for j, at := range c.ended {
			if time.UnixMicro(at).Before(quitAt) {
				fig.endedEarly++
				budget.errorf("%s: its loop ended at %s, before the storm did", stormInstance(i, j), time.UnixMicro(at).Format("15:04:05.000"))
			}
		}
		for _, s := range c.startFailed {
			fig.startFailed++
			budget.errorf("child %d: a worker failed to start: %s", i, s)
		}
		fig.delays = append(fig.delays, c.delays...)
		if c.summary == nil {
			budget.errorf("child %d printed no summary", i)
			continue
		}
		e, _ := strconv.Atoi(c.summary["errors"])
		fig.heartbeatErrors += e
		last, _ := strconv.Atoi(c.summary["laststart"])
		fig.lastStart = max(fig.lastStart, time.Duration(last)*time.Millisecond)
	}
	// After the start-up: once every worker had registered, and two
	// intervals after the first start (every worker's first heartbeat).
	steadyMS := int32(max(2*fig.cfg.interval(), fig.lastStart).Milliseconds())
	// Where the slow ones were: heartbeats over stormMaxP99, by the
	// interval in which they began.
	windowMS := int32(fig.cfg.interval().Milliseconds())
	slow := map[int32]int{}
	for _, c := range children {
		for _, b := range c.beats {
			fig.lat = append(fig.lat, b.us)
			if b.atMS >= steadyMS {
				fig.steady = append(fig.steady, b.us)
			}
			if time.Duration(b.us)*time.Microsecond > stormMaxP99 {
				slow[b.atMS/windowMS]++
			}
		}
	}
	var where []string
	for _, w := range slices.Sorted(maps.Keys(slow)) {
		where = append(where, fmt.Sprintf("%s-%s: %d", time.Duration(w*windowMS)*time.Millisecond, time.Duration((w+1)*windowMS)*time.Millisecond, slow[w]))
	}
	t.Logf("heartbeats over %s, by when they began after the first start (every worker registered at %.1f s): %s",
		stormMaxP99, fig.lastStart.Seconds(), cmp.Or(strings.Join(where, ", "), "none"))
	slices.Sort(fig.lat)
	slices.Sort(fig.steady)
	slices.Sort(fig.delays)
	switch p99 := stormPercentile(fig.lat, 99); {
	case len(fig.lat) == 0:
		budget.errorf("no heartbeat was timed")
	case p99 > stormMaxP99:
		budget.errorf("heartbeat p99 is %s, over %s", p99, stormMaxP99)
	}
	if fig.swept > 0 {
		budget.errorf("the sweeper removed %d of the storm's registrations", fig.swept)
	}
	if fig.stale > 0 {
		t.Logf("%d reads of a worker skipped: its latest account said live until before the read ended", fig.stale)
	}
	if fig.checked == 0 {
		budget.errorf("no read checked a live worker (%d reads)", fig.reads)
	}
}

// stormPercentile returns the p-th percentile of sorted µs values.
func stormPercentile(sorted []int32, p int) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	return time.Duration(sorted[min(n-1, n*p/100)]) * time.Microsecond
}

// stormHOT returns the registry table's HOT updates and updates so far,
// summed over its partitions.
func stormHOT(t *testing.T, db *sql.DB) (hot, upd int64) {
	t.Helper()
	err := db.QueryRow(`SELECT coalesce(sum(s.n_tup_hot_upd), 0), coalesce(sum(s.n_tup_upd), 0)
		FROM pg_partition_tree('ff_worker_registry') p JOIN pg_stat_user_tables s ON s.relid = p.relid`).Scan(&hot, &upd)
	if err != nil {
		t.Fatal(err)
	}
	return hot, upd
}

// stormClockTicks is the unit of /proc/<pid>/stat's times: USER_HZ,
// 100 on every Linux architecture Go runs on.
const stormClockTicks = 100

// stormPostmaster returns the pid of the server's postmaster, when the
// server runs on this machine (its data directory's postmaster.pid names
// a running postgres), or 0 and why not.
func stormPostmaster(ctx context.Context, db *sql.DB) (pid int, why string) {
	var dir string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return 0, fmt.Sprintf("data_directory: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Sprintf("the server is not on this machine, or its files are not readable: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if pid, err = strconv.Atoi(strings.TrimSpace(first)); err != nil {
		return 0, fmt.Sprintf("postmaster.pid: %v", err)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return 0, fmt.Sprintf("pid %d from %s is not a running postgres", pid, dir)
	}
	return pid, ""
}

// stormCPU returns the CPU time, in clock ticks, of the postmaster pid and
// its children (utime, stime, cutime and cstime: the postmaster's cutime
// and cstime hold its children that exited), and of one of them, the
// backend pid.
func stormCPU(postmaster, backend int) (all, one int64, err error) {
	if postmaster == 0 {
		return 0, 0, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	found := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, ticks, err := procCPU(pid)
		if err != nil || (pid != postmaster && ppid != postmaster) {
			continue // exited meanwhile, or another's
		}
		found = found || pid == postmaster
		all += ticks
		if pid == backend {
			one = ticks
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("postmaster %d is gone", postmaster)
	}
	return all, one, nil
}

// procCPU reads /proc/<pid>/stat: the parent's pid, and utime + stime +
// cutime + cstime in clock ticks.
func procCPU(pid int) (ppid int, ticks int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command's closing parenthesis, from the
	// third: state, ppid, ... utime (14th), stime, cutime, cstime.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, _ = strconv.Atoi(f[1])
	for _, k := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		ticks += v
	}
	return ppid, ticks, nil
}

// stormFiguresHeader heads a Markdown table of stormFigures rows.
const stormFiguresHeader = `| store | workers × processes | TTL (heartbeat interval) | run | server | heartbeats (failed) | heartbeat p50 / p99 / max (ms) | p99 after start-up (ms) | registered after its start time, p50 / p99 (ms); the last at (s) | HOT updates | Postgres CPU | workers' CPU | load average | reads (max ms) | live workers read | seen expired or absent while live | lapses | swept | failed to start, ended early |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`

// String is the figures as a row of a Markdown table.
func (f stormFigures) String() string {
	dur := func(d time.Duration) string { return fmt.Sprintf("%.1f", ms(d)) }
	hot := "no updates"
	if f.upd > 0 {
		hot = fmt.Sprintf("%.1f%% (%d of %d)", 100*float64(f.hotUpd)/float64(f.upd), f.hotUpd, f.upd)
	}
	cpu := "not measured"
	if f.pgCPU >= 0 {
		cpu = fmt.Sprintf("%.1f s (%.0f%% of a core; the reads %.1f s)", f.pgCPU.Seconds(), 100*f.pgCPU.Seconds()/f.pgWall.Seconds(), f.readsCPU.Seconds())
	}
	n := len(f.lat)
	var maxLat time.Duration
	if n > 0 {
		maxLat = time.Duration(f.lat[n-1]) * time.Microsecond
	}
	return fmt.Sprintf("| %s | %d × %d | %s (%s) | %s | %s | %d (%d) | %s / %s / %s | %s | %s / %s; %.1f | %s | %s | %.1f s | %s | %d (%.0f) | %d | %d (%d workers) | %d (%d workers) | %d | %d, %d |",
		f.store, f.cfg.workers, f.cfg.procs, f.cfg.ttl, f.cfg.interval(), f.run.Round(time.Second), f.durable,
		n, f.heartbeatErrors, dur(stormPercentile(f.lat, 50)), dur(stormPercentile(f.lat, 99)), dur(maxLat), dur(stormPercentile(f.steady, 99)),
		dur(stormPercentile(f.delays, 50)), dur(stormPercentile(f.delays, 99)), f.lastStart.Seconds(), hot, cpu, f.clientCPU.Seconds(), f.load, f.reads, f.maxReadMS,
		f.checked, f.violations, f.violatedWkrs, f.lapses, f.lapsedWkrs, f.swept, f.startFailed, f.endedEarly)
}
