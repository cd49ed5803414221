package registry_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// Shape of TestMultiProcessFairness.
const (
	fairBatchers    = 3    // processes sending large batches
	fairGoroutines  = 2    // per batching process
	fairBatch       = 2000 // heartbeats per batch
	fairInterval    = 20 * time.Millisecond
	fairDuration    = 10 * time.Second
	fairMaxP99      = time.Second
	fairMinBeats    = 150             // of the 500 that fairDuration allows
	fairCallTimeout = 5 * time.Second // each single heartbeat's context
	fairNamespace   = "fair"
	fairBeaterID    = "beater"
)

// TestMultiProcessFairness checks that a process writing now and then gets
// the SQLite write lock within a bounded time while other processes write
// back to back: 3 processes, each with 2 goroutines sending batches of
// 2,000 heartbeats, and a fourth sending one heartbeat every 20 ms for
// 10 s. SQLite's own busy handler polls at growing intervals (up to
// 100 ms), and a process whose goroutines hand its writer connection from
// one to the next keeps the lock almost continuously: without the
// registry's chunking, retries and yields, the single heartbeats waited
// for seconds and some failed with SQLITE_BUSY. Every call must succeed,
// and the single heartbeats' 99th percentile must stay within a second.
func TestMultiProcessFairness(t *testing.T) {
	// Not parallel: it measures latency, which other tests would disturb.
	path := t.TempDir() + "/registry.db"
	ctx := context.Background()
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]registry.RegisterWorkerArgs, 0, fairBatch+1)
	for i := range fairBatch {
		batch = append(batch, fairRegistration(fmt.Sprintf("b-%04d", i)))
	}
	batch = append(batch, fairRegistration(fairBeaterID))
	for _, args := range batch {
		if _, err := r.RegisterWorker(ctx, args); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	start := func(role string, id int) *multiChild {
		return startChild(t, role, path, envChildID+"="+strconv.Itoa(id))
	}
	var batchers []*multiChild
	for i := range fairBatchers {
		batchers = append(batchers, start("batcher", i))
	}
	beater := start("beater", fairBatchers)
	all := append(slices.Clone(batchers), beater)
	deadline := time.After(multiStartLimit)
	for i, c := range all {
		if err := waitForLine(c.lines, "ready", deadline); err != nil {
			t.Fatal(childFailure(fmt.Sprintf("child %d", i), err, c.stderr.String()))
		}
	}
	for _, c := range all {
		fmt.Fprintln(c.stdin, "go")
	}
	beater.stdin.Close()

	// The beater ends by itself; then the batchers are told to stop.
	finish := func(name string, c *multiChild) {
		other := c.readAll()
		t.Logf("%s: %v", name, c.summary)
		err := c.cmd.Wait()
		if err != nil || c.summary == nil || c.summary["errors"] != "0" {
			t.Errorf("%s\n--- stdout ---\n%s", childFailure(name, err, c.stderr.String()), strings.Join(other, "\n"))
		}
	}
	finish("beater", beater)
	for _, c := range batchers {
		c.stdin.Close()
	}
	for i, c := range batchers {
		finish(fmt.Sprintf("batcher %d", i), c)
		if n, _ := strconv.Atoi(c.summary["batches"]); c.summary != nil && n == 0 {
			t.Errorf("batcher %d completed no batch", i)
		}
	}
	if beater.summary == nil {
		return
	}
	if n, _ := strconv.Atoi(beater.summary["beats"]); n < fairMinBeats {
		t.Errorf("beater completed %d heartbeats in %v, want at least %d", n, fairDuration, fairMinBeats)
	}
	p99, err := time.ParseDuration(beater.summary["p99"])
	if err != nil {
		t.Fatalf("beater's summary %v: %v", beater.summary, err)
	}
	if p99 > fairMaxP99 {
		t.Errorf("single heartbeats' p99 = %v, want at most %v", p99, fairMaxP99)
	}
}

func fairRegistration(instance string) registry.RegisterWorkerArgs {
	return registry.RegisterWorkerArgs{
		Namespace: fairNamespace, WorkerID: "pool", WorkerInstanceID: instance,
		Lanes: []string{"default"}, LivenessTTL: time.Hour,
	}
}

// fairChildOpen opens the registry of a child of TestMultiProcessFairness,
// says ready and waits for go; it returns the rest of stdin.
func fairChildOpen(t *testing.T) (*registry.Registry, *bufio.Reader) {
	r, err := registry.Open(context.Background(), os.Getenv(envChildDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	fmt.Println("ready")
	stdin := bufio.NewReader(os.Stdin)
	if _, err := stdin.ReadString('\n'); err != nil {
		t.Fatalf("waiting for go: %v", err)
	}
	return r, stdin
}

// batcherChild sends batches of fairBatch heartbeats from fairGoroutines
// goroutines, back to back, until stdin closes.
func batcherChild(t *testing.T) {
	r, stdin := fairChildOpen(t)
	stop := make(chan struct{})
	go func() {
		stdin.ReadString('\n')
		close(stop)
	}()
	batch := make([]registry.HeartbeatWorkerArgs, fairBatch)
	for i := range batch {
		batch[i] = registry.HeartbeatWorkerArgs{Namespace: fairNamespace, WorkerInstanceID: fmt.Sprintf("b-%04d", i)}
	}
	var batches, errs atomic.Int64
	var wg sync.WaitGroup
	for range fairGoroutines {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := r.HeartbeatWorkers(context.Background(), batch)
				if err == nil && len(res) == len(batch) && res[0].Outcome == registry.HeartbeatRefreshed &&
					res[len(res)-1].Outcome == registry.HeartbeatRefreshed {
					batches.Add(1)
					continue
				}
				if errs.Add(1) <= 5 {
					t.Errorf("batch: %d results, %v", len(res), err)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("summary batches=%d errors=%d\n", batches.Load(), errs.Load())
}

// beaterChild sends one heartbeat every fairInterval for fairDuration and
// reports how long they took.
func beaterChild(t *testing.T) {
	r, _ := fairChildOpen(t)
	args := registry.HeartbeatWorkerArgs{Namespace: fairNamespace, WorkerInstanceID: fairBeaterID}
	var took []time.Duration
	errs := 0
	begin := time.Now()
	for next := begin; time.Since(begin) < fairDuration; next = next.Add(fairInterval) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now() // late: do not send a burst to catch up
		}
		ctx, cancel := context.WithTimeout(context.Background(), fairCallTimeout)
		callStart := time.Now()
		res, err := r.HeartbeatWorker(ctx, args)
		took = append(took, time.Since(callStart))
		cancel()
		if err != nil || res.Outcome != registry.HeartbeatRefreshed {
			errs++
			t.Errorf("heartbeat %d after %v: %+v, %v", len(took), took[len(took)-1], res, err)
		}
	}
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
	fmt.Printf("summary beats=%d errors=%d p50=%v p99=%v max=%v\n", len(took), errs, q(0.5), q(0.99), took[len(took)-1])
}
