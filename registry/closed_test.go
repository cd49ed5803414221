package registry_test

import (
	"context"
	"errors"
	"testing"

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
