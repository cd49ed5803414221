package registry_test

import (
	"encoding"
	"encoding/json"
	"testing"

	"github.com/flowfabric/workerregistry/registry"
)

// TestEnumsAsWords: outcomes and directives encode as their names in JSON
// and any text encoding, decode back, and refuse unknown names and values.
func TestEnumsAsWords(t *testing.T) {
	type textEnum interface {
		encoding.TextMarshaler
		String() string
	}
	cases := []struct {
		value textEnum
		word  string
		into  func() encoding.TextUnmarshaler
		got   func(encoding.TextUnmarshaler) textEnum
	}{
		{registry.Registered, "registered", func() encoding.TextUnmarshaler { return new(registry.RegisterOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.RegisterOutcome) }},
		{registry.Refreshed, "refreshed", func() encoding.TextUnmarshaler { return new(registry.RegisterOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.RegisterOutcome) }},
		{registry.HeartbeatRefreshed, "refreshed", func() encoding.TextUnmarshaler { return new(registry.HeartbeatOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.HeartbeatOutcome) }},
		{registry.HeartbeatNotRegistered, "not_registered", func() encoding.TextUnmarshaler { return new(registry.HeartbeatOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.HeartbeatOutcome) }},
		{registry.Marked, "marked", func() encoding.TextUnmarshaler { return new(registry.MarkDeadOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.MarkDeadOutcome) }},
		{registry.MarkNotRegistered, "not_registered", func() encoding.TextUnmarshaler { return new(registry.MarkDeadOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.MarkDeadOutcome) }},
		{registry.DirectiveNone, "none", func() encoding.TextUnmarshaler { return new(registry.Directive) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.Directive) }},
		{registry.DirectiveDrain, "drain", func() encoding.TextUnmarshaler { return new(registry.Directive) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.Directive) }},
		{registry.DrainRequested, "drain_requested", func() encoding.TextUnmarshaler { return new(registry.DrainOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.DrainOutcome) }},
		{registry.DrainNotRegistered, "not_registered", func() encoding.TextUnmarshaler { return new(registry.DrainOutcome) }, func(u encoding.TextUnmarshaler) textEnum { return *u.(*registry.DrainOutcome) }},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.value)
		if err != nil || string(b) != `"`+c.word+`"` {
			t.Errorf("json.Marshal(%v) = %s, %v; want %q", c.value, b, err, c.word)
		}
		u := c.into()
		if err := json.Unmarshal(b, u); err != nil || c.got(u) != c.value {
			t.Errorf("json.Unmarshal(%s) = %v, %v; want %v", b, c.got(u), err, c.value)
		}
		if err := c.into().UnmarshalText([]byte("Registered ")); err == nil {
			t.Errorf("%T accepted an unknown name", c.value)
		}
	}
	if _, err := json.Marshal(registry.RegisterOutcome(0)); err == nil {
		t.Error("json.Marshal of RegisterOutcome(0), which has no name, succeeded")
	}
	res, err := json.Marshal(registry.HeartbeatResult{Outcome: registry.HeartbeatRefreshed, Directive: registry.DirectiveDrain})
	if err != nil || string(res) != `{"Outcome":"refreshed","NextExpiry":"0001-01-01T00:00:00Z","Directive":"drain"}` {
		t.Errorf("a HeartbeatResult in JSON: %s, %v", res, err)
	}
}
