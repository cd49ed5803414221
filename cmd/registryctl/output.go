package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/internal/buildinfo"
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
	versionJSON = buildinfo.Info
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
		{"LOAD", jsonshape.Load(w.Report)},
		{"VERSION", reportVersion(w.Report)},
	}
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%-14s%s\n", f[0], cut(f[1], 0))
	}
	_, err := io.WriteString(o.stdout, b.String())
	return err
}

// workerList prints a worker listing page by page, as the pages arrive.
func (o *output) workerList(now time.Time, wide bool) *listWriter[registry.WorkerInfo] {
	l := &listWriter[registry.WorkerInfo]{o: o, key: "workers",
		toJSON: func(w registry.WorkerInfo) any { return workerToJSON(w, now) }}
	if wide {
		l.table = newTable(o.stdout, column{name: "NAMESPACE"}, column{name: "INSTANCE"}, column{name: "WORKER"},
			column{name: "STATUS"}, column{name: "LANES"}, column{name: "CAPABILITIES"}, column{name: "REGISTERED"},
			column{name: "LAST SEEN"}, column{name: "EXPIRES"}, column{name: "TTL"},
			column{name: "LOAD"}, column{name: "VERSION"},
			column{name: "HEARTBEAT AT"}, column{name: "EXPIRES AT"})
		l.row = func(w registry.WorkerInfo) []string {
			return []string{w.Namespace, w.WorkerInstanceID, w.WorkerID, status(w, now),
				strings.Join(w.Lanes, ","), strings.Join(w.Capabilities, ","),
				relative(w.RegisteredAt, now), relative(w.LastHeartbeat, now), relative(w.ExpiresAt, now),
				ttl(w.LivenessTTL), jsonshape.Load(w.Report), reportVersion(w.Report),
				formatTime(w.LastHeartbeat), formatTime(w.ExpiresAt)}
		}
		return l
	}
	// At most 120 columns, whatever the values; usually far fewer. Ages
	// are at most 11 characters (see age) and never cut. Capabilities are
	// left to -wide, to make room for the report's load (in flight /
	// capacity) and version.
	l.table = newTable(o.stdout, column{name: "NAMESPACE", max: 12}, column{name: "INSTANCE", max: 24},
		column{name: "STATUS"}, column{name: "LANES", max: 11},
		column{name: "LAST SEEN"}, column{name: "EXPIRES"}, column{name: "TTL", max: 8},
		column{name: "LOAD", max: 9}, column{name: "VERSION", max: 10})
	l.row = func(w registry.WorkerInfo) []string {
		return []string{w.Namespace, w.WorkerInstanceID, status(w, now),
			strings.Join(w.Lanes, ","),
			relative(w.LastHeartbeat, now), relative(w.ExpiresAt, now), ttl(w.LivenessTTL),
			jsonshape.Load(w.Report), reportVersion(w.Report)}
	}
	return l
}

// reportVersion is a report's version, "" when there is none.
func reportVersion(r *registry.WorkerReport) string {
	if r == nil {
		return ""
	}
	return r.Version
}

// listWriter prints a listing page by page, as its pages arrive, so that
// -all holds one page in memory, not the whole listing: table rows under
// one header (column widths set by the first page, growing when a later
// page needs more), or with -json {"KEY": [...], "next": ...}, the same
// document that a one-page listing prints.
type listWriter[T any] struct {
	o      *output
	key    string // the JSON list's key
	table  *table
	row    func(T) []string
	toJSON func(T) any
	n      int // items written
}

func (l *listWriter[T]) page(items []T) error {
	if !l.o.json {
		if len(items) == 0 {
			return nil
		}
		rows := make([][]string, len(items))
		for i, it := range items {
			rows[i] = l.row(it)
		}
		return l.table.write(rows)
	}
	var b strings.Builder
	for _, it := range items {
		if l.n == 0 {
			b.WriteString("{\n  \"" + l.key + "\": [\n    ")
		} else {
			b.WriteString(",\n    ")
		}
		js, err := json.MarshalIndent(l.toJSON(it), "    ", "  ")
		if err != nil {
			return err
		}
		b.Write(js)
		l.n++
	}
	_, err := io.WriteString(l.o.stdout, b.String())
	return err
}

// end finishes the listing; next is the JSON of its cursor, a nil pointer
// when the listing is complete.
func (l *listWriter[T]) end(next any) error {
	if !l.o.json {
		if l.table.widths == nil {
			return l.table.write(nil) // the header of an empty listing
		}
		return nil
	}
	head := "\n  ],\n"
	if l.n == 0 {
		head = "{\n  \"" + l.key + "\": [],\n"
	}
	js, err := json.MarshalIndent(next, "  ", "  ")
	if err != nil {
		return err
	}
	_, err = io.WriteString(l.o.stdout, head+"  \"next\": "+string(js)+"\n}\n")
	return err
}

func eventToJSON(e registry.WorkerEvent) eventJSON { return jsonshape.EventOf(e) }

func (o *output) events(events []registry.WorkerEvent, next int64) error {
	if o.json {
		v := eventsJSON{Events: make([]eventJSON, len(events))}
		for i, e := range events {
			v.Events[i] = eventToJSON(e)
		}
		if next != 0 {
			v.Next = &next
		}
		return o.writeJSON(v)
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

// leaseList prints a lease listing page by page; expiry names the column
// of the relative expiry (EXPIRED, or EXPIRES for leases not expired yet).
// Ages are at most 11 characters (see age), so that column is never cut.
func (o *output) leaseList(expiry string, now time.Time, wide bool) *listWriter[registry.ExpiredLease] {
	l := &listWriter[registry.ExpiredLease]{o: o, key: "leases",
		toJSON: func(l registry.ExpiredLease) any {
			return leaseJSON{
				ExecutionID:      l.ExecutionID.String(),
				LeaseID:          l.LeaseID.String(),
				LeaseEpoch:       l.LeaseEpoch,
				AttemptIndex:     l.AttemptIndex,
				WorkerInstanceID: l.WorkerInstanceID,
				Namespace:        l.Namespace,
				ExpiresAt:        formatTime(l.ExpiresAt),
			}
		}}
	if wide {
		l.table = newTable(o.stdout, column{name: "EXECUTION"}, column{name: "ATTEMPT"}, column{name: "INSTANCE"},
			column{name: "NAMESPACE"}, column{name: expiry}, column{name: "LEASE ID"}, column{name: "EPOCH"},
			column{name: "EXPIRES AT"})
		l.row = func(l registry.ExpiredLease) []string {
			return []string{l.ExecutionID.String(), strconv.FormatUint(uint64(l.AttemptIndex), 10), l.WorkerInstanceID,
				l.Namespace, relative(l.ExpiresAt, now), l.LeaseID.String(), strconv.FormatUint(l.LeaseEpoch, 10), formatTime(l.ExpiresAt)}
		}
		return l
	}
	l.table = newTable(o.stdout, column{name: "EXECUTION"}, column{name: "ATTEMPT"}, column{name: "INSTANCE", max: 26},
		column{name: "NAMESPACE", max: 16}, column{name: expiry})
	l.row = func(l registry.ExpiredLease) []string {
		return []string{l.ExecutionID.String(), strconv.FormatUint(uint64(l.AttemptIndex), 10), l.WorkerInstanceID,
			l.Namespace, relative(l.ExpiresAt, now)}
	}
	return l
}

func leaseCursorToJSON(next *registry.LeaseCursor) *leaseCursorJSON {
	if next == nil {
		return nil
	}
	return &leaseCursorJSON{ExpiresAt: formatTime(next.ExpiresAt), ExecutionID: next.ExecutionID.String(), AttemptIndex: next.AttemptIndex}
}

func workerCursorToJSON(next *registry.WorkerCursor) *workerCursorJSON {
	if next == nil {
		return nil
	}
	return &workerCursorJSON{Namespace: next.Namespace, WorkerInstanceID: next.WorkerInstanceID}
}

// outcome prints what a drain or kill did. The outcome is printed even when
// the worker was not registered, and that case then fails with exit status 3.
func (o *output) outcome(namespace, instance, outcome string, notRegistered bool) error {
	var err error
	if o.json {
		err = o.writeJSON(outcomeJSON{Namespace: namespace, WorkerInstanceID: instance, Outcome: outcome})
	} else {
		// Which worker, since a script or a scrollback may hold many.
		_, err = fmt.Fprintf(o.stdout, "%s: worker instance %q in namespace %q\n", outcome, instance, namespace)
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
	_, err := fmt.Fprintln(o.stdout, v.Line("registryctl"))
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
// anything else, since IDs may hold spaces, quotes or braces. A value that
// visible would escape (a control or format character, a byte that is not
// UTF-8) is written in bash's $'...' quoting with visible's escapes, which
// the shell turns back into the same bytes, so that nothing from the
// database reaches the terminal raw, and the hint still pastes back.
func shellQuote(s string) string {
	safe := s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+=") == ""
	if safe {
		return s
	}
	if v := visible(s); v != strings.ReplaceAll(s, `\`, `\\`) {
		return "$'" + strings.ReplaceAll(v, "'", `\'`) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
