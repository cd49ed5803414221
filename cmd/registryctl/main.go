// Command registryctl is an operator's view of a worker registry database:
// it lists live workers, their audit events and expired leases, asks a
// worker to drain, marks one dead and sweeps expired registrations.
//
// Usage:
//
//	registryctl [-db PATH|URL] [-json] COMMAND [flags]
//
//	workers list     [-namespace NS] [-lane L] [-capability C] [-limit N] [-all]
//	workers events   -namespace NS [-instance ID] [-limit N] [-newest] [-after ID]
//	workers drain    -namespace NS -instance ID
//	workers kill     -namespace NS -instance ID [-reason TEXT]
//	leases expired   [-namespace NS] [-limit N] [-as-of RFC3339] [-all]
//	sweep
//
// The database is -db, else $REGISTRY_DB, else registry.db in the working
// directory: a SQLite file, or for a Postgres registry a postgres:// URL or
// a libpq keyword/value DSN (see registry.ParseDSN).
// It must exist: registryctl never creates one, though opening it migrates
// it to the latest schema. 'registryctl COMMAND -h' describes a
// command, its flags and the shape of its -json output.
//
// Lists print one page, and on stderr the flags that fetch the next one;
// -all follows the pages to the end. Times are RFC 3339 in UTC with
// milliseconds, the registry's precision.
//
// Exit status: 0 success; 1 failure (storage, a file that is not a
// registry database, or input the registry rejects, named in the message);
// 2 a bad command line; 3 drain or kill of a worker that is not registered
// (the outcome is still printed).
package main

import (
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

	"github.com/flowfabric/workerregistry/registry"
)

const usageHead = `usage: registryctl [-db PATH|URL] [-json] COMMAND [flags]

Commands:
`

const usageTail = `
'registryctl COMMAND -h' describes a command, its flags and its -json output.

Exit status:
  0  success
  1  failure: storage, a file that is not a registry database, or input the
     registry rejects (the message names the field)
  2  bad command line
  3  drain or kill: the worker is not registered (the outcome is still printed)

`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
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
		see = "registryctl " + e.cmd + " -h"
	}
	return e.msg + " (see '" + see + "')"
}

func usagef(cmd, format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...), cmd}
}

// notRegisteredError reports a drain or kill of a worker that is not live.
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

// run parses the whole command line before it touches the database, so
// that a bad command line is reported as such whatever the file holds.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	global := flag.NewFlagSet("registryctl", flag.ContinueOnError)
	global.SetOutput(io.Discard) // errors are reported once, by main
	defaultDB := "registry.db"
	if env := os.Getenv("REGISTRY_DB"); env != "" {
		defaultDB = env
	}
	dbPath := global.String("db", defaultDB, "registry database: SQLite file `PATH`, or Postgres URL or keyword/value DSN; must exist (env REGISTRY_DB)")
	asJSON := global.Bool("json", false, "print JSON instead of tables")
	if err := global.Parse(args); err != nil {
		return flagError(global, err, "", topUsage(), stderr)
	}
	cmd, rest, err := findCommand(global.Args(), stderr)
	if err != nil {
		return err
	}

	flags := flag.NewFlagSet("registryctl "+cmd.name, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	exec := cmd.setup(flags)
	if err := flags.Parse(rest); err != nil {
		return flagError(flags, err, cmd.name, cmd.help(), stderr)
	}
	if flags.NArg() > 0 {
		return usagef(cmd.name, "%s takes no arguments (got %q)", cmd.name, flags.Arg(0))
	}
	for _, name := range cmd.required {
		if flags.Lookup(name).Value.String() == "" {
			return usagef(cmd.name, "%s: -%s is required", cmd.name, name)
		}
	}

	ds, err := registry.ParseDSN(*dbPath)
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		// Empty or malformed: a bad command line, shown redacted.
		return usagef("", "-db: %s", ve.Reason)
	}
	if err != nil {
		return err
	}
	reg, err := openRegistry(ctx, *dbPath, ds)
	if err != nil {
		return err
	}
	err = exec(ctx, reg, &output{json: *asJSON, stdout: stdout, stderr: stderr})
	if cerr := reg.Close(); err == nil {
		err = cerr
	}
	return err
}

// flagError prints help for -h and turns any other parse error into a
// usageError.
func flagError(flags *flag.FlagSet, err error, cmd, help string, stderr io.Writer) error {
	if !errors.Is(err, flag.ErrHelp) {
		return usageError{err.Error(), cmd}
	}
	fmt.Fprint(stderr, help)
	hasFlags := false
	flags.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(stderr, "Flags:\n")
		flags.SetOutput(stderr)
		flags.PrintDefaults()
	}
	return err
}

// openRegistry opens the existing database that dsn names, ds being its
// parse. registry.Open would create a missing file, which for an
// operator's typo means an empty registry that looks healthy.
// openRegistry opens an existing registry at this binary's schema version.
// registryctl never creates or upgrades a schema: pointed by mistake at
// another database, an empty file or an older registry, it says what to
// run and leaves the database as it was.
func openRegistry(ctx context.Context, dsn string, ds registry.DataSource) (*registry.Registry, error) {
	if ds.Store() == registry.StoreSQLite {
		if _, err := os.Stat(ds.Path()); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no such database file", ds.Path())
		}
	}
	return registry.Open(ctx, dsn, registry.WithAutoMigrate(false))
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

// findCommand picks the command named by the first one or two arguments
// and returns the arguments that follow its name.
func findCommand(args []string, stderr io.Writer) (*command, []string, error) {
	if len(args) == 0 {
		return nil, nil, usagef("", "no command given")
	}
	var group []string // the commands under args[0], when it names a group
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c, args[len(words):], nil
		}
		if len(words) == 2 && words[0] == args[0] {
			group = append(group, "  "+c.line()+"\n")
		}
	}
	switch {
	case group == nil:
		return nil, nil, usagef("", "unknown command %q", args[0])
	case len(args) == 1:
		return nil, nil, usagef("", "%s: no subcommand given", args[0])
	case args[1] == "-h" || args[1] == "-help" || args[1] == "--help":
		fmt.Fprintf(stderr, "usage: registryctl [-db PATH|URL] [-json] %s SUBCOMMAND [flags]\n\nSubcommands:\n%s", args[0], strings.Join(group, ""))
		return nil, nil, flag.ErrHelp
	}
	return nil, nil, usagef("", "unknown %s subcommand %q", args[0], args[1])
}
