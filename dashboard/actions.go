package dashboard

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
)

// actions are the operations on one worker, by the name in their route.
var actions = []string{"drain", "resume", "kill"}

// maxActionBody bounds an action's request body; a reason is at most 256
// bytes.
const maxActionBody = 64 << 10

// actionRequest is an action's JSON body.
type actionRequest struct {
	Reason string `json:"reason"`
}

// apiAction runs drain, resume or kill on one worker. The checks run in
// this order, each answering 403 when it refuses: read-only, a browser's
// cross-origin request, Authorize. A JSON body answers JSON; an HTML
// form's post (the pages without JavaScript) is redirected back to the
// worker's page, by way of its confirmation form unless it carries
// confirm=yes.
func (h *handler) apiAction(w http.ResponseWriter, r *http.Request) {
	ns, inst, action := r.PathValue("namespace"), r.PathValue("instance"), r.PathValue("action")
	known := false
	for _, a := range actions {
		known = known || a == action
	}
	if !known {
		h.writeError(w, r, http.StatusNotFound, "not_found", "no such action "+strconv.Quote(action)+"; want drain, resume or kill", "")
		return
	}
	if h.opts.ReadOnly {
		h.writeError(w, r, http.StatusForbidden, "read_only", "this dashboard is read-only", "")
		return
	}
	if err := h.csrf.Check(r); err != nil {
		h.writeError(w, r, http.StatusForbidden, "cross_origin", err.Error(), "")
		return
	}
	if h.opts.Authorize != nil {
		if err := h.opts.Authorize(r, action); err != nil {
			h.log.WarnContext(r.Context(), "dashboard: action refused", "action", action, "namespace", ns,
				"worker_instance_id", inst, "remote", r.RemoteAddr, "err", err)
			h.writeError(w, r, http.StatusForbidden, "forbidden", err.Error(), "")
			return
		}
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxActionBody)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	form := mediaType == "application/x-www-form-urlencoded"
	var req actionRequest
	switch {
	case form:
		if err := r.ParseForm(); err != nil {
			h.writeError(w, r, http.StatusBadRequest, "invalid_input", "body: "+err.Error(), "body")
			return
		}
		req.Reason = r.PostForm.Get("reason")
		if r.PostForm.Get("confirm") != "yes" {
			http.Redirect(w, r, h.workerPath(ns, inst)+"?confirm="+action, http.StatusSeeOther)
			return
		}
	default:
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			field := "body"
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				field = te.Field
			}
			h.writeError(w, r, http.StatusBadRequest, "invalid_input", field+": want a JSON object {\"reason\": \"...\"}: "+err.Error(), field)
			return
		}
	}

	outcome, notRegistered, err := h.act(r, action, ns, inst, req.Reason)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "dashboard: "+action, "namespace", ns, "worker_instance_id", inst,
		"reason", req.Reason, "outcome", outcome, "remote", r.RemoteAddr)
	switch {
	case form:
		http.Redirect(w, r, h.workerPath(ns, inst)+"?done="+url.QueryEscape(outcome), http.StatusSeeOther)
	case notRegistered:
		h.writeError(w, r, http.StatusNotFound, "not_registered",
			"worker instance "+strconv.Quote(inst)+" is not registered in namespace "+strconv.Quote(ns), "")
	default:
		h.writeJSON(w, http.StatusOK, jsonshape.Outcome{Namespace: ns, WorkerInstanceID: inst, Outcome: outcome})
	}
}

// act runs one action through the registry and returns its outcome's
// word. ResumeWorker records no reason: its "resumed" event has none, so
// the reason is only in the log line apiAction writes.
func (h *handler) act(r *http.Request, action, ns, inst, reason string) (outcome string, notRegistered bool, err error) {
	ctx := r.Context()
	switch action {
	case "drain":
		o, err := h.reg.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: ns, WorkerInstanceID: inst, Reason: reason})
		return o.String(), o == registry.DrainNotRegistered, err
	case "resume":
		if reason != "" {
			// The same limits as the other actions' reasons, though the
			// registry does not store this one.
			if err := checkReason(reason); err != nil {
				return "", false, err
			}
		}
		o, err := h.reg.ResumeWorker(ctx, registry.ResumeWorkerArgs{Namespace: ns, WorkerInstanceID: inst})
		return o.String(), o == registry.ResumeNotRegistered, err
	default:
		o, err := h.reg.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: ns, WorkerInstanceID: inst, Reason: reason})
		return o.String(), o == registry.MarkNotRegistered, err
	}
}

// checkReason rejects a reason the registry would reject in a drain or a
// kill: over 256 bytes, invalid UTF-8 or a control character.
func checkReason(reason string) error {
	if len(reason) > 256 {
		return &inputError{"reason", "exceeds 256 bytes (got " + strconv.Itoa(len(reason)) + ")"}
	}
	if !utf8.ValidString(reason) || strings.ContainsFunc(reason, unicode.IsControl) {
		return &inputError{"reason", "holds invalid UTF-8 or a control character"}
	}
	return nil
}
