package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// Example runs the whole scenario, as `go run ./examples/roundtrip` does.
func Example() {
	if err := run(context.Background(), "", os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// T+0s       start W1's loop (pool-a)                   registered
	// T+0s       register W2 (pool-b)                       registered
	// T+0s       register W3 (pool-c)                       registered
	// T+0s       lease L1 held by W1                        expires T+1m0s
	// T+0s       lease L2 held by W2                        expires T+12s
	// T+0s       lease L3 held by W3                        expires T+1m0s
	// T+5s       W1's loop heartbeats                       next expiry T+15s
	// T+5s       W1 checks its State before a job           live: starts the job
	// T+5s       heartbeat W2                               refreshed, next expiry T+15s
	// T+6s       mark W3 dead ("decommissioned")            marked
	// T+6s       orphaned leases (holder not live)          [L3 held by W3, expires T+1m0s]
	// T+6s       engine reclaims L3                         its attempt released
	// T+6s       orphaned leases (holder not live)          []
	// T+14s      W1's loop heartbeats                       next expiry T+24s
	// T+15.001s  heartbeat W2                               not_registered
	// T+15.001s  sweep: registrations removed               1
	// T+15.001s  list workers                               [W1]
	// T+15.001s  expired leases                             [L2 held by W2, expired T+12s]
	// T+15.001s  stop W1's loop                             deregistered
	// T+15.001s  W1 checks its State before a job           ended: takes no job
	// scenario complete: every step behaved as specified
}

func TestStepReportsDeviation(t *testing.T) {
	var out strings.Builder
	s := &scenario{out: &out}
	err := s.step(0, "register W1", registry.Refreshed, registry.Registered)
	if err == nil || !strings.Contains(err.Error(), "got refreshed, want registered") {
		t.Fatalf("step = %v, want a deviation error", err)
	}
	if !strings.Contains(out.String(), "register W1") {
		t.Fatalf("step printed %q", out.String())
	}
}

func TestKeepsDatabaseWhenAsked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.db")
	var out strings.Builder
	if err := run(context.Background(), path, &out); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	res, err := reg.ListWorkerEvents(context.Background(), registry.ListWorkerEventsArgs{Namespace: "rfc025-demo", WorkerInstanceID: "W3"})
	if err != nil || len(res.Events) != 2 || res.Events[1].Kind != "marked_dead" || res.Events[1].Reason != "decommissioned" {
		t.Fatalf("W3's events in the kept database = %+v, %v", res.Events, err)
	}
	// A second run must not reuse the database.
	if err := run(context.Background(), path, &out); err == nil || !strings.Contains(err.Error(), "needs a new database file") {
		t.Fatalf("second run = %v, want a refusal", err)
	}
}

// TestScenarioOnPostgres plays the scenario on a Postgres schema and
// expects the same steps, word for word, as on SQLite; a second run on the
// same database is refused.
func TestScenarioOnPostgres(t *testing.T) {
	dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
	var onSQLite, onPostgres strings.Builder
	if err := run(context.Background(), "", &onSQLite); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), dsn, &onPostgres); err != nil {
		t.Fatalf("%v\n%s", err, onPostgres.String())
	}
	if onPostgres.String() != onSQLite.String() {
		t.Fatalf("on Postgres:\n%s\non SQLite:\n%s", onPostgres.String(), onSQLite.String())
	}
	if err := run(context.Background(), dsn, io.Discard); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second run = %v, want the namespace reported in use", err)
	}
}
