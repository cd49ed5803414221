package registry

import "strconv"

// RegisterOutcome says what RegisterWorker did.
type RegisterOutcome int

const (
	// Registered: no live registration existed; a new one was written and
	// its RegisteredAt is the call's time.
	Registered RegisterOutcome = iota + 1
	// Refreshed: a live registration was overwritten; RegisteredAt is kept.
	Refreshed
)

// String returns the outcome's snake_case name, as registryctl prints it.
func (o RegisterOutcome) String() string {
	return enumName("RegisterOutcome", int(o), 1, "registered", "refreshed")
}

// HeartbeatOutcome says what HeartbeatWorker did.
type HeartbeatOutcome int

const (
	// HeartbeatRefreshed: the live registration's expiry moved forward.
	HeartbeatRefreshed HeartbeatOutcome = iota + 1
	// HeartbeatNotRegistered: no live registration; nothing was written. The
	// worker should register again.
	HeartbeatNotRegistered
)

// String returns the outcome's snake_case name, as registryctl prints it.
func (o HeartbeatOutcome) String() string {
	return enumName("HeartbeatOutcome", int(o), 1, "refreshed", "not_registered")
}

// MarkDeadOutcome says what MarkWorkerDead did.
type MarkDeadOutcome int

const (
	// Marked: the live registration was removed and a marked_dead event
	// recorded.
	Marked MarkDeadOutcome = iota + 1
	// MarkNotRegistered: no live registration; nothing was written.
	MarkNotRegistered
)

// String returns the outcome's snake_case name, as registryctl prints it.
func (o MarkDeadOutcome) String() string {
	return enumName("MarkDeadOutcome", int(o), 1, "marked", "not_registered")
}

// Directive is what a heartbeat tells the worker to do next.
type Directive int

const (
	// DirectiveNone: carry on.
	DirectiveNone Directive = iota
	// DirectiveDrain: finish the work in hand, take no more, then exit.
	DirectiveDrain
)

// String returns "none" or "drain".
func (d Directive) String() string {
	return enumName("Directive", int(d), 0, "none", "drain")
}

// DrainOutcome says what RequestDrain did.
type DrainOutcome int

const (
	// DrainRequested: the live worker is marked as draining and a
	// drain_requested event recorded. Its heartbeats now return
	// DirectiveDrain until it registers again.
	DrainRequested DrainOutcome = iota + 1
	// DrainNotRegistered: no live registration; nothing was written.
	DrainNotRegistered
)

// String returns the outcome's snake_case name, as registryctl prints it.
func (o DrainOutcome) String() string {
	return enumName("DrainOutcome", int(o), 1, "drain_requested", "not_registered")
}

// enumName names value v of an enum whose first name is for the value
// first; values out of range print as Type(v).
func enumName(typ string, v, first int, names ...string) string {
	if i := v - first; i >= 0 && i < len(names) {
		return names[i]
	}
	return typ + "(" + strconv.Itoa(v) + ")"
}
