package registry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// Fuzz targets for every exported call that takes user strings or cursors.
// Each asserts: no panic; a rejection is an ErrInvalidInput naming a field
// and writes nothing; an acceptance reads back as given.

// hostileStrings seeds every target: oversized, invalid UTF-8, NUL, control
// and SQL-looking input.
var hostileStrings = []string{
	"", "ns", " ns", "ns\t", "n\x00s", "\xff\xfe", "\xc3", "é", "\u0085", "\u2028",
	strings.Repeat("a", 255), strings.Repeat("a", 256), strings.Repeat("é", 200),
	"'; DROP TABLE ff_worker_registry; --", `" OR 1=1 --`, "a,b", "a b", "%_*", "\\",
}

// fuzzStoreEnv selects the store the fuzz targets run on: "postgres", or
// SQLite by default. CI fuzzes both.
const fuzzStoreEnv = "REGISTRY_FUZZ_STORE"

// fuzzRegistry opens one registry for a whole fuzz target: opening one per
// input would make the fuzzer crawl.
func fuzzRegistry(f *testing.F) (*registry.Registry, *testBundle) {
	f.Helper()
	store := storeSQLite
	if os.Getenv(fuzzStoreEnv) == storePostgres {
		store = storePostgres
	}
	r, b := setupStore(f, store)
	mustRegister(f, r, registerArgs("ns", "w", t0))
	return r, b
}

// state is a cheap fingerprint of every write the registry can make.
func state(tb testing.TB, b *testBundle) string {
	tb.Helper()
	var s string
	concat := "group_concat(%s, ',')"
	if b.store == storePostgres {
		concat = "string_agg(%s, ',' ORDER BY namespace, worker_instance_id)"
	}
	err := b.raw.QueryRow(`SELECT
		(SELECT count(*) FROM ff_worker_registry) || '/' ||
		coalesce((SELECT ` + fmt.Sprintf(concat, "namespace || ':' || worker_instance_id || ':' || expires_at_ms || ':' || draining") + ` FROM ff_worker_registry), '') || '/' ||
		coalesce((SELECT max(event_id) FROM ff_worker_registry_event), 0)`).Scan(&s)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// checkOutcome applies the shared properties to one call.
func checkOutcome(t *testing.T, b *testBundle, before string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ve *registry.ValidationError
	if !errors.Is(err, registry.ErrInvalidInput) || !errors.As(err, &ve) || ve.Field == "" {
		t.Fatalf("error %v (%T) is not a ValidationError naming a field", err, err)
	}
	if after := state(t, b); after != before {
		t.Fatalf("rejected call wrote: %s -> %s (%v)", before, after, err)
	}
}

func FuzzRegisterWorker(f *testing.F) {
	r, b := fuzzRegistry(f)
	for _, s := range hostileStrings {
		f.Add(s, "pool", "inst", "default", "cuda", int64(10_000))
		f.Add("ns", s, "inst", s, s, int64(1))
	}
	f.Add("ns", "other-pool", "w", "default", "", int64(10_000)) // live under another worker ID
	f.Add("ns", "pool", "inst", "a\x1fb", "", int64(86_400_001))
	f.Fuzz(func(t *testing.T, ns, workerID, instance, lanes, caps string, ttlMS int64) {
		before := state(t, b)
		args := registry.RegisterWorkerArgs{
			Namespace: ns, WorkerID: workerID, WorkerInstanceID: instance,
			Lanes: strings.Split(lanes, "\x1f"), Capabilities: strings.Split(caps, "\x1f"),
			LivenessTTL: time.Duration(ttlMS) * time.Millisecond, Now: t0,
		}
		_, err := r.RegisterWorker(context.Background(), args)
		if errors.Is(err, registry.ErrInstanceReassigned) {
			if after := state(t, b); after != before {
				t.Fatalf("reassignment wrote: %s -> %s", before, after)
			}
			return
		}
		checkOutcome(t, b, before, err)
		if err != nil {
			return
		}
		var storedWorker string
		if err := b.raw.QueryRow(`SELECT worker_id FROM ff_worker_registry WHERE namespace = ? AND worker_instance_id = ?`,
			ns, instance).Scan(&storedWorker); err != nil || storedWorker != workerID {
			t.Fatalf("registered %q/%q reads back worker %q, %v; want %q", ns, instance, storedWorker, err, workerID)
		}
	})
}

func FuzzHeartbeatAndMarkDeadAndDrain(f *testing.F) {
	r, b := fuzzRegistry(f)
	for _, s := range hostileStrings {
		f.Add(s, "w", s)
		f.Add("ns", s, "reason")
	}
	f.Add("ns", "w", strings.Repeat("r", 257))
	f.Fuzz(func(t *testing.T, ns, instance, reason string) {
		ctx := context.Background()
		before := state(t, b)
		_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: ns, WorkerInstanceID: instance, Now: t0})
		checkOutcome(t, b, before, err)
		_, err = r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
			{Namespace: "ns", WorkerInstanceID: "w", Now: t0},
			{Namespace: ns, WorkerInstanceID: instance, Now: t0},
		})
		checkOutcome(t, b, before, err)
		_, err = r.RequestDrain(ctx, registry.DrainArgs{Namespace: ns, WorkerInstanceID: instance + "-x", Now: t0})
		checkOutcome(t, b, state(t, b), err)
		// Mark dead an instance that is never live, so that the target
		// keeps its fixture: a rejection must still name its field.
		_, err = r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: ns, WorkerInstanceID: instance + "-never", Reason: reason, Now: t0})
		checkOutcome(t, b, state(t, b), err)
	})
}

func FuzzListCursors(f *testing.F) {
	r, b := fuzzRegistry(f)
	for _, s := range hostileStrings {
		f.Add("ns", s, "w", s, int64(0), 5)
		f.Add(s, "other", "w", "", int64(-1), -1) // a cursor from another namespace
	}
	f.Fuzz(func(t *testing.T, ns, afterNS, afterInstance, filter string, afterID int64, limit int) {
		ctx := context.Background()
		before := state(t, b)
		_, err := r.ListWorkers(ctx, registry.ListWorkersArgs{
			Namespace: ns, Lane: filter, Capability: filter, Limit: limit, Now: t0,
			After: &registry.WorkerCursor{Namespace: afterNS, WorkerInstanceID: afterInstance},
		})
		if err == nil && ns != "" && afterNS != ns {
			t.Fatalf("cursor from namespace %q accepted for namespace %q", afterNS, ns)
		}
		checkOutcome(t, b, before, err)
		_, err = r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: ns, WorkerInstanceID: afterInstance, After: afterID, Limit: limit})
		checkOutcome(t, b, before, err)
		_, err = r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{
			Namespace: ns, Limit: limit, AsOf: t0,
			After: &registry.LeaseCursor{ExpiresAt: time.UnixMilli(afterID), ExecutionID: registry.ExecutionID{Partition: uint16(limit)}},
		})
		checkOutcome(t, b, before, err)
		if id, err := registry.ParseExecutionID(afterInstance); err == nil {
			_, err = r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{After: &registry.LeaseCursor{ExpiresAt: t0, ExecutionID: id}})
			checkOutcome(t, b, before, err)
		}
	})
}
