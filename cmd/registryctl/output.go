package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// output prints a command's result on stdout, as a table or, with -json, as
// JSON, and its hints on stderr, where they stay out of a pipe's way.
type output struct {
	json           bool
	stdout, stderr io.Writer
}

// timeLayout is RFC 3339 with milliseconds, the registry's precision, so
// that a printed time can be passed back to a flag without losing any.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// JSON shapes. The keys are part of the command's contract: snake_case,
// never renamed, lists never null.
type (
	workersJSON struct {
		Workers []workerJSON      `json:"workers"`
		Next    *workerCursorJSON `json:"next"`
	}
	workerJSON struct {
		Namespace        string   `json:"namespace"`
		WorkerID         string   `json:"worker_id"`
		WorkerInstanceID string   `json:"worker_instance_id"`
		Lanes            []string `json:"lanes"`
		Capabilities     []string `json:"capabilities"`
		LastHeartbeat    string   `json:"last_heartbeat"`
		RegisteredAt     string   `json:"registered_at"`
		ExpiresAt        string   `json:"expires_at"`
		LivenessTTLMS    int64    `json:"liveness_ttl_ms"`
		Draining         bool     `json:"draining"`
	}
	workerCursorJSON struct {
		Namespace        string `json:"namespace"`
		WorkerInstanceID string `json:"worker_instance_id"`
	}
	eventsJSON struct {
		Events []eventJSON `json:"events"`
		Next   *int64      `json:"next"`
	}
	eventJSON struct {
		ID               int64  `json:"id"`
		At               string `json:"at"`
		Namespace        string `json:"namespace"`
		WorkerInstanceID string `json:"worker_instance_id"`
		Kind             string `json:"kind"`
		Reason           string `json:"reason"`
	}
	leasesJSON struct {
		Leases []leaseJSON      `json:"leases"`
		Next   *leaseCursorJSON `json:"next"`
	}
	leaseJSON struct {
		ExecutionID      string `json:"execution_id"`
		LeaseID          string `json:"lease_id"`
		LeaseEpoch       uint64 `json:"lease_epoch"`
		AttemptIndex     uint32 `json:"attempt_index"`
		WorkerInstanceID string `json:"worker_instance_id"`
		Namespace        string `json:"namespace"`
		ExpiresAt        string `json:"expires_at"`
	}
	leaseCursorJSON struct {
		ExpiresAt   string `json:"expires_at"`
		ExecutionID string `json:"execution_id"`
	}
	outcomeJSON struct {
		Namespace        string `json:"namespace"`
		WorkerInstanceID string `json:"worker_instance_id"`
		Outcome          string `json:"outcome"`
	}
	sweepJSON struct {
		Swept        int `json:"swept"`
		PrunedEvents int `json:"pruned_events"`
	}
)

func (o *output) workers(workers []registry.WorkerInfo, next *registry.WorkerCursor) error {
	if o.json {
		v := workersJSON{Workers: make([]workerJSON, len(workers))}
		for i, w := range workers {
			v.Workers[i] = workerJSON{
				Namespace:        w.Namespace,
				WorkerID:         w.WorkerID,
				WorkerInstanceID: w.WorkerInstanceID,
				Lanes:            nonNil(w.Lanes),
				Capabilities:     nonNil(w.Capabilities),
				LastHeartbeat:    formatTime(w.LastHeartbeat),
				RegisteredAt:     formatTime(w.RegisteredAt),
				ExpiresAt:        formatTime(w.ExpiresAt),
				LivenessTTLMS:    w.LivenessTTL.Milliseconds(),
				Draining:         w.Draining,
			}
		}
		if next != nil {
			v.Next = &workerCursorJSON{Namespace: next.Namespace, WorkerInstanceID: next.WorkerInstanceID}
		}
		return o.writeJSON(v)
	}
	rows := make([][]string, len(workers))
	for i, w := range workers {
		rows[i] = []string{w.Namespace, w.WorkerInstanceID, w.WorkerID,
			strings.Join(w.Lanes, ","), strings.Join(w.Capabilities, ","),
			formatTime(w.LastHeartbeat), formatTime(w.ExpiresAt), strconv.FormatBool(w.Draining)}
	}
	return o.table([]string{"NAMESPACE", "INSTANCE", "WORKER", "LANES", "CAPABILITIES", "LAST_HEARTBEAT", "EXPIRES", "DRAINING"}, rows)
}

func (o *output) events(events []registry.WorkerEvent, next int64) error {
	if o.json {
		v := eventsJSON{Events: make([]eventJSON, len(events))}
		for i, e := range events {
			v.Events[i] = eventJSON{ID: e.ID, At: formatTime(e.At), Namespace: e.Namespace,
				WorkerInstanceID: e.WorkerInstanceID, Kind: e.Kind, Reason: e.Reason}
		}
		if next != 0 {
			v.Next = &next
		}
		return o.writeJSON(v)
	}
	rows := make([][]string, len(events))
	for i, e := range events {
		rows[i] = []string{strconv.FormatInt(e.ID, 10), formatTime(e.At), e.Namespace, e.WorkerInstanceID, e.Kind, e.Reason}
	}
	return o.table([]string{"ID", "AT", "NAMESPACE", "INSTANCE", "KIND", "REASON"}, rows)
}

func (o *output) leases(leases []registry.ExpiredLease, next *registry.LeaseCursor) error {
	if o.json {
		v := leasesJSON{Leases: make([]leaseJSON, len(leases))}
		for i, l := range leases {
			v.Leases[i] = leaseJSON{
				ExecutionID:      l.ExecutionID.String(),
				LeaseID:          l.LeaseID.String(),
				LeaseEpoch:       l.LeaseEpoch,
				AttemptIndex:     l.AttemptIndex,
				WorkerInstanceID: l.WorkerInstanceID,
				Namespace:        l.Namespace,
				ExpiresAt:        formatTime(l.ExpiresAt),
			}
		}
		if next != nil {
			v.Next = &leaseCursorJSON{ExpiresAt: formatTime(next.ExpiresAt), ExecutionID: next.ExecutionID.String()}
		}
		return o.writeJSON(v)
	}
	rows := make([][]string, len(leases))
	for i, l := range leases {
		rows[i] = []string{l.ExecutionID.String(), l.LeaseID.String(),
			strconv.FormatUint(l.LeaseEpoch, 10), strconv.FormatUint(uint64(l.AttemptIndex), 10),
			l.WorkerInstanceID, l.Namespace, formatTime(l.ExpiresAt)}
	}
	return o.table([]string{"EXECUTION", "LEASE_ID", "EPOCH", "ATTEMPT", "INSTANCE", "NAMESPACE", "EXPIRES"}, rows)
}

// outcome prints what a drain or kill did. The outcome is printed even when
// the worker was not registered, and that case then fails with exit status 3.
func (o *output) outcome(namespace, instance, outcome string, notRegistered bool) error {
	var err error
	if o.json {
		err = o.writeJSON(outcomeJSON{Namespace: namespace, WorkerInstanceID: instance, Outcome: outcome})
	} else {
		_, err = fmt.Fprintln(o.stdout, outcome)
	}
	if err == nil && notRegistered {
		err = notRegisteredError{namespace, instance}
	}
	return err
}

func (o *output) sweep(rep registry.SweepReport) error {
	if o.json {
		return o.writeJSON(sweepJSON{Swept: rep.Swept, PrunedEvents: rep.PrunedEvents})
	}
	return o.table([]string{"SWEPT", "PRUNED_EVENTS"}, [][]string{{strconv.Itoa(rep.Swept), strconv.Itoa(rep.PrunedEvents)}})
}

// table prints rows aligned under a header. An empty cell prints as "-", so
// that every row splits into as many fields as the header.
func (o *output) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range rows {
		for i, cell := range row {
			if cell == "" {
				row[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func (o *output) writeJSON(v any) error {
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// more tells on stderr that a list stopped at a page boundary, with the
// flags that continue it, quoted for a shell so they can be pasted back.
func (o *output) more(what string, flagsAndValues ...string) {
	quoted := make([]string, len(flagsAndValues))
	for i, s := range flagsAndValues {
		quoted[i] = shellQuote(s)
	}
	fmt.Fprintf(o.stderr, "more %s: continue with %s\n", what, strings.Join(quoted, " "))
}

// shellQuote leaves a word of plainly safe characters alone and single-quotes
// anything else, since IDs may hold spaces, quotes or braces.
func shellQuote(s string) string {
	safe := s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+=") == ""
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
