// Package dashboard serves an operator's view of a worker registry: HTML
// pages of the fleet, of each worker, of the audit log (live) and of the
// lease backlog, and a JSON API in registryctl -json's shapes, with
// drain, resume and kill actions. It is an [http.Handler] that an engine
// mounts in its own server:
//
//	mux.Handle("/registry/", dashboard.New(reg, dashboard.Options{Prefix: "/registry"}))
//
// Pages are rendered on the server with html/template, so reading works
// without JavaScript; a small embedded script (no CDN, nothing fetched
// from another host) adds the live event log (server-sent events) and a
// confirmation dialog that asks for a reason before an action. Actions
// answer 403 when [Options.ReadOnly] is set, when [Options.Authorize]
// refuses them, or when a browser sends them from another origin
// ([http.CrossOriginProtection]); each one lands in the registry's audit
// log with its reason, and in [Options.Logger].
//
// Routes, under [Options.Prefix]:
//
//	GET  /                                        the fleet (paged)
//	GET  /workers/{namespace}/{instance}          one worker
//	GET  /events                                  the audit log, live
//	GET  /leases                                  expired and orphaned leases
//	GET  /api/workers                             ?namespace=&lane=&capability=&limit=&after_namespace=&after_instance=
//	GET  /api/workers/{namespace}/{instance}
//	GET  /api/events                              ?namespace=&instance=&after=&limit=&newest=
//	GET  /api/events/stream                       server-sent events; ?namespace=&instance=&after= or Last-Event-ID
//	GET  /api/stats                               ?namespace=
//	GET  /api/leases/expired                      ?namespace=&limit=&as_of=&after_expires=&after_execution=&after_attempt=
//	GET  /api/leases/orphaned                     as expired
//	POST /api/workers/{namespace}/{instance}/{drain|resume|kill}   {"reason": "..."}
//
// Path segments are percent-encoded ([url.PathEscape], and "." and ".."
// spelled %2E), so that IDs holding "/", spaces or any other character
// round-trip. Errors are JSON: {"status", "error", "message", "field"},
// field naming the query parameter or body field that was rejected.
package dashboard

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// Options configure the handler that [New] returns.
type Options struct {
	// Prefix is the path where the handler is mounted, such as
	// "/registry", without a trailing slash; "" mounts it at the root.
	// The handler sees the full request path: mount it without
	// http.StripPrefix.
	Prefix string
	// ReadOnly makes drain, resume and kill answer 403, and hides their
	// buttons.
	ReadOnly bool
	// Authorize, when set, is called before every action with its name,
	// "drain", "resume" or "kill"; an error refuses the action with 403
	// and the error's text. nil allows every action.
	Authorize func(r *http.Request, action string) error
	// Logger receives a line per action (the audit trail's other half,
	// with the caller's address) and per failed request; nil is
	// slog.Default().
	Logger *slog.Logger
}

//go:embed assets
var assets embed.FS

// pollInterval is how often an event stream asks the registry for new
// events: the registry has no notifications, and a page of events after
// an ID is an index range read.
var pollInterval = 500 * time.Millisecond

// keepAliveInterval is how often an idle event stream sends a comment, so
// that proxies do not close it.
const keepAliveInterval = 15 * time.Second

// handler serves one mounted dashboard.
type handler struct {
	reg    *registry.Registry
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	csrf   *http.CrossOriginProtection
	pages  map[string]*template.Template
	now    func() time.Time
	static http.Handler
}

// New returns the dashboard of reg as an http.Handler, mounted at
// opts.Prefix. reg stays the caller's: the handler never closes it.
func New(reg *registry.Registry, opts Options) http.Handler {
	opts.Prefix = strings.TrimSuffix(opts.Prefix, "/")
	h := &handler{reg: reg, opts: opts, log: opts.Logger, mux: http.NewServeMux(),
		csrf: http.NewCrossOriginProtection(), now: time.Now}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.pages = parsePages(h)
	sub, _ := fs.Sub(assets, "assets")
	h.static = http.StripPrefix(opts.Prefix+"/static/", http.FileServerFS(sub))

	p := opts.Prefix
	h.route("GET", p+"/{$}", h.fleetPage)
	h.route("GET", p+"/workers/{namespace}/{instance}", h.workerPage)
	h.route("GET", p+"/events", h.eventsPage)
	h.route("GET", p+"/leases", h.leasesPage)
	h.route("GET", p+"/static/", h.static.ServeHTTP)
	h.route("GET", p+"/api/workers", h.apiWorkers)
	h.route("GET", p+"/api/workers/{namespace}/{instance}", h.apiWorker)
	h.route("GET", p+"/api/events", h.apiEvents)
	h.route("GET", p+"/api/events/stream", h.apiEventStream)
	h.route("GET", p+"/api/stats", h.apiStats)
	h.route("GET", p+"/api/leases/expired", h.apiExpiredLeases)
	h.route("GET", p+"/api/leases/orphaned", h.apiOrphanedLeases)
	h.route("POST", p+"/api/workers/{namespace}/{instance}/{action}", h.apiAction)
	h.mux.HandleFunc(p+"/api/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, http.StatusNotFound, "not_found", "no such API route: "+r.URL.Path, "")
	})
	if p != "" {
		h.mux.Handle("GET "+p, http.RedirectHandler(p+"/", http.StatusMovedPermanently))
	}
	return h
}

// route registers fn for method and path, and for every other method an
// answer of 405 naming the allowed one, in JSON for API routes.
func (h *handler) route(method, path string, fn http.HandlerFunc) {
	h.mux.HandleFunc(method+" "+path, fn)
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		if method == "GET" {
			w.Header().Set("Allow", "GET, HEAD")
		}
		h.writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+method, "")
	})
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// escapeSegment percent-encodes s as one path segment that no browser,
// proxy or ServeMux cleans away: "/" is %2F, and the dot segments are
// spelled %2E.
func escapeSegment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// workerPath is the path of a worker's page, below the prefix.
func (h *handler) workerPath(namespace, instance string) string {
	return h.opts.Prefix + "/workers/" + escapeSegment(namespace) + "/" + escapeSegment(instance)
}

// actionPath is the API path of an action on a worker.
func (h *handler) actionPath(namespace, instance, action string) string {
	return h.opts.Prefix + "/api/workers/" + escapeSegment(namespace) + "/" + escapeSegment(instance) + "/" + action
}
