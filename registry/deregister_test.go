package registry_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

func TestDeregisterIsNotMarkedDead(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		mustRegister(t, r, registerArgs("ns", "other", t0))

		o, err := r.DeregisterWorker(ctx, registry.DeregisterWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second)})
		if err != nil || o != registry.Deregistered {
			t.Fatalf("DeregisterWorker = %v, %v", o, err)
		}
		equal(t, "live after", instances(mustList(t, r, registry.ListWorkersArgs{Now: t0.Add(time.Second)}).Workers), []string{"ns/other"})
		events := b.events(t)
		last := events[len(events)-1]
		equal(t, "last event", []string{last.Instance, last.Kind}, []string{"w", "deregistered"})
		equal(t, "its time", last.AtMS, t0.Add(time.Second).UnixMilli())
		equal(t, "its reason", last.Reason.Valid, false)

		// A second call, another namespace, an expired registration: nothing.
		mustRegister(t, r, registerArgs("ns", "lapsed", t0))
		before := b.snapshot(t)
		for _, args := range []registry.DeregisterWorkerArgs{
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(2 * time.Second)},
			{Namespace: "elsewhere", WorkerInstanceID: "other", Now: t0.Add(2 * time.Second)},
			{Namespace: "ns", WorkerInstanceID: "lapsed", Now: t0.Add(10 * time.Second)}, // at expiry
		} {
			o, err := r.DeregisterWorker(ctx, args)
			if err != nil || o != registry.DeregisterNotRegistered {
				t.Fatalf("DeregisterWorker(%+v) = %v, %v; want DeregisterNotRegistered", args, o, err)
			}
		}
		_, err = r.DeregisterWorker(ctx, registry.DeregisterWorkerArgs{Namespace: "", WorkerInstanceID: "w"})
		wantValidation(t, err, "namespace")
		equal(t, "database", b.snapshot(t), before)

		// Deregistered, the instance registers afresh.
		equal(t, "register again", mustRegister(t, r, registerArgs("ns", "w", t0.Add(3*time.Second))), registry.Registered)
	})
}

func TestResumeWithdrawsDrain(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, b := setup(t, s)
		ctx := context.Background()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		if o, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second)}); err != nil || o != registry.DrainRequested {
			t.Fatalf("RequestDrain = %v, %v", o, err)
		}
		equal(t, "directive while draining", mustHeartbeat(t, r, "ns", "w", t0.Add(2*time.Second)).Directive, registry.DirectiveDrain)

		o, err := r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(3 * time.Second)})
		if err != nil || o != registry.Resumed {
			t.Fatalf("ResumeWorker = %v, %v", o, err)
		}
		hb := mustHeartbeat(t, r, "ns", "w", t0.Add(4*time.Second))
		equal(t, "directive after resume", hb.Directive, registry.DirectiveNone)
		equal(t, "expiry after resume", hb.NextExpiry, t0.Add(14*time.Second))
		info, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(4 * time.Second)})
		if err != nil || !ok || info.Draining {
			t.Fatalf("GetWorker after resume = %+v, %v, %v", info, ok, err)
		}
		// Resuming a worker that is not draining records the request too.
		if o, err := r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(5 * time.Second)}); err != nil || o != registry.Resumed {
			t.Fatalf("second ResumeWorker = %v, %v", o, err)
		}
		equal(t, "events", b.eventKinds(t), []string{"registered", "drain_requested", "resumed", "resumed"})

		before := b.snapshot(t)
		for _, args := range []registry.ResumeWorkerArgs{
			{Namespace: "ns", WorkerInstanceID: "unknown", Now: t0},
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(14 * time.Second)}, // at expiry
		} {
			o, err := r.ResumeWorker(ctx, args)
			if err != nil || o != registry.ResumeNotRegistered {
				t.Fatalf("ResumeWorker(%+v) = %v, %v; want ResumeNotRegistered", args, o, err)
			}
		}
		_, err = r.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: "w\n"})
		wantValidation(t, err, "worker_instance_id")
		equal(t, "database", b.snapshot(t), before)
	})
}

func TestGetWorker(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		r, _ := setup(t, s)
		ctx := context.Background()
		args := registerArgs("ns", "w", t0)
		args.Lanes = []string{"gpu", "default", "gpu"}
		args.Capabilities = []string{"cuda"}
		mustRegister(t, r, args)
		mustRegister(t, r, registerArgs("other", "w", t0))
		mustHeartbeat(t, r, "ns", "w", t0.Add(2*time.Second))

		get := func(ns, instance string, now time.Time) (registry.WorkerInfo, bool) {
			t.Helper()
			info, ok, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: ns, WorkerInstanceID: instance, Now: now})
			if err != nil {
				t.Fatalf("GetWorker(%s/%s): %v", ns, instance, err)
			}
			return info, ok
		}
		info, ok := get("ns", "w", t0.Add(3*time.Second))
		equal(t, "found", ok, true)
		equal(t, "info", info, registry.WorkerInfo{
			Namespace: "ns", WorkerID: "pool-ns", WorkerInstanceID: "w",
			Lanes: []string{"default", "gpu"}, Capabilities: []string{"cuda"},
			LastHeartbeat: t0.Add(2 * time.Second), RegisteredAt: t0, ExpiresAt: t0.Add(12 * time.Second),
			LivenessTTL: 10 * time.Second,
		})
		// It agrees with ListWorkers.
		listed := mustList(t, r, registry.ListWorkersArgs{Namespace: "ns", Now: t0.Add(3 * time.Second)}).Workers
		equal(t, "listed", listed, []registry.WorkerInfo{info})

		if _, ok := get("ns", "w", t0.Add(12*time.Second)); ok {
			t.Error("found at its expiry")
		}
		if _, ok := get("ns", "unknown", t0); ok {
			t.Error("found an unknown instance")
		}
		if info, ok := get("other", "w", t0.Add(3*time.Second)); !ok || info.WorkerID != "pool-other" {
			t.Errorf("the same instance ID in another namespace = %+v, %v", info, ok)
		}
		_, _, err := r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: ""})
		wantValidation(t, err, "worker_instance_id")
		_, _, err = r.GetWorker(ctx, registry.GetWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: time.Unix(-1, 0)})
		wantValidation(t, err, "now")
	})
}

func TestWorkerSideOutcomesAsText(t *testing.T) {
	type outcomes struct {
		D []registry.DeregisterOutcome
		R []registry.ResumeOutcome
	}
	in := outcomes{
		D: []registry.DeregisterOutcome{registry.Deregistered, registry.DeregisterNotRegistered},
		R: []registry.ResumeOutcome{registry.Resumed, registry.ResumeNotRegistered},
	}
	text, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "JSON", string(text), `{"D":["deregistered","not_registered"],"R":["resumed","not_registered"]}`)
	var out outcomes
	if err := json.Unmarshal(text, &out); err != nil {
		t.Fatal(err)
	}
	equal(t, "round trip", out, in)
	equal(t, "out of range", registry.DeregisterOutcome(0).String(), "DeregisterOutcome(0)")
	if _, err := registry.ResumeOutcome(3).MarshalText(); err == nil {
		t.Error("ResumeOutcome(3) marshals")
	}
	if err := json.Unmarshal([]byte(`{"R":["paused"]}`), &out); err == nil {
		t.Error(`"paused" unmarshals as a ResumeOutcome`)
	}
	if !slices.Equal(out.R, in.R) {
		t.Errorf("a failed unmarshal changed %v", out.R)
	}
}
