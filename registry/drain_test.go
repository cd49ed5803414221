package registry_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

func TestDrain(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		mustRegister(t, r, registerArgs("ns", "other", t0))

		o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second)})
		if err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		equal(t, "directive", mustHeartbeat(t, r, "ns", "w", t0.Add(2*time.Second)).Directive, registry.DirectiveDrain)
		equal(t, "directive again", mustHeartbeat(t, r, "ns", "w", t0.Add(3*time.Second)).Directive, registry.DirectiveDrain)
		equal(t, "other's directive", mustHeartbeat(t, r, "ns", "other", t0.Add(3*time.Second)).Directive, registry.DirectiveNone)
		w := mustList(t, r, registry.ListWorkersArgs{Now: t0.Add(3 * time.Second)}).Workers
		equal(t, "draining", []bool{w[0].Draining, w[1].Draining}, []bool{false, true}) // other, w

		// A refresh keeps the drain (TestDrainOutlivesLapseSweepAndRegistration:
		// so does a new registration); ResumeWorker withdraws it.
		equal(t, "re-register", mustRegister(t, r, registerArgs("ns", "w", t0.Add(4*time.Second))), registry.Refreshed)
		equal(t, "directive after re-register", mustHeartbeat(t, r, "ns", "w", t0.Add(5*time.Second)).Directive, registry.DirectiveDrain)
		if o, err := r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(6 * time.Second)}); err != nil || o != registry.Resumed {
			t.Fatalf("ResumeWorker = %v, %v", o, err)
		}
		equal(t, "re-register after resume", mustRegister(t, r, registerArgs("ns", "w", t0.Add(7*time.Second))), registry.Refreshed)
		equal(t, "directive after resume", mustHeartbeat(t, r, "ns", "w", t0.Add(8*time.Second)).Directive, registry.DirectiveNone)
		equal(t, "events", b.eventKinds(t), []string{"registered", "registered", "drain_requested", "refreshed", "resumed", "refreshed"})
	})
}

func TestDrainOfAbsentOrExpiredWorker(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		before := b.snapshot(t)
		for _, args := range []registry.RequestDrainArgs{
			{Namespace: "ns", WorkerInstanceID: "unknown", Now: t0},
			{Namespace: "other", WorkerInstanceID: "w", Now: t0},
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(10 * time.Second)}, // at expiry
		} {
			o, err := r.RequestDrain(ctx, args)
			if err != nil || o != registry.DrainNotRegistered {
				t.Fatalf("RequestDrain(%+v) = %v, %v; want DrainNotRegistered", args, o, err)
			}
		}
		_, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: " w"})
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

func TestDrainRecordsReason(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		const reason = "host retired: rack 12 ✓"
		for _, args := range []registry.RequestDrainArgs{
			{Namespace: "ns", WorkerInstanceID: "w", Reason: reason, Now: t0.Add(time.Second)},
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(2 * time.Second)},
			// The same millisecond again: its event's key is taken (on
			// Postgres the one-statement drain gives way to the
			// transaction), and the event moves to the next millisecond.
			{Namespace: "ns", WorkerInstanceID: "w", Reason: "again", Now: t0.Add(2 * time.Second)},
		} {
			if o, err := r.RequestDrain(ctx, args); err != nil || o != registry.DrainRequested {
				t.Fatalf("RequestDrain(%+v) = %v, %v", args, o, err)
			}
		}
		events := b.events(t)
		equal(t, "kinds", b.eventKinds(t), []string{"registered", "drain_requested", "drain_requested", "drain_requested"})
		equal(t, "reason of the first drain", events[1].Reason, sql.NullString{String: reason, Valid: true})
		equal(t, "reason of the second drain", events[2].Reason, sql.NullString{})
		equal(t, "reason of the third drain", events[3].Reason, sql.NullString{String: "again", Valid: true})
		equal(t, "time of the third drain's event", events[3].AtMS, t0.Add(2*time.Second).UnixMilli()+1)

		page, err := r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: "ns", WorkerInstanceID: "w"})
		if err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, e := range page.Events {
			reasons = append(reasons, e.Reason)
		}
		equal(t, "listed reasons", reasons, []string{"", reason, "", "again"})
	})
}

func TestDrainReasonValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		before := b.snapshot(t)
		for _, reason := range []string{strings.Repeat("r", 257), "bell\a", "tab\there", "bad \xff utf-8"} {
			_, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w", Reason: reason, Now: t0})
			wantValidation(t, err, "reason")
		}
		equal(t, "database", b.snapshot(t), before)
		// 256 bytes is the limit, not past it.
		if o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w", Reason: strings.Repeat("r", 256), Now: t0}); err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain with a 256-byte reason = %v, %v", o, err)
		}
	})
}
