package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/clitest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// TestMain lets the test binary stand in for the command, so that tests
// see real exit codes without building it.
func TestMain(m *testing.M) { clitest.Main(m, main) }

// registryctl runs the command in dir with env added to the environment.
var registryctl = clitest.Self().Run

// ctl runs the command on the database at path and fails the test unless
// it exits with code.
func ctl(t *testing.T, path string, code int, args ...string) clitest.Result {
	t.Helper()
	dir := filepath.Dir(path)
	if registry.IsPostgresDSN(path) {
		dir = t.TempDir()
	}
	res := registryctl(t, dir, nil, append([]string{"-db", path}, args...)...)
	if res.Code != code {
		t.Fatalf("registryctl %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, res.Code, code, res.Stdout, res.Stderr)
	}
	return res
}

// ctlAt is ctl with registryctl's clock fixed at now, so that relative
// ages print the same on every run.
func ctlAt(t *testing.T, path string, now time.Time, code int, args ...string) clitest.Result {
	t.Helper()
	dir := filepath.Dir(path)
	if registry.IsPostgresDSN(path) {
		dir = t.TempDir()
	}
	res := registryctl(t, dir, []string{"REGISTRYCTL_TEST_NOW=" + now.Format(time.RFC3339Nano)}, append([]string{"-db", path}, args...)...)
	if res.Code != code {
		t.Fatalf("registryctl %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, res.Code, code, res.Stdout, res.Stderr)
	}
	return res
}

// store is a kind of database the command's tests run on.
type store struct {
	name     string // the subtest's name
	postgres bool   // a schema of its own in $REGISTRY_TEST_POSTGRES, else a SQLite file
}

var (
	sqliteStore   = store{name: "sqlite"}
	postgresStore = store{name: "postgres", postgres: true}
	// stores are the stores of eachStore, in the order of its subtests.
	stores = []store{sqliteStore, postgresStore}
)

// newDB creates a registry database of s, lets seed fill it through the
// library and closes it, so that the command under test is alone with the
// file. It returns the -db argument: a file path, or the URL of a Postgres
// schema of the test's own, empty.
func newDB(t *testing.T, s store, seed func(reg *registry.Registry, sqlDB *sql.DB)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	driver, dsn := registry.SQLiteDriverName, registry.SQLiteDSN(path)
	if s.postgres {
		// A migrated schema from the pool: a new one takes seconds to make.
		path = registrytest.MigratedPostgresSchema(t, registrytest.PostgresDSN(t))
		driver, dsn = "pgx", path
	}
	reg, err := registry.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	sqlDB, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	seed(reg, sqlDB)
	return path
}

// eachStore runs body once per store, in parallel subtests: each has a
// database of its own, and most of their time is spent waiting for the
// command's processes.
func eachStore(t *testing.T, body func(t *testing.T, s store)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			body(t, s)
		})
	}
}

// register registers a worker whose heartbeat was at now, live for ttl.
func register(t *testing.T, reg *registry.Registry, namespace, instance, worker string, lanes, caps []string, ttl time.Duration, now time.Time) {
	t.Helper()
	if _, err := reg.RegisterWorker(context.Background(), registry.RegisterWorkerArgs{
		Namespace: namespace, WorkerID: worker, WorkerInstanceID: instance,
		Lanes: lanes, Capabilities: caps, LivenessTTL: ttl, Now: now,
	}); err != nil {
		t.Fatal(err)
	}
}

// live registers a worker live for the next hour of the real clock, which
// is the clock the command uses.
func live(t *testing.T, reg *registry.Registry, namespace, instance string) {
	t.Helper()
	register(t, reg, namespace, instance, "pool", []string{"default"}, nil, time.Hour, time.Now())
}

// rows splits a table into its header and rows. Columns are found where
// the header's names start (names are separated by two spaces or more, and
// may hold one, as "LAST SEEN"); a cell is the text under its name, up to
// the next name, trimmed.
func rows(t *testing.T, table string) (header []string, body [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("no table header in %q", table)
	}
	head := []rune(lines[0])
	var starts []int
	for i := 0; i < len(head); {
		if head[i] == ' ' {
			i++
			continue
		}
		start := i
		for i < len(head) && !(head[i] == ' ' && (i+1 == len(head) || head[i+1] == ' ')) {
			i++
		}
		starts = append(starts, start)
		header = append(header, string(head[start:i]))
	}
	for _, line := range lines[1:] {
		r := []rune(line)
		row := make([]string, len(starts))
		for j, start := range starts {
			end := len(r)
			if j+1 < len(starts) {
				end = min(end, starts[j+1])
			}
			if start < len(r) {
				row[j] = strings.TrimSpace(string(r[start:end]))
			}
		}
		body = append(body, row)
	}
	return header, body
}

// col returns field i of every row.
func col(body [][]string, i int) []string {
	var c []string
	for _, row := range body {
		c = append(c, row[i])
	}
	return c
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
	}
	return v
}

// ms formats a time as the command prints it.
func ms(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

// TestJSONKeys pins the JSON shapes' keys, which are the command's contract:
// the tests below decode the output into the shapes themselves, so a renamed
// key fails here.
func TestJSONKeys(t *testing.T) {
	next := int64(9)
	for _, c := range []struct {
		v    any
		want string
	}{
		{workersJSON{Workers: []workerJSON{{Namespace: "ns", WorkerID: "pool", WorkerInstanceID: "w1", Status: "live",
			Lanes: []string{"default"}, Capabilities: []string{}, LastHeartbeat: "t1", RegisteredAt: "t0", ExpiresAt: "t2",
			LivenessTTLMS: 30_000, Draining: true}}, Next: &workerCursorJSON{Namespace: "ns", WorkerInstanceID: "w1"}},
			`{"workers":[{"namespace":"ns","worker_id":"pool","worker_instance_id":"w1","status":"live",` +
				`"lanes":["default"],"capabilities":[],"last_heartbeat":"t1","registered_at":"t0","expires_at":"t2",` +
				`"liveness_ttl_ms":30000,"draining":true,"in_flight":null,"capacity":null,"version":null}],"next":{"namespace":"ns","worker_instance_id":"w1"}}`},
		{eventsJSON{Events: []eventJSON{{ID: 8, At: "t0", Namespace: "ns", WorkerInstanceID: "w1", Kind: "drained", Reason: "why"}}, Next: &next},
			`{"events":[{"id":8,"at":"t0","namespace":"ns","worker_instance_id":"w1","kind":"drained","reason":"why"}],"next":9}`},
		{leasesJSON{Leases: []leaseJSON{{ExecutionID: "e", LeaseID: "l", LeaseEpoch: 2, AttemptIndex: 1,
			WorkerInstanceID: "w1", Namespace: "ns", ExpiresAt: "t0"}}, Next: &leaseCursorJSON{ExpiresAt: "t0", ExecutionID: "e", AttemptIndex: 1}},
			`{"leases":[{"execution_id":"e","lease_id":"l","lease_epoch":2,"attempt_index":1,` +
				`"worker_instance_id":"w1","namespace":"ns","expires_at":"t0"}],` +
				`"next":{"expires_at":"t0","execution_id":"e","attempt_index":1}}`},
		{outcomeJSON{Namespace: "ns", WorkerInstanceID: "w1", Outcome: "marked"},
			`{"namespace":"ns","worker_instance_id":"w1","outcome":"marked"}`},
		{sweepJSON{Swept: 2, PrunedEvents: 1}, `{"swept":2,"pruned_events":1}`},
		{versionJSON{Version: "v1", Module: "m", Revision: "r", Modified: true, Go: "go1"},
			`{"version":"v1","module":"m","revision":"r","modified":true,"go":"go1"}`},
	} {
		got, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%T as JSON:\n%s\nwant\n%s", c.v, got, c.want)
		}
	}
}

func workerNames(ws []workerJSON) []string {
	var names []string
	for _, w := range ws {
		names = append(names, w.Namespace+"/"+w.WorkerInstanceID)
	}
	return names
}

// t0 is the fixed clock of the tests that show relative ages.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func TestWorkersList(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0.Add(4 * time.Second)
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			register(t, reg, "beta", "b-1", "gpu-pool", []string{"gpu"}, []string{"fp16", "cuda"}, time.Hour, t0)
			register(t, reg, "alpha", "a-2", "cpu-pool", []string{"default"}, nil, 2*time.Hour, t0)
			register(t, reg, "alpha", "a-1", "gpu-pool", []string{"gpu", "default"}, []string{"cuda"}, 30*time.Second, t0)
			register(t, reg, "alpha", "a-expired", "gpu-pool", []string{"gpu"}, nil, time.Minute, t0.Add(-time.Hour))
			if _, err := reg.HeartbeatWorker(context.Background(), registry.HeartbeatWorkerArgs{Namespace: "alpha", WorkerInstanceID: "a-1", Now: t0,
				Report: &registry.WorkerReport{InFlight: 3, Capacity: 8, Version: "v1.2"}}); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("table", func(t *testing.T) {
			res := ctlAt(t, path, now, 0, "workers", "list")
			header, body := rows(t, res.Stdout)
			if want := []string{"NAMESPACE", "INSTANCE", "STATUS", "LANES", "LAST SEEN", "EXPIRES", "TTL", "LOAD", "VERSION"}; !slices.Equal(header, want) {
				t.Fatalf("header = %q, want %q", header, want)
			}
			want := [][]string{
				{"alpha", "a-1", "live", "default,gpu", "4s ago", "in 26s", "30s", "3/8", "v1.2"},
				{"alpha", "a-2", "live", "default", "4s ago", "in 1h59m", "2h", "-", "-"},
				{"beta", "b-1", "live", "gpu", "4s ago", "in 59m56s", "1h", "-", "-"},
			}
			if !slices.EqualFunc(body, want, slices.Equal) {
				t.Fatalf("rows =\n%q\nwant\n%q", body, want)
			}
			if res.Stderr != "" {
				t.Fatalf("stderr = %q, want nothing: everything fit one page", res.Stderr)
			}
		})

		t.Run("json", func(t *testing.T) {
			res := ctlAt(t, path, now, 0, "-json", "workers", "list")
			got := decode[workersJSON](t, res.Stdout)
			if got.Next != nil || len(got.Workers) != 3 {
				t.Fatalf("workers = %+v, next %+v", got.Workers, got.Next)
			}
			want := workerJSON{
				Namespace: "alpha", WorkerID: "cpu-pool", WorkerInstanceID: "a-2", Status: "live",
				Lanes: []string{"default"}, Capabilities: []string{},
				LastHeartbeat: "2026-01-01T12:00:00.000Z", RegisteredAt: "2026-01-01T12:00:00.000Z",
				ExpiresAt: "2026-01-01T14:00:00.000Z", LivenessTTLMS: 7_200_000,
			}
			if w := got.Workers[1]; w.Namespace != want.Namespace || w.WorkerID != want.WorkerID ||
				w.WorkerInstanceID != want.WorkerInstanceID || w.Status != want.Status || !slices.Equal(w.Lanes, want.Lanes) ||
				w.Capabilities == nil || len(w.Capabilities) != 0 || w.LastHeartbeat != want.LastHeartbeat ||
				w.RegisteredAt != want.RegisteredAt || w.ExpiresAt != want.ExpiresAt ||
				w.LivenessTTLMS != want.LivenessTTLMS || w.Draining {
				t.Errorf("worker = %+v, want %+v", w, want)
			}
			if w := got.Workers[2]; !slices.Equal(w.Capabilities, []string{"cuda", "fp16"}) {
				t.Errorf("b-1 capabilities = %q", w.Capabilities)
			}
			// A report's words; null without one.
			if w := got.Workers[0]; w.InFlight == nil || *w.InFlight != 3 || w.Capacity == nil || *w.Capacity != 8 || w.Version == nil || *w.Version != "v1.2" {
				t.Errorf("a-1 report = %v %v %v", w.InFlight, w.Capacity, w.Version)
			}
			if w := got.Workers[1]; w.InFlight != nil || w.Capacity != nil || w.Version != nil {
				t.Errorf("a-2 report = %v %v %v, want nulls", w.InFlight, w.Capacity, w.Version)
			}
			// The keys are the contract, whatever a consumer's struct ignores.
			raw := decode[map[string][]map[string]any](t, res.Stdout)["workers"][0]
			var keys []string
			for k := range raw {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			wantKeys := []string{"capabilities", "capacity", "draining", "expires_at", "in_flight", "lanes", "last_heartbeat",
				"liveness_ttl_ms", "namespace", "registered_at", "status", "version", "worker_id", "worker_instance_id"}
			if !slices.Equal(keys, wantKeys) {
				t.Errorf("keys = %q, want %q", keys, wantKeys)
			}
		})

		filters := []struct {
			args []string
			want []string
		}{
			{[]string{"-namespace", "beta"}, []string{"beta/b-1"}},
			{[]string{"-namespace", "alpha"}, []string{"alpha/a-1", "alpha/a-2"}},
			{[]string{"-lane", "gpu"}, []string{"alpha/a-1", "beta/b-1"}},
			{[]string{"-capability", "fp16"}, []string{"beta/b-1"}},
			{[]string{"-namespace", "alpha", "-lane", "gpu"}, []string{"alpha/a-1"}},
			{[]string{"-namespace", "alpha", "-lane", "gpu", "-all"}, []string{"alpha/a-1", "alpha/a-expired"}},
			{[]string{"-capability", "tpu"}, nil},
			{[]string{"-namespace", "gamma"}, nil},
		}
		for _, f := range filters {
			t.Run("filter "+strings.Join(f.args, " "), func(t *testing.T) {
				_, body := rows(t, ctlAt(t, path, now, 0, append([]string{"workers", "list"}, f.args...)...).Stdout)
				var got []string
				for _, row := range body {
					got = append(got, row[0]+"/"+row[1])
				}
				if !slices.Equal(got, f.want) {
					t.Errorf("table: workers = %q, want %q", got, f.want)
				}
				res := ctlAt(t, path, now, 0, append([]string{"-json", "workers", "list"}, f.args...)...)
				if got := workerNames(decode[workersJSON](t, res.Stdout).Workers); !slices.Equal(got, f.want) {
					t.Errorf("json: workers = %q, want %q", got, f.want)
				}
			})
		}
	})
}

// TestWorkersListAll shows a registration whose TTL ran out, until the
// sweep removes it: -all lists it as expired, a plain list does not.
func TestWorkersListAll(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0.Add(time.Minute)
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			register(t, reg, "ns", "gone", "pool", []string{"default"}, nil, 30*time.Second, t0)
			register(t, reg, "ns", "live", "pool", []string{"default"}, nil, time.Hour, t0)
			register(t, reg, "ns", "quiet", "pool", []string{"default"}, nil, 10*time.Second, t0.Add(40*time.Second))
			if _, err := reg.RequestDrain(context.Background(), registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "live", Now: t0}); err != nil {
				t.Fatal(err)
			}
		})
		_, body := rows(t, ctlAt(t, path, now, 0, "workers", "list").Stdout)
		if got := col(body, 1); !slices.Equal(got, []string{"live"}) {
			t.Fatalf("workers list = %q, want only the live worker", got)
		}
		_, body = rows(t, ctlAt(t, path, now, 0, "workers", "list", "-all", "-limit", "1").Stdout)
		want := [][]string{
			{"ns", "gone", "expired", "default", "1m ago", "30s ago", "30s", "-", "-"},
			{"ns", "live", "draining", "default", "1m ago", "in 59m", "1h", "-", "-"},
			{"ns", "quiet", "expired", "default", "20s ago", "10s ago", "10s", "-", "-"},
		}
		if !slices.EqualFunc(body, want, slices.Equal) {
			t.Fatalf("-all rows =\n%q\nwant\n%q", body, want)
		}
		got := decode[workersJSON](t, ctlAt(t, path, now, 0, "-json", "workers", "list", "-all").Stdout)
		var statuses []string
		for _, w := range got.Workers {
			statuses = append(statuses, w.WorkerInstanceID+":"+w.Status)
		}
		if want := []string{"gone:expired", "live:draining", "quiet:expired"}; !slices.Equal(statuses, want) || got.Next != nil {
			t.Fatalf("-json -all: %q next %+v, want %q", statuses, got.Next, want)
		}
		if w := got.Workers[0]; w.ExpiresAt != "2026-01-01T12:00:30.000Z" || w.LastHeartbeat != "2026-01-01T12:00:00.000Z" {
			t.Fatalf("-json keeps absolute times: %+v", w)
		}

		rep := decode[map[string]int](t, ctlAt(t, path, now, 0, "-json", "sweep").Stdout)
		if rep["swept"] != 2 {
			t.Fatalf("sweep = %v, want the two expired swept", rep)
		}
		_, body = rows(t, ctlAt(t, path, now, 0, "workers", "list", "-all").Stdout)
		if got := col(body, 1); !slices.Equal(got, []string{"live"}) {
			t.Fatalf("-all after the sweep = %q, want only the live worker", got)
		}
	})
}

func TestWorkersListPaging(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		// Seven workers, so that pages of three cross from one namespace to
		// the next.
		var all []string
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			for _, ns := range []struct {
				name string
				n    int
			}{{"ns", 5}, {"zz", 2}} {
				for i := range ns.n {
					instance := "w" + strconv.Itoa(i)
					live(t, reg, ns.name, instance)
					all = append(all, ns.name+"/"+instance)
				}
			}
		})
		names := func(table string) []string {
			_, body := rows(t, table)
			var got []string
			for _, row := range body {
				got = append(got, row[0]+"/"+row[1])
			}
			return got
		}

		// Follow the hints on stderr page by page.
		args := []string{"workers", "list", "-limit", "3"}
		var walked []string
		for page := 0; ; page++ {
			if page > 3 {
				t.Fatalf("still paging after %d pages: %q", page, walked)
			}
			res := ctl(t, path, 0, args...)
			got := names(res.Stdout)
			if len(got) > 3 {
				t.Fatalf("page of %d rows with -limit 3: %q", len(got), got)
			}
			walked = append(walked, got...)
			if res.Stderr == "" {
				break
			}
			last := strings.Split(got[len(got)-1], "/")
			wantHint := "more workers: continue with -after-namespace " + last[0] + " -after-instance " + last[1] + "\n"
			if res.Stderr != wantHint {
				t.Fatalf("stderr = %q, want %q", res.Stderr, wantHint)
			}
			args = []string{"workers", "list", "-limit", "3", "-after-namespace", last[0], "-after-instance", last[1]}
		}
		if !slices.Equal(walked, all) {
			t.Fatalf("pages walked %q, want %q", walked, all)
		}

		res := ctl(t, path, 0, "workers", "list", "-limit", "3", "-all")
		if got := names(res.Stdout); !slices.Equal(got, all) || res.Stderr != "" {
			t.Fatalf("-all: workers %q, stderr %q; want %q and no hint", got, res.Stderr, all)
		}

		page := decode[workersJSON](t, ctl(t, path, 0, "-json", "workers", "list", "-limit", "3").Stdout)
		if got := workerNames(page.Workers); !slices.Equal(got, all[:3]) || page.Next == nil ||
			page.Next.Namespace != "ns" || page.Next.WorkerInstanceID != "w2" {
			t.Fatalf("-json -limit 3: workers %q, next %+v", got, page.Next)
		}
		page = decode[workersJSON](t, ctl(t, path, 0, "-json", "workers", "list", "-limit", "2", "-all").Stdout)
		if got := workerNames(page.Workers); !slices.Equal(got, all) || page.Next != nil {
			t.Fatalf("-json -all: workers %q, next %+v", got, page.Next)
		}
		// -after-namespace defaults to -namespace.
		page = decode[workersJSON](t, ctl(t, path, 0, "-json", "workers", "list", "-namespace", "ns", "-after-instance", "w3").Stdout)
		if got := workerNames(page.Workers); !slices.Equal(got, []string{"ns/w4"}) {
			t.Fatalf("-namespace ns -after-instance w3: workers %q", got)
		}
	})
}

func TestDrainAndKill(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			live(t, reg, "ns", "w1")
			live(t, reg, "ns", "w2")
		})
		draining := func() map[string]bool {
			got := map[string]bool{}
			for _, w := range decode[workersJSON](t, ctl(t, path, 0, "-json", "workers", "list").Stdout).Workers {
				got[w.WorkerInstanceID] = w.Draining
			}
			return got
		}

		const drainReason = "rack 12: disk replacement"
		if res := ctl(t, path, 0, "workers", "drain", "-namespace", "ns", "-instance", "w1", "-reason", drainReason); res.Stdout != "drain_requested: worker instance \"w1\" in namespace \"ns\"\n" || res.Stderr != "" {
			t.Fatalf("drain: stdout %q, stderr %q", res.Stdout, res.Stderr)
		}
		if got := draining(); !got["w1"] || got["w2"] || len(got) != 2 {
			t.Fatalf("draining after drain of w1 = %v", got)
		}
		_, body := rows(t, ctl(t, path, 0, "workers", "list").Stdout)
		if got := col(body, 2); !slices.Equal(got, []string{"draining", "live"}) {
			t.Fatalf("STATUS column = %q", got)
		}
		out := decode[outcomeJSON](t, ctl(t, path, 0, "-json", "workers", "drain", "-namespace", "ns", "-instance", "w2").Stdout)
		if out != (outcomeJSON{Namespace: "ns", WorkerInstanceID: "w2", Outcome: "drain_requested"}) {
			t.Fatalf("drain -json = %+v", out)
		}

		const reason = "operator: host retired"
		if res := ctl(t, path, 0, "workers", "kill", "-namespace", "ns", "-instance", "w1", "-reason", reason); res.Stdout != "marked: worker instance \"w1\" in namespace \"ns\"\n" {
			t.Fatalf("kill: stdout %q", res.Stdout)
		}
		if got := draining(); len(got) != 1 || !got["w2"] {
			t.Fatalf("workers after kill of w1 = %v, want only w2", got)
		}
		events := decode[eventsJSON](t, ctl(t, path, 0, "-json", "workers", "events", "-namespace", "ns", "-instance", "w1").Stdout).Events
		var kinds []string
		for _, e := range events {
			kinds = append(kinds, e.Kind)
		}
		if want := []string{"registered", "drain_requested", "marked_dead"}; !slices.Equal(kinds, want) {
			t.Fatalf("events of w1 = %q, want %q", kinds, want)
		}
		if drain := events[1]; drain.Reason != drainReason {
			t.Fatalf("drain_requested event = %+v, want reason %q", drain, drainReason)
		}
		if last := events[2]; last.Reason != reason || last.WorkerInstanceID != "w1" {
			t.Fatalf("marked_dead event = %+v, want reason %q", last, reason)
		}
		table := ctl(t, path, 0, "workers", "events", "-namespace", "ns", "-instance", "w1").Stdout
		if lines := strings.Split(strings.TrimSpace(table), "\n"); !strings.Contains(lines[len(lines)-1], "marked_dead") ||
			!strings.HasSuffix(lines[len(lines)-1], "  "+reason) {
			t.Fatalf("events table does not end with marked_dead and the reason:\n%s", table)
		}
		out = decode[outcomeJSON](t, ctl(t, path, 0, "-json", "workers", "kill", "-namespace", "ns", "-instance", "w2").Stdout)
		if out != (outcomeJSON{Namespace: "ns", WorkerInstanceID: "w2", Outcome: "marked"}) {
			t.Fatalf("kill -json = %+v", out)
		}

		// Not registered: the outcome is printed and the exit status is 3.
		notRegistered := []struct {
			args   []string
			stdout string
		}{
			{[]string{"workers", "drain", "-namespace", "ns", "-instance", "w1"}, "not_registered: worker instance \"w1\" in namespace \"ns\"\n"},
			{[]string{"workers", "kill", "-namespace", "ns", "-instance", "ghost"}, "not_registered: worker instance \"ghost\" in namespace \"ns\"\n"},
			{[]string{"workers", "kill", "-namespace", "other", "-instance", "w2"}, "not_registered: worker instance \"w2\" in namespace \"other\"\n"},
		}
		for _, tc := range notRegistered {
			res := ctl(t, path, 3, tc.args...)
			if res.Stdout != tc.stdout {
				t.Errorf("%q: stdout %q, want %q", tc.args, res.Stdout, tc.stdout)
			}
			instance := tc.args[len(tc.args)-1]
			if lines := strings.Split(strings.TrimSpace(res.Stderr), "\n"); len(lines) != 1 ||
				!strings.HasPrefix(lines[0], "registryctl: ") || !strings.Contains(lines[0], `"`+instance+`" is not registered`) {
				t.Errorf("%q: stderr %q, want one line saying %s is not registered", tc.args, res.Stderr, instance)
			}
		}
		out = decode[outcomeJSON](t, ctl(t, path, 3, "-json", "workers", "drain", "-namespace", "ns", "-instance", "ghost").Stdout)
		if out != (outcomeJSON{Namespace: "ns", WorkerInstanceID: "ghost", Outcome: "not_registered"}) {
			t.Fatalf("drain -json of unknown = %+v", out)
		}
		if _, body := rows(t, ctl(t, path, 0, "workers", "events", "-namespace", "ns", "-instance", "ghost").Stdout); len(body) != 0 {
			t.Fatalf("events of an unknown instance after drain and kill: %q", body)
		}
	})
}

func TestWorkersEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := time.Now().Truncate(time.Second) // stored times are milliseconds: -since compares exactly
		t1, t2, t3 := now.Add(-3*time.Minute), now.Add(-2*time.Minute), now.Add(-time.Minute)
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			register(t, reg, "ns", "w1", "pool", []string{"default"}, nil, time.Hour, t1)
			register(t, reg, "ns", "w1", "pool", []string{"default"}, nil, time.Hour, t2) // refreshed
			register(t, reg, "other", "w3", "pool", []string{"default"}, nil, time.Hour, t2)
			register(t, reg, "ns", "w2", "pool", []string{"default"}, nil, time.Hour, t3)
		})

		header, body := rows(t, ctl(t, path, 0, "workers", "events", "-namespace", "ns").Stdout)
		if want := []string{"ID", "AT", "NAMESPACE", "INSTANCE", "KIND", "REASON"}; !slices.Equal(header, want) {
			t.Fatalf("header = %q, want %q", header, want)
		}
		want := [][]string{
			{ms(t1), "ns", "w1", "registered", "-"},
			{ms(t2), "ns", "w1", "refreshed", "-"},
			{ms(t3), "ns", "w2", "registered", "-"},
		}
		var ids []string
		for i, row := range body {
			ids = append(ids, row[0])
			if i >= len(want) || !slices.Equal(row[1:], want[i]) {
				t.Fatalf("rows = %q, want (after the ID) %q", body, want)
			}
		}
		if len(body) != len(want) {
			t.Fatalf("rows = %q, want %q", body, want)
		}

		if _, body := rows(t, ctl(t, path, 0, "workers", "events", "-namespace", "ns", "-instance", "w1").Stdout); !slices.Equal(col(body, 4), []string{"registered", "refreshed"}) {
			t.Errorf("-instance w1: kinds %q", col(body, 4))
		}
		if _, body := rows(t, ctl(t, path, 0, "workers", "events", "-namespace", "ns", "-newest").Stdout); !slices.Equal(col(body, 0), []string{ids[2], ids[1], ids[0]}) {
			t.Errorf("-newest: ids %q, want %q reversed", col(body, 0), ids)
		}

		res := ctl(t, path, 0, "workers", "events", "-namespace", "ns", "-limit", "2")
		if _, body := rows(t, res.Stdout); !slices.Equal(col(body, 0), ids[:2]) {
			t.Errorf("-limit 2: ids %q, want %q", col(body, 0), ids[:2])
		}
		if want := "more events: continue with -after " + ids[1] + "\n"; res.Stderr != want {
			t.Fatalf("-limit 2: stderr %q, want %q", res.Stderr, want)
		}
		res = ctl(t, path, 0, "workers", "events", "-namespace", "ns", "-limit", "2", "-after", ids[1])
		if _, body := rows(t, res.Stdout); !slices.Equal(col(body, 0), ids[2:]) || res.Stderr != "" {
			t.Errorf("-after %s: ids %q, stderr %q; want %q and no hint", ids[1], col(body, 0), res.Stderr, ids[2:])
		}

		page := decode[eventsJSON](t, ctl(t, path, 0, "-json", "workers", "events", "-namespace", "ns", "-limit", "2").Stdout)
		if len(page.Events) != 2 || page.Next == nil || strconv.FormatInt(*page.Next, 10) != ids[1] {
			t.Fatalf("-json -limit 2: %+v", page)
		}
		page = decode[eventsJSON](t, ctl(t, path, 0, "-json", "workers", "events", "-namespace", "ns").Stdout)
		if len(page.Events) != 3 || page.Next != nil {
			t.Fatalf("-json: %+v", page)
		}
		if e := page.Events[2]; strconv.FormatInt(e.ID, 10) != ids[2] || e.At != ms(t3) || e.Namespace != "ns" ||
			e.WorkerInstanceID != "w2" || e.Kind != "registered" || e.Reason != "" {
			t.Fatalf("-json event = %+v", e)
		}
		if _, body := rows(t, ctl(t, path, 0, "workers", "events", "-namespace", "other").Stdout); !slices.Equal(col(body, 3), []string{"w3"}) {
			t.Errorf("-namespace other: instances %q, want only w3", col(body, 3))
		}

		// Without -namespace: every namespace, in ID order.
		_, body = rows(t, ctl(t, path, 0, "workers", "events").Stdout)
		var all []string
		for _, row := range body {
			all = append(all, row[2]+"/"+row[3]+"/"+row[4])
		}
		if want := []string{"ns/w1/registered", "ns/w1/refreshed", "other/w3/registered", "ns/w2/registered"}; !slices.Equal(all, want) {
			t.Fatalf("every namespace: %q, want %q", all, want)
		}
		allIDs := col(body, 0)
		page = decode[eventsJSON](t, ctl(t, path, 0, "workers", "events", "-json", "-limit", "3").Stdout)
		if len(page.Events) != 3 || page.Events[2].Namespace != "other" || page.Next == nil || strconv.FormatInt(*page.Next, 10) != allIDs[2] {
			t.Fatalf("every namespace -json -limit 3: %+v", page)
		}
		res = ctl(t, path, 0, "workers", "events", "-newest", "-limit", "1")
		if _, body := rows(t, res.Stdout); !slices.Equal(col(body, 0), allIDs[3:]) || res.Stderr != "more events: continue with -after "+allIDs[3]+"\n" {
			t.Fatalf("every namespace -newest -limit 1: ids %q, stderr %q", col(body, 0), res.Stderr)
		}

		// -since: a time, or a duration back from the clock.
		since := []struct {
			args []string
			want []string // IDs
		}{
			{[]string{"-since", t2.UTC().Format(time.RFC3339Nano)}, allIDs[1:]},
			{[]string{"-since", "150s"}, allIDs[1:]},
			{[]string{"-since", "1m"}, allIDs[3:]},
			{[]string{"-since", "1d"}, allIDs},
			{[]string{"-since", "1s"}, nil},
			{[]string{"-since", "150s", "-namespace", "ns"}, []string{ids[1], ids[2]}},
			{[]string{"-since", "150s", "-newest"}, []string{allIDs[3], allIDs[2], allIDs[1]}},
			{[]string{"-since", "150s", "-after", allIDs[2]}, allIDs[3:]},
		}
		for _, tc := range since {
			res := ctlAt(t, path, now, 0, append([]string{"workers", "events"}, tc.args...)...)
			if _, body := rows(t, res.Stdout); !slices.Equal(col(body, 0), tc.want) || res.Stderr != "" {
				t.Errorf("%q: ids %q, stderr %q; want %q", tc.args, col(body, 0), res.Stderr, tc.want)
			}
		}
		res = ctlAt(t, path, now, 0, "workers", "events", "-since", "150s", "-limit", "2")
		if _, body := rows(t, res.Stdout); !slices.Equal(col(body, 0), allIDs[1:3]) || res.Stderr != "more events: continue with -after "+allIDs[2]+"\n" {
			t.Errorf("-since 150s -limit 2: ids %q, stderr %q", col(body, 0), res.Stderr)
		}
	})
}

func TestLeasesExpired(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := t0
		fixed, err := registry.ParseExecutionID("{fp:7}:11111111-2222-3333-4444-555555555555")
		if err != nil {
			t.Fatal(err)
		}
		var ids []registry.ExecutionID
		path := newDB(t, s, func(_ *registry.Registry, sqlDB *sql.DB) {
			ids = registrytest.InsertLeases(t, sqlDB,
				registrytest.Lease{ExecutionID: fixed, Namespace: "alpha", WorkerInstanceID: "w1",
					AttemptIndex: 0, LeaseEpoch: 1, ExpiresAt: now.Add(-2 * time.Hour)},
				registrytest.Lease{Namespace: "beta", State: "claimed", WorkerInstanceID: "w2",
					AttemptIndex: 1, LeaseEpoch: 2, ExpiresAt: now.Add(-time.Hour)},
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "w3", ExpiresAt: now.Add(-30 * time.Minute)},
				registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "w4", ExpiresAt: now.Add(time.Hour)},                      // not expired
				registrytest.Lease{Namespace: "alpha", State: "completed", WorkerInstanceID: "w5", ExpiresAt: now.Add(-time.Hour)}, // not leased
			)
		})
		expired := []string{ids[0].String(), ids[1].String(), ids[2].String()}

		header, body := rows(t, ctlAt(t, path, now, 0, "leases", "expired").Stdout)
		if want := []string{"EXECUTION", "ATTEMPT", "INSTANCE", "NAMESPACE", "EXPIRED"}; !slices.Equal(header, want) {
			t.Fatalf("header = %q, want %q", header, want)
		}
		if got := col(body, 0); !slices.Equal(got, expired) {
			t.Fatalf("executions = %q, want %q", got, expired)
		}
		if want := []string{"{fp:7}:11111111-2222-3333-4444-555555555555", "0", "w1", "alpha", "2h ago"}; !slices.Equal(body[0], want) {
			t.Fatalf("first row = %q, want %q", body[0], want)
		}
		header, body = rows(t, ctlAt(t, path, now, 0, "leases", "expired", "-wide").Stdout)
		if want := []string{"EXECUTION", "ATTEMPT", "INSTANCE", "NAMESPACE", "EXPIRED", "LEASE ID", "EPOCH", "EXPIRES AT"}; !slices.Equal(header, want) {
			t.Fatalf("-wide header = %q, want %q", header, want)
		}
		// The lease ID of the first test vector of registry's LeaseID derivation (leases_test.go).
		if want := []string{"{fp:7}:11111111-2222-3333-4444-555555555555", "0", "w1", "alpha", "2h ago",
			"11111111-2222-3332-4444-555555555555", "1", ms(now.Add(-2 * time.Hour))}; !slices.Equal(body[0], want) {
			t.Fatalf("-wide first row = %q, want %q", body[0], want)
		}
		if want := []string{"1", "w2", "beta", "1h ago"}; !slices.Equal(body[1][1:5], want) || body[1][6] != "2" || body[1][7] != ms(now.Add(-time.Hour)) {
			t.Fatalf("-wide second row = %q, want %q, epoch 2 and the absolute expiry", body[1], want)
		}

		got := decode[leasesJSON](t, ctlAt(t, path, now, 0, "-json", "leases", "expired").Stdout)
		if len(got.Leases) != 3 || got.Next != nil {
			t.Fatalf("-json: %+v", got)
		}
		if l, want := got.Leases[0], (leaseJSON{ExecutionID: "{fp:7}:11111111-2222-3333-4444-555555555555", LeaseID: "11111111-2222-3332-4444-555555555555",
			LeaseEpoch: 1, AttemptIndex: 0, WorkerInstanceID: "w1", Namespace: "alpha", ExpiresAt: ms(now.Add(-2 * time.Hour))}); l != want {
			t.Fatalf("-json lease = %+v, want %+v", l, want)
		}

		filters := []struct {
			args []string
			want []string
		}{
			{[]string{"-namespace", "alpha"}, []string{expired[0], expired[2]}},
			{[]string{"-namespace", "beta"}, expired[1:2]},
			{[]string{"-as-of", now.Add(-90 * time.Minute).Format(time.RFC3339)}, expired[:1]},
			{[]string{"-as-of", now.Add(2 * time.Hour).UTC().Format(time.RFC3339Nano)}, append(slices.Clone(expired), ids[3].String())},
			// Relative: a duration is that long ago, +D that long ahead.
			{[]string{"-as-of", "90m"}, expired[:1]},
			{[]string{"-as-of", "+2h"}, append(slices.Clone(expired), ids[3].String())},
			{[]string{"-as-of", "0"}, expired},
			{[]string{"-namespace", "gamma"}, nil},
		}
		for _, f := range filters {
			_, body := rows(t, ctlAt(t, path, now, 0, append([]string{"leases", "expired"}, f.args...)...).Stdout)
			if got := col(body, 0); !slices.Equal(got, f.want) {
				t.Errorf("%q: executions %q, want %q", f.args, got, f.want)
			}
		}

		// Follow the hints on stderr page by page.
		args := []string{"leases", "expired", "-wide", "-limit", "1"}
		var walked []string
		for page := 0; ; page++ {
			if page > 3 {
				t.Fatalf("still paging after %d pages: %q", page, walked)
			}
			res := ctlAt(t, path, now, 0, args...)
			_, body := rows(t, res.Stdout)
			if len(body) > 1 {
				t.Fatalf("page of %d rows with -limit 1", len(body))
			}
			walked = append(walked, col(body, 0)...)
			if res.Stderr == "" {
				break
			}
			hint, ok := strings.CutPrefix(strings.TrimSpace(res.Stderr), "more leases: continue with ")
			// The as-of of the first page carries over, so that the walk
			// lists one set of leases.
			if !ok || !strings.HasPrefix(hint, "-as-of ") ||
				!strings.Contains(hint, "-after-execution '"+body[0][0]+"'") || !strings.Contains(hint, "-after-expires "+body[0][7]) {
				t.Fatalf("stderr = %q, want the continuation after %s", res.Stderr, body[0][0])
			}
			args = []string{"leases", "expired", "-wide", "-limit", "1"}
			for _, word := range strings.Fields(hint) {
				args = append(args, strings.Trim(word, "'"))
			}
		}
		if !slices.Equal(walked, expired) {
			t.Fatalf("pages walked %q, want %q", walked, expired)
		}

		res := ctlAt(t, path, now, 0, "leases", "expired", "-limit", "1", "-all")
		if _, body := rows(t, res.Stdout); !slices.Equal(col(body, 0), expired) || res.Stderr != "" {
			t.Fatalf("-all: executions %q, stderr %q", col(body, 0), res.Stderr)
		}
		got = decode[leasesJSON](t, ctlAt(t, path, now, 0, "-json", "leases", "expired", "-limit", "2").Stdout)
		if len(got.Leases) != 2 || got.Next == nil || got.Next.ExecutionID != expired[1] || got.Next.ExpiresAt != ms(now.Add(-time.Hour)) || got.Next.AttemptIndex != 1 {
			t.Fatalf("-json -limit 2: %+v next %+v", got.Leases, got.Next)
		}
		got = decode[leasesJSON](t, ctlAt(t, path, now, 0, "-json", "leases", "expired", "-limit", "2", "-all").Stdout)
		if len(got.Leases) != 3 || got.Next != nil {
			t.Fatalf("-json -all: %+v next %+v", got.Leases, got.Next)
		}
	})
}

func TestSweep(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		now := time.Now()
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			// Registered eight days ago: its registered event is past the
			// seven-day retention.
			register(t, reg, "ns", "old", "pool", []string{"default"}, nil, time.Second, now.Add(-8*24*time.Hour))
			register(t, reg, "ns", "expired", "pool", []string{"default"}, nil, time.Minute, now.Add(-time.Hour))
			live(t, reg, "ns", "live")
		})
		kinds := func(instance string) []string {
			_, body := rows(t, ctl(t, path, 0, "workers", "events", "-namespace", "ns", "-instance", instance).Stdout)
			return col(body, 4)
		}

		rep := decode[map[string]int](t, ctl(t, path, 0, "-json", "sweep").Stdout)
		if want := map[string]int{"swept": 2, "pruned_events": 1}; len(rep) != 2 || rep["swept"] != 2 || rep["pruned_events"] != 1 {
			t.Fatalf("sweep -json = %v, want %v", rep, want)
		}
		if got := kinds("expired"); !slices.Equal(got, []string{"registered", "ttl_swept"}) {
			t.Errorf("events of the expired worker = %q", got)
		}
		if got := kinds("old"); !slices.Equal(got, []string{"ttl_swept"}) {
			t.Errorf("events of the old worker = %q, want its registered event pruned", got)
		}
		if got := kinds("live"); !slices.Equal(got, []string{"registered"}) {
			t.Errorf("events of the live worker = %q", got)
		}

		header, body := rows(t, ctl(t, path, 0, "sweep").Stdout)
		if !slices.Equal(header, []string{"SWEPT", "PRUNED EVENTS"}) || len(body) != 1 || !slices.Equal(body[0], []string{"0", "0"}) {
			t.Fatalf("second sweep printed %q %q, want nothing swept", header, body)
		}
		_, body = rows(t, ctl(t, path, 0, "workers", "list").Stdout)
		if got := col(body, 1); !slices.Equal(got, []string{"live"}) {
			t.Fatalf("workers after sweep = %q, want only live", got)
		}
	})
}

func TestDatabaseLocation(t *testing.T) {
	inDir := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) { live(t, reg, "ns", "from-dir") })
	fromEnv := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) { live(t, reg, "ns", "from-env") })
	fromFlag := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) { live(t, reg, "ns", "from-flag") })
	dir := filepath.Dir(inDir) // holds registry.db

	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"registry.db in the working directory", nil, nil, "from-dir"},
		{"REGISTRY_DB", []string{"REGISTRY_DB=" + fromEnv}, nil, "from-env"},
		{"-db over REGISTRY_DB", []string{"REGISTRY_DB=" + fromEnv}, []string{"-db", fromFlag}, "from-flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := registryctl(t, dir, tc.env, append(tc.args, "workers", "list")...)
			if res.Code != 0 {
				t.Fatalf("exit %d, stderr %q", res.Code, res.Stderr)
			}
			if _, body := rows(t, res.Stdout); !slices.Equal(col(body, 1), []string{tc.want}) {
				t.Fatalf("workers = %q, want %s", col(body, 1), tc.want)
			}
		})
	}
}

// wantError fails the test unless res exited with code, printing nothing
// on stdout and one line on stderr that contains message.
func wantError(t *testing.T, res clitest.Result, code int, message string) {
	t.Helper()
	if res.Code != code {
		t.Fatalf("exit %d, want %d (stderr %q)", res.Code, code, res.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "registryctl: ") || !strings.Contains(lines[0], message) {
		t.Fatalf("stderr = %q, want one line containing %q", res.Stderr, message)
	}
	if res.Stdout != "" {
		t.Fatalf("stdout = %q, want nothing", res.Stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	// The database does not exist: a bad command line is reported before
	// the file is looked at.
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	cases := []struct {
		name    string
		args    []string
		message string
	}{
		{"no command", nil, "no command given (see 'registryctl -h')"},
		{"unknown command", []string{"frob"}, `unknown command "frob"`},
		{"unknown subcommand", []string{"workers", "frob"}, `unknown workers subcommand "frob"`},
		{"no subcommand", []string{"leases"}, "leases: no subcommand given"},
		{"unknown global flag", []string{"-x", "sweep"}, "flag provided but not defined: -x"},
		{"unknown subcommand flag", []string{"workers", "list", "-x"}, "flag provided but not defined: -x (see 'registryctl help workers list')"},
		{"global flag without its value after the command", []string{"workers", "list", "-db"}, "flag needs an argument: -db"},
		{"extra argument", []string{"sweep", "now"}, `sweep takes no arguments (got "now")`},
		{"help of an unknown command", []string{"help", "frob"}, `help: unknown command "frob"`},
		{"instance without namespace", []string{"workers", "events", "-instance", "w"}, "-instance needs -namespace"},
		{"follow newest with since", []string{"workers", "events", "-follow", "-newest", "5", "-since", "1m"}, "-follow -newest starts at the newest events: it does not go with -since or -after"},
		{"newest zero", []string{"workers", "events", "-newest=0"}, `for -newest: "0": want a count of events from 1 to 10000, or no value`},
		{"drain without -namespace", []string{"workers", "drain", "-instance", "w"}, "workers drain: -namespace is required"},
		{"drain without -instance", []string{"workers", "drain", "-namespace", "ns"}, "workers drain: -instance is required"},
		{"kill without -instance", []string{"workers", "kill", "-namespace", "ns", "-reason", "r"}, "workers kill: -instance is required"},
		{"kill with empty -namespace", []string{"workers", "kill", "-namespace", "", "-instance", "w"}, "workers kill: -namespace is required"},
		{"limit not a number", []string{"workers", "list", "-limit", "many"}, `invalid value "many" for flag -limit`},
		{"after not a number", []string{"workers", "events", "-namespace", "ns", "-after", "x"}, `invalid value "x" for flag -after`},
		{"since not a time", []string{"workers", "events", "-since", "yesterday"}, `invalid value "yesterday" for flag -since`},
		{"since negative", []string{"workers", "events", "-since", "-5m"}, `invalid value "-5m" for flag -since`},
		{"as-of not a time", []string{"leases", "expired", "-as-of", "yesterday"}, `invalid value "yesterday" for flag -as-of: "yesterday": want an RFC 3339 time (2026-01-02T15:04:05Z), a duration ago (90s, 10m, 2h, 3d) or a duration ahead (+10m)`},
		{"as-of negative", []string{"leases", "orphaned", "-as-of", "-10m"}, `invalid value "-10m" for flag -as-of: "-10m": write 10m for that long ago, +10m for that long ahead`},
		{"after-expires not a time", []string{"leases", "expired", "-after-expires", "10x"}, `invalid value "10x" for flag -after-expires: "10x": want an RFC 3339 time`},
		{"after-attempt not a number", []string{"leases", "expired", "-after-attempt", "x"}, `invalid value "x" for flag -after-attempt: "x": want an attempt index from 0 to 4294967295`},
		{"after-execution not an ID", []string{"leases", "expired", "-after-execution", "x"}, `invalid value "x" for flag -after-execution`},
		{"empty -db", []string{"-db", "", "workers", "list"}, "-db: "},
		{"empty -db after the command", []string{"stats", "-db", ""}, "-db: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, registryctl(t, dir, nil, append([]string{"-db", missing}, tc.args...)...), 2, tc.message)
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a bad command line created the database file")
	}
}

// TestBadFlagValues gives flags values that parse but that the registry
// rejects: each is a bad command line, exit status 2, and the message
// names the flag, never the argument's field in the library.
func TestBadFlagValues(t *testing.T) {
	dir := t.TempDir()
	path := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) { live(t, reg, "ns", "w1") })
	cases := []struct {
		name    string
		args    []string
		message string
	}{
		{"namespace with a leading space", []string{"workers", "list", "-namespace", " ns"}, "-namespace: must not have leading or trailing space"},
		{"lane with a comma", []string{"workers", "list", "-lane", "a,b"}, "-lane: must not contain ','"},
		{"capability with a space", []string{"workers", "list", "-capability", "a b"}, "-capability: "},
		{"negative limit", []string{"workers", "list", "-limit", "-1"}, "-limit: must not be negative"},
		{"negative limit, -all", []string{"workers", "list", "-all", "-limit", "-1"}, "-limit: must not be negative"},
		{"cursor of another namespace", []string{"workers", "list", "-namespace", "ns", "-after-namespace", "other", "-after-instance", "w"}, "-after-namespace: cursor is from namespace"},
		{"cursor instance with a control character", []string{"workers", "list", "-after-namespace", "ns", "-after-instance", "w\x01"}, "-after-instance: "},
		{"cursor without an instance", []string{"workers", "list", "-after-namespace", "ns"}, "-after-instance: must not be empty"},
		{"events of a namespace with a trailing space", []string{"workers", "events", "-namespace", "ns "}, "-namespace: must not have leading or trailing space"},
		{"negative event cursor", []string{"workers", "events", "-namespace", "ns", "-after", "-5"}, "-after: must not be negative"},
		{"negative event limit", []string{"workers", "events", "-limit", "-5"}, "-limit: must not be negative"},
		{"negative event limit, following", []string{"workers", "events", "-follow", "-limit", "-5"}, "-limit: must not be negative"},
		{"drain of an instance with a leading space", []string{"workers", "drain", "-namespace", "ns", "-instance", " w1"}, "-instance: must not have leading or trailing space"},
		{"drain with a long reason", []string{"workers", "drain", "-namespace", "ns", "-instance", "w1", "-reason", strings.Repeat("r", 257)}, "-reason: exceeds 256 bytes (got 257)"},
		{"kill with a long reason", []string{"workers", "kill", "-namespace", "ns", "-instance", "w1", "-reason", strings.Repeat("r", 257)}, "-reason: exceeds 256 bytes (got 257)"},
		{"kill with a control character in the reason", []string{"workers", "kill", "-namespace", "ns", "-instance", "w1", "-reason", "a\x1b[31m"}, "-reason: "},
		{"lease cursor without expiry", []string{"leases", "expired", "-after-execution", "{fp:1}:11111111-2222-3333-4444-555555555555"}, "-after-expires: must be set"},
		{"as-of before 1970", []string{"leases", "expired", "-as-of", "1969-12-31T23:59:59Z"}, "-as-of: is before 1970"},
		{"negative lease limit", []string{"leases", "expired", "-limit", "-1"}, "-limit: must not be negative"},
		{"stats of a namespace with a trailing space", []string{"stats", "-namespace", "ns "}, "-namespace: must not have leading or trailing space"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := registryctl(t, dir, nil, append([]string{"-db", path}, tc.args...)...)
			wantError(t, res, 2, tc.message)
			for _, field := range []string{"worker_instance_id", "after.", "as_of", "list workers", "request drain"} {
				if strings.Contains(res.Stderr, field) {
					t.Errorf("stderr %q names %q, not the flag", res.Stderr, field)
				}
			}
		})
	}
	// The rejected drain and kills changed nothing.
	res := ctl(t, path, 0, "-json", "workers", "events", "-namespace", "ns")
	if events := decode[eventsJSON](t, res.Stdout).Events; len(events) != 1 || events[0].Kind != "registered" {
		t.Errorf("events after rejected calls = %+v, want only the registration", events)
	}
	if _, body := rows(t, ctl(t, path, 0, "workers", "list").Stdout); !slices.Equal(col(body, 1), []string{"w1"}) || !slices.Equal(col(body, 2), []string{"live"}) {
		t.Errorf("workers after rejected calls = %q, want w1 still live", body)
	}
}

func TestFailures(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	garbage := filepath.Join(dir, "garbage.db")
	junk := bytes.Repeat([]byte("not a database "), 100)
	if err := os.WriteFile(garbage, junk, 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		db      string
		args    []string
		message string
	}{
		{"missing file", missing, []string{"workers", "list"}, missing + ": no such database file"},
		{"not a database", garbage, []string{"sweep"}, "file is not a database"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, registryctl(t, dir, nil, append([]string{"-db", tc.db}, tc.args...)...), 1, tc.message)
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("the missing database file was created")
	}
	if b, _ := os.ReadFile(garbage); !bytes.Equal(b, junk) {
		t.Error("the file that is not a database was changed")
	}
}

func TestHelp(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db") // help never opens the database
	flagsOf := map[string][]string{
		"workers list":    {"-namespace", "-lane", "-capability", "-limit", "-all", "-wide", "-after-namespace", "-after-instance"},
		"workers events":  {"-namespace", "-instance", "-limit", "-newest", "-after", "-since", "-follow"},
		"workers get":     {"-namespace", "-instance"},
		"workers drain":   {"-namespace", "-instance", "-reason"},
		"workers resume":  {"-namespace", "-instance"},
		"workers kill":    {"-namespace", "-instance", "-reason"},
		"leases expired":  {"-namespace", "-limit", "-as-of", "-all", "-wide", "-after-expires", "-after-execution", "-after-attempt"},
		"leases orphaned": {"-namespace", "-limit", "-as-of", "-all", "-wide", "-after-expires", "-after-execution", "-after-attempt"},
		"sweep":           nil,
		"stats":           {"-namespace"},
		"version":         nil,
		"serve":           {"-addr", "-read-only", "-prefix"},
	}
	if len(flagsOf) != len(commands) {
		t.Fatalf("%d commands, %d described here: add the new one", len(commands), len(flagsOf))
	}
	// -h prints on stderr, help on stdout: both exit 0.
	dashH := func(t *testing.T, args ...string) string {
		t.Helper()
		res := registryctl(t, dir, nil, append([]string{"-db", missing}, args...)...)
		if res.Code != 0 || res.Stdout != "" {
			t.Fatalf("%q: exit %d, stdout %q; want 0 and help on stderr", args, res.Code, res.Stdout)
		}
		return res.Stderr
	}
	help := func(t *testing.T, args ...string) string {
		t.Helper()
		res := registryctl(t, dir, nil, append([]string{"-db", missing, "help"}, args...)...)
		if res.Code != 0 || res.Stderr != "" {
			t.Fatalf("help %q: exit %d, stderr %q; want 0 and help on stdout", args, res.Code, res.Stderr)
		}
		return res.Stdout
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			out := dashH(t, append(strings.Fields(c.name), "-h")...)
			if got := help(t, strings.Fields(c.name)...); got != out {
				t.Errorf("help %s differs from %s -h:\n%s\n---\n%s", c.name, c.name, got, out)
			}
			want := append([]string{"usage: registryctl [-db PATH|URL] [-json] " + c.name, "-json prints", "Global flags, before or after the command:"}, flagsOf[c.name]...)
			for _, s := range want {
				if !strings.Contains(out, s+"\n") && !strings.Contains(out, s+" ") {
					t.Errorf("help does not mention %q:\n%s", s, out)
				}
			}
		})
	}
	t.Run("top level", func(t *testing.T) {
		out := dashH(t, "-h")
		if n := strings.Count(out, "\n  version"); n != 1 {
			t.Errorf("version listed %d times:\n%s", n, out)
		}
		if got := help(t); got != out {
			t.Errorf("help differs from -h:\n%s\n---\n%s", got, out)
		}
		for _, s := range []string{"workers list", "workers events", "workers drain", "workers kill", "leases expired", "sweep", "stats",
			"workers get", "workers resume", "leases orphaned",
			"help             [COMMAND]", "version", "Exit status", "3  get, drain, resume or kill", "2  bad command line", "-db PATH", "-json", "before or after the command"} {
			if !strings.Contains(out, s) {
				t.Errorf("help does not mention %q:\n%s", s, out)
			}
		}
	})
	t.Run("workers group", func(t *testing.T) {
		out := dashH(t, "workers", "-h")
		if got := help(t, "workers"); got != out {
			t.Errorf("help workers differs from workers -h:\n%s\n---\n%s", got, out)
		}
		for _, s := range []string{"workers list", "workers get", "workers events", "workers drain", "workers resume", "workers kill"} {
			if !strings.Contains(out, s) {
				t.Errorf("help does not mention %q:\n%s", s, out)
			}
		}
		if strings.Contains(out, "leases expired") {
			t.Errorf("workers help lists another group's command:\n%s", out)
		}
	})
	t.Run("help help", func(t *testing.T) {
		if out := help(t, "help"); !strings.HasPrefix(out, "usage: registryctl help [COMMAND]") {
			t.Errorf("help help = %q", out)
		}
	})
}

func TestVersion(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db") // version never opens the database
	res := registryctl(t, dir, nil, "-db", missing, "version")
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("version: exit %d, stderr %q", res.Code, res.Stderr)
	}
	// The test binary stands in for the command: its build info is the
	// module's, unstamped.
	if want := "registryctl (devel) " + runtime.Version() + "\n"; res.Stdout != want {
		t.Fatalf("version = %q, want %q", res.Stdout, want)
	}
	for _, args := range [][]string{{"-json", "version"}, {"version", "-json"}} {
		res := registryctl(t, dir, nil, append([]string{"-db", missing}, args...)...)
		if res.Code != 0 {
			t.Fatalf("%q: exit %d, stderr %q", args, res.Code, res.Stderr)
		}
		v := decode[map[string]any](t, res.Stdout)
		if v["version"] != "(devel)" || v["module"] != "github.com/flowfabric/workerregistry" || v["go"] != runtime.Version() ||
			v["revision"] != "" || v["modified"] != false || len(v) != 5 {
			t.Fatalf("%q = %v", args, v)
		}
	}
	if res := registryctl(t, dir, nil, "version", "extra"); res.Code != 2 {
		t.Fatalf("version extra: exit %d, want 2", res.Code)
	}
}

// TestGlobalFlagsAnywhere gives -db and -json before the command, after
// it, and both: the last one given wins.
func TestGlobalFlagsAnywhere(t *testing.T) {
	path := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) { live(t, reg, "ns", "here") })
	other := newDB(t, sqliteStore, func(reg *registry.Registry, _ *sql.DB) { live(t, reg, "ns", "there") })
	dir := t.TempDir() // no registry.db here
	for _, args := range [][]string{
		{"-db", path, "-json", "workers", "list"},
		{"workers", "list", "-json", "-db", path},
		{"-json", "workers", "list", "-db", path},
		{"-db", path, "workers", "list", "-json"},
		{"-db", other, "workers", "list", "-db", path, "-json"},
		{"workers", "list", "-json=true", "-namespace", "ns", "-db", path},
	} {
		res := registryctl(t, dir, nil, args...)
		if res.Code != 0 {
			t.Fatalf("%q: exit %d, stderr %q", args, res.Code, res.Stderr)
		}
		if got := workerNames(decode[workersJSON](t, res.Stdout).Workers); !slices.Equal(got, []string{"ns/here"}) {
			t.Errorf("%q: workers %q, want ns/here", args, got)
		}
	}
	// -json=false after the command overrides -json before it.
	res := registryctl(t, dir, nil, "-json", "-db", path, "workers", "list", "-json=false")
	if header, _ := rows(t, res.Stdout); res.Code != 0 || header[0] != "NAMESPACE" {
		t.Fatalf("-json=false after the command: exit %d, stdout %q", res.Code, res.Stdout)
	}
}

// TestSecretsNeverPrinted points registryctl at Postgres DSNs whose
// password must not appear in any message, whether the DSN is refused
// or the server cannot be reached.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-pa55"
	for _, tc := range []struct {
		dsn  string
		code int
	}{
		{"postgres://registry:" + secret + "@127.0.0.1:1/registry?connect_timeout=5", 1},
		{"host=127.0.0.1 port=1 user=registry password=" + secret + " dbname=registry connect_timeout=5", 1},
		{"postgres://registry:" + secret + "@x@127.0.0.1:1/registry", 2},
		{"host=127.0.0.1 password=" + secret + " bogus=1", 2},
	} {
		res := registryctl(t, t.TempDir(), nil, "workers", "list", "-db", tc.dsn)
		if res.Code != tc.code || res.Leak(secret) != "" || res.Stderr == "" {
			t.Errorf("%s: exit %d (want %d), output %q %q; want a message without the password", registry.RedactDSN(tc.dsn), res.Code, tc.code, res.Stdout, res.Stderr)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"w-1.a:b/c":   "w-1.a:b/c",
		"two words":   "'two words'",
		"it's":        `'it'\''s'`,
		"{fp:7}:uuid": "'{fp:7}:uuid'",
		"":            "''",
		// Bytes a terminal would obey come back visibly, in bash's $'...'.
		"w\x1b[0m":   `$'w\x1b[0m'`,
		"it's\n":     `$'it\'s\n'`,
		"a\\b\u202e": `$'a\\b\u202e'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestPostgresWithoutRegistry points registryctl at a Postgres schema with
// no registry in it: it must refuse, and create nothing there.
func TestPostgresWithoutRegistry(t *testing.T) {
	dsn := registrytest.PostgresSchema(t, registrytest.PostgresDSN(t))
	res := registryctl(t, t.TempDir(), nil, "-db", dsn, "workers", "list")
	if res.Code != 1 || !strings.Contains(res.Stderr, "no worker registry in this database") {
		t.Fatalf("exit %d, stderr %q; want 1 and a refusal", res.Code, res.Stderr)
	}
	sqlDB, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	var tables int
	if err := sqlDB.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("tables in the schema: %d, %v; want none", tables, err)
	}
}

// TestNeverCreatesOrUpgrades points every command, reading or writing, at
// SQLite files that are not a registry at this version: another
// application's database, an empty file and an older registry. Each
// command exits 1 saying what to run, and the file keeps its bytes with no
// -wal or -shm left beside it.
func TestNeverCreatesOrUpgrades(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	foreign := filepath.Join(dir, "other.db")
	db, err := sql.Open(registry.SQLiteDriverName, foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE foo (x INTEGER); INSERT INTO foo VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	older := filepath.Join(dir, "older.db")
	db, err = registry.OpenSQLiteForMigration(older)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.MigrateTo(ctx, db, 2); err != nil {
		t.Fatal(err)
	}
	db.Close()
	listing := func() []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, e.Name()+" "+strconv.Itoa(len(b))+" "+string(b))
		}
		return names
	}
	before := listing()
	for _, path := range []string{foreign, empty, older} {
		for _, args := range [][]string{
			{"workers", "list"},
			{"workers", "events", "-namespace", "ns"},
			{"leases", "expired"},
			{"sweep"},
			{"workers", "drain", "-namespace", "ns", "-instance", "i"},
			{"workers", "kill", "-namespace", "ns", "-instance", "i", "-reason", "r"},
			{"workers", "get", "-namespace", "ns", "-instance", "i"},
			{"workers", "resume", "-namespace", "ns", "-instance", "i"},
			{"workers", "events", "-follow"},
			{"leases", "orphaned"},
			{"stats"},
		} {
			res := registryctl(t, dir, nil, append([]string{"-db", path}, args...)...)
			if res.Code != 1 || !strings.Contains(res.Stderr, "migrate up") {
				t.Errorf("%s %q: exit %d, stderr %q; want 1 and a pointer to 'migrate up'", filepath.Base(path), args, res.Code, res.Stderr)
			}
		}
	}
	if after := listing(); !slices.Equal(after, before) {
		t.Errorf("registryctl changed the files it refused")
	}
}
