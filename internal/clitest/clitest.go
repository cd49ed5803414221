// Package clitest runs the module's commands in tests as their users do:
// a process with its own arguments, environment and working directory,
// whose output and exit status the test reads. A package that uses it
// calls [Main] from its TestMain.
package clitest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// runMainEnv, set to 1, makes a test binary that passed a main function
// to Main run it instead of its tests.
const runMainEnv = "CLITEST_RUN_MAIN"

// Command is a command that tests run: the test binary standing in for it
// ([Self]) or a binary built from its package ([Build]).
type Command struct {
	path string
	env  []string // added to the environment of every run
}

// Main runs the tests of a package that uses clitest and exits with their
// status; call it from TestMain. With a main function, the test binary is
// also the command: run through [Self], it calls main and exits 0 when
// main returns (main exits itself on failure). Main removes the binaries
// that [Build] made.
func Main(m *testing.M, main func()) {
	if main != nil && os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	registrytest.ClosePostgresPool()
	os.Exit(code)
}

// Self returns the test binary as the command whose main the package's
// TestMain passed to [Main]: nothing to build, and under -race the command
// runs with the race detector too.
func Self() *Command {
	return &Command{path: os.Args[0], env: []string{runMainEnv + "=1"}}
}

// builds holds the binaries that Build made, one per package, for the
// whole test process.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// Build builds the command in the main package pkg (a path such as
// ./cmd/migrate, relative to the test's package) once per test process,
// for the tests of a package that is not that command, and fails t if it
// does not build. The package's TestMain must call [Main].
func Build(t testing.TB, pkg string) *Command {
	t.Helper()
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*build{}
	}
	b := builds.bins[pkg]
	if b == nil {
		b = &build{}
		builds.bins[pkg] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() {
		builds.mu.Lock()
		if builds.dir == "" {
			builds.dir, b.err = os.MkdirTemp("", "clitest")
		}
		dir := builds.dir
		builds.mu.Unlock()
		if b.err != nil {
			return
		}
		b.path = filepath.Join(dir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = errors.New("go build " + pkg + ": " + err.Error() + "\n" + string(out))
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return &Command{path: b.path}
}

// Name is the command's file name, for messages.
func (c *Command) Name() string { return filepath.Base(c.path) }

// Cmd returns c ready to run in dir with args and with env added to the
// environment, for a test that drives the process itself. $REGISTRY_DB is
// cleared unless env sets it, so that no run reads the developer's
// database, and under -race the process does not sleep a second when it
// exits (atexit_sleep_ms), which would dominate the tests' running time.
func (c *Command) Cmd(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.path, args...)
	cmd.Dir = dir
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), "REGISTRY_DB=", "GORACE="+gorace)
	cmd.Env = append(append(cmd.Env, c.env...), env...)
	return cmd
}

// Result is what a run printed and the status it exited with.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs c to its end (see Cmd) and returns what it printed and its exit
// status. It fails t only when the process cannot run.
func (c *Command) Run(t testing.TB, dir string, env []string, args ...string) Result {
	t.Helper()
	cmd := c.Cmd(dir, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return Result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// Leak returns the longest part of secret, at least 3 bytes long, that the
// run printed on stdout or stderr, or "" when it printed none: a message
// must not show a password, nor a piece of one.
func (r Result) Leak(secret string) string {
	out := r.Stdout + r.Stderr
	for n := len(secret); n >= 3; n-- {
		for i := 0; i+n <= len(secret); i++ {
			if strings.Contains(out, secret[i:i+n]) {
				return secret[i : i+n]
			}
		}
	}
	return ""
}
