package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/internal/store/pgstore"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// openStore opens a store on a migrated schema of its own; routed says
// whether its statements name their partitions.
func openStore(t *testing.T, routed bool) (*pgstore.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	dsn := registrytest.MigratedPostgresSchema(t, registrytest.PostgresDSN(t))
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Event IDs from 1 on both databases, whether the schema is new (the
	// migration leaves the sequence called at 1) or emptied for reuse.
	if _, err := pool.Exec(ctx, "SELECT setval('ff_worker_registry_event_id_seq', 1, false)"); err != nil {
		t.Fatal(err)
	}
	s := pgstore.New(pool, false)
	if !routed {
		return s.Unrouted(), pool
	}
	if err := s.Prepare(ctx, 0, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return s, pool
}

// scenario runs every routed statement, through the store's API, on a
// few hundred workers, and returns a transcript of what each call
// returned, then the tables' rows.
func scenario(t *testing.T, s *pgstore.Store, pool *pgxpool.Pool) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	log := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const n, t0, ttl = 300, int64(1_000_000), int64(10_000)
	key := func(i int) store.InstanceKey {
		return store.InstanceKey{Namespace: fmt.Sprintf("ns%d", i%3), InstanceID: fmt.Sprintf("worker-%03d", i)}
	}
	at := func(ms int64) func() int64 { return func() int64 { return ms } }
	// report is worker i's report at step, nil for every third worker.
	report := func(i, step int) *store.Report {
		if (i+step)%3 == 0 {
			return nil
		}
		return &store.Report{InFlight: int64((i + step) % 7), Capacity: 8, Version: fmt.Sprintf("v%d", step)}
	}
	for i := range n {
		k := key(i)
		must(s.InTx(ctx, func(q store.Writer) error {
			prev, found, err := q.GetWorker(ctx, k)
			rep := reportText(prev.ReportInFlight, prev.ReportCapacity, prev.ReportVersion)
			prev.ReportInFlight, prev.ReportCapacity, prev.ReportVersion = nil, nil, nil
			log("get %v: %+v %s %v", k, prev, rep, found)
			if err != nil {
				return err
			}
			if i%5 == 0 {
				// A drain that the registration follows.
				if err := q.SetDrainDirective(ctx, k, true, t0); err != nil {
					return err
				}
			}
			w := store.WorkerRow{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, WorkerID: "pool",
				Lanes: "a,b", CapabilitiesCsv: "gpu", LastHeartbeatMs: t0, LivenessTTLMs: ttl + int64(i), RegisteredAtMs: t0}
			w.ReportInFlight, w.ReportCapacity, w.ReportVersion = report(i, 0).Columns()
			if err := q.UpsertWorker(ctx, w); err != nil {
				return err
			}
			return q.InsertEvent(ctx, store.EventRow{Namespace: k.Namespace, WorkerInstanceID: k.InstanceID, EventKind: store.EventRegistered, EventAtMs: t0})
		}))
	}
	for i := range n {
		row, found, err := s.HeartbeatAt(ctx, key(i), report(i, 1), at(t0+1))
		must(err)
		log("heartbeat %d: %+v %v", i, row, found)
	}
	for i := range 100 {
		for j := range 3 { // the same millisecond: events move to the next free one
			row, found, err := s.HeartbeatWithEventAt(ctx, key(i), report(i, 2+j), at(t0+2), j == 1)
			must(err)
			log("heartbeat with event %d: %+v %v", i, row, found)
		}
	}
	for i := range 20 {
		// Late: a time before the last heartbeat's, moved back only when
		// explicit.
		row, found, err := s.HeartbeatWithEventAt(ctx, key(i), report(i, 5), at(t0+1), i%2 == 1)
		must(err)
		log("late heartbeat with event %d: %+v %v", i, row, found)
	}
	for i := range 60 {
		if i%6 == 1 {
			// A drain directive that the row does not follow (as the
			// engine's writes may leave it): the refresh leaves it to a
			// transaction.
			must(s.Writer().SetDrainDirective(ctx, key(i), true, t0+3))
		}
	}
	for i := range 60 {
		w := store.WorkerRow{Namespace: key(i).Namespace, WorkerInstanceID: key(i).InstanceID, WorkerID: "pool",
			Lanes: "c", CapabilitiesCsv: "", LastHeartbeatMs: t0 + 3, LivenessTTLMs: ttl}
		if i < 10 {
			w.LastHeartbeatMs = t0 // late: the heartbeat moves back only when explicit
		}
		if i%4 == 0 {
			w.WorkerID = "other"
		}
		w.ReportInFlight, w.ReportCapacity, w.ReportVersion = report(i, 6).Columns()
		ok, err := s.RefreshRegistration(ctx, w, i%2 == 1)
		must(err)
		log("refresh %d: %v", i, ok)
	}
	keys := []store.InstanceKey{{Namespace: "ns0", InstanceID: "missing"}}
	for i := range 150 {
		keys = append(keys, key((i*7)%n))
	}
	must(s.InTx(ctx, func(q store.Writer) error {
		live, err := q.LockWorkers(ctx, keys, t0+4)
		if err != nil {
			return err
		}
		log("locked %d: %v", len(live), sortedKeys(live))
		reports := make([]*store.Report, len(keys))
		for i := range keys {
			if i%4 != 0 { // some partitions with reports, some without
				reports[i] = report(i, 7)
			}
		}
		rows, err := q.HeartbeatLiveWorkers(ctx, t0+4, keys, reports)
		slices.SortFunc(rows, func(a, b store.HeartbeatRow) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		log("batch: %+v", rows)
		return err
	}))
	w := s.Writer()
	for i := range 40 {
		ok, err := w.RequestDrain(ctx, key(i), t0+5)
		must(err)
		log("drain %d: %v", i, ok)
		if i%2 == 0 {
			ok, err := w.ResumeWorker(ctx, key(i), t0+5)
			must(err)
			log("resume %d: %v", i, ok)
		}
		row, found, err := w.HeartbeatLiveWorker(ctx, key(i), report(i, 8), t0+6)
		must(err)
		log("heartbeat live %d: %+v %v", i, row, found)
	}
	for i := 40; i < 60; i++ {
		reason := fmt.Sprintf("reason %d", i)
		drained, done, err := s.RequestDrainWithEvent(ctx, key(i), t0+5, &reason)
		must(err)
		log("drain with event %d: %v %v", i, drained, done)
	}
	for i := 280; i < n; i++ {
		ok, err := w.DeleteLiveWorker(ctx, key(i), t0+7)
		must(err)
		log("delete %d: %v", i, ok)
		must(w.InsertEvent(ctx, store.EventRow{Namespace: key(i).Namespace, WorkerInstanceID: key(i).InstanceID, EventKind: store.EventMarkedDead, EventAtMs: t0 + 7}))
		must(w.InsertEvent(ctx, store.EventRow{Namespace: key(i).Namespace, WorkerInstanceID: key(i).InstanceID, EventKind: store.EventMarkedDead, EventAtMs: t0 + 7}))
	}
	r := s.Reader()
	for i := 0; i < n; i += 7 {
		row, found, err := r.GetLiveWorker(ctx, key(i), t0+ttl+int64(i)/2)
		must(err)
		rep := reportText(row.ReportInFlight, row.ReportCapacity, row.ReportVersion)
		row.ReportInFlight, row.ReportCapacity, row.ReportVersion = nil, nil, nil
		log("live %d: %+v %s %v", i, row, rep, found)
		for _, newest := range []bool{false, true} {
			events, err := r.ListEvents(ctx, store.EventQuery{Namespace: key(i).Namespace, Instance: key(i).InstanceID,
				NewestFirst: newest, After: 1, Before: 1 << 62, RowLimit: 3})
			must(err)
			for _, e := range events {
				reason := "<nil>"
				if e.Reason != nil {
					reason = *e.Reason
				}
				e.Reason = nil
				log("events %d %v: %+v reason %s", i, newest, e, reason)
			}
		}
	}
	for _, q := range []string{
		`SELECT partition_key, namespace, worker_instance_id, worker_id, lanes, capabilities_csv, last_heartbeat_ms,
			liveness_ttl_ms, registered_at_ms, draining, report_in_flight, report_capacity, report_version
			FROM ff_worker_registry ORDER BY 1, 2, 3`,
		`SELECT namespace, worker_instance_id, draining, killed_at_ms, kill_reason, updated_at_ms
			FROM ff_worker_registry_directive ORDER BY 1, 2`,
		`SELECT partition_key, namespace, worker_instance_id, event_kind, event_at_ms, reason, event_id
			FROM ff_worker_registry_event ORDER BY event_id`,
	} {
		rows, err := pool.Query(ctx, q)
		must(err)
		for rows.Next() {
			v, err := rows.Values()
			must(err)
			log("row %v", v)
		}
		must(rows.Err())
	}
	return out
}

// reportText shows a row's report columns.
func reportText(inFlight, capacity *int64, version *string) string {
	if inFlight == nil && capacity == nil && version == nil {
		return "report none"
	}
	return fmt.Sprintf("report %d/%d %s", *inFlight, *capacity, *version)
}

func sortedKeys(m map[store.InstanceKey]bool) []store.InstanceKey {
	var keys []store.InstanceKey
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b store.InstanceKey) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return keys
}

// TestRoutedStatementsMatchTheParents runs the same calls on two databases,
// one through statements that name the parent tables (sqlc's text) and
// one through the same statements rewritten to name the partitions, and
// wants the same results and the same rows. Then it checks each
// rewritten text: sqlc's with only the tables' names changed, to the
// partitions that the catalog says hold the statement's partition key,
// which the text still tests.
func TestRoutedStatementsMatchTheParents(t *testing.T) {
	parentStore, parentPool := openStore(t, false)
	routedStore, routedPool := openStore(t, true)
	want := scenario(t, parentStore, parentPool)
	got := scenario(t, routedStore, routedPool)
	if len(got) != len(want) {
		t.Fatalf("routed: %d lines of results, parents: %d", len(got), len(want))
	}
	diffs := 0
	for i := range got {
		if got[i] != want[i] && diffs < 10 {
			diffs++
			t.Errorf("routed:  %s\nparents: %s", got[i], want[i])
		}
	}

	seen := map[string]bool{}
	keyPredicate := regexp.MustCompile(`\bpartition_key = \$(\d+)`)
	insertValue := regexp.MustCompile(`(?s)^INSERT INTO ff_worker_registry(?:_event)? \(\s*partition_key,.*?VALUES\s*\(\s*\$(\d+)`)
	partitionName := regexp.MustCompile(`"?[a-z_0-9]+"?\."?(ff_worker_registry(?:_event)?)_p\d{3}"?`)
	for _, st := range routedStore.RoutedStatements() {
		if st.Arg < 0 {
			if pgstore.RoutedQueries[st.Name] {
				t.Errorf("%s is not routed", st.Name)
			}
			continue
		}
		seen[st.Name] = true
		body := strings.TrimSpace(st.Text[strings.IndexByte(st.Text, '\n')+1:])
		m := keyPredicate.FindStringSubmatch(body)
		if m == nil {
			m = insertValue.FindStringSubmatch(body)
		}
		if m == nil || m[1] != strconv.Itoa(st.Arg+1) {
			t.Errorf("%s: partition key argument $%d, but the text's partition_key is %v", st.Name, st.Arg+1, m)
		}
		for key, text := range st.Texts {
			for _, table := range []string{"ff_worker_registry", "ff_worker_registry_event"} {
				if p := routedStore.Partition(table, int16(key)); strings.Contains(st.Text, table+" ") && !strings.Contains(text, p+" ") {
					t.Errorf("%s, key %d: %s is not named in\n%s", st.Name, key, p, text)
				}
			}
			// sqlc's text, so with its partition_key predicate too.
			if back := partitionName.ReplaceAllString(text, "$1"); back != st.Text {
				t.Errorf("%s, key %d: the rewritten text differs from sqlc's in more than table names:\n%s", st.Name, key, text)
				break
			}
		}
	}
	for name := range pgstore.RoutedQueries {
		if !seen[name] {
			t.Errorf("%s: not run by the scenario, so not checked", name)
		}
	}
}
