package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
)

// output prints a command's result on stdout, as a table or, with -json, as
// JSON, and its hints on stderr, where they stay out of a pipe's way.
type output struct {
	json           bool
	stdout, stderr io.Writer
	now            func() time.Time // what relative ages count from
}

func formatTime(t time.Time) string { return jsonshape.FormatTime(t) }

// JSON shapes, shared with the dashboard's API (internal/jsonshape). The
// keys are part of the command's contract: snake_case, never renamed,
// lists never null.
type (
	workersJSON      = jsonshape.Workers
	workerJSON       = jsonshape.Worker
	workerCursorJSON = jsonshape.WorkerCursor
	eventsJSON       = jsonshape.Events
	eventJSON        = jsonshape.Event
	leasesJSON       = jsonshape.Leases
	leaseJSON        = jsonshape.Lease
	leaseCursorJSON  = jsonshape.LeaseCursor
	outcomeJSON      = jsonshape.Outcome
	sweepJSON        struct {
		Swept        int `json:"swept"`
		PrunedEvents int `json:"pruned_events"`
	}
	versionJSON struct {
		Version  string `json:"version"`
		Module   string `json:"module"`
		Revision string `json:"revision"` // "" when the build recorded none
		Modified bool   `json:"modified"`
		Go       string `json:"go"`
	}
)

// status is what the table and JSON call a worker's state at now.
func status(w registry.WorkerInfo, now time.Time) string { return jsonshape.Status(w, now) }

func workerToJSON(w registry.WorkerInfo, now time.Time) workerJSON { return jsonshape.WorkerOf(w, now) }

// worker prints one worker, a field a line: relative ages with the
// absolute times beside them.
func (o *output) worker(w registry.WorkerInfo, now time.Time) error {
	if o.json {
		return o.writeJSON(workerToJSON(w, now))
	}
	at := func(t time.Time) string { return relative(t, now) + " (" + formatTime(t) + ")" }
	fields := [][2]string{
		{"NAMESPACE", w.Namespace},
		{"INSTANCE", w.WorkerInstanceID},
		{"WORKER", w.WorkerID},
		{"STATUS", status(w, now)},
		{"LANES", strings.Join(w.Lanes, ",")},
		{"CAPABILITIES", strings.Join(w.Capabilities, ",")},
		{"REGISTERED", at(w.RegisteredAt)},
		{"LAST SEEN", at(w.LastHeartbeat)},
		{"EXPIRES", at(w.ExpiresAt)},
		{"TTL", ttl(w.LivenessTTL)},
	}
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%-14s%s\n", f[0], cut(f[1], 0))
	}
	_, err := io.WriteString(o.stdout, b.String())
	return err
}

func (o *output) workers(workers []registry.WorkerInfo, next *registry.WorkerCursor, now time.Time, wide bool) error {
	if o.json {
		return o.writeJSON(jsonshape.WorkersOf(workers, next, now))
	}
	if wide {
		rows := make([][]string, len(workers))
		for i, w := range workers {
			rows[i] = []string{w.Namespace, w.WorkerInstanceID, w.WorkerID, status(w, now),
				strings.Join(w.Lanes, ","), strings.Join(w.Capabilities, ","),
				relative(w.RegisteredAt, now), relative(w.LastHeartbeat, now), relative(w.ExpiresAt, now),
				ttl(w.LivenessTTL), formatTime(w.LastHeartbeat), formatTime(w.ExpiresAt)}
		}
		return newTable(o.stdout, column{name: "NAMESPACE"}, column{name: "INSTANCE"}, column{name: "WORKER"},
			column{name: "STATUS"}, column{name: "LANES"}, column{name: "CAPABILITIES"}, column{name: "REGISTERED"},
			column{name: "LAST SEEN"}, column{name: "EXPIRES"}, column{name: "TTL"},
			column{name: "HEARTBEAT AT"}, column{name: "EXPIRES AT"}).write(rows)
	}
	rows := make([][]string, len(workers))
	for i, w := range workers {
		rows[i] = []string{w.Namespace, w.WorkerInstanceID, status(w, now),
			strings.Join(w.Lanes, ","), strings.Join(w.Capabilities, ","),
			relative(w.LastHeartbeat, now), relative(w.ExpiresAt, now), ttl(w.LivenessTTL)}
	}
	// At most 120 columns, whatever the values; usually far fewer.
	return newTable(o.stdout, column{name: "NAMESPACE", max: 16}, column{name: "INSTANCE", max: 26},
		column{name: "STATUS"}, column{name: "LANES", max: 14}, column{name: "CAPABILITIES", max: 14},
		column{name: "LAST SEEN", max: 10}, column{name: "EXPIRES", max: 10}, column{name: "TTL", max: 8}).write(rows)
}

func eventToJSON(e registry.WorkerEvent) eventJSON { return jsonshape.EventOf(e) }

func (o *output) events(events []registry.WorkerEvent, next int64) error {
	if o.json {
		return o.writeJSON(jsonshape.EventsOf(events, next))
	}
	return o.eventStream().write(events)
}

// eventStream prints events as they come: table rows under one header, or
// with -json one object per line.
type eventStream struct {
	o     *output
	table *table
}

func (o *output) eventStream() *eventStream {
	// Minimum widths keep a followed table aligned for common values.
	return &eventStream{o, newTable(o.stdout, column{name: "ID", min: 6}, column{name: "AT", min: len("2006-01-02T15:04:05.000Z")},
		column{name: "NAMESPACE", min: 12}, column{name: "INSTANCE", min: 16}, column{name: "KIND", min: len("drain_requested")},
		column{name: "REASON"})}
}

// start prints the table's header, so that a follower shows it is running
// before the first event arrives.
func (s *eventStream) start() error {
	if s.o.json {
		return nil
	}
	return s.table.write(nil)
}

func (s *eventStream) write(events []registry.WorkerEvent) error {
	if s.o.json {
		enc := json.NewEncoder(s.o.stdout)
		for _, e := range events {
			if err := enc.Encode(eventToJSON(e)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(events) == 0 && s.table.widths != nil {
		return nil
	}
	rows := make([][]string, len(events))
	for i, e := range events {
		rows[i] = []string{strconv.FormatInt(e.ID, 10), formatTime(e.At), e.Namespace, e.WorkerInstanceID, e.Kind, e.Reason}
	}
	return s.table.write(rows)
}

// leases prints a lease listing; expiry names the column of the relative
// expiry (EXPIRED, or EXPIRES for leases not expired yet).
func (o *output) leases(leases []registry.ExpiredLease, next *registry.LeaseCursor, expiry string, now time.Time, wide bool) error {
	if o.json {
		return o.writeJSON(jsonshape.LeasesOf(leases, next))
	}
	rows := make([][]string, len(leases))
	for i, l := range leases {
		attempt := strconv.FormatUint(uint64(l.AttemptIndex), 10)
		if wide {
			rows[i] = []string{l.ExecutionID.String(), attempt, l.WorkerInstanceID, l.Namespace, relative(l.ExpiresAt, now),
				l.LeaseID.String(), strconv.FormatUint(l.LeaseEpoch, 10), formatTime(l.ExpiresAt)}
		} else {
			rows[i] = []string{l.ExecutionID.String(), attempt, l.WorkerInstanceID, l.Namespace, relative(l.ExpiresAt, now)}
		}
	}
	if wide {
		return newTable(o.stdout, column{name: "EXECUTION"}, column{name: "ATTEMPT"}, column{name: "INSTANCE"},
			column{name: "NAMESPACE"}, column{name: expiry}, column{name: "LEASE ID"}, column{name: "EPOCH"},
			column{name: "EXPIRES AT"}).write(rows)
	}
	return newTable(o.stdout, column{name: "EXECUTION"}, column{name: "ATTEMPT"}, column{name: "INSTANCE", max: 26},
		column{name: "NAMESPACE", max: 16}, column{name: expiry, max: 10}).write(rows)
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
	return newTable(o.stdout, column{name: "SWEPT"}, column{name: "PRUNED EVENTS"}).
		write([][]string{{strconv.Itoa(rep.Swept), strconv.Itoa(rep.PrunedEvents)}})
}

func (o *output) version(v versionJSON) error {
	if o.json {
		return o.writeJSON(v)
	}
	line := "registryctl " + v.Version
	if v.Revision != "" {
		line += " " + v.Revision
		if v.Modified {
			line += " (modified)"
		}
	}
	_, err := fmt.Fprintln(o.stdout, line+" "+v.Go)
	return err
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
