package registry_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// TestRejectedCallsChangeNothing runs every validation rule of the package documentation
// against a database holding rows and checks that the error names the field
// and that no row changed.
func TestRejectedCallsChangeNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "i", t0))
		before := b.snapshot(t)

		reg := func(edit func(*registry.RegisterWorkerArgs)) func() error {
			return func() error {
				args := registerArgs("ns", "i", t0.Add(time.Second))
				edit(&args)
				_, err := r.RegisterWorker(ctx, args)
				return err
			}
		}
		hb := func(ns, id string, now time.Time) func() error {
			return func() error {
				_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: ns, WorkerInstanceID: id, Now: now})
				return err
			}
		}
		dead := func(reason string, now time.Time) func() error {
			return func() error {
				_, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "i", Reason: reason, Now: now})
				return err
			}
		}
		list := func(args registry.ListWorkersArgs) func() error {
			return func() error {
				_, err := r.ListWorkers(ctx, args)
				return err
			}
		}
		many := func(n int, s string) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = s + strings.Repeat("x", i%100) + string(rune('a'+i%26))
			}
			return out
		}

		cases := []struct {
			name  string
			call  func() error
			field string
		}{
			{"empty namespace", reg(func(a *registry.RegisterWorkerArgs) { a.Namespace = "" }), "namespace"},
			{"namespace of 256 bytes", reg(func(a *registry.RegisterWorkerArgs) { a.Namespace = strings.Repeat("n", 256) }), "namespace"},
			{"namespace not UTF-8", reg(func(a *registry.RegisterWorkerArgs) { a.Namespace = "ns\xff" }), "namespace"},
			{"namespace with NUL", reg(func(a *registry.RegisterWorkerArgs) { a.Namespace = "n\x00s" }), "namespace"},
			{"namespace with C1 control", reg(func(a *registry.RegisterWorkerArgs) { a.Namespace = "n\u0085s" }), "namespace"},
			{"namespace leading space", reg(func(a *registry.RegisterWorkerArgs) { a.Namespace = " ns" }), "namespace"},
			{"namespace trailing space", reg(func(a *registry.RegisterWorkerArgs) { a.Namespace = "ns\u00a0" }), "namespace"},
			{"empty worker id", reg(func(a *registry.RegisterWorkerArgs) { a.WorkerID = "" }), "worker_id"},
			{"worker id with newline", reg(func(a *registry.RegisterWorkerArgs) { a.WorkerID = "w\n" }), "worker_id"},
			{"empty instance id", reg(func(a *registry.RegisterWorkerArgs) { a.WorkerInstanceID = "" }), "worker_instance_id"},
			{"instance id of 256 bytes", reg(func(a *registry.RegisterWorkerArgs) { a.WorkerInstanceID = strings.Repeat("é", 128) }), "worker_instance_id"},
			{"no lanes", reg(func(a *registry.RegisterWorkerArgs) { a.Lanes = nil }), "lanes"},
			{"65 lanes", reg(func(a *registry.RegisterWorkerArgs) { a.Lanes = many(65, "l") }), "lanes"},
			{"empty lane", reg(func(a *registry.RegisterWorkerArgs) { a.Lanes = []string{"a", ""} }), "lanes[1]"},
			{"lane with comma", reg(func(a *registry.RegisterWorkerArgs) { a.Lanes = []string{"a,b"} }), "lanes[0]"},
			{"lane with space", reg(func(a *registry.RegisterWorkerArgs) { a.Lanes = []string{"a b"} }), "lanes[0]"},
			{"lane of 129 bytes", reg(func(a *registry.RegisterWorkerArgs) { a.Lanes = []string{strings.Repeat("l", 129)} }), "lanes[0]"},
			{"257 capabilities", reg(func(a *registry.RegisterWorkerArgs) { a.Capabilities = many(257, "c") }), "capabilities"},
			// Defect 4 of the reference: a comma inside a capability split it in two.
			{"capability with comma", reg(func(a *registry.RegisterWorkerArgs) { a.Capabilities = []string{"cuda,fp16"} }), "capabilities[0]"},
			{"capability with tab", reg(func(a *registry.RegisterWorkerArgs) { a.Capabilities = []string{"ok", "cu\tda"} }), "capabilities[1]"},
			{"capability with DEL", reg(func(a *registry.RegisterWorkerArgs) { a.Capabilities = []string{"cu\x7fda"} }), "capabilities[0]"},
			{"capability not UTF-8", reg(func(a *registry.RegisterWorkerArgs) { a.Capabilities = []string{"\xc3"} }), "capabilities[0]"},
			{"zero TTL", reg(func(a *registry.RegisterWorkerArgs) { a.LivenessTTL = 0 }), "liveness_ttl"},
			{"TTL under a millisecond", reg(func(a *registry.RegisterWorkerArgs) { a.LivenessTTL = time.Millisecond - 1 }), "liveness_ttl"},
			{"negative TTL", reg(func(a *registry.RegisterWorkerArgs) { a.LivenessTTL = -time.Second }), "liveness_ttl"},
			// Defect 4 of the reference: an unsigned TTL cast to signed wrapped.
			{"TTL over 24h", reg(func(a *registry.RegisterWorkerArgs) { a.LivenessTTL = 24*time.Hour + time.Millisecond }), "liveness_ttl"},
			{"TTL that would wrap", reg(func(a *registry.RegisterWorkerArgs) { a.LivenessTTL = time.Duration(1<<63 - 1) }), "liveness_ttl"},
			{"register before 1970", reg(func(a *registry.RegisterWorkerArgs) { a.Now = time.Unix(-1, 0) }), "now"},
			{"register after 9999", reg(func(a *registry.RegisterWorkerArgs) { a.Now = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), "now"},
			{"heartbeat empty namespace", hb("", "i", t0), "namespace"},
			{"heartbeat bad instance", hb("ns", "i\x00", t0), "worker_instance_id"},
			{"heartbeat before 1970", hb("ns", "i", time.Unix(0, -1e6)), "now"},
			{"reason of 257 bytes", dead(strings.Repeat("r", 257), t0), "reason"},
			{"reason with newline", dead("line\nbreak", t0), "reason"},
			{"reason not UTF-8", dead("\xff", t0), "reason"},
			{"mark dead before 1970", dead("", time.Unix(-5, 0)), "now"},
			{"list bad namespace", list(registry.ListWorkersArgs{Namespace: " ns"}), "namespace"},
			{"list bad lane", list(registry.ListWorkersArgs{Lane: "a,b"}), "lane"},
			{"list bad capability", list(registry.ListWorkersArgs{Capability: "c d"}), "capability"},
			{"list negative limit", list(registry.ListWorkersArgs{Limit: -5}), "limit"},
			{"list cursor with empty namespace", list(registry.ListWorkersArgs{After: &registry.WorkerCursor{WorkerInstanceID: "i"}}), "after.namespace"},
			{"list cursor with bad instance", list(registry.ListWorkersArgs{After: &registry.WorkerCursor{Namespace: "ns", WorkerInstanceID: "\x01"}}), "after.worker_instance_id"},
			{"list cursor from another namespace", list(registry.ListWorkersArgs{Namespace: "ns", After: &registry.WorkerCursor{Namespace: "other", WorkerInstanceID: "i"}}), "after.namespace"},
			{"list before 1970", list(registry.ListWorkersArgs{Now: time.Unix(-1, 0)}), "now"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantValidation(t, tc.call(), tc.field)
				equal(t, "database", b.snapshot(t), before)
			})
		}
	})
}

func TestValidationErrorMessage(t *testing.T) {
	r, _ := setup(t, sqliteStore)
	_, err := r.MarkWorkerDead(context.Background(), registry.MarkWorkerDeadArgs{
		Namespace: "ns", WorkerInstanceID: "i", Reason: strings.Repeat("r", 257), Now: t0,
	})
	equal(t, "message", err.Error(), "mark worker dead: reason: exceeds 256 bytes (got 257)")
}

func TestLimitsAtTheirEdgesAreAccepted(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		lanes := make([]string, 64)
		caps := make([]string, 256)
		for i := range lanes {
			lanes[i] = strings.Repeat("l", 125) + fmt.Sprintf("%03d", i)
		}
		for i := range caps {
			caps[i] = strings.Repeat("c", 125) + fmt.Sprintf("%03d", i)
		}
		args := registry.RegisterWorkerArgs{
			Namespace:        strings.Repeat("n", 255),
			WorkerID:         strings.Repeat("é", 127) + "w",
			WorkerInstanceID: "ünïcode instance",
			Lanes:            lanes,
			Capabilities:     caps,
			LivenessTTL:      24 * time.Hour,
			Now:              time.Unix(0, 0),
		}
		mustRegister(t, r, args)
		args.LivenessTTL = time.Millisecond
		mustRegister(t, r, args)
		w := mustList(t, r, registry.ListWorkersArgs{Now: time.Unix(0, 0)}).Workers
		equal(t, "lanes", len(w[0].Lanes), 64)
		equal(t, "capabilities", len(w[0].Capabilities), 256)
		equal(t, "ttl", w[0].LivenessTTL, time.Millisecond)
		if _, err := r.MarkWorkerDead(context.Background(), registry.MarkWorkerDeadArgs{
			Namespace: args.Namespace, WorkerInstanceID: args.WorkerInstanceID, Reason: strings.Repeat("é", 128), Now: time.Unix(0, 0),
		}); err != nil {
			t.Fatalf("256-byte reason: %v", err)
		}
	})
}
