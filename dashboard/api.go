package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
)

// apiError is the body of every error answer of the JSON API.
type apiError struct {
	Status  int    `json:"status"`
	Error   string `json:"error"` // a word: invalid_input, not_found, forbidden, ...
	Message string `json:"message"`
	Field   string `json:"field,omitempty"` // the rejected query parameter or body field
}

// inputError is a request parameter that could not be used.
type inputError struct{ field, reason string }

func (e *inputError) Error() string { return e.field + ": " + e.reason }

// paramFields names the query parameter behind each argument field that
// the registry may reject, so that a 400 names what the caller sent.
var paramFields = map[string]string{
	"worker_instance_id":       "instance",
	"after.namespace":          "after_namespace",
	"after.worker_instance_id": "after_instance",
	"after.expires_at":         "after_expires",
}

func (h *handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away
}

func (h *handler) writeError(w http.ResponseWriter, r *http.Request, status int, code, msg, field string) {
	if status >= 500 {
		h.log.ErrorContext(r.Context(), "dashboard: request failed", "method", r.Method, "path", r.URL.Path, "err", msg)
	}
	h.writeJSON(w, status, apiError{Status: status, Error: code, Message: msg, Field: field})
}

// fail answers err: 400 naming the field for bad input, 503 when the
// registry is closed, else 500.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *inputError
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &ie):
		h.writeError(w, r, http.StatusBadRequest, "invalid_input", ie.Error(), ie.field)
	case errors.As(err, &ve):
		field := ve.Field
		if f, ok := paramFields[field]; ok {
			field = f
		}
		h.writeError(w, r, http.StatusBadRequest, "invalid_input", field+": "+ve.Reason, field)
	case errors.Is(err, registry.ErrInvalidInput):
		h.writeError(w, r, http.StatusBadRequest, "invalid_input", err.Error(), "")
	case errors.Is(err, registry.ErrClosed):
		h.writeError(w, r, http.StatusServiceUnavailable, "unavailable", err.Error(), "")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		h.writeError(w, r, http.StatusInternalServerError, "internal", err.Error(), "")
	}
}

// query reads a request's query parameters, remembering the first one
// that could not be parsed.
type query struct {
	r   *http.Request
	err error
}

func (q *query) str(name string) string { return q.r.URL.Query().Get(name) }

func (q *query) int(name string, def int) int {
	s := q.str(name)
	if s == "" || q.err != nil {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		q.err = &inputError{name, "not an integer: " + strconv.Quote(s)}
	}
	return n
}

func (q *query) int64(name string) int64 {
	s := q.str(name)
	if s == "" || q.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		q.err = &inputError{name, "not an event ID: " + strconv.Quote(s)}
	}
	return n
}

func (q *query) bool(name string) bool {
	s := q.str(name)
	if s == "" || q.err != nil {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.err = &inputError{name, "not a boolean: " + strconv.Quote(s)}
	}
	return b
}

func (q *query) time(name string) time.Time {
	s := q.str(name)
	if s == "" || q.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		q.err = &inputError{name, "not an RFC 3339 time: " + strconv.Quote(s)}
	}
	return t
}

// workersArgs reads a worker listing's filters and cursor; limit is the
// page size when none is given.
func (q *query) workersArgs(limit int) registry.ListWorkersArgs {
	args := registry.ListWorkersArgs{Namespace: q.str("namespace"), Lane: q.str("lane"),
		Capability: q.str("capability"), Limit: q.int("limit", limit)}
	if an, ai := q.str("after_namespace"), q.str("after_instance"); an != "" || ai != "" {
		args.After = &registry.WorkerCursor{Namespace: an, WorkerInstanceID: ai}
	}
	return args
}

// eventsArgs reads an event listing's filters and position.
func (q *query) eventsArgs(limit int) registry.ListWorkerEventsArgs {
	args := registry.ListWorkerEventsArgs{Namespace: q.str("namespace"), WorkerInstanceID: q.str("instance"),
		After: q.int64("after"), Limit: q.int("limit", limit), NewestFirst: q.bool("newest")}
	if args.WorkerInstanceID != "" && args.Namespace == "" && q.err == nil {
		q.err = &inputError{"namespace", "required with instance: instance IDs are unique only within a namespace"}
	}
	return args
}

// leaseArgs reads a lease listing's namespace, as-of time and cursor.
func (q *query) leaseArgs(limit int, now time.Time) registry.ListExpiredLeasesArgs {
	args := registry.ListExpiredLeasesArgs{Namespace: q.str("namespace"), Limit: q.int("limit", limit), AsOf: q.time("as_of")}
	if args.AsOf.IsZero() {
		args.AsOf = now
	}
	if q.str("after_expires") != "" || q.str("after_execution") != "" {
		c := &registry.LeaseCursor{ExpiresAt: q.time("after_expires"), AttemptIndex: uint32(q.int("after_attempt", 0))}
		if q.err == nil {
			id, err := registry.ParseExecutionID(q.str("after_execution"))
			if err != nil {
				q.err = &inputError{"after_execution", "not an execution ID ({fp:N}:uuid): " + strconv.Quote(q.str("after_execution"))}
			}
			c.ExecutionID = id
		}
		args.After = c
	}
	if a := q.int("after_attempt", 0); (a < 0 || int64(a) > int64(^uint32(0))) && q.err == nil {
		q.err = &inputError{"after_attempt", "out of range"}
	}
	return args
}

func (h *handler) apiWorkers(w http.ResponseWriter, r *http.Request) {
	q := query{r: r}
	args := q.workersArgs(registry.DefaultLimit)
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	now := h.now()
	args.Now = now
	res, err := h.reg.ListWorkers(r.Context(), args)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, jsonshape.WorkersOf(res.Workers, res.Next, now))
}

func (h *handler) apiWorker(w http.ResponseWriter, r *http.Request) {
	ns, inst := r.PathValue("namespace"), r.PathValue("instance")
	now := h.now()
	info, ok, err := h.reg.GetWorker(r.Context(), registry.GetWorkerArgs{Namespace: ns, WorkerInstanceID: inst, Now: now})
	switch {
	case err != nil:
		h.fail(w, r, err)
	case !ok:
		h.writeError(w, r, http.StatusNotFound, "not_registered",
			"worker instance "+strconv.Quote(inst)+" is not registered in namespace "+strconv.Quote(ns), "")
	default:
		h.writeJSON(w, http.StatusOK, jsonshape.WorkerOf(info, now))
	}
}

func (h *handler) apiEvents(w http.ResponseWriter, r *http.Request) {
	q := query{r: r}
	args := q.eventsArgs(registry.DefaultLimit)
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	res, err := h.reg.ListWorkerEvents(r.Context(), args)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, jsonshape.EventsOf(res.Events, res.Next))
}

func (h *handler) apiStats(w http.ResponseWriter, r *http.Request) {
	v, err := jsonshape.CollectStats(r.Context(), h.reg, r.URL.Query().Get("namespace"), h.now())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, v)
}

func (h *handler) apiExpiredLeases(w http.ResponseWriter, r *http.Request) {
	h.apiLeases(w, r, h.expiredLeases)
}

func (h *handler) apiOrphanedLeases(w http.ResponseWriter, r *http.Request) {
	h.apiLeases(w, r, h.orphanedLeases)
}

// leaseLister is one of the registry's two lease listings.
type leaseLister func(ctx context.Context, args registry.ListExpiredLeasesArgs) ([]registry.ExpiredLease, *registry.LeaseCursor, error)

func (h *handler) expiredLeases(ctx context.Context, args registry.ListExpiredLeasesArgs) ([]registry.ExpiredLease, *registry.LeaseCursor, error) {
	res, err := h.reg.ListExpiredLeases(ctx, args)
	return res.Leases, res.Next, err
}

func (h *handler) orphanedLeases(ctx context.Context, args registry.ListExpiredLeasesArgs) ([]registry.ExpiredLease, *registry.LeaseCursor, error) {
	res, err := h.reg.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs(args))
	return res.Leases, res.Next, err
}

func (h *handler) apiLeases(w http.ResponseWriter, r *http.Request, list leaseLister) {
	q := query{r: r}
	args := q.leaseArgs(registry.DefaultLimit, h.now())
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	leases, next, err := list(r.Context(), args)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, http.StatusOK, jsonshape.LeasesOf(leases, next))
}
