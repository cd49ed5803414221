package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

func TestDrain(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		r, b := setup(t)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		mustRegister(t, r, registerArgs("ns", "other", t0))

		o, err := r.RequestDrain(ctx, registry.DrainArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second)})
		if err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		equal(t, "directive", mustHeartbeat(t, r, "ns", "w", t0.Add(2*time.Second)).Directive, registry.DirectiveDrain)
		equal(t, "directive again", mustHeartbeat(t, r, "ns", "w", t0.Add(3*time.Second)).Directive, registry.DirectiveDrain)
		equal(t, "other's directive", mustHeartbeat(t, r, "ns", "other", t0.Add(3*time.Second)).Directive, registry.DirectiveNone)
		w := mustList(t, r, registry.ListWorkersArgs{Now: t0.Add(3 * time.Second)}).Workers
		equal(t, "draining", []bool{w[0].Draining, w[1].Draining}, []bool{false, true}) // other, w

		// A refresh by the same process, or a new process, clears the drain.
		equal(t, "re-register", mustRegister(t, r, registerArgs("ns", "w", t0.Add(4*time.Second))), registry.Refreshed)
		equal(t, "directive after re-register", mustHeartbeat(t, r, "ns", "w", t0.Add(5*time.Second)).Directive, registry.DirectiveNone)
		equal(t, "events", b.eventKinds(t), []string{"registered", "registered", "drain_requested", "refreshed"})
	})
}

func TestDrainOfAbsentOrExpiredWorker(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		r, b := setup(t)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		before := b.snapshot(t)
		for _, args := range []registry.DrainArgs{
			{Namespace: "ns", WorkerInstanceID: "unknown", Now: t0},
			{Namespace: "other", WorkerInstanceID: "w", Now: t0},
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(10 * time.Second)}, // at expiry
		} {
			o, err := r.RequestDrain(ctx, args)
			if err != nil || o != registry.DrainNotRegistered {
				t.Fatalf("RequestDrain(%+v) = %v, %v; want DrainNotRegistered", args, o, err)
			}
		}
		_, err := r.RequestDrain(ctx, registry.DrainArgs{Namespace: "ns", WorkerInstanceID: " w"})
		wantValidation(t, err, "worker_instance_id")
		equal(t, "database", b.snapshot(t), before)
	})
}

func TestOutcomeStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{registry.Registered.String(), "registered"},
		{registry.Refreshed.String(), "refreshed"},
		{registry.RegisterOutcome(0).String(), "RegisterOutcome(0)"},
		{registry.HeartbeatRefreshed.String(), "refreshed"},
		{registry.HeartbeatNotRegistered.String(), "not_registered"},
		{registry.Marked.String(), "marked"},
		{registry.MarkNotRegistered.String(), "not_registered"},
		{registry.DrainRequested.String(), "drain_requested"},
		{registry.DrainNotRegistered.String(), "not_registered"},
		{registry.DirectiveNone.String(), "none"},
		{registry.DirectiveDrain.String(), "drain"},
		{registry.Directive(9).String(), "Directive(9)"},
	} {
		equal(t, "String", tc.got, tc.want)
	}
}
