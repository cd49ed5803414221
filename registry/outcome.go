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
	switch o {
	case Registered:
		return "registered"
	case Refreshed:
		return "refreshed"
	}
	return "RegisterOutcome(" + strconv.Itoa(int(o)) + ")"
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
	switch o {
	case HeartbeatRefreshed:
		return "refreshed"
	case HeartbeatNotRegistered:
		return "not_registered"
	}
	return "HeartbeatOutcome(" + strconv.Itoa(int(o)) + ")"
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
	switch o {
	case Marked:
		return "marked"
	case MarkNotRegistered:
		return "not_registered"
	}
	return "MarkDeadOutcome(" + strconv.Itoa(int(o)) + ")"
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
	switch d {
	case DirectiveNone:
		return "none"
	case DirectiveDrain:
		return "drain"
	}
	return "Directive(" + strconv.Itoa(int(d)) + ")"
}
