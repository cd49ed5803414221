package registry

import (
	"fmt"
	"strconv"
	"strings"
)

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
	return registerOutcomes.name(int(o))
}

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (o RegisterOutcome) MarshalText() ([]byte, error) { return registerOutcomes.marshal(int(o)) }

// UnmarshalText sets o from its name; an unknown name is an error.
func (o *RegisterOutcome) UnmarshalText(text []byte) error {
	v, err := registerOutcomes.unmarshal(text)
	if err == nil {
		*o = RegisterOutcome(v)
	}
	return err
}

var registerOutcomes = enum{"RegisterOutcome", 1, []string{"registered", "refreshed"}}

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
	return heartbeatOutcomes.name(int(o))
}

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (o HeartbeatOutcome) MarshalText() ([]byte, error) { return heartbeatOutcomes.marshal(int(o)) }

// UnmarshalText sets o from its name; an unknown name is an error.
func (o *HeartbeatOutcome) UnmarshalText(text []byte) error {
	v, err := heartbeatOutcomes.unmarshal(text)
	if err == nil {
		*o = HeartbeatOutcome(v)
	}
	return err
}

var heartbeatOutcomes = enum{"HeartbeatOutcome", 1, []string{"refreshed", "not_registered"}}

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
	return markDeadOutcomes.name(int(o))
}

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (o MarkDeadOutcome) MarshalText() ([]byte, error) { return markDeadOutcomes.marshal(int(o)) }

// UnmarshalText sets o from its name; an unknown name is an error.
func (o *MarkDeadOutcome) UnmarshalText(text []byte) error {
	v, err := markDeadOutcomes.unmarshal(text)
	if err == nil {
		*o = MarkDeadOutcome(v)
	}
	return err
}

var markDeadOutcomes = enum{"MarkDeadOutcome", 1, []string{"marked", "not_registered"}}

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
	return directives.name(int(d))
}

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (d Directive) MarshalText() ([]byte, error) { return directives.marshal(int(d)) }

// UnmarshalText sets d from its name; an unknown name is an error.
func (d *Directive) UnmarshalText(text []byte) error {
	v, err := directives.unmarshal(text)
	if err == nil {
		*d = Directive(v)
	}
	return err
}

var directives = enum{"Directive", 0, []string{"none", "drain"}}

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
	return drainOutcomes.name(int(o))
}

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (o DrainOutcome) MarshalText() ([]byte, error) { return drainOutcomes.marshal(int(o)) }

// UnmarshalText sets o from its name; an unknown name is an error.
func (o *DrainOutcome) UnmarshalText(text []byte) error {
	v, err := drainOutcomes.unmarshal(text)
	if err == nil {
		*o = DrainOutcome(v)
	}
	return err
}

var drainOutcomes = enum{"DrainOutcome", 1, []string{"drain_requested", "not_registered"}}

// WorkerState is what a Worker knows of its own registration (see
// Worker.State).
type WorkerState int

const (
	// WorkerLive: the registry's clock is before the expiry that the last
	// successful heartbeat or registration returned (Worker.LiveUntil).
	WorkerLive WorkerState = iota + 1
	// WorkerLapsed: that expiry has passed, or a heartbeat found the
	// registration gone. The engine may reclaim the worker's leases: start
	// no job. The loop goes on trying, and the worker is live again once a
	// heartbeat or a registration succeeds.
	WorkerLapsed
	// WorkerEnded: the loop has ended (see Worker.Err); it is final.
	WorkerEnded
)

// String returns "live", "lapsed" or "ended".
func (s WorkerState) String() string {
	return workerStates.name(int(s))
}

// MarshalText returns the name that String returns, so that JSON and other
// text encodings show a word; a value out of range is an error.
func (s WorkerState) MarshalText() ([]byte, error) { return workerStates.marshal(int(s)) }

// UnmarshalText sets s from its name; an unknown name is an error.
func (s *WorkerState) UnmarshalText(text []byte) error {
	v, err := workerStates.unmarshal(text)
	if err == nil {
		*s = WorkerState(v)
	}
	return err
}

var workerStates = enum{"WorkerState", 1, []string{"live", "lapsed", "ended"}}

// enum names the values of an enum type, the first of which is first.
type enum struct {
	typ   string
	first int
	names []string
}

// name is v's name; a value out of range prints as Type(v).
func (e enum) name(v int) string {
	if i := v - e.first; i >= 0 && i < len(e.names) {
		return e.names[i]
	}
	return e.typ + "(" + strconv.Itoa(v) + ")"
}

func (e enum) marshal(v int) ([]byte, error) {
	if i := v - e.first; i >= 0 && i < len(e.names) {
		return []byte(e.names[i]), nil
	}
	return nil, fmt.Errorf("registry: %s(%d) has no name", e.typ, v)
}

func (e enum) unmarshal(text []byte) (int, error) {
	for i, n := range e.names {
		if string(text) == n {
			return e.first + i, nil
		}
	}
	return 0, fmt.Errorf("registry: unknown %s %q (want one of %s)", e.typ, text, strings.Join(e.names, ", "))
}
