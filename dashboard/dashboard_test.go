package dashboard

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// store opens a fresh registry on one engine.
type store struct {
	name string
	open func(t testing.TB) (*registry.Registry, *sql.DB)
}

// stores are the engines every test runs on: SQLite always, Postgres
// when $REGISTRY_TEST_POSTGRES names a server (else its subtest skips).
var stores = []store{
	{"sqlite", func(t testing.TB) (*registry.Registry, *sql.DB) { return registrytest.Open(t) }},
	{"postgres", func(t testing.TB) (*registry.Registry, *sql.DB) {
		return registrytest.OpenPostgres(t, registrytest.PostgresDSN(t))
	}},
}

// bundle is one test's registry and dashboard server.
type bundle struct {
	reg   *registry.Registry
	sqlDB *sql.DB
	srv   *httptest.Server
	opts  Options
}

// eachStore runs test on every store, with a dashboard built from opts.
func eachStore(t *testing.T, opts Options, test func(t *testing.T, b *bundle)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			reg, sqlDB := s.open(t)
			b := &bundle{reg: reg, sqlDB: sqlDB, opts: opts}
			b.srv = httptest.NewServer(New(reg, opts))
			t.Cleanup(b.srv.Close)
			test(t, b)
		})
	}
}

func (b *bundle) register(t testing.TB, namespace, instance string, lanes, caps []string) {
	t.Helper()
	if _, err := b.reg.RegisterWorker(context.Background(), registry.RegisterWorkerArgs{
		Namespace: namespace, WorkerID: "pool-" + namespace, WorkerInstanceID: instance,
		Lanes: lanes, Capabilities: caps, LivenessTTL: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
}

// get fetches path and returns its status and body.
func (b *bundle) get(t testing.TB, path string) (int, string) {
	t.Helper()
	res, err := b.srv.Client().Get(b.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// post sends a JSON body to path, with extra headers.
func (b *bundle) post(t testing.TB, path, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}

func decode[T any](t testing.TB, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, body)
	}
	return v
}

// wantError checks an error answer's status, word and field.
func wantError(t testing.TB, status int, body string, wantStatus int, word, field string) {
	t.Helper()
	e := decode[apiError](t, body)
	if status != wantStatus || e.Status != wantStatus || e.Error != word || e.Field != field || e.Message == "" {
		t.Fatalf("got %d %+v, want %d %s field %q", status, e, wantStatus, word, field)
	}
}

func TestAPIWorkersFiltersAndPages(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		b.register(t, "alpha", "w1", []string{"default"}, []string{"cuda"})
		b.register(t, "alpha", "w2", []string{"default", "gpu"}, nil)
		b.register(t, "beta", "w3", []string{"gpu"}, []string{"cuda"})

		status, body := b.get(t, "/api/workers")
		all := decode[jsonshape.Workers](t, body)
		if status != 200 || len(all.Workers) != 3 || all.Next != nil || all.Workers[0].WorkerID != "pool-alpha" || all.Workers[0].Status != "live" {
			t.Fatalf("all: %d %+v", status, all)
		}
		for q, want := range map[string]int{"?namespace=alpha": 2, "?lane=gpu": 2, "?capability=cuda": 2, "?namespace=beta&lane=default": 0} {
			_, body := b.get(t, "/api/workers"+q)
			if got := decode[jsonshape.Workers](t, body); len(got.Workers) != want || got.Workers == nil {
				t.Errorf("%s: %d workers, want %d", q, len(got.Workers), want)
			}
		}
		// Pages of one, walked by the cursor, see each worker once.
		var seen []string
		q := "?limit=1"
		for range 5 {
			_, body := b.get(t, "/api/workers"+q)
			page := decode[jsonshape.Workers](t, body)
			for _, w := range page.Workers {
				seen = append(seen, w.WorkerInstanceID)
			}
			if page.Next == nil {
				break
			}
			q = "?limit=1&after_namespace=" + url.QueryEscape(page.Next.Namespace) + "&after_instance=" + url.QueryEscape(page.Next.WorkerInstanceID)
		}
		if strings.Join(seen, ",") != "w1,w2,w3" {
			t.Fatalf("paged walk saw %v", seen)
		}

		status, body = b.get(t, "/api/workers/alpha/w2")
		if w := decode[jsonshape.Worker](t, body); status != 200 || w.WorkerInstanceID != "w2" || strings.Join(w.Lanes, ",") != "default,gpu" || w.Capabilities == nil {
			t.Fatalf("get: %d %+v", status, w)
		}
		status, body = b.get(t, "/api/workers/alpha/ghost")
		wantError(t, status, body, 404, "not_registered", "")
	})
}

func TestAPIBadInputIs400NamingTheField(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		for path, field := range map[string]string{
			"/api/workers?limit=ten":                  "limit",
			"/api/workers?limit=-1":                   "limit",
			"/api/workers?namespace=%01":              "namespace",
			"/api/events?instance=w1":                 "namespace",
			"/api/events?after=x":                     "after",
			"/api/events?newest=maybe":                "newest",
			"/api/leases/expired?as_of=yesterday":     "as_of",
			"/api/leases/orphaned?after_execution=zz": "after_execution",
			"/api/events/stream?after=-3":             "after",
		} {
			status, body := b.get(t, path)
			wantError(t, status, body, 400, "invalid_input", field)
		}
		status, body := b.get(t, "/api/nothing")
		wantError(t, status, body, 404, "not_found", "")
		status, body = b.post(t, "/api/workers", "{}")
		wantError(t, status, body, 405, "method_not_allowed", "")
		status, body = b.get(t, "/api/workers/a/b/drain")
		wantError(t, status, body, 405, "method_not_allowed", "")
	})
}

func TestAPIEventsStatsAndLeases(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		b.register(t, "alpha", "w1", []string{"default"}, nil)
		b.register(t, "alpha", "w2", []string{"default"}, nil)
		if status, body := b.post(t, "/api/workers/alpha/w2/drain", `{"reason":"deploy 42"}`); status != 200 {
			t.Fatalf("drain: %d %s", status, body)
		}
		now := time.Now()
		registrytest.InsertLeases(t, b.sqlDB,
			registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "w1", LeaseEpoch: 1, ExpiresAt: now.Add(-time.Hour)},
			registrytest.Lease{Namespace: "alpha", WorkerInstanceID: "gone", LeaseEpoch: 1, ExpiresAt: now.Add(time.Hour)})

		_, body := b.get(t, "/api/events?namespace=alpha&newest=true&limit=1")
		ev := decode[jsonshape.Events](t, body)
		if len(ev.Events) != 1 || ev.Events[0].Kind != "drain_requested" || ev.Events[0].Reason != "deploy 42" || ev.Next == nil {
			t.Fatalf("events: %+v", ev)
		}
		_, body = b.get(t, "/api/stats")
		st := decode[jsonshape.Stats](t, body)
		if st.Live != 2 || st.Draining != 1 || st.ExpiredLeases != 1 || len(st.Namespaces) != 1 || st.Namespaces[0].OldestExpiredLease == nil {
			t.Fatalf("stats: %+v", st)
		}
		_, body = b.get(t, "/api/leases/expired")
		if l := decode[jsonshape.Leases](t, body); len(l.Leases) != 1 || l.Leases[0].WorkerInstanceID != "w1" {
			t.Fatalf("expired: %+v", l)
		}
		_, body = b.get(t, "/api/leases/orphaned?namespace=alpha")
		if l := decode[jsonshape.Leases](t, body); len(l.Leases) != 1 || l.Leases[0].WorkerInstanceID != "gone" {
			t.Fatalf("orphaned: %+v", l)
		}
		// The lease page shows both counts, the worker page its lease.
		if status, page := b.get(t, "/leases"); status != 200 || !strings.Contains(page, "Expired: 1<") || !strings.Contains(page, "Orphaned: 1<") {
			t.Fatalf("leases page: %d\n%s", status, page)
		}
		if status, page := b.get(t, "/workers/alpha/gone"); status != 200 || !strings.Contains(page, "Not live") || strings.Count(page, `href="/workers/alpha/gone"`) < 1 {
			t.Fatalf("worker page of a gone holder: %d\n%s", status, page)
		}
		if status, _ := b.get(t, "/workers/alpha/never"); status != 404 {
			t.Fatalf("worker page of an unknown worker: %d", status)
		}
	})
}

// lastEvent returns the newest event of an instance.
func (b *bundle) lastEvent(t testing.TB, namespace, instance string) registry.WorkerEvent {
	t.Helper()
	res, err := b.reg.ListWorkerEvents(context.Background(), registry.ListWorkerEventsArgs{
		Namespace: namespace, WorkerInstanceID: instance, NewestFirst: true, Limit: 1})
	if err != nil || len(res.Events) == 0 {
		t.Fatalf("no event of %s/%s: %v", namespace, instance, err)
	}
	return res.Events[0]
}

func TestActionsLandInTheAuditLogWithTheirReason(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		b.register(t, "ns", "w1", []string{"default"}, nil)
		status, body := b.post(t, "/api/workers/ns/w1/drain", `{"reason":"rolling deploy"}`)
		if o := decode[jsonshape.Outcome](t, body); status != 200 || o != (jsonshape.Outcome{Namespace: "ns", WorkerInstanceID: "w1", Outcome: "drain_requested"}) {
			t.Fatalf("drain: %d %+v", status, o)
		}
		if e := b.lastEvent(t, "ns", "w1"); e.Kind != "drain_requested" || e.Reason != "rolling deploy" {
			t.Fatalf("drain event %+v", e)
		}
		status, body = b.post(t, "/api/workers/ns/w1/resume", `{"reason":"deploy done"}`)
		if o := decode[jsonshape.Outcome](t, body); status != 200 || o.Outcome != "resumed" {
			t.Fatalf("resume: %d %+v", status, o)
		}
		if e := b.lastEvent(t, "ns", "w1"); e.Kind != "resumed" {
			t.Fatalf("resume event %+v", e)
		}
		status, body = b.post(t, "/api/workers/ns/w1/kill", `{"reason":"stuck on a GPU"}`)
		if o := decode[jsonshape.Outcome](t, body); status != 200 || o.Outcome != "marked" {
			t.Fatalf("kill: %d %+v", status, o)
		}
		if e := b.lastEvent(t, "ns", "w1"); e.Kind != "marked_dead" || e.Reason != "stuck on a GPU" {
			t.Fatalf("kill event %+v", e)
		}
		status, body = b.post(t, "/api/workers/ns/w1/drain", `{}`)
		wantError(t, status, body, 404, "not_registered", "")
		status, body = b.post(t, "/api/workers/ns/w1/explode", `{}`)
		wantError(t, status, body, 404, "not_found", "")

		b.register(t, "ns", "w2", []string{"default"}, nil)
		status, body = b.post(t, "/api/workers/ns/w2/drain", `{"reason":`+fmt.Sprintf("%q", strings.Repeat("x", 257))+`}`)
		wantError(t, status, body, 400, "invalid_input", "reason")
		status, body = b.post(t, "/api/workers/ns/w2/resume", `{"reason":"a\u0007b"}`)
		wantError(t, status, body, 400, "invalid_input", "reason")
		status, body = b.post(t, "/api/workers/ns/w2/drain", `{"reason": 7}`)
		wantError(t, status, body, 400, "invalid_input", "reason")
		status, body = b.post(t, "/api/workers/ns/w2/drain", `{"why": "x"}`)
		wantError(t, status, body, 400, "invalid_input", "body")
		if e := b.lastEvent(t, "ns", "w2"); e.Kind != "registered" {
			t.Fatalf("a rejected action wrote %+v", e)
		}
	})
}

func TestActionsRefused(t *testing.T) {
	t.Run("read-only", func(t *testing.T) {
		eachStore(t, Options{ReadOnly: true}, func(t *testing.T, b *bundle) {
			b.register(t, "ns", "w1", []string{"default"}, nil)
			for _, a := range actions {
				status, body := b.post(t, "/api/workers/ns/w1/"+a, `{"reason":"x"}`)
				wantError(t, status, body, 403, "read_only", "")
			}
			if _, page := b.get(t, "/"); strings.Contains(page, `class="action"`) || !strings.Contains(page, "read-only") {
				t.Fatalf("a read-only fleet page shows action buttons:\n%s", page)
			}
			if e := b.lastEvent(t, "ns", "w1"); e.Kind != "registered" {
				t.Fatalf("read-only wrote %+v", e)
			}
		})
	})
	t.Run("authorize", func(t *testing.T) {
		var asked []string
		opts := Options{Authorize: func(r *http.Request, action string) error {
			asked = append(asked, action)
			if r.Header.Get("X-Role") != "admin" {
				return errors.New("operators only")
			}
			return nil
		}}
		// One store: asked is shared.
		reg, sqlDB := registrytest.Open(t)
		b := &bundle{reg: reg, sqlDB: sqlDB, srv: httptest.NewServer(New(reg, opts))}
		defer b.srv.Close()
		b.register(t, "ns", "w1", []string{"default"}, nil)
		status, body := b.post(t, "/api/workers/ns/w1/kill", `{"reason":"x"}`)
		wantError(t, status, body, 403, "forbidden", "")
		if e := decode[apiError](t, body); e.Message != "operators only" {
			t.Fatalf("message %q", e.Message)
		}
		if status, _ := b.post(t, "/api/workers/ns/w1/drain", `{"reason":"x"}`, "X-Role", "admin"); status != 200 {
			t.Fatalf("authorized drain: %d", status)
		}
		if strings.Join(asked, ",") != "kill,drain" {
			t.Fatalf("Authorize saw %v", asked)
		}
	})
	t.Run("cross-origin", func(t *testing.T) {
		eachStore(t, Options{}, func(t *testing.T, b *bundle) {
			b.register(t, "ns", "w1", []string{"default"}, nil)
			status, body := b.post(t, "/api/workers/ns/w1/drain", `{}`, "Sec-Fetch-Site", "cross-site")
			wantError(t, status, body, 403, "cross_origin", "")
			status, body = b.post(t, "/api/workers/ns/w1/drain", `{}`, "Origin", "https://evil.example")
			wantError(t, status, body, 403, "cross_origin", "")
			if e := b.lastEvent(t, "ns", "w1"); e.Kind != "registered" {
				t.Fatalf("a cross-origin action wrote %+v", e)
			}
			// The same origin passes.
			if status, body := b.post(t, "/api/workers/ns/w1/drain", `{}`, "Sec-Fetch-Site", "same-origin", "Origin", b.srv.URL); status != 200 {
				t.Fatalf("same-origin drain: %d %s", status, body)
			}
		})
	})
}

// TestIDsRoundTripAndShowAsText: IDs with "/", spaces, markup, unicode
// and a dot segment reach their worker through every URL the pages link,
// and the pages show them as text.
func TestIDsRoundTripAndShowAsText(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		ids := []string{"w<script>alert(1)</script>", "a/b c", "wörker-ü ✓", ".", "..", "x%2Fy", "q?x=1#f"}
		for _, id := range ids {
			b.register(t, "ns/<b>", id, []string{"default"}, nil)
		}
		_, page := b.get(t, "/")
		if strings.Contains(page, "<script>alert(1)") || strings.Contains(page, "<b>") {
			t.Fatalf("the fleet page holds unescaped markup")
		}
		if !strings.Contains(page, "w&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatalf("the fleet page does not show the ID as text")
		}
		for _, id := range ids {
			link := (&handler{}).workerPath("ns/<b>", id)
			if !strings.Contains(page, `href="`+strings.ReplaceAll(link, "&", "&amp;")+`"`) {
				t.Errorf("the fleet page has no link %s", link)
			}
			status, wp := b.get(t, link)
			if status != 200 || !strings.Contains(wp, "pool-ns/&lt;b&gt;") {
				t.Errorf("%q: worker page %d", id, status)
			}
			status, body := b.get(t, "/api"+link)
			if w := decode[jsonshape.Worker](t, body); status != 200 || w.WorkerInstanceID != id || w.Namespace != "ns/<b>" {
				t.Errorf("%q: API %d %+v", id, status, w)
			}
			status, body = b.post(t, (&handler{}).actionPath("ns/<b>", id, "drain"), `{"reason":"r"}`)
			if o := decode[jsonshape.Outcome](t, body); status != 200 || o.WorkerInstanceID != id {
				t.Errorf("%q: drain %d %+v", id, status, o)
			}
		}
	})
}

func TestPrefix(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		b.register(t, "ns", "w1", []string{"default"}, nil)
		mux := http.NewServeMux()
		mux.Handle("/registry/", New(b.reg, Options{Prefix: "/registry/"}))
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "engine", http.StatusTeapot) })
		b.srv = httptest.NewServer(mux)
		defer b.srv.Close()

		status, page := b.get(t, "/registry/")
		if status != 200 || !strings.Contains(page, `href="/registry/workers/ns/w1"`) || !strings.Contains(page, `src="/registry/static/app.js"`) ||
			!strings.Contains(page, `data-stream="/registry/api/events/stream"`) || !strings.Contains(page, `action="/registry/api/workers/ns/w1/drain"`) {
			t.Fatalf("prefixed fleet page: %d\n%s", status, page)
		}
		for _, path := range []string{"/registry/workers/ns/w1", "/registry/api/workers/ns/w1", "/registry/static/app.js", "/registry/static/app.css", "/registry/events", "/registry/leases"} {
			if status, _ := b.get(t, path); status != 200 {
				t.Errorf("%s: %d", path, status)
			}
		}
		if status, _ := b.get(t, "/api/workers"); status != http.StatusTeapot {
			t.Errorf("an unprefixed path reached the dashboard: %d", status)
		}
		if status, _ := b.post(t, "/registry/api/workers/ns/w1/drain", `{"reason":"x"}`); status != 200 {
			t.Errorf("prefixed drain: %d", status)
		}
	})
}

var workerRow = regexp.MustCompile(`<tr class="worker [^"]*" data-namespace="ns" data-instance="(w\d+)"`)

func TestFleetPageIsPaged(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		for i := range 250 {
			b.register(t, "ns", fmt.Sprintf("w%03d", i), []string{"default"}, nil)
		}
		var seen []string
		path := "/"
		for range 4 {
			status, page := b.get(t, path)
			rows := workerRow.FindAllStringSubmatch(page, -1)
			if status != 200 || len(rows) != 100 && len(rows) != 50 {
				t.Fatalf("%s: %d with %d rows", path, status, len(rows))
			}
			if !strings.Contains(page, "Live workers: 250") {
				t.Fatalf("%s: the summary does not count the whole fleet", path)
			}
			for _, r := range rows {
				seen = append(seen, r[1])
			}
			m := regexp.MustCompile(`<a href="([^"]*)" rel="next"`).FindStringSubmatch(page)
			if m == nil {
				break
			}
			path = "/" + strings.ReplaceAll(m[1], "&amp;", "&")
		}
		if len(seen) != 250 || seen[0] != "w000" || seen[100] != "w100" || seen[249] != "w249" {
			t.Fatalf("pages showed %d workers: first %v", len(seen), seen[:3])
		}
		if _, page := b.get(t, "/?limit=7"); len(workerRow.FindAllString(page, -1)) != 7 {
			t.Fatalf("?limit=7 is not a page of 7")
		}
		status, body := b.get(t, "/?limit=5000")
		wantError(t, status, body, 400, "invalid_input", "limit")
	})
}

// readEvent reads server-sent events until one of kind arrives.
func readEvent(t *testing.T, r *bufio.Reader, kind string) (id string, e jsonshape.Event) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before a %s event: %v", kind, err)
		}
		switch {
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimSpace(line[4:])
		case strings.HasPrefix(line, "data: "):
			e = decode[jsonshape.Event](t, line[6:])
			if e.Kind == kind {
				return id, e
			}
		}
	}
}

func TestEventStreamDeliversNewEvents(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		b.register(t, "ns", "w1", []string{"default"}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", b.srv.URL+"/api/events/stream?namespace=ns", nil)
		res, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		r := bufio.NewReader(res.Body)
		if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "retry:") {
			t.Fatalf("first line %q", line)
		}
		// Written after the stream opened; the registration before it is
		// not sent again.
		if _, err := b.reg.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w1", Reason: "live"}); err != nil {
			t.Fatal(err)
		}
		id, e := readEvent(t, r, "drain_requested")
		if e.Reason != "live" || e.WorkerInstanceID != "w1" || id == "" {
			t.Fatalf("event %s %+v", id, e)
		}
		// A reconnection with Last-Event-ID resumes after it.
		if _, err := b.reg.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: "ns", WorkerInstanceID: "w1"}); err != nil {
			t.Fatal(err)
		}
		req, _ = http.NewRequestWithContext(ctx, "GET", b.srv.URL+"/api/events/stream?namespace=ns", nil)
		req.Header.Set("Last-Event-ID", id)
		res2, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res2.Body.Close()
		if _, e := readEvent(t, bufio.NewReader(res2.Body), "resumed"); e.WorkerInstanceID != "w1" {
			t.Fatalf("resumed event %+v", e)
		}
	})
}

// TestActionsWithoutJavaScript: a page's action form, posted without
// the script, goes by way of a confirmation form with a reason.
func TestActionsWithoutJavaScript(t *testing.T) {
	eachStore(t, Options{}, func(t *testing.T, b *bundle) {
		b.register(t, "ns", "w 1", []string{"default"}, nil)
		client := b.srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		post := func(form url.Values) *http.Response {
			res, err := client.PostForm(b.srv.URL+"/api/workers/ns/w%201/drain", form)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res
		}
		res := post(url.Values{})
		if loc := res.Header.Get("Location"); res.StatusCode != 303 || loc != "/workers/ns/w%201?confirm=drain" {
			t.Fatalf("unconfirmed: %d %s", res.StatusCode, loc)
		}
		if _, page := b.get(t, "/workers/ns/w%201?confirm=drain"); !strings.Contains(page, `name="confirm" value="yes"`) {
			t.Fatalf("no confirmation form:\n%s", page)
		}
		if e := b.lastEvent(t, "ns", "w 1"); e.Kind != "registered" {
			t.Fatalf("an unconfirmed form drained: %+v", e)
		}
		res = post(url.Values{"confirm": {"yes"}, "reason": {"by form"}})
		if loc := res.Header.Get("Location"); res.StatusCode != 303 || loc != "/workers/ns/w%201?done=drain_requested" {
			t.Fatalf("confirmed: %d %s", res.StatusCode, loc)
		}
		if e := b.lastEvent(t, "ns", "w 1"); e.Kind != "drain_requested" || e.Reason != "by form" {
			t.Fatalf("form drain event %+v", e)
		}
	})
}
