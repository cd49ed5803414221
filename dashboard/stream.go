package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
)

// apiEventStream sends the audit log's new events as server-sent events,
// one "worker_event" per event with its ID (so that a reconnecting
// EventSource resumes after the last one it saw, by Last-Event-ID) and
// the JSON of /api/events's entries. Without ?after= or Last-Event-ID it
// starts after the newest event, so that only new ones arrive. It polls
// the registry every pollInterval until the client goes away or the
// server shuts down (the request's context ends).
func (h *handler) apiEventStream(w http.ResponseWriter, r *http.Request) {
	q := query{r: r}
	args := q.eventsArgs(registry.DefaultLimit)
	if id := r.Header.Get("Last-Event-ID"); id != "" && q.err == nil {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 {
			q.err = &inputError{"Last-Event-ID", "not an event ID: " + strconv.Quote(id)}
		}
		args.After = n
	}
	if args.NewestFirst && q.err == nil {
		q.err = &inputError{"newest", "a stream runs oldest first"}
	}
	if q.err != nil {
		h.fail(w, r, q.err)
		return
	}
	ctx := r.Context()
	if args.After == 0 && r.URL.Query().Get("after") == "" && r.Header.Get("Last-Event-ID") == "" {
		newest := args
		newest.NewestFirst, newest.Limit = true, 1
		res, err := h.reg.ListWorkerEvents(ctx, newest)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if len(res.Events) > 0 {
			args.After = res.Events[0].ID
		}
	}

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives a server's WriteTimeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: 2000\n: after %d\n\n", args.After); err != nil || rc.Flush() != nil {
		return
	}
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	lastWrite := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		res, err := h.reg.ListWorkerEvents(ctx, args)
		if err != nil {
			if ctx.Err() == nil {
				h.log.ErrorContext(ctx, "dashboard: event stream", "err", err)
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", strconv.Quote(err.Error()))
				_ = rc.Flush()
			}
			return
		}
		for _, e := range res.Events {
			data, _ := json.Marshal(jsonshape.EventOf(e))
			if _, err := fmt.Fprintf(w, "id: %d\nevent: worker_event\ndata: %s\n\n", e.ID, data); err != nil {
				return
			}
			args.After = e.ID
		}
		switch {
		case len(res.Events) > 0:
		case time.Since(lastWrite) >= keepAliveInterval:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		default:
			continue
		}
		if rc.Flush() != nil {
			return
		}
		lastWrite = time.Now()
	}
}
