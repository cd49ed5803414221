// Package jsonshape holds the JSON shapes of the registry's operator
// tools, shared by registryctl's -json output and the dashboard's JSON API
// so that a script reads one shape from either. The keys are part of both
// contracts: snake_case, never renamed, lists never null, times in RFC
// 3339, UTC, with milliseconds (the registry's precision).
package jsonshape

import (
	"strconv"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// TimeLayout is RFC 3339 with milliseconds, the registry's precision, so
// that a printed time can be passed back without losing any.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime formats t in UTC with [TimeLayout].
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// The shapes.
type (
	// Workers is a page of workers; Next is null on the last page.
	Workers struct {
		Workers []Worker      `json:"workers"`
		Next    *WorkerCursor `json:"next"`
	}
	// Worker is one registration. Status is "live", "draining" or
	// "expired". InFlight, Capacity and Version are its last report's,
	// null when it has sent none.
	Worker struct {
		Namespace        string   `json:"namespace"`
		WorkerID         string   `json:"worker_id"`
		WorkerInstanceID string   `json:"worker_instance_id"`
		Status           string   `json:"status"`
		Lanes            []string `json:"lanes"`
		Capabilities     []string `json:"capabilities"`
		LastHeartbeat    string   `json:"last_heartbeat"`
		RegisteredAt     string   `json:"registered_at"`
		ExpiresAt        string   `json:"expires_at"`
		LivenessTTLMS    int64    `json:"liveness_ttl_ms"`
		Draining         bool     `json:"draining"`
		InFlight         *int     `json:"in_flight"`
		Capacity         *int     `json:"capacity"`
		Version          *string  `json:"version"`
	}
	// WorkerCursor is the last worker of a page.
	WorkerCursor struct {
		Namespace        string `json:"namespace"`
		WorkerInstanceID string `json:"worker_instance_id"`
	}
	// Events is a page of audit events; Next is null on the last page.
	Events struct {
		Events []Event `json:"events"`
		Next   *int64  `json:"next"`
	}
	// Event is one audit event.
	Event struct {
		ID               int64  `json:"id"`
		At               string `json:"at"`
		Namespace        string `json:"namespace"`
		WorkerInstanceID string `json:"worker_instance_id"`
		Kind             string `json:"kind"`
		Reason           string `json:"reason"`
	}
	// Leases is a page of leases; Next is null on the last page.
	Leases struct {
		Leases []Lease      `json:"leases"`
		Next   *LeaseCursor `json:"next"`
	}
	// Lease is one held lease (expired, or orphaned).
	Lease struct {
		ExecutionID      string `json:"execution_id"`
		LeaseID          string `json:"lease_id"`
		LeaseEpoch       uint64 `json:"lease_epoch"`
		AttemptIndex     uint32 `json:"attempt_index"`
		WorkerInstanceID string `json:"worker_instance_id"`
		Namespace        string `json:"namespace"`
		ExpiresAt        string `json:"expires_at"`
	}
	// LeaseCursor is the last lease of a page.
	LeaseCursor struct {
		ExpiresAt    string `json:"expires_at"`
		ExecutionID  string `json:"execution_id"`
		AttemptIndex uint32 `json:"attempt_index"`
	}
	// Outcome is what a drain, resume or kill did.
	Outcome struct {
		Namespace        string `json:"namespace"`
		WorkerInstanceID string `json:"worker_instance_id"`
		Outcome          string `json:"outcome"`
	}
)

// Status is a worker's state at now: "expired" once its TTL ran out,
// else "draining" or "live".
func Status(w registry.WorkerInfo, now time.Time) string {
	switch {
	case !w.ExpiresAt.After(now):
		return "expired"
	case w.Draining:
		return "draining"
	}
	return "live"
}

// WorkerOf is w's shape at now.
func WorkerOf(w registry.WorkerInfo, now time.Time) Worker {
	v := Worker{
		Namespace:        w.Namespace,
		WorkerID:         w.WorkerID,
		WorkerInstanceID: w.WorkerInstanceID,
		Status:           Status(w, now),
		Lanes:            NonNil(w.Lanes),
		Capabilities:     NonNil(w.Capabilities),
		LastHeartbeat:    FormatTime(w.LastHeartbeat),
		RegisteredAt:     FormatTime(w.RegisteredAt),
		ExpiresAt:        FormatTime(w.ExpiresAt),
		LivenessTTLMS:    w.LivenessTTL.Milliseconds(),
		Draining:         w.Draining,
	}
	if r := w.Report; r != nil {
		v.InFlight, v.Capacity, v.Version = &r.InFlight, &r.Capacity, &r.Version
	}
	return v
}

// Load is a report's in-flight count over its capacity ("3/8"), "" when
// there is no report.
func Load(r *registry.WorkerReport) string {
	if r == nil {
		return ""
	}
	return strconv.Itoa(r.InFlight) + "/" + strconv.Itoa(r.Capacity)
}

// WorkersOf is a page of workers' shape at now; next is the cursor after
// it, nil on the last page.
func WorkersOf(workers []registry.WorkerInfo, next *registry.WorkerCursor, now time.Time) Workers {
	v := Workers{Workers: make([]Worker, len(workers))}
	for i, w := range workers {
		v.Workers[i] = WorkerOf(w, now)
	}
	if next != nil {
		v.Next = &WorkerCursor{Namespace: next.Namespace, WorkerInstanceID: next.WorkerInstanceID}
	}
	return v
}

// EventOf is e's shape.
func EventOf(e registry.WorkerEvent) Event {
	return Event{ID: e.ID, At: FormatTime(e.At), Namespace: e.Namespace,
		WorkerInstanceID: e.WorkerInstanceID, Kind: e.Kind, Reason: e.Reason}
}

// EventsOf is a page of events' shape; next is the event ID after it, 0
// on the last page.
func EventsOf(events []registry.WorkerEvent, next int64) Events {
	v := Events{Events: make([]Event, len(events))}
	for i, e := range events {
		v.Events[i] = EventOf(e)
	}
	if next != 0 {
		v.Next = &next
	}
	return v
}

// LeasesOf is a page of leases' shape; next is the cursor after it, nil
// on the last page.
func LeasesOf(leases []registry.ExpiredLease, next *registry.LeaseCursor) Leases {
	v := Leases{Leases: make([]Lease, len(leases))}
	for i, l := range leases {
		v.Leases[i] = Lease{
			ExecutionID:      l.ExecutionID.String(),
			LeaseID:          l.LeaseID.String(),
			LeaseEpoch:       l.LeaseEpoch,
			AttemptIndex:     l.AttemptIndex,
			WorkerInstanceID: l.WorkerInstanceID,
			Namespace:        l.Namespace,
			ExpiresAt:        FormatTime(l.ExpiresAt),
		}
	}
	if next != nil {
		v.Next = &LeaseCursor{ExpiresAt: FormatTime(next.ExpiresAt), ExecutionID: next.ExecutionID.String(), AttemptIndex: next.AttemptIndex}
	}
	return v
}

// NonNil returns s, or an empty slice for nil, so that JSON shows [].
func NonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
