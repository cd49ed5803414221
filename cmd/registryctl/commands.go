package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/internal/buildinfo"
	"github.com/flowfabric/workerregistry/registry"
)

// command is one of registryctl's commands.
type command struct {
	name     string   // as typed: "workers list"
	synopsis string   // its flags, for the usage text
	doc      string   // what it does and its -json output, for its help
	required []string // flags that must be given a non-empty value
	local    bool     // runs without a database
	// setup defines the command's flags and returns the function that runs
	// it once they are parsed, so that the flags live in its closure.
	setup func(flags *flag.FlagSet) runFunc
	// check, when set, rejects combinations of flags before the database
	// is opened; its error is a bad command line.
	check func(flags *flag.FlagSet) error
}

// runFunc runs a command on an open registry (nil for a local command).
type runFunc func(ctx context.Context, reg *registry.Registry, out *output) error

// line is the command's line in the usage text.
func (c *command) line() string {
	return strings.TrimSpace(fmt.Sprintf("%-16s %s", c.name, c.synopsis))
}

// help is the command's usage, its description and its flags.
func (c *command) help() string {
	var b strings.Builder
	b.WriteString("usage: registryctl [-db PATH|URL] [-json] " + strings.TrimSpace(c.name+" "+c.synopsis) + "\n\n" + c.doc + "\n")
	own := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(own)
	hasFlags := false
	own.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		b.WriteString("Flags:\n")
		own.SetOutput(&b)
		own.PrintDefaults()
		b.WriteString("\n")
	}
	b.WriteString("Global flags, before or after the command: -db PATH|URL, -json (see 'registryctl help').\n")
	return b.String()
}

var commands = []command{
	{
		name:     "workers list",
		synopsis: "[-namespace NS] [-lane L] [-capability C] [-limit N] [-all] [-wide]",
		doc: `Lists live workers ordered by namespace and instance ID: one page, and when
more exist, the flags that continue after it on stderr. -all lists every
page, and also the registrations whose TTL ran out that the sweep has not
removed yet, with the status "expired". It prints each page as it arrives
and holds no more than one in memory, so the table's columns are as wide as
the first page needs, and widen when a later page needs more.

The table shows each worker's STATUS (live, draining or expired), lanes and
capabilities, LAST SEEN (its last heartbeat) and EXPIRES as ages relative to
now, and its TTL, with long values cut to fit 120 columns; -wide adds the
worker ID, the registration's age and the absolute times, in full.

Every value from the database is shown visibly in tables: control
characters (escape sequences, newlines), format characters (bidi
overrides, zero-width) and bytes that are not UTF-8 print as escapes such
as \x1b, \n, \u202e or \xff, and a backslash as \\; a cut never splits
an escape. -json prints the stored strings exactly.

-json prints {"workers": [{"namespace", "worker_id", "worker_instance_id",
"status", "lanes", "capabilities", "last_heartbeat", "registered_at",
"expires_at", "liveness_ttl_ms", "draining"}, ...], "next": {"namespace",
"worker_instance_id"} or null}: times in RFC 3339, UTC, milliseconds;
status "live", "draining" or "expired".
`,
		setup: workersList,
	},
	{
		name:     "workers get",
		synopsis: "-namespace NS -instance ID",
		doc: `Shows one live worker, every field of it. A worker that is not live
prints not_registered and exits 3.

-json prints the worker as workers list does, {"namespace", "worker_id",
"worker_instance_id", "status", "lanes", "capabilities", "last_heartbeat",
"registered_at", "expires_at", "liveness_ttl_ms", "draining"}, or when it is
not live {"namespace", "worker_instance_id", "outcome": "not_registered"}.
`,
		required: []string{"namespace", "instance"},
		setup:    workersGet,
	},
	{
		name:     "workers events",
		synopsis: "[-namespace NS [-instance ID]] [-limit N] [-newest] [-after ID] [-since T] [-follow]",
		doc: `Lists the audit log (registered, refreshed, heartbeat, marked_dead,
ttl_swept, drain_requested, and any kind a newer registry records) of every
namespace, or of one, oldest first unless -newest: one page, and when more
exist, the -after flag that continues after it on stderr.

-since starts at the first event recorded at or after T, an RFC 3339 time
or a duration back from now (90s, 10m, 2h, 3d): the log is read back from its
end to the newest event before T. With -newest it stops there instead.

-follow keeps printing events as they are recorded, polling every second,
until interrupted (Ctrl-C or SIGTERM, exit status 0). It starts after -after
or at -since when given, else at the end of the log, so that only new
events print.

-json prints {"events": [{"id", "at", "namespace", "worker_instance_id",
"kind", "reason"}, ...], "next": ID or null}; with -follow, one event
object per line instead.
`,
		setup: workersEvents,
		check: checkEvents,
	},
	{
		name:     "workers drain",
		synopsis: "-namespace NS -instance ID [-reason TEXT]",
		doc: `Asks a live worker to finish its work in hand and take no more: its
heartbeats answer "drain" until it registers again. The reason is recorded
in the drain_requested event. Prints drain_requested, or not_registered and
exits 3 when the worker is not live, with the worker it acted on:
drain_requested: worker instance "ID" in namespace "NS".

-json prints {"namespace", "worker_instance_id", "outcome": "drain_requested"
or "not_registered"}.
`,
		required: []string{"namespace", "instance"},
		setup:    workersDrain,
	},
	{
		name:     "workers resume",
		synopsis: "-namespace NS -instance ID",
		doc: `Withdraws a drain request: the live worker's heartbeats answer "none"
again, and a resumed event is recorded. Prints resumed, or not_registered
and exits 3 when the worker is not live, with the worker as drain does.

-json prints {"namespace", "worker_instance_id", "outcome": "resumed" or
"not_registered"}.
`,
		required: []string{"namespace", "instance"},
		setup:    workersResume,
	},
	{
		name:     "workers kill",
		synopsis: "-namespace NS -instance ID [-reason TEXT]",
		doc: `Marks a live worker dead: removes its registration and records a
marked_dead event with the reason. Prints marked, or not_registered and
exits 3 when the worker is not live, with the worker as drain does.

-json prints {"namespace", "worker_instance_id", "outcome": "marked" or
"not_registered"}.
`,
		required: []string{"namespace", "instance"},
		setup:    workersKill,
	},
	{
		name:     "leases expired",
		synopsis: "[-namespace NS] [-limit N] [-as-of RFC3339] [-all] [-wide]",
		doc: `Lists the leases that expired at or before -as-of while their execution
is still active, claimed or running, ordered by expiry: one page, and when
more exist, the flags that continue after it on stderr; -all lists them all,
printing each page as it arrives (columns widen when a later page needs
more). The table shows how long ago each expired; -wide adds the lease ID, its
epoch and the absolute expiry.

-json prints {"leases": [{"execution_id", "lease_id", "lease_epoch",
"attempt_index", "worker_instance_id", "namespace", "expires_at"}, ...],
"next": {"expires_at", "execution_id", "attempt_index"} or null}.
`,
		setup: leasesExpired,
	},
	{
		name:     "leases orphaned",
		synopsis: "[-namespace NS] [-limit N] [-as-of RFC3339] [-all] [-wide]",
		doc: `Lists the leases that have not expired at -as-of but whose holder is no
longer live (swept, marked dead, deregistered), on executions still active,
claimed or running, ordered by expiry: the engine can reclaim them now
rather than when they expire. One page, and when more exist, the flags that
continue after it on stderr; -all lists them all, page by page as for
leases expired. The table shows when each expires; -wide adds the lease ID, its epoch and the absolute expiry.

-json prints {"leases": [...], "next": ...} as leases expired does.
`,
		setup: leasesOrphaned,
	},
	{
		name: "sweep",
		doc: `Removes every registration that is no longer live, recording a ttl_swept
event for each, and deletes events older than 7 days. Prints the counts.

-json prints {"swept": N, "pruned_events": N}.
`,
		setup: sweep,
	},
	{
		name:     "stats",
		synopsis: "[-namespace NS]",
		doc: `Counts what the registry holds now: live and draining workers per
namespace and lane, per namespace the expired registrations that the sweep
has not removed yet, and the backlog of expired leases (those that
'leases expired' lists) with the oldest one's expiry: two tables, each
under a title line. It reads every registration and every expired lease.

-json prints {"as_of", "live", "draining", "expired_unswept",
"expired_leases", "namespaces": [{"namespace", "live", "draining",
"expired_unswept", "expired_leases", "oldest_expired_lease" (a time or
null), "lanes": [{"lane", "live", "draining"}, ...]}, ...]}. A lease whose
execution has no namespace counts under the namespace "".
`,
		setup: stats,
	},
	{
		name: "version",
		doc: `Prints registryctl's version: its module's version (or "(devel)" for a
build outside a tagged module), the VCS revision when the build recorded
one, and the Go version.

-json prints {"version", "module", "revision", "modified", "go"}.
`,
		local: true,
		setup: version,
	},
}

func workersList(flags *flag.FlagSet) runFunc {
	var args registry.ListWorkersArgs
	flags.StringVar(&args.Namespace, "namespace", "", "only workers of namespace `NS` (default all)")
	flags.StringVar(&args.Lane, "lane", "", "only workers serving lane `L`")
	flags.StringVar(&args.Capability, "capability", "", "only workers with capability `C`")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` workers per page (at most 10000)")
	all := flags.Bool("all", false, "list every page, and expired registrations not yet swept")
	wide := flags.Bool("wide", false, "show every column, in full")
	afterNamespace := flags.String("after-namespace", "", "start after the worker of namespace `NS` (default -namespace) and -after-instance")
	afterInstance := flags.String("after-instance", "", "start after the worker of instance `ID`")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		if *afterNamespace != "" || *afterInstance != "" {
			args.After = &registry.WorkerCursor{
				Namespace:        cmp.Or(*afterNamespace, args.Namespace),
				WorkerInstanceID: *afterInstance,
			}
		}
		list := reg.ListWorkers
		if *all {
			list = reg.ListWorkersIncludingExpired
		}
		now := out.now()
		args.Now = now // one time for every page, and for the ages shown
		w := out.workerList(now, *wide)
		for {
			res, err := list(ctx, args)
			if err != nil {
				return err
			}
			if err := w.page(res.Workers); err != nil {
				return err
			}
			args.After = res.Next
			if res.Next == nil || !*all {
				break
			}
		}
		if err := w.end(workerCursorToJSON(args.After)); err != nil {
			return err
		}
		if next := args.After; next != nil {
			out.more("workers", "-after-namespace", next.Namespace, "-after-instance", next.WorkerInstanceID)
		}
		return nil
	}
}

// pollInterval is how often workers events -follow asks for new events.
const pollInterval = time.Second

func workersEvents(flags *flag.FlagSet) runFunc {
	var args registry.ListWorkerEventsArgs
	var since sinceValue
	flags.StringVar(&args.Namespace, "namespace", "", "only events of namespace `NS` (default all)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "only events of worker instance `ID` (needs -namespace)")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` events per page (at most 10000)")
	flags.BoolVar(&args.NewestFirst, "newest", false, "newest first")
	flags.Int64Var(&args.After, "after", 0, "start after this event `ID` (with -newest, before it)")
	flags.Var(&since, "since", "start at the first event at or after `T`: RFC 3339, or a duration back from now (10m, 3d)")
	follow := flags.Bool("follow", false, "keep printing new events until interrupted")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		after, err := eventsStart(ctx, reg, args, since, flagSet(flags, "after"), *follow, out.now())
		if err != nil {
			return err
		}
		args.After = after
		if *follow {
			return followEvents(ctx, reg, args, out)
		}
		res, err := reg.ListWorkerEvents(ctx, args)
		if err != nil {
			return err
		}
		if since.set() && args.NewestFirst {
			// Newest first, the listing ends before the first older event.
			from := since.from(out.now())
			for i, e := range res.Events {
				if e.At.Before(from) {
					res.Events, res.Next = res.Events[:i], 0
					break
				}
			}
		}
		if err := out.events(res.Events, res.Next); err != nil {
			return err
		}
		if res.Next != 0 {
			out.more("events", "-after", strconv.FormatInt(res.Next, 10))
		}
		return nil
	}
}

func checkEvents(flags *flag.FlagSet) error {
	switch {
	case flags.Lookup("instance").Value.String() != "" && flags.Lookup("namespace").Value.String() == "":
		return errors.New("workers events: -instance needs -namespace: instance IDs are unique only within a namespace")
	case flags.Lookup("follow").Value.String() == "true" && flags.Lookup("newest").Value.String() == "true":
		return errors.New("workers events: -follow and -newest do not go together")
	}
	return nil
}

// eventsStart returns the event ID that an oldest-first listing starts
// after: -after, or the newest event before -since when that is later, or
// for -follow without either the newest event, so that only new ones print.
// Newest first, the listing starts before -after as given.
func eventsStart(ctx context.Context, reg *registry.Registry, args registry.ListWorkerEventsArgs, since sinceValue, afterSet, follow bool, now time.Time) (int64, error) {
	if args.NewestFirst || (!since.set() && (afterSet || !follow)) {
		return args.After, nil
	}
	// Walk back from the newest event, which is where -follow alone starts,
	// to the first one older than -since, or to -after if that comes first.
	back := args
	back.NewestFirst, back.After, back.Limit = true, 0, registry.MaxLimit
	if !since.set() {
		back.Limit = 1
	}
	for {
		res, err := reg.ListWorkerEvents(ctx, back)
		if err != nil {
			return 0, err
		}
		for _, e := range res.Events {
			switch {
			case e.ID <= args.After:
				return args.After, nil
			case !since.set() || e.At.Before(since.from(now)):
				return e.ID, nil
			}
		}
		if res.Next == 0 {
			return args.After, nil
		}
		back.After = res.Next
	}
}

// followEvents prints the events after args.After, then polls for new
// ones until ctx ends (an interrupt), which is a clean end.
func followEvents(ctx context.Context, reg *registry.Registry, args registry.ListWorkerEventsArgs, out *output) error {
	stream := out.eventStream()
	started := false
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		for {
			res, err := reg.ListWorkerEvents(ctx, args)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			if !started {
				// The header, once the arguments proved good, shows that
				// the follower runs before the first event arrives.
				if err := stream.start(); err != nil {
					return err
				}
				started = true
			}
			if err := stream.write(res.Events); err != nil {
				return err
			}
			if n := len(res.Events); n > 0 {
				args.After = res.Events[n-1].ID
			}
			if res.Next == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// sinceValue is -since: an absolute time, or a duration back from now.
type sinceValue struct {
	at  time.Time
	ago time.Duration
}

func (s *sinceValue) String() string {
	switch {
	case !s.at.IsZero():
		return formatTime(s.at)
	case s.ago != 0:
		return s.ago.String()
	}
	return ""
}

func (s *sinceValue) Set(v string) error {
	d, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		// Go's durations stop at hours; a log kept for days is read in days.
		n, perr := strconv.ParseUint(days, 10, 16)
		d, err = time.Duration(n)*24*time.Hour, perr
	}
	if err == nil {
		if d <= 0 {
			return errors.New("must be a positive duration or a time")
		}
		*s = sinceValue{ago: d}
		return nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return errors.New("want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (90s, 10m, 2h, 3d)")
	}
	*s = sinceValue{at: t}
	return nil
}

func (s sinceValue) set() bool { return !s.at.IsZero() || s.ago != 0 }

func (s sinceValue) from(now time.Time) time.Time {
	if s.ago != 0 {
		return now.Add(-s.ago)
	}
	return s.at
}

func workersDrain(flags *flag.FlagSet) runFunc {
	var args registry.RequestDrainArgs
	flags.StringVar(&args.Namespace, "namespace", "", "namespace `NS` of the worker (required)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "worker instance `ID` (required)")
	flags.StringVar(&args.Reason, "reason", "", "`TEXT` recorded in the drain_requested event (at most 256 bytes)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		outcome, err := reg.RequestDrain(ctx, args)
		if err != nil {
			return err
		}
		return out.outcome(args.Namespace, args.WorkerInstanceID, outcome.String(), outcome == registry.DrainNotRegistered)
	}
}

func workersGet(flags *flag.FlagSet) runFunc {
	var args registry.GetWorkerArgs
	flags.StringVar(&args.Namespace, "namespace", "", "namespace `NS` of the worker (required)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "worker instance `ID` (required)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		args.Now = out.now()
		w, ok, err := reg.GetWorker(ctx, args)
		if err != nil {
			return err
		}
		if !ok {
			return out.outcome(args.Namespace, args.WorkerInstanceID, "not_registered", true)
		}
		return out.worker(w, args.Now)
	}
}

func workersResume(flags *flag.FlagSet) runFunc {
	var args registry.ResumeWorkerArgs
	flags.StringVar(&args.Namespace, "namespace", "", "namespace `NS` of the worker (required)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "worker instance `ID` (required)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		outcome, err := reg.ResumeWorker(ctx, args)
		if err != nil {
			return err
		}
		return out.outcome(args.Namespace, args.WorkerInstanceID, outcome.String(), outcome == registry.ResumeNotRegistered)
	}
}

func workersKill(flags *flag.FlagSet) runFunc {
	var args registry.MarkWorkerDeadArgs
	flags.StringVar(&args.Namespace, "namespace", "", "namespace `NS` of the worker (required)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "worker instance `ID` (required)")
	flags.StringVar(&args.Reason, "reason", "", "`TEXT` recorded in the marked_dead event (at most 256 bytes)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		outcome, err := reg.MarkWorkerDead(ctx, args)
		if err != nil {
			return err
		}
		return out.outcome(args.Namespace, args.WorkerInstanceID, outcome.String(), outcome == registry.MarkNotRegistered)
	}
}

func leasesExpired(flags *flag.FlagSet) runFunc {
	return leases(flags, "expired at or before", "EXPIRED",
		func(ctx context.Context, reg *registry.Registry, q leaseQuery) ([]registry.ExpiredLease, *registry.LeaseCursor, error) {
			res, err := reg.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs(q))
			return res.Leases, res.Next, err
		})
}

func leasesOrphaned(flags *flag.FlagSet) runFunc {
	return leases(flags, "held, unexpired, by a worker not live", "EXPIRES",
		func(ctx context.Context, reg *registry.Registry, q leaseQuery) ([]registry.ExpiredLease, *registry.LeaseCursor, error) {
			res, err := reg.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs(q))
			return res.Leases, res.Next, err
		})
}

// leaseQuery is a page of a lease listing; both listings take these
// arguments.
type leaseQuery = registry.ListExpiredLeasesArgs

// leases is a lease listing's command: its flags, its paging and its
// output. asOf says which leases -as-of selects; expiry names the column
// of their relative expiry.
func leases(flags *flag.FlagSet, asOf, expiry string,
	list func(context.Context, *registry.Registry, leaseQuery) ([]registry.ExpiredLease, *registry.LeaseCursor, error)) runFunc {
	var args leaseQuery
	var after registry.LeaseCursor
	flags.StringVar(&args.Namespace, "namespace", "", "only leases of namespace `NS` (default all)")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` leases per page (at most 10000)")
	all := flags.Bool("all", false, "list every page")
	wide := flags.Bool("wide", false, "show every column, in full")
	flags.Func("as-of", "list leases "+asOf+" `RFC3339` time (default now)", timeFlag(&args.AsOf))
	flags.Func("after-expires", "start after the lease of expiry `RFC3339` and -after-execution", timeFlag(&after.ExpiresAt))
	flags.Func("after-execution", "start after the lease of this execution `ID` ({fp:N}:uuid)", func(s string) (err error) {
		after.ExecutionID, err = registry.ParseExecutionID(s)
		return err
	})
	flags.Func("after-attempt", "start after this attempt `N` of -after-execution (default 0)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 32)
		after.AttemptIndex = uint32(n)
		return err
	})
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		// One as-of for every page, and in the continuation flags, so that
		// paging walks a single set of leases.
		if args.AsOf.IsZero() {
			args.AsOf = out.now()
		}
		if flagSet(flags, "after-expires") || flagSet(flags, "after-execution") || flagSet(flags, "after-attempt") {
			args.After = &after
		}
		w := out.leaseList(expiry, out.now(), *wide)
		for {
			page, next, err := list(ctx, reg, args)
			if err != nil {
				return err
			}
			if err := w.page(page); err != nil {
				return err
			}
			args.After = next
			if next == nil || !*all {
				break
			}
		}
		if err := w.end(leaseCursorToJSON(args.After)); err != nil {
			return err
		}
		if next := args.After; next != nil {
			out.more("leases", "-as-of", formatTime(args.AsOf),
				"-after-expires", formatTime(next.ExpiresAt), "-after-execution", next.ExecutionID.String(),
				"-after-attempt", strconv.FormatUint(uint64(next.AttemptIndex), 10))
		}
		return nil
	}
}

func sweep(*flag.FlagSet) runFunc {
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		rep, err := reg.SweepExpiredWorkers(ctx, time.Time{})
		if err != nil {
			return err
		}
		return out.sweep(rep)
	}
}

func version(*flag.FlagSet) runFunc {
	return func(_ context.Context, _ *registry.Registry, out *output) error {
		return out.version(buildinfo.Read())
	}
}

// timeFlag parses an RFC 3339 flag value, with or without fractional
// seconds.
func timeFlag(t *time.Time) func(string) error {
	return func(s string) (err error) {
		*t, err = time.Parse(time.RFC3339, s)
		return err
	}
}

func flagSet(flags *flag.FlagSet, name string) bool {
	set := false
	flags.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
