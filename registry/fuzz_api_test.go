package registry_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
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

// fuzzStore is a registry that a fuzz target keeps for all its inputs:
// opening one per input would make the fuzzer crawl.
type fuzzStore struct {
	store
	r *registry.Registry
	b *testBundle
}

// fuzzStores opens a registry on each engine's store, with worker "w"
// registered, for a fuzz target whose inputs run on each in turn
// (eachFuzzStore). Without REGISTRY_TEST_POSTGRES (and
// REGISTRY_TEST_POSTGRES_REQUIRED) the target fuzzes SQLite alone.
func fuzzStores(f *testing.F) []*fuzzStore {
	f.Helper()
	var out []*fuzzStore
	for _, s := range engineStores() {
		if s.engine == enginePostgres && os.Getenv(registrytest.PostgresEnv) == "" && os.Getenv(registrytest.PostgresRequiredEnv) == "" {
			f.Logf("%s: %s is not set: fuzzing the other stores only", s.name, registrytest.PostgresEnv)
			continue
		}
		r, b := setup(f, s)
		mustRegister(f, r, registerArgs("ns", "w", t0))
		out = append(out, &fuzzStore{s, r, b})
	}
	return out
}

// eachFuzzStore runs one fuzz input on every store, as subtests.
func eachFuzzStore(t *testing.T, stores []*fuzzStore, body func(t *testing.T, r *registry.Registry, b *testBundle)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { body(t, s.r, s.b) })
	}
}

// state is a cheap fingerprint of every write the registry can make.
func state(tb testing.TB, b *testBundle) string {
	tb.Helper()
	var s string
	concat := "group_concat(%s, ',')"
	if b.engine == enginePostgres {
		concat = "string_agg(%s, ',' ORDER BY namespace, worker_instance_id)"
	}
	err := b.raw.QueryRow(`SELECT
		(SELECT count(*) FROM ff_worker_registry) || '/' ||
		coalesce((SELECT ` + fmt.Sprintf(concat, "namespace || ':' || worker_instance_id || ':' || (last_heartbeat_ms + liveness_ttl_ms) || ':' || draining") + ` FROM ff_worker_registry), '') || '/' ||
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
	stores := fuzzStores(f)
	for _, s := range hostileStrings {
		f.Add(s, "pool", "inst", "default", "cuda", int64(10_000))
		f.Add("ns", s, "inst", s, s, int64(1))
	}
	f.Add("ns", "other-pool", "w", "default", "", int64(10_000)) // live under another worker ID
	f.Add("ns", "pool", "inst", "a\x1fb", "", int64(86_400_001))
	f.Fuzz(func(t *testing.T, ns, workerID, instance, lanes, caps string, ttlMS int64) {
		eachFuzzStore(t, stores, func(t *testing.T, r *registry.Registry, b *testBundle) {
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
	})
}

func FuzzHeartbeatAndMarkDeadAndDrain(f *testing.F) {
	stores := fuzzStores(f)
	for _, s := range hostileStrings {
		f.Add(s, "w", s)
		f.Add("ns", s, "reason")
	}
	f.Add("ns", "w", strings.Repeat("r", 257))
	f.Fuzz(func(t *testing.T, ns, instance, reason string) {
		eachFuzzStore(t, stores, func(t *testing.T, r *registry.Registry, b *testBundle) {
			ctx := context.Background()
			before := state(t, b)
			_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: ns, WorkerInstanceID: instance, Now: t0})
			checkOutcome(t, b, before, err)
			_, err = r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
				{Namespace: "ns", WorkerInstanceID: "w", Now: t0},
				{Namespace: ns, WorkerInstanceID: instance, Now: t0},
			})
			checkOutcome(t, b, before, err)
			_, err = r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: ns, WorkerInstanceID: instance + "-x", Now: t0})
			checkOutcome(t, b, state(t, b), err)
			// Mark dead an instance that is never live, so that the target
			// keeps its fixture: a rejection must still name its field.
			_, err = r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: ns, WorkerInstanceID: instance + "-never", Reason: reason, Now: t0})
			checkOutcome(t, b, state(t, b), err)
		})
	})
}

func FuzzListCursors(f *testing.F) {
	stores := fuzzStores(f)
	for _, s := range hostileStrings {
		f.Add("ns", s, "w", s, int64(0), 5)
		f.Add(s, "other", "w", "", int64(-1), -1) // a cursor from another namespace
	}
	f.Fuzz(func(t *testing.T, ns, afterNS, afterInstance, filter string, afterID int64, limit int) {
		eachFuzzStore(t, stores, func(t *testing.T, r *registry.Registry, b *testBundle) {
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
	})
}

// fuzzLease is a lease of FuzzTimes' fixture and whether ListExpiredLeases
// may list it (once expired).
type fuzzLease struct {
	lease  registrytest.Lease
	listed bool
}

// FuzzTimes feeds arbitrary times, as time.Unix(seconds, nanoseconds), to
// every call that takes one. Each call either rejects the time as invalid
// input, naming its field and writing nothing, or accepts it and keeps its
// invariant: listed leases expired at AsOf and lie strictly after the
// cursor, listed workers are live, stored times are the given ones, a
// sweep or prune leaves nothing behind its cutoff.
func FuzzTimes(f *testing.F) {
	stores := fuzzStores(f)
	exec := func(p uint16, last byte) registry.ExecutionID {
		return registry.ExecutionID{Partition: p, UUID: uuid.UUID{15: last}}
	}
	fixture := []fuzzLease{
		{registrytest.Lease{ExecutionID: exec(1, 1), WorkerInstanceID: "min", ExpiresAt: time.UnixMilli(math.MinInt64)}, true},
		{registrytest.Lease{ExecutionID: exec(0, 2), WorkerInstanceID: "pre-epoch", ExpiresAt: time.UnixMilli(-5)}, true},
		{registrytest.Lease{ExecutionID: exec(0, 3), WorkerInstanceID: "done", State: "completed", ExpiresAt: time.UnixMilli(-5)}, false},
		{registrytest.Lease{ExecutionID: exec(0, 4), WorkerInstanceID: "epoch", ExpiresAt: time.Unix(0, 0)}, true},
		{registrytest.Lease{ExecutionID: exec(2, 1), WorkerInstanceID: "epoch-2", ExpiresAt: time.Unix(0, 0)}, true},
		{registrytest.Lease{ExecutionID: exec(1, 4), WorkerInstanceID: "t0", ExpiresAt: t0}, true},
		{registrytest.Lease{ExecutionID: exec(1, 5), WorkerInstanceID: "t0-2", ExpiresAt: t0}, true},
		{registrytest.Lease{ExecutionID: exec(0, 6), WorkerInstanceID: "last", ExpiresAt: lastNow}, true},
		{registrytest.Lease{ExecutionID: exec(3, 7), WorkerInstanceID: "max", ExpiresAt: time.UnixMilli(math.MaxInt64)}, true},
	}
	for _, s := range stores {
		// Zero times mean the clock: a fixed one keeps results predictable.
		s.r = s.b.open(f, registry.WithClock(func() time.Time { return t0 }))
		for _, l := range fixture {
			registrytest.InsertLeases(f, s.b.raw.DB, l.lease)
		}
	}
	for _, ts := range []time.Time{
		t0, year300M, unix62, time.Unix(-1<<62, 0), lastNow, pastLastNow, time.Unix(0, 0), time.Unix(0, -1),
		time.Time{}, yearOnePlus, firstStored, firstStored.Add(-1), lastStored, lastStored.Add(1),
	} {
		f.Add(ts.Unix(), int64(ts.Nanosecond()), ts.Unix(), int64(ts.Nanosecond()), uint16(0), byte(0))
		f.Add(t0.Unix(), int64(0), ts.Unix(), int64(ts.Nanosecond()), uint16(1), byte(4))
	}
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MinInt64), int64(math.MinInt64), uint16(math.MaxUint16), byte(255))

	// nowOK is the bound of a time taken as now: 1970 to the end of 9999.
	nowOK := func(ts time.Time) bool {
		return ts.IsZero() || !ts.Before(time.Unix(0, 0)) && !ts.After(lastNow)
	}
	// storedOK is the bound of a cursor's time: set, and held by int64
	// milliseconds, which it is when UnixMilli round-trips to its
	// millisecond.
	storedOK := func(ts time.Time) bool {
		back := time.UnixMilli(ts.UnixMilli())
		return !ts.IsZero() && !back.After(ts) && ts.Sub(back) < time.Millisecond
	}
	wantRejected := func(t *testing.T, err error, field string) {
		t.Helper()
		var ve *registry.ValidationError
		if !errors.As(err, &ve) || ve.Field != field {
			t.Fatalf("err = %v, want a ValidationError of %q", err, field)
		}
	}
	isAfter := func(exp int64, id registry.ExecutionID, cExp int64, c registry.ExecutionID) bool {
		return cmp.Or(cmp.Compare(exp, cExp), cmp.Compare(id.Partition, c.Partition),
			bytes.Compare(id.UUID[:], c.UUID[:])) > 0
	}
	f.Fuzz(func(t *testing.T, sec, nsec, afterSec, afterNsec int64, partition uint16, last byte) {
		eachFuzzStore(t, stores, func(t *testing.T, r *registry.Registry, b *testBundle) {
			ctx := context.Background()
			ts := time.Unix(sec, nsec)
			nowMS := ts.UnixMilli()
			if ts.IsZero() {
				nowMS = t0.UnixMilli()
			}
			okNow := nowOK(ts)

			// Expired leases, without and with a cursor.
			cursor := &registry.LeaseCursor{ExpiresAt: time.Unix(afterSec, afterNsec), ExecutionID: exec(partition, last)}
			for _, c := range []*registry.LeaseCursor{nil, cursor} {
				before := state(t, b)
				res, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{AsOf: ts, After: c})
				checkOutcome(t, b, before, err)
				okCursor := c == nil || storedOK(c.ExpiresAt)
				switch {
				case !okNow:
					wantRejected(t, err, "as_of")
					continue
				case !okCursor:
					wantRejected(t, err, "after.expires_at")
					continue
				case err != nil:
					t.Fatalf("ListExpiredLeases(as of %v, after %+v): %v", ts, c, err)
				}
				var want []string
				for _, l := range fixture {
					exp := l.lease.ExpiresAt.UnixMilli()
					if l.listed && exp <= nowMS && (c == nil || isAfter(exp, l.lease.ExecutionID, c.ExpiresAt.UnixMilli(), c.ExecutionID)) {
						want = append(want, l.lease.WorkerInstanceID)
					}
				}
				var got []string
				for _, l := range res.Leases {
					if l.ExpiresAt.UnixMilli() > nowMS {
						t.Fatalf("lease %+v expires after as of %v", l, ts)
					}
					if c != nil && !isAfter(l.ExpiresAt.UnixMilli(), l.ExecutionID, c.ExpiresAt.UnixMilli(), c.ExecutionID) {
						t.Fatalf("lease %+v is not after cursor %+v", l, c)
					}
					got = append(got, l.WorkerInstanceID)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("ListExpiredLeases(as of %v, after %+v) = %q, want %q", ts, c, got, want)
				}
			}

			// Register stores the given time, with the longest TTL added.
			before := state(t, b)
			args := registerArgs("ns", "fz", ts)
			args.LivenessTTL = 24 * time.Hour
			_, err := r.RegisterWorker(ctx, args)
			checkOutcome(t, b, before, err)
			if !okNow {
				wantRejected(t, err, "now")
			} else if err != nil {
				t.Fatalf("RegisterWorker(now %v): %v", ts, err)
			} else {
				var heartbeatMS, expiresMS int64
				if err := b.raw.QueryRow(`SELECT last_heartbeat_ms, last_heartbeat_ms + liveness_ttl_ms FROM ff_worker_registry WHERE namespace = 'ns' AND worker_instance_id = 'fz'`).Scan(&heartbeatMS, &expiresMS); err != nil {
					t.Fatal(err)
				}
				if heartbeatMS != nowMS || expiresMS != nowMS+86_400_000 {
					t.Fatalf("registered at %v: stored heartbeat %d, expiry %d; want %d, %d", ts, heartbeatMS, expiresMS, nowMS, nowMS+86_400_000)
				}
			}

			before = state(t, b)
			hb, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "fz", Now: ts})
			checkOutcome(t, b, before, err)
			if !okNow {
				wantRejected(t, err, "now")
			} else if err != nil {
				t.Fatalf("HeartbeatWorker(now %v): %v", ts, err)
			} else if hb.Outcome == registry.HeartbeatRefreshed && hb.NextExpiry.UnixMilli() != nowMS+86_400_000 {
				t.Fatalf("heartbeat at %v: next expiry %v", ts, hb.NextExpiry)
			}

			before = state(t, b)
			_, err = r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
				{Namespace: "ns", WorkerInstanceID: "w", Now: t0},
				{Namespace: "ns", WorkerInstanceID: "fz", Now: ts},
			})
			checkOutcome(t, b, before, err)
			if !okNow {
				wantRejected(t, err, "[1].now")
			} else if err != nil {
				t.Fatalf("HeartbeatWorkers(now %v): %v", ts, err)
			}

			// Mark dead and drain an instance never registered: valid times
			// write nothing either.
			before = state(t, b)
			_, err = r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "never", Now: ts})
			if !okNow {
				wantRejected(t, err, "now")
			} else if err != nil {
				t.Fatalf("MarkWorkerDead(now %v): %v", ts, err)
			}
			_, err = r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "never", Now: ts})
			if !okNow {
				wantRejected(t, err, "now")
			} else if err != nil {
				t.Fatalf("RequestDrain(now %v): %v", ts, err)
			}
			if after := state(t, b); after != before {
				t.Fatalf("mark dead or drain of an unregistered instance at %v wrote: %s -> %s", ts, before, after)
			}

			list, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Now: ts})
			if !okNow {
				wantRejected(t, err, "now")
			} else if err != nil {
				t.Fatalf("ListWorkers(now %v): %v", ts, err)
			}
			for _, w := range list.Workers {
				if w.ExpiresAt.UnixMilli() <= nowMS {
					t.Fatalf("ListWorkers(now %v) lists %s/%s, expired at %v", ts, w.Namespace, w.WorkerInstanceID, w.ExpiresAt)
				}
			}

			before = state(t, b)
			_, err = r.SweepExpiredWorkers(ctx, ts)
			checkOutcome(t, b, before, err)
			if !okNow {
				wantRejected(t, err, "now")
			} else if err != nil {
				t.Fatalf("SweepExpiredWorkers(%v): %v", ts, err)
			} else if n := countRows(t, b, `SELECT count(*) FROM ff_worker_registry WHERE last_heartbeat_ms + liveness_ttl_ms <= ?`, nowMS); n != 0 {
				t.Fatalf("sweep at %v left %d expired rows", ts, n)
			}

			before = state(t, b)
			_, err = r.PruneEvents(ctx, ts)
			checkOutcome(t, b, before, err)
			if !okNow || ts.IsZero() {
				wantRejected(t, err, "before")
			} else if err != nil {
				t.Fatalf("PruneEvents(%v): %v", ts, err)
			} else if n := countRows(t, b, `SELECT count(*) FROM ff_worker_registry_event WHERE event_at_ms < ?`, nowMS); n != 0 {
				t.Fatalf("prune before %v left %d older events", ts, n)
			}
		})
	})
}

func countRows(t *testing.T, b *testBundle, query string, args ...any) int {
	t.Helper()
	var n int
	if err := b.raw.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
