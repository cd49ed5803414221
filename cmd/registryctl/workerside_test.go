package main

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

func TestWorkersGetAndResume(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0.Add(4 * time.Second)
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			register(t, reg, "ns", "w1", "gpu-pool", []string{"gpu", "default"}, []string{"cuda"}, 30*time.Second, t0)
			register(t, reg, "ns", "idle", "gpu-pool", []string{"default"}, nil, 30*time.Second, t0)
			if _, err := reg.RequestDrain(context.Background(), registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w1", Now: t0}); err != nil {
				t.Fatal(err)
			}
		})

		want := `NAMESPACE     ns
INSTANCE      w1
WORKER        gpu-pool
STATUS        draining
LANES         default,gpu
CAPABILITIES  cuda
REGISTERED    4s ago (2026-01-01T12:00:00.000Z)
LAST SEEN     4s ago (2026-01-01T12:00:00.000Z)
EXPIRES       in 26s (2026-01-01T12:00:30.000Z)
TTL           30s
LOAD          -
VERSION       -
`
		if res := ctlAt(t, path, now, 0, "workers", "get", "-namespace", "ns", "-instance", "w1"); res.Stdout != want || res.Stderr != "" {
			t.Fatalf("workers get:\n%s\nwant:\n%s\nstderr %q", res.Stdout, want, res.Stderr)
		}
		w := decode[workerJSON](t, ctlAt(t, path, now, 0, "workers", "get", "-namespace", "ns", "-instance", "w1", "-json").Stdout)
		if w.WorkerInstanceID != "w1" || w.Status != "draining" || !w.Draining || !slices.Equal(w.Lanes, []string{"default", "gpu"}) ||
			w.ExpiresAt != "2026-01-01T12:00:30.000Z" || w.LivenessTTLMS != 30_000 {
			t.Fatalf("workers get -json = %+v", w)
		}

		if res := ctlAt(t, path, now, 0, "workers", "resume", "-namespace", "ns", "-instance", "w1"); res.Stdout != "resumed: worker instance \"w1\" in namespace \"ns\"\n" || res.Stderr != "" {
			t.Fatalf("resume: stdout %q, stderr %q", res.Stdout, res.Stderr)
		}
		if w := decode[workerJSON](t, ctlAt(t, path, now, 0, "-json", "workers", "get", "-namespace", "ns", "-instance", "w1").Stdout); w.Status != "live" || w.Draining {
			t.Fatalf("after resume: %+v, want live", w)
		}
		if out := decode[outcomeJSON](t, ctlAt(t, path, now, 0, "-json", "workers", "resume", "-namespace", "ns", "-instance", "idle").Stdout); out != (outcomeJSON{Namespace: "ns", WorkerInstanceID: "idle", Outcome: "resumed"}) {
			t.Fatalf("resume -json = %+v", out)
		}
		events := decode[eventsJSON](t, ctlAt(t, path, now, 0, "-json", "workers", "events", "-namespace", "ns", "-instance", "w1").Stdout).Events
		var kinds []string
		for _, e := range events {
			kinds = append(kinds, e.Kind)
		}
		if want := []string{"registered", "drain_requested", "resumed"}; !slices.Equal(kinds, want) {
			t.Fatalf("events of w1 = %q, want %q", kinds, want)
		}

		// Not live: unknown, in another namespace, or expired.
		later := t0.Add(time.Minute)
		for _, tc := range []struct {
			at   time.Time
			args []string
		}{
			{now, []string{"workers", "get", "-namespace", "ns", "-instance", "ghost"}},
			{now, []string{"workers", "get", "-namespace", "other", "-instance", "w1"}},
			{later, []string{"workers", "get", "-namespace", "ns", "-instance", "w1"}},
			{now, []string{"workers", "resume", "-namespace", "ns", "-instance", "ghost"}},
			{later, []string{"workers", "resume", "-namespace", "ns", "-instance", "idle"}},
		} {
			res := ctlAt(t, path, tc.at, 3, tc.args...)
			if !strings.HasPrefix(res.Stdout, "not_registered: worker instance \""+tc.args[len(tc.args)-1]+"\" in namespace \""+tc.args[3]+"\"\n") || !strings.Contains(res.Stderr, "is not registered") {
				t.Errorf("%q: stdout %q, stderr %q", tc.args, res.Stdout, res.Stderr)
			}
		}
		if out := decode[outcomeJSON](t, ctlAt(t, path, later, 3, "-json", "workers", "get", "-namespace", "ns", "-instance", "w1").Stdout); out != (outcomeJSON{Namespace: "ns", WorkerInstanceID: "w1", Outcome: "not_registered"}) {
			t.Fatalf("get -json of an expired worker = %+v", out)
		}
		wantError(t, registryctl(t, t.TempDir(), nil, "-db", path, "workers", "get", "-namespace", "ns", "-instance", " w1"), 2, "-instance: must not have leading or trailing space")
		wantError(t, registryctl(t, t.TempDir(), nil, "-db", path, "workers", "resume", "-namespace", "ns "), 2, "workers resume: -instance is required")
	})
}

func TestLeasesOrphaned(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0
		var ids []registry.ExecutionID
		path := newDB(t, s, func(reg *registry.Registry, sqlDB *sql.DB) {
			register(t, reg, "alpha", "alive", "pool", []string{"default"}, nil, time.Hour, t0)
			ids = registrytest.InsertLeases(t, sqlDB,
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "dead", ExpiresAt: t0.Add(2 * time.Hour)},                     // orphaned
				registrytest.Lease{Namespace: "beta", WorkerInstanceID: "dead", LeaseEpoch: 3, ExpiresAt: t0.Add(time.Hour)},           // orphaned
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "gone", AttemptIndex: 2, ExpiresAt: t0.Add(90 * time.Minute)}, // orphaned
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "alive", ExpiresAt: t0.Add(3 * time.Hour)},                    // held by a live worker
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "dead", ExpiresAt: t0.Add(-time.Hour)},                        // expired: leases expired
				registrytest.Lease{Namespace: "alpha", State: "completed", WorkerInstanceID: "dead", ExpiresAt: t0.Add(time.Hour)},     // not leased
			)
		})
		orphaned := []string{ids[1].String(), ids[2].String(), ids[0].String()} // by expiry

		header, body := rows(t, ctlAt(t, path, now, 0, "leases", "orphaned").Stdout)
		if want := []string{"EXECUTION", "ATTEMPT", "INSTANCE", "NAMESPACE", "EXPIRES"}; !slices.Equal(header, want) {
			t.Fatalf("header = %q, want %q", header, want)
		}
		want := [][]string{
			{orphaned[0], "0", "dead", "beta", "in 1h"},
			{orphaned[1], "2", "gone", "alpha", "in 1h30m"},
			{orphaned[2], "0", "dead", "alpha", "in 2h"},
		}
		if !slices.EqualFunc(body, want, slices.Equal) {
			t.Fatalf("rows =\n%q\nwant\n%q", body, want)
		}
		_, body = rows(t, ctlAt(t, path, now, 0, "leases", "orphaned", "-wide", "-namespace", "beta").Stdout)
		if len(body) != 1 || body[0][0] != orphaned[0] || body[0][6] != "3" || body[0][7] != "2026-01-01T13:00:00.000Z" {
			t.Fatalf("-wide -namespace beta = %q", body)
		}
		got := decode[leasesJSON](t, ctlAt(t, path, now, 0, "-json", "leases", "orphaned", "-limit", "2").Stdout)
		if len(got.Leases) != 2 || got.Leases[1].ExecutionID != orphaned[1] || got.Leases[1].AttemptIndex != 2 ||
			got.Next == nil || got.Next.ExecutionID != orphaned[1] || got.Next.AttemptIndex != 2 {
			t.Fatalf("-json -limit 2 = %+v next %+v", got.Leases, got.Next)
		}
		res := ctlAt(t, path, now, 0, "leases", "orphaned", "-limit", "2")
		if !strings.HasPrefix(res.Stderr, "more leases: continue with -as-of 2026-01-01T12:00:00.000Z -after-expires 2026-01-01T13:30:00.000Z") {
			t.Fatalf("-limit 2: stderr %q", res.Stderr)
		}
		if _, body := rows(t, ctlAt(t, path, now, 0, "leases", "orphaned", "-limit", "1", "-all").Stdout); !slices.Equal(col(body, 0), orphaned) {
			t.Fatalf("-all: %q, want %q", col(body, 0), orphaned)
		}
		// Once the live worker's registration lapses, its lease is orphaned too.
		_, body = rows(t, ctlAt(t, path, t0.Add(61*time.Minute), 0, "leases", "orphaned", "-namespace", "alpha").Stdout)
		if got := col(body, 2); !slices.Equal(got, []string{"gone", "dead", "alive"}) {
			t.Fatalf("an hour later, alpha's holders = %q", got)
		}
		wantError(t, registryctl(t, t.TempDir(), nil, "-db", path, "leases", "orphaned", "-limit", "-3"), 2, "-limit: must not be negative")
	})
}
