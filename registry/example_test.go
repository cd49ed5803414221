package registry_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// A worker process registers once at boot, then heartbeats well within its
// TTL; each heartbeat says when the registration expires and whether an
// operator asked the worker to drain.
func ExampleOpen() {
	ctx := context.Background()
	reg, err := registry.Open(ctx, ":memory:") // or a file path, or a postgres:// URL
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	boot := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	outcome, err := reg.RegisterWorker(ctx, registry.RegisterWorkerArgs{
		Namespace:        "prod",
		WorkerID:         "gpu-pool",
		WorkerInstanceID: "gpu-pool-7f3a",
		Lanes:            []string{"default", "gpu"},
		Capabilities:     []string{"cuda"},
		LivenessTTL:      30 * time.Second,
		Now:              boot, // zero means the registry's clock
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(outcome)

	hb, err := reg.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{
		Namespace: "prod", WorkerInstanceID: "gpu-pool-7f3a", Now: boot.Add(10 * time.Second),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hb.Outcome, hb.NextExpiry.Format(time.TimeOnly), hb.Directive)
	// Output:
	// registered
	// refreshed 12:00:40 none
}

// A process that serves many workers heartbeats them in one call: one
// transaction, several times cheaper than as many single calls. A worker
// that lapsed comes back NotRegistered and should register again.
func ExampleRegistry_HeartbeatWorkers() {
	ctx := context.Background()
	reg, err := registry.Open(ctx, ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	boot := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"w1", "w2"} {
		if _, err := reg.RegisterWorker(ctx, registry.RegisterWorkerArgs{
			Namespace: "prod", WorkerID: "pool", WorkerInstanceID: id,
			Lanes: []string{"default"}, LivenessTTL: 30 * time.Second, Now: boot,
		}); err != nil {
			log.Fatal(err)
		}
	}
	now := boot.Add(20 * time.Second)
	results, err := reg.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
		{Namespace: "prod", WorkerInstanceID: "w1", Now: now},
		{Namespace: "prod", WorkerInstanceID: "w2", Now: now},
		{Namespace: "prod", WorkerInstanceID: "w3", Now: now}, // never registered
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, res := range results {
		fmt.Println(res.Outcome)
	}
	// Output:
	// refreshed
	// refreshed
	// not_registered
}

// The engine asks for the leases that expired so that it can reclaim them,
// a page at a time; here registrytest writes a lease as the engine would.
func ExampleRegistry_ListExpiredLeases() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "registry-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "registry.db")
	reg, err := registry.Open(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	// The engine's side: an execution running on gpu-pool-7f3a, whose lease
	// ran out at noon.
	engineDB, err := registry.OpenSQLiteDB(path)
	if err != nil {
		log.Fatal(err)
	}
	defer engineDB.Close()
	noon := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	execution := registry.ExecutionID{Partition: 7, UUID: uuid.MustParse("11111111-2222-3333-4444-555555555555")}
	if _, err := registrytest.WriteLeases(ctx, engineDB, registrytest.Lease{
		ExecutionID: execution, Namespace: "prod", WorkerInstanceID: "gpu-pool-7f3a", ExpiresAt: noon, LeaseEpoch: 1,
	}); err != nil {
		log.Fatal(err)
	}

	args := registry.ListExpiredLeasesArgs{AsOf: noon.Add(time.Minute), Namespace: "prod"}
	for {
		page, err := reg.ListExpiredLeases(ctx, args)
		if err != nil {
			log.Fatal(err)
		}
		for _, l := range page.Leases {
			fmt.Println(l.ExecutionID, "attempt", l.AttemptIndex, "held by", l.WorkerInstanceID)
		}
		if page.Next == nil {
			break
		}
		args.After = page.Next
	}
	// Output:
	// {fp:7}:11111111-2222-3333-4444-555555555555 attempt 0 held by gpu-pool-7f3a
}

// A worker process's main needs three calls: StartWorker registers and
// heartbeats in the background, Draining says when an operator asked it
// to stop taking work, and Stop deregisters. Here an operator drains the
// worker, as `registryctl workers drain` would.
func ExampleRegistry_StartWorker() {
	ctx := context.Background()
	reg, err := registry.Open(ctx, ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	w, err := reg.StartWorker(ctx, registry.WorkerConfig{
		Namespace:         "prod",
		WorkerID:          "gpu-pool",
		WorkerInstanceID:  "gpu-pool-7f3a",
		Lanes:             []string{"gpu"},
		LivenessTTL:       300 * time.Millisecond,
		HeartbeatInterval: 20 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Elsewhere, an operator.
	if _, err := reg.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "prod", WorkerInstanceID: "gpu-pool-7f3a", Reason: "host upgrade"}); err != nil {
		log.Fatal(err)
	}

	select {
	case <-w.Draining(): // finish the work in hand, take no more
		fmt.Println("draining")
	case <-w.Done():
		log.Fatal(w.Err())
	}
	if err := w.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	events, err := reg.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "prod"})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events.Events {
		switch {
		case e.Kind == "heartbeat":
		case e.Reason != "":
			fmt.Println(e.Kind, e.Reason)
		default:
			fmt.Println(e.Kind)
		}
	}
	// Output:
	// draining
	// registered
	// drain_requested host upgrade
	// deregistered
}
