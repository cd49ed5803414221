package main

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// Hostile values, as the engine (or anyone who can write to the database)
// may store them: terminal escape sequences (CSI, OSC with BEL), a newline
// that would forge a table row, bidi overrides and zero-width characters,
// a backslash, and bytes that are not UTF-8.
const (
	hostileNamespace = "ns\x1b[2J\x1b[H"
	hostileInstance  = "w-1\x1b]0;pwned\x07\u202egnp.exe\u200b"
	hostileWorker    = "pool\u009b31m\u2028x"
	hostileLane      = "gpu\x1b[5m"
	hostileReason    = "ok\n99  2026-01-01T00:00:00.000Z  prod  w-9  marked_dead  forged\r\\x1b \xff"
)

// rawTerminalBytes returns the first character of out that a terminal
// would obey or hide rather than show: a control character other than the
// newline that ends a line, a format or separator character, or a byte
// that is not UTF-8.
func rawTerminalBytes(out string) (string, bool) {
	for i, r := range out {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(out[i:], "\uFFFD"):
			return out[i : i+1], true
		case r == '\n':
		case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp):
			return string(r), true
		}
	}
	return "", false
}

// hostileDB writes the hostile values over rows registered, evented and
// leased the ordinary way, with SQL on the database, as the engine would.
func hostileDB(t *testing.T, s store, now time.Time) string {
	return newDB(t, s, func(reg *registry.Registry, sqlDB *sql.DB) {
		ctx := context.Background()
		register(t, reg, "ns", "w-1", "pool", []string{"gpu"}, nil, time.Hour, now.Add(-time.Minute))
		// A worker that workers get can name, with hostile fields.
		register(t, reg, "other", "w-2", "pool", []string{"gpu"}, nil, time.Hour, now.Add(-time.Minute))
		if _, err := reg.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w-1", Reason: "r", Now: now.Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		registrytest.InsertLeases(t, sqlDB, registrytest.Lease{Namespace: "ns", WorkerInstanceID: "w-1", ExpiresAt: now.Add(-339*24*time.Hour - 20*time.Hour)})
		lanes, reason := any(hostileLane), hostileReason
		if s.postgres {
			// Postgres keeps lanes as text[], and its text must be UTF-8.
			lanes, reason = []string{hostileLane}, strings.ToValidUTF8(hostileReason, "?")
		}
		for _, st := range []struct {
			query string
			args  []any
		}{
			{`UPDATE ff_worker_registry SET worker_id = $1, lanes = $2`, []any{hostileWorker, lanes}},
			{`UPDATE ff_worker_registry SET namespace = $1, worker_instance_id = $2 WHERE worker_instance_id = 'w-1'`,
				[]any{hostileNamespace, hostileInstance}},
			{`UPDATE ff_worker_registry_event SET namespace = $1, worker_instance_id = $2, reason = $3 WHERE worker_instance_id = 'w-1'`,
				[]any{hostileNamespace, hostileInstance, reason}},
			{`UPDATE ff_attempt SET worker_instance_id = $1`, []any{hostileInstance}},
		} {
			if _, err := sqlDB.Exec(st.query, st.args...); err != nil {
				t.Fatalf("%s: %v", st.query, err)
			}
		}
	})
}

// TestTablesShowHostileBytesVisibly runs every command that prints values
// from the database as a table over rows holding escape sequences,
// newlines, bidi and zero-width characters: the output holds none of them
// raw, each table line is a row (no forged one), the escapes are shown,
// and -json gives the stored strings back exactly.
func TestTablesShowHostileBytesVisibly(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0
		path := hostileDB(t, s, now)
		for _, args := range [][]string{
			{"workers", "list"},
			{"workers", "list", "-wide"},
			{"workers", "list", "-all"},
			{"workers", "events"},
			{"workers", "events", "-newest"},
			{"leases", "expired"},
			{"leases", "expired", "-wide"},
			{"leases", "expired", "-limit", "1"}, // no more: the hint stays empty
			{"stats"},
			{"workers", "get", "-namespace", "other", "-instance", "w-2"},
		} {
			res := ctlAt(t, path, now, 0, args...)
			for what, out := range map[string]string{"stdout": res.Stdout, "stderr": res.Stderr} {
				if c, raw := rawTerminalBytes(out); raw {
					t.Errorf("%q: %s holds %q raw:\n%s", args, what, c, out)
				}
			}
			if !strings.Contains(res.Stdout, `\x1b`) {
				t.Errorf("%q: no visible \\x1b in\n%s", args, res.Stdout)
			}
		}
		// The instance shows its escapes in full when nothing cuts it.
		// Sorted by namespace: "ns\x1b..." before "other".
		_, body := rows(t, ctlAt(t, path, now, 0, "workers", "list", "-wide").Stdout)
		if len(body) != 2 || body[0][1] != `w-1\x1b]0;pwned\x07\u202egnp.exe\u200b` || body[0][2] != `pool\x9b31m\u2028x` {
			t.Errorf("-wide row = %q", body)
		}
		// The event reason's newline forges no row: one line per event.
		events := ctlAt(t, path, now, 0, "workers", "events").Stdout
		if n := strings.Count(strings.TrimRight(events, "\n"), "\n"); n != 3 {
			t.Errorf("events table of 3 events has %d lines after its header:\n%s", n, events)
		}
		if !strings.Contains(events, `ok\n99  2026`) {
			t.Errorf("events table does not show the reason's newline as \\n:\n%s", events)
		}
		// -json stays exact.
		got := decode[workersJSON](t, ctlAt(t, path, now, 0, "-json", "workers", "list").Stdout)
		if len(got.Workers) != 2 || got.Workers[0].WorkerInstanceID != hostileInstance || got.Workers[0].Namespace != hostileNamespace {
			t.Errorf("-json workers = %+v, want the stored strings exactly", got.Workers)
		}
		ev := decode[eventsJSON](t, ctlAt(t, path, now, 0, "-json", "workers", "events").Stdout)
		if len(ev.Events) != 3 || ev.Events[0].WorkerInstanceID != hostileInstance {
			t.Errorf("-json events = %+v", ev.Events)
		}
		// The lease expired 339 days and 20 hours ago: its age fits its column.
		_, body = rows(t, ctlAt(t, path, now, 0, "leases", "expired").Stdout)
		if len(body) != 1 || body[0][4] != "339d ago" {
			t.Errorf("leases expired row = %q, want the age 339d ago uncut", body)
		}
	})
}

// TestFollowShowsHostileBytesVisibly: -follow prints a hostile event as
// tables do, escaped.
func TestFollowShowsHostileBytesVisibly(t *testing.T) {
	path := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) {})
	f := startFollower(t, path, "workers", "events", "-follow")
	f.waitFor(t, "the header", func(line string) bool { return strings.HasPrefix(line, "ID ") })
	reg := openTestRegistry(t, path)
	live(t, reg, "ns", "w-1")
	sqlDB, err := sql.Open(registry.SQLiteDriverName, registry.SQLiteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	f.waitFor(t, "the registration", func(line string) bool { return strings.Contains(line, "registered") })
	if _, err := sqlDB.Exec(`INSERT INTO ff_worker_registry_event (namespace, worker_instance_id, event_kind, event_at_ms, reason)
		VALUES ('ns', ?, 'marked_dead', ?, ?)`, hostileInstance, time.Now().UnixMilli(), hostileReason); err != nil {
		t.Fatal(err)
	}
	line := f.waitFor(t, "the hostile event", func(line string) bool { return strings.Contains(line, "marked_dead") })
	if c, raw := rawTerminalBytes(line); raw {
		t.Errorf("followed line holds %q raw: %q", c, line)
	}
	if !strings.Contains(line, `w-1\x1b]0;pwned\x07\u202egnp.exe\u200b`) || !strings.Contains(line, `ok\n99`) {
		t.Errorf("followed line does not show the escapes: %q", line)
	}
	f.stop(t, os.Interrupt)
}

// TestListWriterPrintsEachPage: a listing with -all prints each page as it
// arrives, holding none of it back, and its -json is the same document as
// a one-page listing's.
func TestListWriterPrintsEachPage(t *testing.T) {
	now := t0
	w := func(id string) registry.WorkerInfo {
		return registry.WorkerInfo{Namespace: "ns", WorkerID: "pool", WorkerInstanceID: id, Lanes: []string{"default"},
			LastHeartbeat: now, RegisteredAt: now, ExpiresAt: now.Add(time.Minute), LivenessTTL: time.Minute}
	}
	for _, asJSON := range []bool{false, true} {
		var b strings.Builder
		out := &output{json: asJSON, stdout: &b, now: func() time.Time { return now }}
		l := out.workerList(now, false)
		if err := l.page([]registry.WorkerInfo{w("w-1")}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "w-1") {
			t.Fatalf("json=%v: the first page is not printed before the next is read: %q", asJSON, b.String())
		}
		if err := l.page([]registry.WorkerInfo{w("w-2")}); err != nil {
			t.Fatal(err)
		}
		if err := l.end(workerCursorToJSON(&registry.WorkerCursor{Namespace: "ns", WorkerInstanceID: "w-2"})); err != nil {
			t.Fatal(err)
		}
		if !asJSON {
			if _, body := rows(t, b.String()); len(body) != 2 {
				t.Fatalf("table of two pages: %q", b.String())
			}
			continue
		}
		var want strings.Builder
		(&output{stdout: &want}).writeJSON(workersJSON{Workers: []workerJSON{workerToJSON(w("w-1"), now), workerToJSON(w("w-2"), now)},
			Next: &workerCursorJSON{Namespace: "ns", WorkerInstanceID: "w-2"}})
		if b.String() != want.String() {
			t.Fatalf("-json of two pages:\n%s\nwant the one-page document:\n%s", b.String(), want.String())
		}
	}
	var b strings.Builder
	l := (&output{json: true, stdout: &b}).workerList(now, false)
	if err := l.end(workerCursorToJSON(nil)); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"workers\": [],\n  \"next\": null\n}\n"; b.String() != want {
		t.Fatalf("empty -json listing %q, want %q", b.String(), want)
	}
}
