// Command migrate runs the registry's goose migrations, embedded in the
// binary, against a SQLite database file or a Postgres database.
//
// Usage:
//
//	migrate [-db PATH|URL] up | down | status | redo | reset | up-to N | down-to N
//	migrate help | version
//
// The -db flag goes before or after the command. status prints the
// database's schema version and the latest migration's; version prints
// migrate's own version, as registryctl's does.
//
// The database is -db, else $REGISTRY_DB, else registry.db in the working
// directory. A Postgres URL (postgres:// or postgresql://) or libpq
// keyword/value DSN ("host=db dbname=registry ...") selects Postgres and
// its migrations; anything else is a SQLite file, which only up and up-to
// create when it is missing (see registry.ParseDSN).
//
// Exit status, as registryctl's: 0 success; 1 failure (storage, a file
// that is not a registry database, a migration that failed); 2 a bad
// command line, including a -db that cannot be parsed. (registryctl also
// exits 3 for a worker that is not registered.)
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/flowfabric/workerregistry/internal/buildinfo"
	"github.com/flowfabric/workerregistry/registry"
)

const usage = `usage: migrate [-db PATH|URL] COMMAND [VERSION]

Commands:
  up           apply every pending migration
  up-to N      apply pending migrations up to and including version N
  down         roll back the most recent migration
  down-to N    roll back migrations down to, but not including, version N
  redo         roll back the most recent migration and apply it again
  reset        roll back every migration
  status       print the database's schema version and latest migration,
               and list migrations and whether each is applied
  version      print migrate's own version (the schema's is under status)
  help         print this

Exit status:
  0  success
  1  failure: storage, a file that is not a registry database, a failed
     migration
  2  bad command line: an unknown command or flag, or a bad flag value

Flags, before or after the command:
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "migrate:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError is a command line that could not be understood.
type usageError string

func (e usageError) Error() string { return string(e) + " (see 'migrate -h')" }

func usagef(format string, args ...any) error { return usageError(fmt.Sprintf(format, args...)) }

// exitCode is 0 for -h, 2 for a bad command line and 1 for a failure.
func exitCode(err error) int {
	var u usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("migrate", flag.ContinueOnError)
	flags.SetOutput(io.Discard) // errors are reported once, by main
	defaultDB := "registry.db"
	if env := os.Getenv("REGISTRY_DB"); env != "" {
		defaultDB = env
	}
	path := flags.String("db", defaultDB, "SQLite database file, or Postgres URL or keyword/value DSN (env REGISTRY_DB)")
	printUsage := func(w io.Writer) {
		fmt.Fprint(w, usage)
		flags.SetOutput(w)
		flags.PrintDefaults()
		flags.SetOutput(io.Discard)
	}
	positional, err := parseInterspersed(flags, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stderr)
			return err
		}
		return usageError(err.Error())
	}
	cmd, version, err := parseCommand(positional)
	if err != nil {
		return err
	}
	switch cmd {
	case "help":
		printUsage(stdout) // asked for: stdout, as registryctl help
		return nil
	case "version":
		_, err := fmt.Fprintln(stdout, buildinfo.Read().Line("migrate"))
		return err
	}

	ds, err := parseDB(*path)
	if err != nil {
		return err
	}
	if ds.Store() == registry.StoreSQLite && (cmd == "up" || cmd == "up-to") {
		if _, err := os.Stat(ds.Path()); errors.Is(err, fs.ErrNotExist) {
			return createSQLite(ctx, ds.Path(), cmd, version, stdout)
		}
	}
	sqlDB, err := openDB(ds)
	if err != nil {
		return fmt.Errorf("%s: %w", ds, err)
	}
	defer sqlDB.Close()
	return execute(ctx, sqlDB, cmd, version, stdout)
}

// createSQLite runs up or up-to on a SQLite file that does not exist yet:
// the file appears only once migrated, so a failure leaves none behind.
func createSQLite(ctx context.Context, path, cmd string, version int64, out io.Writer) error {
	if cmd == "up" {
		version = math.MaxInt64
	}
	results, err := registry.MigrateSQLiteFile(ctx, path, version)
	for _, r := range results {
		fmt.Fprintln(out, r)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	current := int64(0)
	if n := len(results); n > 0 {
		current = results[n-1].Source.Version
	}
	fmt.Fprintf(out, "database version %d\n", current)
	return nil
}

// parseDB parses -db. A DSN that ParseDSN refuses (empty, malformed) is a
// bad command line; its message shows the DSN redacted.
func parseDB(dsn string) (registry.DataSource, error) {
	ds, err := registry.ParseDSN(dsn)
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		return ds, usagef("-db: %s", ve.Reason)
	}
	return ds, err
}

// openDB opens the database that ds names, which must exist.
func openDB(ds registry.DataSource) (*sql.DB, error) {
	if ds.Store() == registry.StorePostgres {
		sqlDB := stdlib.OpenDB(*ds.PoolConfig().ConnConfig)
		if err := sqlDB.Ping(); err != nil {
			sqlDB.Close()
			return nil, ds.RedactError(err)
		}
		return sqlDB, nil
	}
	path := ds.Path()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no such database file (run 'migrate up' to create it)")
	}
	// Not OpenDB: that switches the file to WAL, which a command that
	// fails, or only reads, must not do.
	return registry.OpenSQLiteForMigration(path)
}

// parseInterspersed parses flags wherever they stand among the command's
// words, before or after them, and returns the words. A negative number
// is a word, so that "down-to -1" is refused as a version, not as a flag.
func parseInterspersed(flags *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if len(args) > 0 && len(words) > 0 {
			if _, err := strconv.ParseInt(args[0], 10, 64); err == nil {
				words, args = append(words, args[0]), args[1:]
				continue
			}
		}
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		if args = flags.Args(); len(args) == 0 {
			return words, nil
		}
		words, args = append(words, args[0]), args[1:]
	}
}

func parseCommand(args []string) (cmd string, version int64, err error) {
	if len(args) == 0 {
		return "", 0, usagef("no command given")
	}
	cmd = args[0]
	switch cmd {
	case "up", "down", "status", "version", "redo", "reset", "help":
		if len(args) != 1 {
			return "", 0, usagef("%s takes no arguments", cmd)
		}
	case "up-to", "down-to":
		if len(args) != 2 {
			return "", 0, usagef("%s takes one version number", cmd)
		}
		version, err = strconv.ParseInt(args[1], 10, 64)
		if err != nil || version < 0 {
			return "", 0, usagef("%s: version %q is not a number 0 or above", cmd, args[1])
		}
	default:
		return "", 0, usagef("unknown command %q", cmd)
	}
	return cmd, version, nil
}

func execute(ctx context.Context, sqlDB *sql.DB, cmd string, version int64, out io.Writer) error {
	p, err := registry.NewMigrationProvider(sqlDB)
	if err != nil {
		return err
	}
	// Read the version without goose, which would create its version
	// table in a database that has none: status and version only read,
	// and a failed up must leave the database as it was.
	current, err := registry.SchemaVersion(ctx, sqlDB)
	if err != nil {
		return err
	}
	latest := latestMigration(p)
	switch cmd {
	case "status":
		return printStatus(ctx, p, current, latest, out)
	}
	if current > latest {
		return fmt.Errorf("database version %d is newer than this binary's latest migration (%d): use a newer migrate", current, latest)
	}
	var results []*goose.MigrationResult
	switch {
	case current == 0 && cmd != "up" && cmd != "up-to":
		// Nothing to roll back; goose would create its version table in a
		// database that has none.
	case cmd == "up":
		results, err = registry.MigrateTo(ctx, sqlDB, latest)
	case cmd == "up-to":
		results, err = registry.MigrateTo(ctx, sqlDB, version)
	default:
		results, err = runMigrations(ctx, p, cmd, version)
	}
	for _, r := range results {
		fmt.Fprintln(out, r)
	}
	if err != nil {
		return err
	}
	if len(results) == 0 {
		fmt.Fprintln(out, "no migrations to run")
	}
	if current, err = registry.SchemaVersion(ctx, sqlDB); err != nil {
		return err
	}
	fmt.Fprintf(out, "database version %d\n", current)
	return nil
}

func latestMigration(p *goose.Provider) int64 {
	var latest int64
	for _, s := range p.ListSources() {
		latest = max(latest, s.Version)
	}
	return latest
}

// runMigrations runs the commands that go down, with goose: one
// migration, one transaction.
func runMigrations(ctx context.Context, p *goose.Provider, cmd string, version int64) ([]*goose.MigrationResult, error) {
	switch cmd {
	case "down-to":
		return p.DownTo(ctx, version)
	case "reset":
		return p.DownTo(ctx, 0)
	case "down":
		r, err := p.Down(ctx)
		return nonNil(r), noVersion(err)
	case "redo":
		down, err := p.Down(ctx)
		if err != nil {
			return nil, noVersion(err)
		}
		up, err := p.UpByOne(ctx)
		return append(nonNil(down), nonNil(up)...), err
	}
	return nil, usagef("unknown command %q", cmd)
}

func nonNil(r *goose.MigrationResult) []*goose.MigrationResult {
	if r == nil {
		return nil
	}
	return []*goose.MigrationResult{r}
}

// noVersion turns "nothing to roll back" into an empty result rather than a
// failure, as for up with nothing pending.
func noVersion(err error) error {
	if errors.Is(err, goose.ErrNoNextVersion) {
		return nil
	}
	return err
}

func printStatus(ctx context.Context, p *goose.Provider, current, latest int64, out io.Writer) error {
	var statuses []*goose.MigrationStatus
	if current == 0 {
		// Nothing applied, perhaps no version table: goose's Status would
		// create one.
		for _, src := range p.ListSources() {
			statuses = append(statuses, &goose.MigrationStatus{Source: src, State: goose.StatePending})
		}
	} else {
		var err error
		if statuses, err = p.Status(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "database version %d, latest migration %d\n", current, latest)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tAPPLIED AT\tMIGRATION")
	for _, s := range statuses {
		at := "-"
		if s.State == goose.StateApplied {
			at = s.AppliedAt.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.State, at, filepath.Base(s.Source.Path))
	}
	return tw.Flush()
}
