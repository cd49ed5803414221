package registrytest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// TestLeaseStateValidated: a Lease whose State is not an execution state
// is refused with an error naming the field, and nothing is written; the
// engine's states are accepted.
func TestLeaseStateValidated(t *testing.T) {
	_, sqlDB := registrytest.Open(t)
	ctx := context.Background()
	exp := time.Now().Add(-time.Minute)
	_, err := registrytest.WriteLeases(ctx, sqlDB,
		registrytest.Lease{Namespace: "ns", WorkerInstanceID: "w", ExpiresAt: exp},
		registrytest.Lease{Namespace: "ns", State: "runing", WorkerInstanceID: "w", ExpiresAt: exp})
	if err == nil || !strings.Contains(err.Error(), `lease 1: State: "runing" is not an execution state`) {
		t.Fatalf("WriteLeases with State runing: %v, want an error naming State", err)
	}
	var n int
	if err := sqlDB.QueryRow(`SELECT count(*) FROM ff_exec_core`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d executions written by a refused call (%v)", n, err)
	}
	for _, state := range append(registrytest.LeaseStates, "") {
		if _, err := registrytest.WriteLeases(ctx, sqlDB, registrytest.Lease{Namespace: "ns", State: state, WorkerInstanceID: "w", ExpiresAt: exp}); err != nil {
			t.Errorf("State %q: %v", state, err)
		}
	}
}
