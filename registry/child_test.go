package registry_test

// Shared machinery of the reliability tests (stress_test.go,
// multiprocess_test.go, crash_test.go): re-executing the test binary as a
// child process, reading the database's state in one snapshot, and
// checking that the audit log is a well-formed history of the rows.

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// Environment of a child process. The child is this test binary, run with
// -test.run=^TestHelperChildProcess$.
const (
	envChildRole = "REGISTRY_CHILD"      // hammer (multiprocess_test.go), crash (crash_test.go), batcher or beater (fairness_test.go), soak (soak_test.go), faultworker (faultsoak_test.go), stormworker (storm_test.go)
	envChildDB   = "REGISTRY_CHILD_DB"   // the database file or DSN
	envChildID   = "REGISTRY_CHILD_ID"   // the child's number, for names and seeds
	envChildSeed = "REGISTRY_CHILD_SEED" // its random seed
	envChildOps  = "REGISTRY_CHILD_OPS"  // how many operations a hammer child runs
)

// TestHelperChildProcess is the entry point of the child processes that
// the multi-process and crash tests start; run directly it skips. It is a
// test so that the child is the same binary, race detector and all.
func TestHelperChildProcess(t *testing.T) {
	switch role := os.Getenv(envChildRole); role {
	case "":
		t.Skip("only runs as a child process of TestMultiProcess*, TestCrash*, TestMultiProcessFairness, TestSoak, TestFaultSoak and TestStorm")
	case "hammer":
		hammerChild(t)
	case "crash":
		crashChild(t)
	case "batcher":
		batcherChild(t)
	case "beater":
		beaterChild(t)
	case "soak":
		soakChild(t)
	case "faultworker":
		faultWorkerChild(t)
	case "stormworker":
		stormWorkerChild(t)
	case "pgmigrate", "pgopen":
		pgMigrateChild(t, role == "pgopen")
	default:
		t.Fatalf("unknown %s=%q", envChildRole, role)
	}
}

// childCommand returns the command that runs this test binary as a child
// with the given role and database, plus extra environment.
func childCommand(role, dbPath string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperChildProcess$", "-test.count=1", "-test.timeout=60m")
	cmd.Env = append(os.Environ(), envChildRole+"="+role, envChildDB+"="+dbPath)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// readLines sends each complete line read from r to the returned channel
// and closes it at EOF. A last line without its newline was cut short (the
// writer died writing it) and is dropped.
func readLines(r io.Reader) <-chan string {
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	return lines
}

// workerKey is the registry's key.
type workerKey struct{ Namespace, Instance string }

func (k workerKey) String() string { return k.Namespace + "/" + k.Instance }

// storedEvent is a row of ff_worker_registry_event.
type storedEvent struct {
	ID     int64
	Key    workerKey
	Kind   string
	AtMS   int64
	Reason sql.NullString
}

// storedWorker is a row of ff_worker_registry, live or not.
type storedWorker struct {
	Key                                               workerKey
	WorkerID                                          string
	LastHeartbeatMS, TTLMS, RegisteredAtMS, ExpiresMS int64
	Draining                                          bool
}

// isPostgres reports whether sqlDB is on pgx's driver.
func isPostgres(sqlDB *sql.DB) bool {
	return strings.Contains(fmt.Sprintf("%T", sqlDB.Driver()), "stdlib")
}

// readState reads the whole audit log, in event_id order, and every
// registry row in one transaction, so that the two agree with each other.
func readState(t testing.TB, sqlDB *sql.DB) ([]storedEvent, map[workerKey]storedWorker) {
	t.Helper()
	ctx := context.Background()
	tx, err := sqlDB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read state: begin: %v", err)
	}
	defer tx.Rollback()
	raw := rawDB{DB: sqlDB, postgres: isPostgres(sqlDB)}
	rows, err := tx.QueryContext(ctx, raw.rebind(`SELECT event_id, namespace, worker_instance_id, event_kind, event_at_ms, reason
		FROM ff_worker_registry_event ORDER BY event_id`))
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	var events []storedEvent
	for rows.Next() {
		var e storedEvent
		if err := rows.Scan(&e.ID, &e.Key.Namespace, &e.Key.Instance, &e.Kind, &e.AtMS, &e.Reason); err != nil {
			t.Fatalf("read events: %v", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read events: %v", err)
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, raw.rebind(`SELECT namespace, worker_instance_id, worker_id, last_heartbeat_ms,
		liveness_ttl_ms, registered_at_ms, last_heartbeat_ms + liveness_ttl_ms, draining FROM ff_worker_registry`))
	if err != nil {
		t.Fatalf("read workers: %v", err)
	}
	workers := map[workerKey]storedWorker{}
	for rows.Next() {
		var w storedWorker
		if err := rows.Scan(&w.Key.Namespace, &w.Key.Instance, &w.WorkerID, &w.LastHeartbeatMS,
			&w.TTLMS, &w.RegisteredAtMS, &w.ExpiresMS, &w.Draining); err != nil {
			t.Fatalf("read workers: %v", err)
		}
		workers[w.Key] = w
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read workers: %v", err)
	}
	return events, workers
}

// integrityCheck runs PRAGMA integrity_check on a fresh connection, the
// first after whatever happened to the file, and fails the test unless
// SQLite answers "ok".
func integrityCheck(t testing.TB, path string) {
	t.Helper()
	sqlDB, err := sql.Open(registry.SQLiteDriverName, registry.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	rows, err := sqlDB.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("integrity_check: %v", err)
		}
		problems = append(problems, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		t.Fatalf("integrity_check = %q, want [ok]", problems)
	}
}

// historyOptions says what checkHistory may assume about the writers.
type historyOptions struct {
	// exactHeartbeat: every write of last_heartbeat_ms recorded an event
	// (heartbeat events on in every writer).
	exactHeartbeat bool
	// ttl, if set, is the one liveness TTL each instance is always
	// registered with. With exactHeartbeat it lets the replay know every
	// registration's expiry, and so check each event against the liveness
	// rule (now < last heartbeat + TTL).
	ttl func(workerKey) time.Duration
	// shiftMS is how much later than its write an event may be dated. On
	// SQLite the audit log is FlowFabric's, keyed by (instance, time,
	// kind): an event whose key is taken moves to the next free
	// millisecond (see TestSameMillisecondEventsAreAllKept). Never earlier.
	shiftMS int64
}

// sqliteShiftMS bounds the shift of event times on SQLite in these tests:
// it takes as many events of one kind for one instance in one millisecond.
const sqliteShiftMS = 50

// replacedBy reports whether next, the event after the ttl_swept event e,
// is the registered event of a register over the expired row that e ended.
func replacedBy(e, next storedEvent, shiftMS int64) bool {
	return next.ID == e.ID+1 && next.Kind == "registered" && next.Key == e.Key &&
		next.AtMS >= e.AtMS && next.AtMS-e.AtMS <= shiftMS
}

// historyStats is what checkHistory counted.
type historyStats struct {
	kinds map[string]int // events per kind
	// replaced counts ttl_swept events written by RegisterWorker over an
	// expired row: in the same transaction, so immediately followed (next
	// event ID) by a registered event of the same instance at the same
	// time, or up to the shift later when that event's key was taken. A
	// sweep's event followed at once by a new registration counts too, so
	// this is an upper bound.
	replaced int
}

// errorBudget reports at most a few failures through t.Errorf, so that a
// systematic violation does not bury the log, and says how many it held back.
type errorBudget struct {
	t       testing.TB
	left    int
	dropped int
}

func newErrorBudget(t testing.TB) *errorBudget { return &errorBudget{t: t, left: 20} }

func (b *errorBudget) errorf(format string, args ...any) {
	b.t.Helper()
	if b.left == 0 {
		b.dropped++
		return
	}
	b.left--
	b.t.Errorf(format, args...)
}

func (b *errorBudget) close() {
	b.t.Helper()
	if b.dropped > 0 {
		b.t.Errorf("... and %d more violations", b.dropped)
	}
}

// checkHistory replays the audit log in event_id order, per instance, and
// checks that it is a well-formed history of the rows it ended with:
//
//   - a registration starts with registered and ends at most once, with
//     marked_dead or ttl_swept, before the next registered;
//   - refreshed, heartbeat, drain_requested and resumed happen only while
//     registered; deregistered ends a registration as marked_dead does;
//   - at the end an instance is registered in the replay iff it has a row,
//     and the row's registered_at_ms is the time of its last registered
//     event, and its draining flag says whether a drain_requested came
//     (a drain outlives registrations until a resumed);
//   - with exactHeartbeat (every write of last_heartbeat_ms records an
//     event: heartbeat events on for every writer), last_heartbeat_ms is the
//     time of the last registered, refreshed or heartbeat event;
//   - with exactHeartbeat and a fixed TTL per instance, every refreshed,
//     heartbeat, drain_requested and marked_dead happened while the
//     registration was live at the event's time, and every ttl_swept
//     (sweep or replacing register) while it was not.
//
// Every change and its event commit in one transaction, whatever the order
// of the callers' clocks, so these hold under any interleaving and after
// any crash.
func checkHistory(t testing.TB, events []storedEvent, workers map[workerKey]storedWorker, opts historyOptions) historyStats {
	t.Helper()
	type replay struct {
		registered, draining bool
		registeredAt, beat   int64
		lastEvent            int64
	}
	budget := newErrorBudget(t)
	defer budget.close()
	exactHeartbeat := opts.exactHeartbeat
	// live checks an event against the liveness rule when the replay knows
	// the registration's expiry: the time of its last write plus its TTL.
	live := func(e storedEvent, s *replay, want bool) {
		if !exactHeartbeat || opts.ttl == nil || !s.registered {
			return
		}
		expires := s.beat + opts.ttl(e.Key).Milliseconds()
		// Either time may be late by up to the shift: only a difference
		// beyond it is a wrong liveness decision.
		if isLive := e.AtMS < expires; isLive != want && (e.AtMS-expires > opts.shiftMS || expires-e.AtMS > opts.shiftMS) {
			budget.errorf("event %d: %s %s at %d, but the registration (last written at %d) expires at %d: live = %v, want %v",
				e.ID, e.Key, e.Kind, e.AtMS, s.beat, expires, isLive, want)
		}
	}
	stats := historyStats{kinds: map[string]int{}}
	state := map[workerKey]*replay{}
	for i, e := range events {
		stats.kinds[e.Kind]++
		s := state[e.Key]
		if s == nil {
			s = &replay{}
			state[e.Key] = s
		}
		switch e.Kind {
		case "registered":
			if s.registered {
				budget.errorf("event %d: %s registered again while registered (its registration from event %d never ended)", e.ID, e.Key, s.lastEvent)
			}
			s.registered, s.registeredAt, s.beat = true, e.AtMS, e.AtMS
		case "refreshed", "heartbeat", "drain_requested", "resumed":
			if !s.registered {
				budget.errorf("event %d: %s %s while not registered (previous event %d)", e.ID, e.Key, e.Kind, s.lastEvent)
			}
			live(e, s, true)
			switch e.Kind {
			case "refreshed", "heartbeat":
				s.beat = e.AtMS
			case "resumed":
				s.draining = false
			default:
				s.draining = true
			}
		case "marked_dead", "ttl_swept", "deregistered":
			if !s.registered {
				budget.errorf("event %d: %s %s while not registered: a registration ended twice (previous event %d)", e.ID, e.Key, e.Kind, s.lastEvent)
			}
			live(e, s, e.Kind != "ttl_swept")
			s.registered = false
			if e.Kind == "ttl_swept" && i+1 < len(events) {
				if replacedBy(e, events[i+1], opts.shiftMS) {
					stats.replaced++
				}
			}
		default:
			budget.errorf("event %d: %s has unknown kind %q", e.ID, e.Key, e.Kind)
		}
		if (e.Kind == "marked_dead") != e.Reason.Valid {
			budget.errorf("event %d: %s %s has reason %v; only marked_dead has one", e.ID, e.Key, e.Kind, e.Reason)
		}
		s.lastEvent = e.ID
	}
	for k, s := range state {
		w, ok := workers[k]
		switch {
		case s.registered && !ok:
			budget.errorf("%s: registered in the audit log (last event %d) but has no row", k, s.lastEvent)
		case !s.registered && ok:
			budget.errorf("%s: has a row %+v but its registration ended in the audit log (last event %d)", k, w, s.lastEvent)
		case ok:
			if d := s.registeredAt - w.RegisteredAtMS; d < 0 || d > opts.shiftMS {
				budget.errorf("%s: registered_at_ms = %d, want %d (its last registered event)", k, w.RegisteredAtMS, s.registeredAt)
			}
			if w.Draining != s.draining {
				budget.errorf("%s: draining = %v, want %v from the audit log (last event %d)", k, w.Draining, s.draining, s.lastEvent)
			}
			if d := s.beat - w.LastHeartbeatMS; exactHeartbeat && (d < 0 || d > opts.shiftMS) {
				budget.errorf("%s: last_heartbeat_ms = %d, want %d (its last registered/refreshed/heartbeat event)", k, w.LastHeartbeatMS, s.beat)
			}
			if opts.ttl != nil && w.TTLMS != opts.ttl(k).Milliseconds() {
				budget.errorf("%s: liveness_ttl_ms = %d, want %d", k, w.TTLMS, opts.ttl(k).Milliseconds())
			}
		}
	}
	for k, w := range workers {
		if state[k] == nil {
			budget.errorf("%s: has a row %+v but no event at all", k, w)
		}
	}
	return stats
}

// appendReportRow appends row, a row of a Markdown table, to the file at
// path, with the table's header first when the file is new or empty; with
// an empty path it does nothing. A soak's figures go to such a file, one
// row per store.
func appendReportRow(t testing.TB, path, header, row string) {
	t.Helper()
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		fmt.Fprintln(f, header)
	}
	if _, err := fmt.Fprintln(f, row); err != nil {
		t.Fatal(err)
	}
}

// childFailure formats what a child left behind, for a failure message.
func childFailure(name string, err error, stderr string) string {
	return fmt.Sprintf("%s: %v\n--- stderr ---\n%s", name, err, stderr)
}
