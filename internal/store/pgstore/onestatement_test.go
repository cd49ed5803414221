package pgstore_test

import (
	"context"
	"testing"

	"github.com/flowfabric/workerregistry/internal/store"
)

// TestOneStatementWrites checks what the one-statement heartbeat with its
// event and the one-statement refresh keep of the transactions they stand
// for: a report written (none keeps the stored one); a time read before
// the statement that is older than the stored heartbeat never moves it
// back, unless it is explicit; and a refresh applies only where the row's
// drain is its directive's, keeping the drain.
func TestOneStatementWrites(t *testing.T) {
	for _, routed := range []bool{true, false} {
		name := map[bool]string{true: "routed", false: "parents"}[routed]
		t.Run(name, func(t *testing.T) {
			s, _ := openStore(t, routed)
			ctx := context.Background()
			const t0, ttl = int64(1_000_000), int64(10_000)
			k := store.InstanceKey{Namespace: "ns", InstanceID: "w1"}
			at := func(ms int64) func() int64 { return func() int64 { return ms } }
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			// live reads the row: its expiry, drain and report.
			live := func() (store.WorkerRow, string) {
				t.Helper()
				row, ok, err := s.Reader().GetLiveWorker(ctx, k, t0)
				if err != nil || !ok {
					t.Fatalf("GetLiveWorker = %v, %v", ok, err)
				}
				return row, reportText(row.ReportInFlight, row.ReportCapacity, row.ReportVersion)
			}
			must(s.InTx(ctx, func(q store.Writer) error {
				return q.UpsertWorker(ctx, store.WorkerRow{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, WorkerID: "pool",
					Lanes: "a", LastHeartbeatMs: t0, LivenessTTLMs: ttl, RegisteredAtMs: t0})
			}))

			for _, step := range []struct {
				what       string
				now        int64
				explicit   bool
				rep        *store.Report
				wantExpiry int64
				wantReport string
			}{
				{"a heartbeat with a report", t0 + 5, false, &store.Report{InFlight: 2, Capacity: 4, Version: "v1"}, t0 + 5 + ttl, "report 2/4 v1"},
				{"a late heartbeat without a report", t0 + 2, false, nil, t0 + 5 + ttl, "report 2/4 v1"},
				{"a late heartbeat at an explicit time", t0 + 3, true, &store.Report{InFlight: 3, Capacity: 4, Version: "v2"}, t0 + 3 + ttl, "report 3/4 v2"},
			} {
				row, found, err := s.HeartbeatWithEventAt(ctx, k, step.rep, at(step.now), step.explicit)
				if err != nil || !found || row.ExpiresAtMs != step.wantExpiry {
					t.Fatalf("%s: HeartbeatWithEventAt = %+v, %v, %v; want expiry %d", step.what, row, found, err, step.wantExpiry)
				}
				if got, rep := live(); got.ExpiresAtMs != step.wantExpiry || rep != step.wantReport {
					t.Fatalf("%s: row expires %d with %s, want %d with %s", step.what, got.ExpiresAtMs, rep, step.wantExpiry, step.wantReport)
				}
			}
			events, err := s.Reader().ListEvents(ctx, store.EventQuery{Namespace: k.Namespace, Instance: k.InstanceID, Before: 1 << 62, NewestFirst: true, RowLimit: 10})
			must(err)
			var times []int64
			for _, e := range events {
				times = append(times, e.EventAtMs)
			}
			// Each heartbeat's event at the time it was given.
			if len(times) != 3 || times[0] != t0+3 || times[1] != t0+2 || times[2] != t0+5 {
				t.Errorf("heartbeat events at %v, want %v", times, []int64{t0 + 3, t0 + 2, t0 + 5})
			}

			refresh := func(now int64, explicit bool, rep *store.Report) bool {
				t.Helper()
				w := store.WorkerRow{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, WorkerID: "pool",
					Lanes: "b", LastHeartbeatMs: now, LivenessTTLMs: 2 * ttl}
				w.ReportInFlight, w.ReportCapacity, w.ReportVersion = rep.Columns()
				ok, err := s.RefreshRegistration(ctx, w, explicit)
				must(err)
				return ok
			}
			// Stored heartbeat: t0+3. A late refresh is the transaction's to
			// make, which reads its time once it holds the row.
			if refresh(t0+1, false, nil) {
				t.Fatal("a late refresh was made in one statement")
			}
			if got, rep := live(); got.LastHeartbeatMs != t0+3 || rep != "report 3/4 v2" {
				t.Fatalf("after a late refresh that was not made: %+v, %s", got, rep)
			}
			if !refresh(t0+2, true, &store.Report{InFlight: 1, Capacity: 2, Version: "v3"}) {
				t.Fatal("an explicit refresh was not made")
			}
			if got, rep := live(); got.LastHeartbeatMs != t0+2 || rep != "report 1/2 v3" {
				t.Fatalf("after an explicit late refresh with a report: %+v, %s", got, rep)
			}

			// A drain directive that the row does not follow: the refresh is
			// the transaction's to make.
			must(s.Writer().SetDrainDirective(ctx, k, true, t0+3))
			if refresh(t0+4, false, nil) {
				t.Fatal("refreshed a row that is not draining while its drain directive is pending")
			}
			if got, _ := live(); got.LastHeartbeatMs != t0+2 || got.Draining {
				t.Fatalf("a refresh that was not made wrote %+v", got)
			}
			// The row follows it: the refresh keeps the drain.
			ok, err := s.Writer().RequestDrain(ctx, k, t0+4)
			if err != nil || !ok {
				t.Fatalf("RequestDrain = %v, %v", ok, err)
			}
			if !refresh(t0+5, false, nil) {
				t.Fatal("a draining row with its drain pending was not refreshed")
			}
			if got, _ := live(); got.LastHeartbeatMs != t0+5 || !got.Draining {
				t.Fatalf("after refreshing a draining row: %+v", got)
			}
			// Resumed, row and directive alike: refreshed, not draining.
			ok, err = s.Writer().ResumeWorker(ctx, k, t0+6)
			if err != nil || !ok {
				t.Fatalf("ResumeWorker = %v, %v", ok, err)
			}
			must(s.Writer().SetDrainDirective(ctx, k, false, t0+6))
			if !refresh(t0+7, false, nil) {
				t.Fatal("a resumed row was not refreshed")
			}
			if got, _ := live(); got.LastHeartbeatMs != t0+7 || got.Draining {
				t.Fatalf("after refreshing a resumed row: %+v", got)
			}
		})
	}
}

// TestOneStatementDrain checks the one-statement drain against what
// RequestDrain's transaction writes: the row's drain, the directive and the
// event with its reason, or nothing at all. A taken event key leaves the
// drain to the transaction.
func TestOneStatementDrain(t *testing.T) {
	for _, routed := range []bool{true, false} {
		name := map[bool]string{true: "routed", false: "parents"}[routed]
		t.Run(name, func(t *testing.T) {
			s, pool := openStore(t, routed)
			ctx := context.Background()
			const t0, ttl = int64(1_000_000), int64(10_000)
			k := store.InstanceKey{Namespace: "ns", InstanceID: "w1"}
			if err := s.InTx(ctx, func(q store.Writer) error {
				return q.UpsertWorker(ctx, store.WorkerRow{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, WorkerID: "pool",
					Lanes: "a", LastHeartbeatMs: t0, LivenessTTLMs: ttl, RegisteredAtMs: t0})
			}); err != nil {
				t.Fatal(err)
			}
			reason := "rollout"
			drained, done, err := s.RequestDrainWithEvent(ctx, k, t0+1, &reason)
			if err != nil {
				t.Fatal(err)
			}
			if !done || !drained {
				t.Fatalf("RequestDrainWithEvent = drained %v, done %v; want both", drained, done)
			}
			row, ok, err := s.Reader().GetLiveWorker(ctx, k, t0+1)
			if err != nil || !ok || !row.Draining {
				t.Fatalf("after the drain the row is %+v (found %v, %v)", row, ok, err)
			}
			var draining bool
			var updated int64
			if err := pool.QueryRow(ctx, `SELECT draining, updated_at_ms FROM ff_worker_registry_directive
				WHERE namespace = $1 AND worker_instance_id = $2`, k.Namespace, k.InstanceID).Scan(&draining, &updated); err != nil || !draining || updated != t0+1 {
				t.Fatalf("directive: draining %v at %d, %v; want true at %d", draining, updated, err, t0+1)
			}
			events, err := s.Reader().ListEvents(ctx, store.EventQuery{Namespace: k.Namespace, Instance: k.InstanceID, Before: 1 << 62, NewestFirst: true, RowLimit: 10})
			if err != nil || len(events) != 1 || events[0].EventKind != store.EventDrainRequested || events[0].EventAtMs != t0+1 ||
				events[0].Reason == nil || *events[0].Reason != reason {
				t.Fatalf("events after the drain: %+v, %v", events, err)
			}

			// The same millisecond again: the event's key is taken, and the
			// statement writes nothing (the directive keeps its time).
			if drained, done, err := s.RequestDrainWithEvent(ctx, k, t0+1, nil); err != nil || done || drained {
				t.Fatalf("a drain whose event key is taken: drained %v, done %v, %v; want the transaction's", drained, done, err)
			}
			// Absent, and expired: done, nothing drained, nothing written.
			for _, c := range []struct {
				what string
				k    store.InstanceKey
				now  int64
			}{{"absent", store.InstanceKey{Namespace: "ns", InstanceID: "w2"}, t0 + 2}, {"expired", k, t0 + ttl}} {
				if drained, done, err := s.RequestDrainWithEvent(ctx, c.k, c.now, nil); err != nil || !done || drained {
					t.Fatalf("%s: drained %v, done %v, %v; want done, not drained", c.what, drained, done, err)
				}
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM ff_worker_registry_event) + (SELECT count(*) FROM ff_worker_registry_directive WHERE updated_at_ms <> $1)`, t0+1).Scan(&n); err != nil || n != 1 {
				t.Fatalf("events and other directives after the drains that wrote nothing: %d, %v; want the one event", n, err)
			}
		})
	}
}
