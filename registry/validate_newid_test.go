package registry

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzValidateNewID checks that a registration's identifier is accepted
// exactly when a lookup's would be and it holds no format or separator
// character (Unicode Cf, Zl, Zp).
func FuzzValidateNewID(f *testing.F) {
	for _, s := range []string{"w-1", "w-1\u200b", "\u202egnp.exe", "日本", "é\u00ad", "x\U000E0041", "a\u2029b", "\ufeffns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := validateNewID("worker_instance_id", s)
		ok := validateID("worker_instance_id", s) == nil &&
			!strings.ContainsFunc(s, func(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) })
		if ok != (err == nil) {
			t.Fatalf("validateNewID(%q) = %v, want accepted=%v", s, err, ok)
		}
		checkRejection(t, err, "worker_instance_id")
	})
}
