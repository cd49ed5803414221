package registry_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
)

func TestExecutionIDRoundTrip(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"{fp:0}:550e8400-e29b-41d4-a716-446655440000", ""},
		{"{fp:7}:11111111-2222-3333-4444-555555555555", ""},
		{"{fp:65535}:ffffffff-ffff-ffff-ffff-ffffffffffff", ""},
		{"{fp:42}:550E8400-E29B-41D4-A716-446655440000", "{fp:42}:550e8400-e29b-41d4-a716-446655440000"},
	} {
		id, err := registry.ParseExecutionID(tc.in)
		if err != nil {
			t.Fatalf("ParseExecutionID(%q): %v", tc.in, err)
		}
		want := tc.out
		if want == "" {
			want = tc.in
		}
		equal(t, "String", id.String(), want)
		again, err := registry.ParseExecutionID(id.String())
		if err != nil || again != id {
			t.Fatalf("round trip of %q: %v, %v", tc.in, again, err)
		}
	}
	id := registry.ExecutionID{Partition: 3, UUID: uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")}
	b, err := json.Marshal(map[string]registry.ExecutionID{"id": id})
	if err != nil || string(b) != `{"id":"{fp:3}:550e8400-e29b-41d4-a716-446655440000"}` {
		t.Fatalf("JSON = %s, %v", b, err)
	}
	var back map[string]registry.ExecutionID
	if err := json.Unmarshal(b, &back); err != nil || back["id"] != id {
		t.Fatalf("JSON round trip = %v, %v", back, err)
	}
}

func TestExecutionIDRejections(t *testing.T) {
	const u = "550e8400-e29b-41d4-a716-446655440000"
	for _, in := range []string{
		"",
		u,
		"{fp:}:" + u,
		"{fp:-1}:" + u,
		"{fp:+1}:" + u,
		"{fp:01}:" + u,
		"{fp:65536}:" + u,
		"{fp:99999999999999999999}:" + u,
		"{fp:1 }:" + u,
		"{fp:1}" + u,
		"{fp:1}:",
		"{fp:1}:" + strings.ReplaceAll(u, "-", ""),
		"{fp:1}:{" + u + "}",
		"{fp:1}:urn:uuid:" + u,
		"{fp:1}:550e8400-e29b-41d4-a716-44665544000g",
		"{fp:1}:" + u + " ",
		"{FP:1}:" + u,
		"{fp:1}:" + u + "\x00",
		"{fp:١}:" + u, // a non-ASCII digit
	} {
		_, err := registry.ParseExecutionID(in)
		var ve *registry.ValidationError
		if !errors.Is(err, registry.ErrInvalidInput) || !errors.As(err, &ve) || ve.Field != "execution_id" {
			t.Errorf("ParseExecutionID(%q) = %v, want a ValidationError for execution_id", in, err)
		}
	}
}

func FuzzParseExecutionID(f *testing.F) {
	f.Add("{fp:0}:550e8400-e29b-41d4-a716-446655440000")
	f.Add("{fp:65535}:FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")
	f.Add("{fp:1}:urn:uuid:550e8400-e29b-41d4-a716-446655440000")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := registry.ParseExecutionID(s)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalidInput) {
				t.Fatalf("ParseExecutionID(%q) = %v, want ErrInvalidInput", s, err)
			}
			return
		}
		// Accepted input is the canonical form up to the UUID's case.
		if out := id.String(); !strings.EqualFold(out, s) || !strings.HasPrefix(s, out[:strings.Index(out, "}")]) {
			t.Fatalf("ParseExecutionID(%q).String() = %q", s, out)
		}
		if again, err := registry.ParseExecutionID(id.String()); err != nil || again != id {
			t.Fatalf("round trip of %q = %v, %v", s, again, err)
		}
	})
}
