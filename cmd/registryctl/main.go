// Command registryctl is an operator's view of a worker registry database:
// it lists workers, their audit events and the leases to reclaim (expired,
// or held by workers that are gone), follows the audit log, asks a worker
// to drain or to resume, marks one dead, sweeps expired registrations and
// counts what the registry holds.
//
// Usage:
//
//	registryctl [-db PATH|URL] [-json] COMMAND [flags]
//
//	workers list     [-namespace NS] [-lane L] [-capability C] [-limit N] [-all] [-wide]
//	workers get      -namespace NS -instance ID
//	workers events   [-namespace NS [-instance ID]] [-limit N] [-newest [N]] [-after ID] [-since T] [-follow]
//	workers drain    -namespace NS -instance ID [-reason TEXT]
//	workers resume   -namespace NS -instance ID
//	workers kill     -namespace NS -instance ID [-reason TEXT]
//	leases expired   [-namespace NS] [-limit N] [-as-of T] [-all] [-wide]
//	leases orphaned  [-namespace NS] [-limit N] [-as-of T] [-all] [-wide]
//	sweep
//	stats            [-namespace NS]
//	serve            [-addr HOST:PORT] [-read-only] [-prefix PATH]   (the dashboard; serve.go)
//	help             [COMMAND]
//	version
//
// The global flags -db and -json go before or after the command.
// The database is -db, else $REGISTRY_DB, else registry.db in the working
// directory: a SQLite file, or for a Postgres registry a postgres:// URL or
// a libpq keyword/value DSN (see registry.ParseDSN). It must exist and be
// at this version's schema: registryctl never creates or migrates one.
// 'registryctl help COMMAND' describes a command, its flags and the shape
// of its -json output.
//
// Every time flag (-since, -as-of, -after-expires) takes an RFC 3339 time
// or a duration from now: 10m (also 90s, 2h, 3d) is ten minutes ago, +10m
// ten minutes ahead; -10m is refused, naming the flag.
//
// Tables show every value from the database visibly: control and format
// characters, escape sequences and newlines print as escapes (\x1b,
// \u202e, \n), never raw; -json prints the stored strings exactly.
//
// Tables fit a terminal: relative ages ("4s ago", "in 26s"), long values
// cut; -wide shows every column in full. -json prints absolute times, RFC
// 3339 in UTC with milliseconds, the registry's precision. Lists print one
// page, and on stderr the flags that fetch the next one.
//
// Exit status: 0 success; 1 failure (storage, or a file that is not a
// registry database); 2 a bad command line, including any flag value the
// registry rejects (the message names the flag); 3 get, drain, resume or
// kill of a worker that is not registered (the outcome is still printed).
// cmd/migrate exits with 0, 1 and 2 alike.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

const usageHead = `usage: registryctl [-db PATH|URL] [-json] COMMAND [flags]

Commands:
`

const usageTail = `  help             [COMMAND]

Global flags, before or after the command:
  -db PATH|URL   registry database: a SQLite file, or a Postgres URL or
                 keyword/value DSN; it must exist (default $REGISTRY_DB,
                 else registry.db)
  -json          print JSON instead of tables

Exit status:
  0  success
  1  failure: storage, or a file that is not a registry database
  2  bad command line: an unknown command or flag, or a bad flag value
  3  get, drain, resume or kill: the worker is not registered (the outcome
     is still printed)

`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "registryctl:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError is a command line that could not be understood. cmd is the
// command whose help explains it, "" for the top level.
type usageError struct{ msg, cmd string }

func (e usageError) Error() string {
	see := "registryctl -h"
	if e.cmd != "" {
		see = "registryctl help " + e.cmd
	}
	return e.msg + " (see '" + see + "')"
}

func usagef(cmd, format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...), cmd}
}

// notRegisteredError reports a get, drain, resume or kill of a worker that
// is not live.
// It has an exit status of its own so that scripts can tell "nothing to do"
// from a failure.
type notRegisteredError struct{ namespace, instance string }

func (e notRegisteredError) Error() string {
	return fmt.Sprintf("worker instance %q is not registered in namespace %q", e.instance, e.namespace)
}

// exitCode is 0 for -h, 2 for a bad command line, 3 for a worker that is
// not registered and 1 for any other failure.
func exitCode(err error) int {
	var u usageError
	var nr notRegisteredError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	case errors.As(err, &nr):
		return 3
	}
	return 1
}

// globals are the flags that every command takes, before or after its
// name. Each command's flag set defines them again over the same
// variables, so that a value given after the command overrides one before.
type globals struct {
	db   string
	json bool
}

func (g *globals) define(flags *flag.FlagSet) {
	flags.StringVar(&g.db, "db", g.db, "registry database: SQLite file `PATH`, or Postgres URL or keyword/value DSN; must exist (env REGISTRY_DB)")
	flags.BoolVar(&g.json, "json", g.json, "print JSON instead of tables")
}

// run parses the whole command line before it touches the database, so
// that a bad command line is reported as such whatever the file holds.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := globals{db: cmp.Or(os.Getenv("REGISTRY_DB"), "registry.db")}
	top := flag.NewFlagSet("registryctl", flag.ContinueOnError)
	top.SetOutput(io.Discard) // errors are reported once, by main
	g.define(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, topUsage())
			return err
		}
		return usageError{err.Error(), ""}
	}
	args = top.Args()
	if len(args) == 0 {
		return usagef("", "no command given")
	}
	if args[0] == "help" {
		return help(args[1:], stdout)
	}
	cmd, rest, err := findCommand(args, stderr)
	if err != nil {
		return err
	}

	flags := flag.NewFlagSet("registryctl "+cmd.name, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	exec := cmd.setup(flags)
	g.define(flags)
	if err := flags.Parse(joinCounts(flags, rest)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, cmd.help())
			return err
		}
		return usageError{err.Error(), cmd.name}
	}
	if flags.NArg() > 0 {
		return usagef(cmd.name, "%s takes no arguments (got %q)", cmd.name, flags.Arg(0))
	}
	for _, name := range cmd.required {
		if flags.Lookup(name).Value.String() == "" {
			return usagef(cmd.name, "%s: -%s is required", cmd.name, name)
		}
	}
	if cmd.check != nil {
		if err := cmd.check(flags); err != nil {
			return usageError{err.Error(), cmd.name}
		}
	}
	now, err := clock()
	if err != nil {
		return err
	}
	out := &output{json: g.json, stdout: stdout, stderr: stderr, now: now}
	if cmd.local {
		return exec(ctx, nil, out)
	}

	ds, err := registry.ParseDSN(g.db)
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		// Empty or malformed: a bad command line, shown redacted.
		return usagef("", "-db: %s", ve.Reason)
	}
	if err != nil {
		return err
	}
	reg, err := openRegistry(ctx, g.db, ds, registry.WithClock(now))
	if err != nil {
		return err
	}
	err = exec(ctx, reg, out)
	if cerr := reg.Close(); err == nil {
		err = cerr
	}
	return flagValueError(flags, cmd.name, err)
}

// fieldFlags names the flag behind each argument field that the registry
// may reject, so that the message names what the operator typed.
var fieldFlags = map[string]string{
	"namespace":                "namespace",
	"worker_instance_id":       "instance",
	"lane":                     "lane",
	"capability":               "capability",
	"limit":                    "limit",
	"after":                    "after",
	"reason":                   "reason",
	"as_of":                    "as-of",
	"after.namespace":          "after-namespace",
	"after.worker_instance_id": "after-instance",
	"after.expires_at":         "after-expires",
}

// flagValueError turns the registry's rejection of an argument that came
// from a flag into a bad command line naming that flag. Every other error
// is returned as it is.
func flagValueError(flags *flag.FlagSet, cmd string, err error) error {
	var ve *registry.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	name, ok := fieldFlags[ve.Field]
	if !ok || flags.Lookup(name) == nil {
		return err
	}
	return usagef(cmd, "-%s: %s", name, ve.Reason)
}

// clockEnv fixes registryctl's clock at an RFC 3339 time. Only tests set
// it, so that relative ages in a golden table do not depend on when the
// test runs.
const clockEnv = "REGISTRYCTL_TEST_NOW"

// clock returns the time that relative ages count from and that the
// registry judges liveness at.
func clock() (func() time.Time, error) {
	s := os.Getenv(clockEnv)
	if s == "" {
		return time.Now, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clockEnv, err)
	}
	return func() time.Time { return t }, nil
}

// openRegistry opens an existing registry at this binary's schema version.
// registryctl never creates or upgrades a schema: registry.Open would create
// a missing file, which for an operator's typo means an empty registry that
// looks healthy; pointed by mistake at another database, an empty file or
// an older registry, it says what to run and leaves the database as it was.
func openRegistry(ctx context.Context, dsn string, ds registry.DataSource, opts ...registry.Option) (*registry.Registry, error) {
	if ds.Store() == registry.StoreSQLite {
		if _, err := os.Stat(ds.Path()); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such database file", ds.Path())
		}
	}
	return registry.Open(ctx, dsn, append(opts, registry.WithAutoMigrate(false))...)
}

func topUsage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %s\n", c.line())
	}
	b.WriteString(usageTail)
	return b.String()
}

// lookup finds the command that args start with, and the arguments after
// its name. When args[0] names only a group of commands ("workers"), it
// returns the group instead.
func lookup(args []string) (cmd *command, rest []string, group []*command) {
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c, args[len(words):], nil
		}
		if len(words) == 2 && len(args) > 0 && words[0] == args[0] {
			group = append(group, c)
		}
	}
	return nil, nil, group
}

// findCommand picks the command named by the first one or two arguments
// and returns the arguments that follow its name.
func findCommand(args []string, stderr io.Writer) (*command, []string, error) {
	cmd, rest, group := lookup(args)
	switch {
	case cmd != nil:
		return cmd, rest, nil
	case group == nil:
		return nil, nil, usagef("", "unknown command %q", args[0])
	case len(args) == 1:
		return nil, nil, usagef("", "%s: no subcommand given", args[0])
	case args[1] == "-h" || args[1] == "-help" || args[1] == "--help":
		fmt.Fprint(stderr, groupHelp(args[0], group))
		return nil, nil, flag.ErrHelp
	}
	return nil, nil, usagef("", "unknown %s subcommand %q", args[0], args[1])
}

func groupHelp(name string, group []*command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: registryctl [-db PATH|URL] [-json] %s SUBCOMMAND [flags]\n\nSubcommands:\n", name)
	for _, c := range group {
		fmt.Fprintf(&b, "  %s\n", c.line())
	}
	return b.String()
}

// help prints, on stdout since the operator asked for it, the top-level
// usage or that of the command or group that args name.
func help(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		_, err := fmt.Fprint(stdout, topUsage())
		return err
	}
	if len(args) == 1 && args[0] == "help" {
		_, err := fmt.Fprint(stdout, "usage: registryctl help [COMMAND]\n\nDescribes a command, its flags and its -json output; without a command,\nlists them all.\n")
		return err
	}
	cmd, rest, group := lookup(args)
	switch {
	case cmd != nil && len(rest) == 0:
		_, err := fmt.Fprint(stdout, cmd.help())
		return err
	case cmd == nil && group != nil && len(args) == 1:
		_, err := fmt.Fprint(stdout, groupHelp(args[0], group))
		return err
	}
	return usagef("", "help: unknown command %q", strings.Join(args, " "))
}
