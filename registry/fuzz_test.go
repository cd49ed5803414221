package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzValidateID checks that validateID accepts exactly the identifiers
// DESIGN.md allows and rejects everything else with a ValidationError.
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"", "ns", " ns", "ns ", "n\x00s", "\xff", "é", strings.Repeat("a", 255), strings.Repeat("a", 256), "'; DROP TABLE ff_worker_registry; --", "\u2028x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := validateID("namespace", s)
		ok := len(s) >= 1 && len(s) <= 255 && utf8.ValidString(s) &&
			!strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Cc, r) }) &&
			strings.TrimFunc(s, unicode.IsSpace) == s
		if ok != (err == nil) {
			t.Fatalf("validateID(%q) = %v, want accepted=%v", s, err, ok)
		}
		checkRejection(t, err, "namespace")
	})
}

// FuzzEncodeTokens checks that an accepted token list reads back as its
// sorted, de-duplicated self, and that no accepted token can split.
func FuzzEncodeTokens(f *testing.F) {
	f.Add("gpu,default,gpu")
	f.Add("a b")
	f.Add("cuda\x00")
	f.Add(",")
	f.Add("\xc3\xa9,z")
	f.Fuzz(func(t *testing.T, joined string) {
		// The fuzzer's string is split on a byte the validator never
		// allows inside a token ('\x1f'), so commas reach the validator.
		tokens := strings.Split(joined, "\x1f")
		csv, err := encodeTokens("capabilities", tokens, 0, maxCapabilities)
		checkRejection(t, err, "capabilities")
		if err != nil {
			return
		}
		want := slices.Clone(tokens)
		slices.Sort(want)
		want = slices.Compact(want)
		if got := decodeTokens(csv); !slices.Equal(got, want) {
			t.Fatalf("decode(encode(%q)) = %q, want %q", tokens, got, want)
		}
		for _, tok := range tokens {
			if validateToken("t", tok) != nil {
				t.Fatalf("accepted list holds invalid token %q", tok)
			}
		}
	})
}

// FuzzValidateReason checks the reason rules.
func FuzzValidateReason(f *testing.F) {
	f.Add("decommissioned")
	f.Add(strings.Repeat("r", 257))
	f.Add("a\nb")
	f.Fuzz(func(t *testing.T, s string) {
		err := validateReason(s)
		ok := len(s) <= 256 && utf8.ValidString(s) &&
			!strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Cc, r) })
		if ok != (err == nil) {
			t.Fatalf("validateReason(%q) = %v, want accepted=%v", s, err, ok)
		}
		checkRejection(t, err, "reason")
	})
}

// checkRejection checks that err, if any, is a ValidationError naming a
// field that starts with field.
func checkRejection(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidInput) || !strings.HasPrefix(ve.Field, field) {
		t.Fatalf("rejection %v (%T) is not a ValidationError for %q", err, err, field)
	}
}
