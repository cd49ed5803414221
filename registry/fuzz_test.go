package registry

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
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

// FuzzTimeBounds checks the time bounds against UnixMilli itself: a
// cursor's time is accepted exactly when its milliseconds convert back to
// it (to the millisecond), so no accepted time wraps; a time taken as now
// is such a time, and leaves room for the longest TTL.
func FuzzTimeBounds(f *testing.F) {
	for _, ts := range []time.Time{
		time.Unix(0, 0), time.Unix(0, -1), {}, time.Time{}.Add(1), maxTime, maxTime.Add(1),
		time.Date(300_000_000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(1<<62, 0), time.Unix(-1<<62, 0),
		minStoredTime, minStoredTime.Add(-1), maxStoredTime, maxStoredTime.Add(1),
	} {
		f.Add(ts.Unix(), int64(ts.Nanosecond()))
	}
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64))
	f.Add(int64(math.MinInt64), int64(math.MinInt64))
	r := &Registry{cfg: newConfig([]Option{WithClock(func() time.Time { return time.Unix(1, 0) })})}
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		ts := time.Unix(sec, nsec)
		back := time.UnixMilli(ts.UnixMilli())
		roundTrips := !back.After(ts) && ts.Sub(back) < time.Millisecond

		ms, err := storedMillis("after.expires_at", ts)
		checkRejection(t, err, "after.expires_at")
		if (err == nil) != roundTrips {
			t.Fatalf("storedMillis(%v) = %d, %v; UnixMilli round-trips: %v", ts, ms, err, roundTrips)
		}
		if err == nil && ms != ts.UnixMilli() {
			t.Fatalf("storedMillis(%v) = %d, want %d", ts, ms, ts.UnixMilli())
		}

		ms, err = r.millis("now", ts)
		checkRejection(t, err, "now")
		if err != nil {
			return
		}
		if !ts.IsZero() && (!roundTrips || ms != ts.UnixMilli()) {
			t.Fatalf("millis(%v) = %d, which is not its time", ts, ms)
		}
		if ms < 0 || ms > math.MaxInt64-maxLivenessTTL.Milliseconds() {
			t.Fatalf("millis(%v) = %d: out of [0, MaxInt64 - longest TTL]", ts, ms)
		}
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
