package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// BenchmarkHeartbeatReport compares heartbeats that carry a report with
// the plain heartbeat of BenchmarkHeartbeat, in the same run: the report
// is written by the same single UPDATE (no index covers its columns), so
// it should cost next to nothing. "same" sends one report over and over (a
// quiet worker: the row keeps its size), "changing" a new in-flight count
// each time; the batches are HeartbeatWorkers of 100 with and without a
// report on every entry.
func BenchmarkHeartbeatReport(b *testing.B) {
	reports := map[string]func(i int) *registry.WorkerReport{
		"none": func(int) *registry.WorkerReport { return nil },
		"same": func(int) *registry.WorkerReport {
			return &registry.WorkerReport{InFlight: 3, Capacity: 8, Version: "v1.42.0"}
		},
		"changing": func(i int) *registry.WorkerReport {
			return &registry.WorkerReport{InFlight: i % 9, Capacity: 8, Version: "v1.42.0"}
		},
	}
	for _, name := range []string{"none", "same", "changing"} {
		b.Run("single/report="+name, func(b *testing.B) {
			r, _ := workerFixture(b, benchWorkers)
			var clock clockMS
			report := reports[name]
			steady(b, heartbeatOp(r, func(i int) registry.HeartbeatWorkerArgs {
				args := clock.heartbeat(i)
				args.Report = report(i)
				return args
			}))
		})
	}
	ctx := context.Background()
	const size = 100
	for _, name := range []string{"none", "changing"} {
		b.Run(fmt.Sprintf("batch=%d/report=%s", size, name), func(b *testing.B) {
			r, _ := workerFixture(b, benchWorkers)
			var clock clockMS
			report := reports[name]
			batch := make([]registry.HeartbeatWorkerArgs, size)
			op := func(i int) error {
				now := time.UnixMilli(clock.next())
				for j := range batch {
					batch[j] = registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: instanceID(i*size + j), Now: now, Report: report(i + j)}
				}
				_, err := r.HeartbeatWorkers(ctx, batch)
				return err
			}
			for i := range warmupCalls / size {
				if err := op(i); err != nil {
					b.Fatal(err)
				}
			}
			measure(b, warmupCalls/size, op)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/heartbeat")
		})
	}
}
