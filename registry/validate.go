package registry

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Input limits. They bound what one call can write, and they keep the
// comma-joined token encoding unambiguous.
const (
	maxIDBytes      = 255
	maxLanes        = 64
	maxCapabilities = 256
	maxTokenBytes   = 128
	maxReasonBytes  = 256
	minLivenessTTL  = time.Millisecond
	maxLivenessTTL  = 24 * time.Hour

	// DefaultLimit is the page size used when a list call's Limit is 0.
	DefaultLimit = 1000
	// MaxLimit is the largest page a list call returns; larger limits are
	// lowered to it.
	MaxLimit = 10000
)

// Bounds of the times a call takes as "now" (Now, AsOf, a sweep's now,
// PruneEvents' before): see Registry.millis.
var (
	minTime = time.UnixMilli(0)
	// Far enough for any clock, near enough that milliseconds plus a TTL
	// cannot overflow int64.
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)
)

// Bounds of the times that int64 milliseconds since the epoch can hold.
// UnixMilli floors, so the last one is the end of math.MaxInt64's
// millisecond; beyond either bound UnixMilli silently wraps around.
var (
	minStoredTime = time.UnixMilli(math.MinInt64)
	maxStoredTime = time.UnixMilli(math.MaxInt64).Add(time.Millisecond - time.Nanosecond)
)

// storedMillis converts a time that stands for a stored value, such as a
// cursor's, to milliseconds. Any int64 may be stored (the engine writes
// lease expiries, some before 1970), so the only bound is that the
// conversion must not wrap.
func storedMillis(field string, t time.Time) (int64, error) {
	if t.Before(minStoredTime) || t.After(maxStoredTime) {
		return 0, invalid(field, "is outside the range of int64 milliseconds since 1970 (got %s)", t.Format(time.RFC3339Nano))
	}
	return t.UnixMilli(), nil
}

// validateID checks a namespace, worker ID or worker instance ID.
func validateID(field, s string) error {
	if s == "" {
		return invalid(field, "must not be empty")
	}
	if len(s) > maxIDBytes {
		return invalid(field, "exceeds %d bytes (got %d)", maxIDBytes, len(s))
	}
	if err := validateText(field, s); err != nil {
		return err
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return invalid(field, "must not have leading or trailing space")
	}
	return nil
}

// validateText rejects invalid UTF-8 and control characters, which would
// corrupt logs and terminals that print the value.
func validateText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) {
			return invalid(field, "must not contain control characters (found %U)", r)
		}
	}
	return nil
}

// validateNewID is validateID for an identifier that a registration
// creates (namespace, worker ID, instance ID), which must also look like
// what it is: see rejectInvisible. Lookups (heartbeats, drains, kills,
// filters, cursors) keep validateID's rules, so that a row stored before
// this rule, or written by the engine, can still be named, drained and
// removed.
func validateNewID(field, s string) error {
	if err := validateID(field, s); err != nil {
		return err
	}
	return rejectInvisible(field, s)
}

// rejectInvisible rejects Unicode format characters (Cf: bidirectional
// overrides and isolates such as U+202E and U+2066..U+2069, zero-width
// characters such as U+200B and U+FEFF, the soft hyphen U+00AD, tag
// characters U+E0001..U+E007F) and the line and paragraph separators (Zl
// U+2028, Zp U+2029), as validateText rejects control characters: with
// them "w-1\u200b" prints exactly as "w-1", and a bidi override reverses
// what follows it on an operator's screen. Ordinary non-ASCII letters
// ("é", "日本") stay valid. Reasons are free text and keep them (an emoji
// sequence joins with U+200D).
func rejectInvisible(field, s string) error {
	for _, r := range s {
		if unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return invalid(field, "must not contain invisible format or separator characters (found %U)", r)
		}
	}
	return nil
}

// validateToken checks one lane or capability.
func validateToken(field, s string) error {
	if s == "" {
		return invalid(field, "must not be empty")
	}
	if len(s) > maxTokenBytes {
		return invalid(field, "exceeds %d bytes (got %d)", maxTokenBytes, len(s))
	}
	if err := validateText(field, s); err != nil {
		return err
	}
	if strings.Contains(s, ",") {
		return invalid(field, "must not contain ','")
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return invalid(field, "must not contain whitespace")
	}
	return nil
}

// encodeTokens validates a registration's lane or capability list (with
// validateToken's rules and rejectInvisible's) and returns its stored
// form: sorted, de-duplicated and comma-joined.
func encodeTokens(field string, tokens []string, minCount, maxCount int) (string, error) {
	if len(tokens) < minCount {
		return "", invalid(field, "needs at least %d entry (got %d)", minCount, len(tokens))
	}
	if len(tokens) > maxCount {
		return "", invalid(field, "exceeds %d entries (got %d)", maxCount, len(tokens))
	}
	for i, t := range tokens {
		name := field + "[" + strconv.Itoa(i) + "]"
		if err := rejectInvisible(name, t); err != nil {
			return "", err
		}
		if err := validateToken(name, t); err != nil {
			return "", err
		}
	}
	sorted := slices.Clone(tokens)
	slices.Sort(sorted)
	return strings.Join(slices.Compact(sorted), ","), nil
}

// decodeTokens is the inverse of encodeTokens for rows this library wrote.
func decodeTokens(csv string) []string {
	if csv == "" {
		return nil
	}
	return strings.Split(csv, ",")
}

func validateReason(s string) error {
	if len(s) > maxReasonBytes {
		return invalid("reason", "exceeds %d bytes (got %d)", maxReasonBytes, len(s))
	}
	return validateText("reason", s)
}

func validateLivenessTTL(d time.Duration) (int64, error) {
	if d < minLivenessTTL {
		return 0, invalid("liveness_ttl", "must be at least %s (got %s)", minLivenessTTL, d)
	}
	if d > maxLivenessTTL {
		return 0, invalid("liveness_ttl", "must be at most %s (got %s)", maxLivenessTTL, d)
	}
	return d.Milliseconds(), nil
}

// pageLimit applies the list calls' limit rules: 0 means DefaultLimit,
// anything above MaxLimit is lowered to it.
func pageLimit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("limit", "must not be negative (got %d)", n)
	case n == 0:
		return DefaultLimit, nil
	case n > MaxLimit:
		return MaxLimit, nil
	}
	return n, nil
}
