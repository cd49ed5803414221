package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
)

// Page sizes and bounds of the HTML pages.
const (
	fleetPageSize  = 100    // workers a fleet page shows unless ?limit=
	maxPageSize    = 1000   // the most ?limit= gives a page
	summaryWorkers = 100000 // registrations the fleet's summary counts at most
	eventsPageSize = 100    // events an events or worker page shows
	leasePageSize  = 100    // leases a lease list shows
	leaseCountMax  = 100000 // leases the lease page counts at most
	holderScanMax  = 10000  // leases a worker page reads looking for its own
)

// base is what every page's layout needs.
type base struct {
	Title    string
	Prefix   string
	ReadOnly bool
	Now      time.Time
}

// actionsData are the action buttons of one worker.
type actionsData struct {
	ReadOnly bool
	W        registry.WorkerInfo
	Actions  []string
}

// eventTableData are a live event table's rows and the stream that adds
// to them, starting after the event After.
type eventTableData struct {
	Events []registry.WorkerEvent
	Stream string
	After  int64
}

// parsePages parses each page with the layout.
func parsePages(h *handler) map[string]*template.Template {
	funcs := template.FuncMap{
		"workerURL": h.workerPath,
		"actionURL": h.actionPath,
		"age":       func(t time.Time) string { return age(t, h.now()) },
		"ts":        jsonshape.FormatTime,
		"join":      strings.Join,
		"load":      jsonshape.Load,
		"status":    func(w registry.WorkerInfo) string { return jsonshape.Status(w, h.now()) },
		"actionsFor": func(readOnly bool, w registry.WorkerInfo, actions ...string) actionsData {
			return actionsData{ReadOnly: readOnly, W: w, Actions: actions}
		},
		"eventTable": func(events []registry.WorkerEvent, namespace, instance string, after int64) eventTableData {
			return eventTableData{Events: events, After: after,
				Stream: h.opts.Prefix + "/api/events/stream" + queryString("namespace", namespace, "instance", instance)}
		},
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"fleet", "worker", "events", "leases"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html"))
	}
	return pages
}

// render writes a page, or 500 when its template fails; the page is
// rendered into a buffer first so that a failure sends no half page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	var buf bytes.Buffer
	if err := h.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		h.writeError(w, r, http.StatusInternalServerError, "internal", "render "+page+": "+err.Error(), "")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) base(title string) base {
	return base{Title: title, Prefix: h.opts.Prefix, ReadOnly: h.opts.ReadOnly, Now: h.now()}
}

// pageError renders a failed page's reason as JSON (bad input is 400,
// naming the parameter).
func (h *handler) pageError(w http.ResponseWriter, r *http.Request, err error) { h.fail(w, r, err) }

type fleetData struct {
	base
	Filter    registry.ListWorkersArgs
	Limit     int
	Summary   jsonshape.Stats
	Truncated bool
	Workers   []registry.WorkerInfo
	Next      string // the query of the next page, "" on the last
	Events    []registry.WorkerEvent
	LastEvent int64
}

// VersionMismatch returns the versions that the live workers of w's
// worker ID (in its namespace) reported, joined, when they are more than
// one and w reported one; "" otherwise. It knows the registrations the
// summary counted.
func (d fleetData) VersionMismatch(w registry.WorkerInfo) string {
	if w.Report == nil || w.Report.Version == "" {
		return ""
	}
	for _, n := range d.Summary.Namespaces {
		if n.Namespace == w.Namespace {
			if vs := n.Versions[w.WorkerID]; len(vs) > 1 {
				return strings.Join(vs, ", ")
			}
		}
	}
	return ""
}

// mismatch is one worker ID whose live workers report different versions.
type mismatch struct {
	Namespace, WorkerID string
	Versions            []string
}

// Mismatches are the worker IDs whose live workers report more than one
// version, by namespace and worker ID.
func (d fleetData) Mismatches() []mismatch {
	var out []mismatch
	for _, n := range d.Summary.Namespaces {
		for id, vs := range n.Versions {
			if len(vs) > 1 {
				out = append(out, mismatch{n.Namespace, id, vs})
			}
		}
	}
	slices.SortFunc(out, func(a, b mismatch) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.WorkerID, b.WorkerID))
	})
	return out
}

// fleetPage shows the fleet: counts by namespace, lane and state, one
// page of live workers (with the filters of /api/workers) and the newest
// events, kept up to date by the page's script.
func (h *handler) fleetPage(w http.ResponseWriter, r *http.Request) {
	q := query{r: r}
	args := q.workersArgs(fleetPageSize)
	if args.Limit > maxPageSize || args.Limit < 0 {
		q.err = &inputError{"limit", "want 1 to " + strconv.Itoa(maxPageSize)}
	}
	if q.err != nil {
		h.pageError(w, r, q.err)
		return
	}
	d := fleetData{base: h.base("Fleet"), Filter: args, Limit: args.Limit}
	args.Now = d.Now
	ctx := r.Context()
	res, err := h.reg.ListWorkers(ctx, args)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	d.Workers = res.Workers
	if res.Next != nil {
		d.Next = queryString("namespace", args.Namespace, "lane", args.Lane, "capability", args.Capability,
			"limit", limitParam(r), "after_namespace", res.Next.Namespace, "after_instance", res.Next.WorkerInstanceID)
	}
	d.Summary, d.Truncated, err = jsonshape.CollectWorkerStats(ctx, h.reg, args.Namespace, d.Now, summaryWorkers)
	if err == nil {
		d.Events, d.LastEvent, err = h.recentEvents(ctx, registry.ListWorkerEventsArgs{Namespace: args.Namespace, Limit: 20})
	}
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "fleet", d)
}

// recentEvents returns the newest events, newest first, and the newest
// one's ID (0 for none), where a live log starts.
func (h *handler) recentEvents(ctx context.Context, args registry.ListWorkerEventsArgs) ([]registry.WorkerEvent, int64, error) {
	args.NewestFirst = true
	res, err := h.reg.ListWorkerEvents(ctx, args)
	if err != nil || len(res.Events) == 0 {
		return nil, 0, err
	}
	return res.Events, res.Events[0].ID, nil
}

type workerData struct {
	base
	Namespace, Instance string
	Live                bool
	Worker              registry.WorkerInfo
	Events              []registry.WorkerEvent
	Older               string // query of the next (older) page of events
	LastEvent           int64
	Expired, Orphaned   []registry.ExpiredLease
	ScanCapped          bool
	Confirm             string // the action whose confirmation form shows (no JavaScript)
	Done                string // the outcome of the action just run
}

// workerPage shows one worker: its registration (when live), its events
// and the leases it holds that have expired or (when it is gone) that are
// orphaned. A worker neither live nor in the log is 404.
func (h *handler) workerPage(w http.ResponseWriter, r *http.Request) {
	ns, inst := r.PathValue("namespace"), r.PathValue("instance")
	q := query{r: r}
	before := q.int64("before")
	if q.err != nil {
		h.pageError(w, r, q.err)
		return
	}
	ctx := r.Context()
	d := workerData{base: h.base(inst), Namespace: ns, Instance: inst, Done: q.str("done")}
	if c := q.str("confirm"); c == "drain" || c == "resume" || c == "kill" {
		d.Confirm = c
	}
	var err error
	d.Worker, d.Live, err = h.reg.GetWorker(ctx, registry.GetWorkerArgs{Namespace: ns, WorkerInstanceID: inst, Now: d.Now})
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	res, err := h.reg.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: ns, WorkerInstanceID: inst,
		After: before, NewestFirst: true, Limit: eventsPageSize})
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	d.Events = res.Events
	if res.Next != 0 {
		d.Older = queryString("before", strconv.FormatInt(res.Next, 10))
	}
	if len(d.Events) > 0 && before == 0 {
		d.LastEvent = d.Events[0].ID
	}
	d.Expired, d.ScanCapped, err = h.heldLeases(ctx, h.expiredLeases, ns, inst, d.Now)
	if err == nil && !d.Live {
		var capped bool
		d.Orphaned, capped, err = h.heldLeases(ctx, h.orphanedLeases, ns, inst, d.Now)
		d.ScanCapped = d.ScanCapped || capped
	}
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	status := http.StatusOK
	if !d.Live && len(d.Events) == 0 && len(d.Expired) == 0 && len(d.Orphaned) == 0 {
		status = http.StatusNotFound
	}
	h.render(w, r, status, "worker", d)
}

// heldLeases returns the leases of list in namespace ns that inst holds,
// reading at most holderScanMax of them (capped says it stopped there):
// the registry lists leases by expiry, not by holder.
func (h *handler) heldLeases(ctx context.Context, list leaseLister, ns, inst string, now time.Time) (held []registry.ExpiredLease, capped bool, err error) {
	capped, err = walkLeases(ctx, list, ns, now, holderScanMax, func(l registry.ExpiredLease) {
		if l.WorkerInstanceID == inst {
			held = append(held, l)
		}
	})
	return held, capped, err
}

// walkLeases calls visit for each lease of list in namespace ns at asOf,
// page by page, and stops after the page that reaches max leases (capped
// is then true).
func walkLeases(ctx context.Context, list leaseLister, ns string, asOf time.Time, max int, visit func(registry.ExpiredLease)) (capped bool, _ error) {
	args := registry.ListExpiredLeasesArgs{Namespace: ns, AsOf: asOf, Limit: registry.MaxLimit}
	for read := 0; ; {
		page, next, err := list(ctx, args)
		if err != nil {
			return false, err
		}
		for _, l := range page {
			visit(l)
		}
		read += len(page)
		if next == nil {
			return false, nil
		}
		if read >= max {
			return true, nil
		}
		args.After = next
	}
}

type eventsData struct {
	base
	Namespace, Instance string
	Events              []registry.WorkerEvent
	Older               string
	LastEvent           int64
}

// eventsPage shows the audit log newest first, a page at a time; the
// page's script adds new events as they are recorded.
func (h *handler) eventsPage(w http.ResponseWriter, r *http.Request) {
	q := query{r: r}
	args := q.eventsArgs(eventsPageSize)
	before := q.int64("before")
	if q.err != nil {
		h.pageError(w, r, q.err)
		return
	}
	args.After, args.NewestFirst = before, true
	res, err := h.reg.ListWorkerEvents(r.Context(), args)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	d := eventsData{base: h.base("Events"), Namespace: args.Namespace, Instance: args.WorkerInstanceID, Events: res.Events}
	if res.Next != 0 {
		d.Older = queryString("namespace", args.Namespace, "instance", args.WorkerInstanceID, "before", strconv.FormatInt(res.Next, 10))
	}
	if len(res.Events) > 0 && before == 0 {
		d.LastEvent = res.Events[0].ID
	}
	h.render(w, r, http.StatusOK, "events", d)
}

// leaseList is one of the lease page's two lists.
type leaseList struct {
	Name    string // expired or orphaned
	Count   int
	Capped  bool // Count stopped at leaseCountMax
	Leases  []registry.ExpiredLease
	NextURL string
}

type leasesData struct {
	base
	Namespace string
	AsOf      time.Time
	Lists     []leaseList
}

// leasesPage shows the lease backlog: how many leases expired and how
// many are orphaned (held by a worker no longer live), and the first page
// of each, or with ?list= and a cursor a later page of one.
func (h *handler) leasesPage(w http.ResponseWriter, r *http.Request) {
	q := query{r: r}
	args := q.leaseArgs(leasePageSize, h.now())
	which := q.str("list")
	if q.err == nil && which != "" && which != "expired" && which != "orphaned" {
		q.err = &inputError{"list", "want expired or orphaned"}
	}
	if q.err != nil {
		h.pageError(w, r, q.err)
		return
	}
	d := leasesData{base: h.base("Leases"), Namespace: args.Namespace, AsOf: args.AsOf}
	for _, l := range []struct {
		name string
		list leaseLister
	}{{"expired", h.expiredLeases}, {"orphaned", h.orphanedLeases}} {
		ll := leaseList{Name: l.name}
		page := args
		if which != l.name {
			page.After = nil
		}
		var err error
		ll.Count, ll.Capped, err = countLeases(r.Context(), l.list, args.Namespace, args.AsOf)
		var next *registry.LeaseCursor
		if err == nil {
			ll.Leases, next, err = l.list(r.Context(), page)
		}
		if err != nil {
			h.pageError(w, r, err)
			return
		}
		if next != nil {
			ll.NextURL = queryString("list", l.name, "namespace", args.Namespace, "as_of", jsonshape.FormatTime(args.AsOf),
				"after_expires", jsonshape.FormatTime(next.ExpiresAt), "after_execution", next.ExecutionID.String(),
				"after_attempt", strconv.FormatUint(uint64(next.AttemptIndex), 10))
		}
		d.Lists = append(d.Lists, ll)
	}
	h.render(w, r, http.StatusOK, "leases", d)
}

// countLeases counts a lease listing, up to leaseCountMax.
func countLeases(ctx context.Context, list leaseLister, ns string, asOf time.Time) (n int, capped bool, err error) {
	capped, err = walkLeases(ctx, list, ns, asOf, leaseCountMax, func(registry.ExpiredLease) { n++ })
	return n, capped, err
}

// queryString encodes name/value pairs, leaving out empty values, as
// "?a=1&b=2", or "" when all are empty.
func queryString(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// limitParam is the request's ?limit= as given, so that the next page's
// link keeps it.
func limitParam(r *http.Request) string { return r.URL.Query().Get("limit") }

// age is how long ago t was, or how long until it, rounded for a glance.
func age(t, now time.Time) string {
	if d := now.Sub(t); d >= 0 {
		return roundAge(d) + " ago"
	}
	return "in " + roundAge(t.Sub(now))
}

func roundAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Hour:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d < 48*time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
}
