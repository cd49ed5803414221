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

func TestStats(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0.Add(time.Minute)
		path := newDB(t, s, func(reg *registry.Registry, sqlDB *sql.DB) {
			register(t, reg, "alpha", "a-1", "pool", []string{"default", "gpu"}, nil, time.Hour, t0)
			register(t, reg, "alpha", "a-2", "pool", []string{"default"}, nil, time.Hour, t0)
			register(t, reg, "alpha", "a-gone", "pool", []string{"default"}, nil, 10*time.Second, t0) // expired, not swept
			register(t, reg, "beta", "b-1", "pool", []string{"gpu"}, nil, time.Hour, t0)
			if _, err := reg.RequestDrain(context.Background(), registry.RequestDrainArgs{Namespace: "alpha", WorkerInstanceID: "a-1", Now: t0}); err != nil {
				t.Fatal(err)
			}
			registrytest.InsertLeases(t, sqlDB,
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "a-gone", ExpiresAt: t0.Add(-2 * time.Hour)},
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "a-gone", ExpiresAt: t0.Add(-time.Hour)},
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "a-1", ExpiresAt: now.Add(time.Hour)}, // not expired
				registrytest.Lease{Namespace: "gamma", WorkerInstanceID: "g-1", ExpiresAt: t0},
			)
		})

		raw := ctlAt(t, path, now, 0, "-json", "stats").Stdout
		// The keys are the contract, whatever this package's structs say.
		top := decode[map[string]any](t, raw)
		ns := top["namespaces"].([]any)[0].(map[string]any)
		lane := ns["lanes"].([]any)[0].(map[string]any)
		for _, keys := range []struct {
			got  map[string]any
			want []string
		}{
			{top, []string{"as_of", "draining", "expired_leases", "expired_unswept", "live", "namespaces"}},
			{ns, []string{"draining", "expired_leases", "expired_unswept", "lanes", "live", "namespace", "oldest_expired_lease"}},
			{lane, []string{"draining", "lane", "live"}},
		} {
			var got []string
			for k := range keys.got {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, keys.want) {
				t.Errorf("keys %q, want %q", got, keys.want)
			}
		}
		v := decode[statsJSON](t, raw)
		want := statsJSON{AsOf: "2026-01-01T12:01:00.000Z", Live: 3, Draining: 1, ExpiredUnswept: 1, ExpiredLeases: 3,
			Namespaces: []namespaceJSON{
				{Namespace: "alpha", Live: 2, Draining: 1, ExpiredUnswept: 1, ExpiredLeases: 2, OldestExpiredLease: ptr("2026-01-01T10:00:00.000Z"),
					Lanes: []laneJSON{{Lane: "default", Live: 2, Draining: 1}, {Lane: "gpu", Live: 1, Draining: 1}}},
				{Namespace: "beta", Live: 1, Lanes: []laneJSON{{Lane: "gpu", Live: 1, Draining: 0}}},
				{Namespace: "gamma", ExpiredLeases: 1, OldestExpiredLease: ptr("2026-01-01T12:00:00.000Z"), Lanes: []laneJSON{}},
			}}
		if !statsEqual(v, want) {
			t.Fatalf("stats -json =\n%+v\nwant\n%+v", v, want)
		}

		out := ctlAt(t, path, now, 0, "stats").Stdout
		lanes, namespaces, ok := strings.Cut(out, "\n\n")
		if !ok {
			t.Fatalf("stats printed one table, want two:\n%s", out)
		}
		// Each table has its title above its header.
		lanes, ok1 := strings.CutPrefix(lanes, statsLanesTitle+"\n")
		namespaces, ok2 := strings.CutPrefix(namespaces, statsNamespacesTitle+"\n")
		if !ok1 || !ok2 {
			t.Fatalf("stats tables are not titled %q and %q:\n%s", statsLanesTitle, statsNamespacesTitle, out)
		}
		header, body := rows(t, lanes)
		if wantRows := [][]string{{"alpha", "default", "2", "1"}, {"alpha", "gpu", "1", "1"}, {"beta", "gpu", "1", "0"}}; !slices.Equal(header, []string{"NAMESPACE", "LANE", "LIVE", "DRAINING"}) ||
			!slices.EqualFunc(body, wantRows, slices.Equal) {
			t.Fatalf("lanes table %q %q, want %q", header, body, wantRows)
		}
		header, body = rows(t, namespaces)
		if wantRows := [][]string{{"alpha", "2", "1", "1", "2", "2h1m ago"}, {"beta", "1", "0", "0", "0", "-"}, {"gamma", "0", "0", "0", "1", "1m ago"}}; !slices.Equal(header, []string{"NAMESPACE", "LIVE", "DRAINING", "UNSWEPT", "EXPIRED LEASES", "OLDEST LEASE EXPIRY"}) ||
			!slices.EqualFunc(body, wantRows, slices.Equal) {
			t.Fatalf("namespaces table %q %q, want %q", header, body, wantRows)
		}

		v = decode[statsJSON](t, ctlAt(t, path, now, 0, "stats", "-json", "-namespace", "beta").Stdout)
		if len(v.Namespaces) != 1 || v.Namespaces[0].Namespace != "beta" || v.Live != 1 || v.ExpiredLeases != 0 {
			t.Fatalf("stats -namespace beta = %+v", v)
		}
		// An empty registry: zero counts, empty lists, not nulls.
		empty := newDB(t, s, func(*registry.Registry, *sql.DB) {})
		raw = ctlAt(t, empty, now, 0, "-json", "stats").Stdout
		if v := decode[map[string]any](t, raw); v["live"] != 0.0 || v["expired_leases"] != 0.0 || v["namespaces"] == nil {
			t.Fatalf("stats of an empty registry = %s", raw)
		}
	})
}

func ptr(s string) *string { return &s }

func statsEqual(a, b statsJSON) bool {
	if a.AsOf != b.AsOf || a.Live != b.Live || a.Draining != b.Draining || a.ExpiredUnswept != b.ExpiredUnswept ||
		a.ExpiredLeases != b.ExpiredLeases || len(a.Namespaces) != len(b.Namespaces) {
		return false
	}
	for i, n := range a.Namespaces {
		m := b.Namespaces[i]
		if n.Namespace != m.Namespace || n.Live != m.Live || n.Draining != m.Draining || n.ExpiredUnswept != m.ExpiredUnswept ||
			n.ExpiredLeases != m.ExpiredLeases || (n.OldestExpiredLease == nil) != (m.OldestExpiredLease == nil) ||
			(n.OldestExpiredLease != nil && *n.OldestExpiredLease != *m.OldestExpiredLease) ||
			n.Lanes == nil || !slices.Equal(n.Lanes, m.Lanes) {
			return false
		}
	}
	return true
}
