package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/internal/clitest"
)

// TestCommandLineLikeRegistryctl: migrate takes help, -db before or after
// the command, version as the tool's version, and documents the exit
// codes that registryctl documents, with the same meanings.
func TestCommandLineLikeRegistryctl(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "r.db")

	help := migrate(t, dir, nil, "help")
	if help.Code != 0 || !strings.Contains(help.Stdout, "up-to N") || !strings.Contains(help.Stdout, "Exit status") {
		t.Fatalf("help: exit %d, stdout %q, stderr %q", help.Code, help.Stdout, help.Stderr)
	}
	// Flags after the command, and after its version number.
	if res := migrate(t, dir, nil, "up-to", "1", "-db", db); res.Code != 0 {
		t.Fatalf("up-to 1 -db: exit %d, stderr %q", res.Code, res.Stderr)
	}
	if res := migrate(t, dir, nil, "status", "-db", db); res.Code != 0 || !strings.HasPrefix(res.Stdout, "database version 1, latest migration ") {
		t.Fatalf("status -db: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	if res := migrate(t, dir, nil, "status", "-db"); res.Code != 2 || !strings.Contains(res.Stderr, "-db") {
		t.Fatalf("status -db without a value: exit %d, stderr %q; want 2 naming -db", res.Code, res.Stderr)
	}
	if res := migrate(t, dir, nil, "status", "-bogus"); res.Code != 2 || !strings.Contains(res.Stderr, "-bogus") {
		t.Fatalf("status -bogus: exit %d, stderr %q; want 2 naming -bogus", res.Code, res.Stderr)
	}
	// version is migrate's own, and needs no database.
	empty := t.TempDir()
	res := migrate(t, empty, nil, "version")
	if res.Code != 0 || !regexp.MustCompile(`^migrate \S+ .*go1`).MatchString(res.Stdout) {
		t.Fatalf("version: exit %d, stdout %q, stderr %q; want migrate's version", res.Code, res.Stdout, res.Stderr)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("version created %v", entries)
	}

	// The exit codes both usages document mean the same.
	ctl := clitest.Build(t, "../registryctl").Run(t, dir, nil, "help")
	for _, code := range []string{"0", "1", "2"} {
		m, c := exitLine(help.Stdout, code), exitLine(ctl.Stdout, code)
		if m == "" || c == "" || strings.Fields(m)[0] != strings.Fields(c)[0] {
			t.Errorf("exit status %s: migrate says %q, registryctl %q", code, m, c)
		}
	}
}

// exitLine returns the word after code in a usage's "Exit status" list.
func exitLine(usage, code string) string {
	_, list, _ := strings.Cut(usage, "Exit status:\n")
	for _, line := range strings.Split(list, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), code+"  "); ok {
			return rest
		}
	}
	return ""
}
