package registry_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// The soak test runs the registry the way a long-lived engine process does:
// a mix of every call, on two registries sharing one SQLite file (one with
// heartbeat events on, one with them off), with workers that come, go
// silent, get swept and come back, and leases that expire under a walk.
// Every other stretch of 5,000 calls is single heartbeats alone, the
// commonest traffic and the one that once grew the WAL without bound.
// It samples the WAL's size, the heap in use and the p99 call latency at
// regular points and asserts that they stay flat.
//
// The README's test command runs a short soak, in a child process beside
// the other tests. `make soak` runs the long one, alone
// (REGISTRY_SOAK_CALLS=1000000), and writes its figures to soak.md, which
// benchreport puts in BENCHMARKS.md. REGISTRY_SOAK_FLOWFABRIC=1 runs it on
// a database built by FlowFabric's migrations and adopted by the registry.

// soakMaxWAL is DESIGN.md's bound on the WAL at every point of a soak.
const soakMaxWAL = 32 << 20

// soakPhase is the length of a stretch of one kind of traffic: mixed calls,
// or single heartbeats alone. The latter must write more than soakMaxWAL
// (about 8 KB a heartbeat) to catch a WAL that never restarts.
const soakPhase = 5000

func soakCalls(t *testing.T) int {
	if s := os.Getenv("REGISTRY_SOAK_CALLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 4*soakPhase {
			t.Fatalf("REGISTRY_SOAK_CALLS=%q: want a count of at least %d", s, 4*soakPhase)
		}
		return n / soakPhase * soakPhase
	}
	if testing.Short() || raceEnabled {
		return 4 * soakPhase
	}
	return 8 * soakPhase
}

// soakSample is one sampling point of the soak.
type soakSample struct {
	calls     int
	wal       int64         // bytes of the -wal file
	heapInuse uint64        // runtime.MemStats.HeapInuse after a GC
	p99       time.Duration // of the calls since the previous sample
	quiet     bool          // the calls since the previous sample were single heartbeats alone
}

func TestSoak(t *testing.T) {
	if os.Getenv("REGISTRY_SOAK_CALLS") != "" || os.Getenv("REGISTRY_SOAK_REPORT") != "" {
		// A measured soak runs alone, in this process.
		runSoak(t, soakAlone)
		return
	}
	// The short soak runs in a child process beside the other tests, so
	// that the heap it measures is its own and it does not hold the suite
	// up (it is the longest test under -race).
	t.Parallel()
	cmd := childCommand("soak", "")
	cmd.Args = append(cmd.Args, "-test.v")
	out, err := cmd.CombinedOutput()
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "soak_test.go") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if err != nil {
		t.Fatalf("soak child: %v\n%s", err, out)
	}
}

// soakChild is TestSoak's child process.
func soakChild(t *testing.T) { runSoak(t, soakShared) }

// How much a soak's p99 latency may grow, from the second quarter of the
// run to the last: less for one that has the machine to itself than for
// one that shares it with the other tests.
const (
	soakAlone  = 2 * time.Millisecond
	soakShared = 25 * time.Millisecond
)

func runSoak(t *testing.T, latencySlack time.Duration) {
	calls := soakCalls(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "soak.db")
	if os.Getenv("REGISTRY_SOAK_FLOWFABRIC") != "" {
		path = flowfabrictest.SQLite(t) // FlowFabric's own database, adopted
	}
	var clockMS int64 = t0.UnixMilli()
	clock := func() time.Time { return time.UnixMilli(clockMS).UTC() }
	opts := []registry.Option{registry.WithClock(clock), registry.WithEventRetention(30 * time.Second)}
	quiet, err := registry.Open(ctx, path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	loud, err := registry.Open(ctx, path, append(opts, registry.WithHeartbeatEvents(true))...)
	if err != nil {
		t.Fatal(err)
	}
	defer loud.Close()
	raw, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	const (
		namespaces = 4
		workers    = 400 // per registry
		ttl        = 2 * time.Second
		stepMS     = 2 // simulated time per call: each worker's turn comes about every 1.6 s
	)
	// Leases that expire along the simulated timeline, for the walks.
	span := time.Duration(calls*stepMS) * time.Millisecond
	registrytest.InsertLeasesFunc(t, raw, 5000, func(i int) registrytest.Lease {
		return registrytest.Lease{
			ExecutionID:      registry.ExecutionID{Partition: uint16(i % 256)},
			Namespace:        fmt.Sprintf("ns%d", i%namespaces),
			WorkerInstanceID: fmt.Sprintf("w%d", i%workers),
			ExpiresAt:        t0.Add(span * time.Duration(i) / 5000),
		}
	}, nil)

	type worker struct {
		reg    *registry.Registry
		ns, id string
		silent int // calls left before it speaks again
	}
	var ws []*worker
	for _, reg := range []*registry.Registry{quiet, loud} {
		for i := range workers {
			ws = append(ws, &worker{reg: reg, ns: fmt.Sprintf("ns%d", i%namespaces), id: fmt.Sprintf("%p-w%d", reg, i)})
		}
	}
	register := func(w *worker) error {
		_, err := w.reg.RegisterWorker(ctx, registry.RegisterWorkerArgs{
			Namespace: w.ns, WorkerID: "pool", WorkerInstanceID: w.id,
			Lanes: []string{"default", "gpu"}, Capabilities: []string{"cuda"}, LivenessTTL: ttl,
		})
		return err
	}
	for _, w := range ws {
		if err := register(w); err != nil {
			t.Fatal(err)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	var samples []soakSample
	var leaseCursor *registry.LeaseCursor
	var eventCursor int64
	sample := func(done int, quiet bool) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(lat)
		samples = append(samples, soakSample{calls: done, wal: st.Size(), heapInuse: ms.HeapInuse, p99: lat[len(lat)*99/100], quiet: quiet})
		lat = lat[:0]
	}
	next := 0 // the worker whose turn it is
	for done := 1; done <= calls; done++ {
		clockMS += stepMS
		w := ws[next%len(ws)]
		next++
		start := time.Now()
		var err error
		k := rng.IntN(100)
		quiet := ((done-1)/soakPhase)%2 == 1
		if quiet {
			// Stretches of single heartbeats alone, as in a quiet hour:
			// no COMMIT among them to run a checkpoint for them.
			k, w = 0, ws[next%workers]
		}
		switch {
		case k < 55: // a single heartbeat, or the silence of a paused worker
			if w.silent > 0 {
				w.silent--
				break
			}
			var hb registry.HeartbeatResult
			hb, err = w.reg.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: w.ns, WorkerInstanceID: w.id})
			if err == nil && hb.Outcome == registry.HeartbeatNotRegistered {
				err = register(w)
			}
		case k < 65: // a batch heartbeat of the next 50 workers
			batch := make([]registry.HeartbeatWorkerArgs, 0, 50)
			for j := range 50 {
				b := ws[(next+j)%len(ws)]
				if b.reg == w.reg && b.silent == 0 {
					batch = append(batch, registry.HeartbeatWorkerArgs{Namespace: b.ns, WorkerInstanceID: b.id})
				}
			}
			_, err = w.reg.HeartbeatWorkers(ctx, batch)
		case k < 70:
			err = register(w)
		case k < 75: // a worker pauses past its TTL; the sweep will find it
			w.silent = 1 + rng.IntN(3)
		case k < 80:
			var page registry.ListWorkersResult
			page, err = w.reg.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: w.ns, Lane: "gpu", Limit: 100})
			if err == nil && len(page.Workers) == 0 {
				err = fmt.Errorf("no live worker in %s", w.ns)
			}
		case k < 85:
			var page registry.ListExpiredLeasesResult
			page, err = w.reg.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{After: leaseCursor, Limit: 200})
			if err == nil {
				leaseCursor = page.Next
			}
		case k < 88:
			_, err = w.reg.SweepExpiredWorkers(ctx, time.Time{})
		case k < 93:
			var page registry.ListWorkerEventsResult
			page, err = w.reg.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: w.ns, After: eventCursor, Limit: 100})
			if err == nil {
				eventCursor = page.Next
			}
		case k < 96:
			_, err = w.reg.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: w.ns, WorkerInstanceID: w.id})
		default:
			_, err = w.reg.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: w.ns, WorkerInstanceID: w.id, Reason: "soak"})
		}
		lat = append(lat, time.Since(start))
		if err != nil {
			t.Fatalf("call %d: %v", done, err)
		}
		if done%soakPhase == 0 {
			sample(done, quiet)
		}
	}
	checkSoak(t, samples, latencySlack)
	if out := os.Getenv("REGISTRY_SOAK_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(soakReport(calls, samples)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSoak asserts that the samples stay flat: the WAL under soakMaxWAL at
// every point; the heap, and the p99 latency of each kind of stretch, in
// the last quarter of the run within bounds of the second quarter's (the
// first is warm-up: caches filling, the event log reaching its retention).
func checkSoak(t *testing.T, samples []soakSample, latencySlack time.Duration) {
	t.Helper()
	for _, s := range samples {
		t.Logf("after %7d calls: WAL %6.2f MB, heap in use %6.2f MB, p99 %v (quiet %v)", s.calls, mb(s.wal), mb(int64(s.heapInuse)), s.p99, s.quiet)
		if s.wal > soakMaxWAL {
			t.Errorf("after %d calls the WAL is %.1f MB, over %d MB", s.calls, mb(s.wal), soakMaxWAL>>20)
		}
	}
	q := max(1, len(samples)/4)
	early, late := samples[q:2*q], samples[len(samples)-q:]
	heap := func(ss []soakSample) uint64 {
		return slices.MaxFunc(ss, func(a, b soakSample) int { return cmp.Compare(a.heapInuse, b.heapInuse) }).heapInuse
	}
	// Slack for a GC cycle's worth of garbage.
	if e, l := heap(early), heap(late); l > e*3/2+8<<20 {
		t.Errorf("heap in use grew from %.1f MB to %.1f MB", mb(int64(e)), mb(int64(l)))
	}
	for _, quiet := range []bool{false, true} {
		// The median p99 of the stretches of one kind in a part of the run.
		p99 := func(ss []soakSample) time.Duration {
			var ds []time.Duration
			for _, s := range ss {
				if s.quiet == quiet {
					ds = append(ds, s.p99)
				}
			}
			slices.Sort(ds)
			return ds[len(ds)/2]
		}
		// Samples alternate kinds, so widen a part that holds one kind only.
		e, l := p99(samples[q:min(len(samples), 2*q+1)]), p99(samples[len(samples)-q-1:])
		// Slack for a busy machine.
		if l > 3*e+latencySlack {
			t.Errorf("p99 latency (single heartbeats alone: %v) grew from %v to %v", quiet, e, l)
		}
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// soakReport is the soak's figures as the Markdown section of BENCHMARKS.md.
func soakReport(calls int, samples []soakSample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d mixed calls on two registries sharing one flowfabrictest.SQLite file (`make soak`, %s, %s/%s):\n\n", calls, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	most := slices.MaxFunc(samples, func(a, b soakSample) int { return cmp.Compare(a.wal, b.wal) })
	fmt.Fprintf(&b, "Largest WAL: %.2f MB (after %d calls); limit %d MB.\n\n", mb(most.wal), most.calls, soakMaxWAL>>20)
	b.WriteString("| calls | stretch | WAL (MB) | heap in use (MB) | p99 of the stretch |\n|---:|---|---:|---:|---:|\n")
	// At most about 20 rows, each a stretch of each kind.
	step := max(2, len(samples)/20/2*2)
	for i := 0; i+1 < len(samples); i += step {
		for _, s := range samples[i : i+2] {
			kind := "mixed"
			if s.quiet {
				kind = "heartbeats"
			}
			fmt.Fprintf(&b, "| %d | %s | %.2f | %.2f | %v |\n", s.calls, kind, mb(s.wal), mb(int64(s.heapInuse)), s.p99.Round(time.Microsecond))
		}
	}
	return b.String()
}
