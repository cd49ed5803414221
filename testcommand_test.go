package workerregistry_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's test command is written out in the README, docs/testing.md
// (twice), the Makefile's test target and .ci/run. It leaves
// modernc.org/sqlite/lib, and only it, out of the race detector's
// instrumentation: docs/testing.md says why
// a wider pattern (modernc.org/...) makes the detector report races that
// are not there.
func TestTestCommandIsOneCommand(t *testing.T) {
	const want = "go test -race -gcflags=modernc.org/sqlite/lib=-race=false ./..."
	testLine := regexp.MustCompile(`(?m)^\s*go test -race\b.*$`)
	for _, file := range []string{"README.md", "docs/testing.md", "Makefile", ".ci/run"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := testLine.FindAllString(string(src), -1)
		if len(lines) == 0 {
			t.Errorf("%s: no go test -race command", file)
		}
		for _, line := range lines {
			if got := strings.TrimSpace(line); got != want {
				t.Errorf("%s: %q, want %q", file, got, want)
			}
		}
	}
}
