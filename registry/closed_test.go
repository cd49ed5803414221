package registry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// callEveryMethod calls each of the Registry's methods once and returns
// their errors by name.
func callEveryMethod(r *registry.Registry) map[string]error {
	ctx := context.Background()
	errs := map[string]error{}
	_, errs["RegisterWorker"] = r.RegisterWorker(ctx, registerArgs("ns", "w", t0))
	_, errs["HeartbeatWorker"] = r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0})
	_, errs["HeartbeatWorkers"] = r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{{Namespace: "ns", WorkerInstanceID: "w", Now: t0}})
	_, errs["MarkWorkerDead"] = r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0})
	_, errs["RequestDrain"] = r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0})
	_, errs["DeregisterWorker"] = r.DeregisterWorker(ctx, registry.DeregisterWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0})
	_, errs["ResumeWorker"] = r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0})
	_, _, errs["GetWorker"] = r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0})
	_, errs["ListWorkers"] = r.ListWorkers(ctx, registry.ListWorkersArgs{Now: t0})
	_, errs["ListWorkersIncludingExpired"] = r.ListWorkersIncludingExpired(ctx, registry.ListWorkersArgs{})
	_, errs["ListWorkerEvents"] = r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns"})
	_, errs["ListExpiredLeases"] = r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: t0})
	_, errs["ListOrphanedLeases"] = r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{AsOf: t0})
	_, errs["SweepExpiredWorkers"] = r.SweepExpiredWorkers(ctx, t0)
	_, errs["PruneEvents"] = r.PruneEvents(ctx, t0)
	errs["RunSweeper"] = r.RunSweeper(ctx, registry.SweeperConfig{})
	_, errs["StartWorker"] = r.StartWorker(ctx, registry.WorkerConfig{Namespace: "ns", WorkerID: "pool", WorkerInstanceID: "w", Lanes: []string{"default"}, LivenessTTL: t0.Sub(t0.Add(-10e9))})
	return errs
}

// TestCallsAfterCloseFailWithErrClosed: after Close every method fails
// with an error matching ErrClosed and naming its operation; a second
// Close does nothing. A zero Registry fails the same way instead of
// panicking.
func TestCallsAfterCloseFailWithErrClosed(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		for name, err := range callEveryMethod(r) {
			if !errors.Is(err, registry.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})
	var zero registry.Registry
	for name, err := range callEveryMethod(&zero) {
		if !errors.Is(err, registry.ErrClosed) {
			t.Errorf("%s on a zero Registry: %v, want ErrClosed", name, err)
		}
	}
	if err := zero.Close(); err != nil {
		t.Errorf("Close of a zero Registry: %v", err)
	}
}

// TestCallsInFlightAtCloseFailWithErrClosed: calls that run while Close
// closes the registry, on a database that Open opened (so that Close
// closes its pools), succeed or fail with an error matching ErrClosed,
// never with the pools' own errors ("sql: database is closed", "closed
// pool", the statement cache's). A sweeper running under the registry
// ends with ErrClosed too.
func TestCallsInFlightAtCloseFailWithErrClosed(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		dsn := s.database(t)
		rounds := 20 // each round on Postgres opens a pool: seconds
		if s.engine == enginePostgres || testing.Short() {
			rounds = 4
		}
		for round := range rounds {
			r, err := registry.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				if _, err := r.RegisterWorker(context.Background(), registerArgs("ns", fmt.Sprint("w", i), time.Time{})); err != nil {
					t.Fatal(err)
				}
			}
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				bad  []string
				seen atomic.Int64 // calls that returned
			)
			report := func(name string, err error) {
				seen.Add(1)
				if err != nil && !errors.Is(err, registry.ErrClosed) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %v", name, err))
					mu.Unlock()
				}
			}
			for g := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						name, err := callOne(r, g+i, fmt.Sprint("w", (g+i)%4))
						report(name, err)
						if errors.Is(err, registry.ErrClosed) {
							return
						}
					}
				}()
			}
			sweeper := make(chan error, 1)
			go func() {
				sweeper <- r.RunSweeper(context.Background(), registry.SweeperConfig{Interval: time.Millisecond})
			}()
			// Let the calls get going, then close under them.
			for seen.Load() < int64(20+round*5) {
				time.Sleep(100 * time.Microsecond)
			}
			if err := r.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			wg.Wait()
			select {
			case err := <-sweeper:
				if !errors.Is(err, registry.ErrClosed) {
					t.Errorf("RunSweeper under Close: %v, want ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("RunSweeper still running 10 s after Close")
			}
			for _, b := range bad {
				t.Errorf("round %d: in flight at Close: %s, want nil or ErrClosed", round, b)
			}
			if t.Failed() {
				return
			}
		}
	})
}

// callOne calls the i'th (modulo their number) of the Registry's
// short-lived methods on instance in namespace "ns", with the registry's
// clock, and returns its name and error.
func callOne(r *registry.Registry, i int, instance string) (string, error) {
	ctx := context.Background()
	var err error
	switch i % 14 {
	case 0:
		_, err = r.RegisterWorker(ctx, registerArgs("ns", instance, time.Time{}))
		return "RegisterWorker", err
	case 1:
		_, err = r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instance})
		return "HeartbeatWorker", err
	case 2:
		_, err = r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{{Namespace: "ns", WorkerInstanceID: instance}, {Namespace: "ns", WorkerInstanceID: "w0"}})
		return "HeartbeatWorkers", err
	case 3:
		_, _, err = r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: instance})
		return "GetWorker", err
	case 4:
		_, err = r.ListWorkers(ctx, registry.ListWorkersArgs{})
		return "ListWorkers", err
	case 5:
		_, err = r.ListWorkersIncludingExpired(ctx, registry.ListWorkersArgs{})
		return "ListWorkersIncludingExpired", err
	case 6:
		_, err = r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns"})
		return "ListWorkerEvents", err
	case 7:
		_, err = r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{})
		return "ListExpiredLeases", err
	case 8:
		_, err = r.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{})
		return "ListOrphanedLeases", err
	case 9:
		_, err = r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: instance})
		return "RequestDrain", err
	case 10:
		_, err = r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: instance})
		return "ResumeWorker", err
	case 11:
		_, err = r.SweepExpiredWorkers(ctx, time.Time{})
		return "SweepExpiredWorkers", err
	case 12:
		_, err = r.PruneEvents(ctx, time.Now().Add(-time.Hour))
		return "PruneEvents", err
	default:
		_, err = r.DeregisterWorker(ctx, registry.DeregisterWorkerArgs{Namespace: "ns", WorkerInstanceID: instance})
		return "DeregisterWorker", err
	}
}
