package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
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
		synopsis: "[-namespace NS [-instance ID]] [-limit N] [-newest [N]] [-after ID] [-since T] [-follow]",
		doc: `Lists the audit log (registered, refreshed, heartbeat, marked_dead,
ttl_swept, drain_requested, and any kind a newer registry records) of every
namespace, or of one, oldest first unless -newest: one page, and when more
exist, the -after flag that continues after it on stderr.

-since starts at the first event recorded at or after T, an RFC 3339 time
or a duration back from now (90s, 10m, 2h, 3d; +10m is ahead): the log is
read back from its end to the newest event before T. With -newest it stops
there instead. -newest N lists the newest N events, newest first.

-follow keeps printing events as they are recorded, polling every second,
until interrupted (Ctrl-C or SIGTERM, exit status 0). It starts after -after
or at -since when given, else at the end of the log, so that only new
events print; -follow -newest N first prints the newest N events, oldest
first, as tail -n N -f does (-newest alone: 10). When a read fails after the
first (a server restart, a connection cut), -follow says so on stderr and
tries again, waiting 0.5 s, then twice as long each time up to 30 s; it
says so again once it reads the log.

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
		synopsis: "[-namespace NS] [-limit N] [-as-of T] [-all] [-wide]",
		doc: `Lists the leases that expired at or before -as-of (default now; an RFC
3339 time, or a duration: 10m is ten minutes ago, +10m ten minutes ahead)
while their execution is still active, claimed or running, ordered by expiry: one page, and when
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
		synopsis: "[-namespace NS] [-limit N] [-as-of T] [-all] [-wide]",
		doc: `Lists the leases that have not expired at -as-of (as for leases expired)
but whose holder is no longer live (swept, marked dead, deregistered), on executions still active,
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
	var since timeValue
	var newest newestValue
	flags.StringVar(&args.Namespace, "namespace", "", "only events of namespace `NS` (default all)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "only events of worker instance `ID` (needs -namespace)")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` events per page (at most 10000)")
	flags.Var(&newest, "newest", "newest first; -newest `N`: the newest N events (with -follow, then new ones)")
	flags.Int64Var(&args.After, "after", 0, "start after this event `ID` (with -newest, before it)")
	flags.Var(&since, "since", "start at the first event at or after `T`: "+timeSyntax)
	follow := flags.Bool("follow", false, "keep printing new events until interrupted")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		args.NewestFirst = newest.on
		if newest.n > 0 {
			args.Limit = newest.n
		}
		if *follow && newest.on {
			after, err := newestStart(ctx, reg, args, cmp.Or(newest.n, followNewest))
			if err != nil {
				return err
			}
			args.After, args.NewestFirst, args.Limit = after, false, 0
			return followEvents(ctx, reg, args, out)
		}
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
		if since.set && args.NewestFirst {
			// Newest first, the listing ends before the first older event.
			from := since.resolve(out.now())
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
		if res.Next != 0 && newest.n == 0 {
			out.more("events", "-after", strconv.FormatInt(res.Next, 10))
		}
		return nil
	}
}

func checkEvents(flags *flag.FlagSet) error {
	switch {
	case flags.Lookup("instance").Value.String() != "" && flags.Lookup("namespace").Value.String() == "":
		return errors.New("workers events: -instance needs -namespace: instance IDs are unique only within a namespace")
	case flags.Lookup("follow").Value.String() == "true" && flags.Lookup("newest").Value.String() != "false" &&
		(flagSet(flags, "since") || flagSet(flags, "after")):
		return errors.New("workers events: -follow -newest starts at the newest events: it does not go with -since or -after")
	}
	return nil
}

// followNewest is how many events -follow -newest prints before new ones
// when no count is given, as tail -f does.
const followNewest = 10

// newestStart returns the event ID after which the newest n events of the
// listing start.
func newestStart(ctx context.Context, reg *registry.Registry, args registry.ListWorkerEventsArgs, n int) (int64, error) {
	args.NewestFirst, args.After, args.Limit = true, 0, n+1
	res, err := reg.ListWorkerEvents(ctx, args)
	if err != nil || len(res.Events) <= n {
		return 0, err
	}
	return res.Events[n].ID, nil
}

// eventsStart returns the event ID that an oldest-first listing starts
// after: -after, or the newest event before -since when that is later, or
// for -follow without either the newest event, so that only new ones print.
// Newest first, the listing starts before -after as given.
func eventsStart(ctx context.Context, reg *registry.Registry, args registry.ListWorkerEventsArgs, since timeValue, afterSet, follow bool, now time.Time) (int64, error) {
	if args.NewestFirst || (!since.set && (afterSet || !follow)) {
		return args.After, nil
	}
	// Walk back from the newest event, which is where -follow alone starts,
	// to the first one older than -since, or to -after if that comes first.
	back := args
	back.NewestFirst, back.After, back.Limit = true, 0, registry.MaxLimit
	if !since.set {
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
			case !since.set || e.At.Before(since.resolve(now)):
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
// ones until ctx ends (an interrupt), which is a clean end. Once it has
// read the log, a failure to read it again (a server restarting, a
// connection cut, a lock held too long) does not end it: it says so on
// stderr and tries again after a pause that doubles up to
// maxFollowBackoff, and says so again when it reads the log once more.
func followEvents(ctx context.Context, reg *registry.Registry, args registry.ListWorkerEventsArgs, out *output) error {
	stream := out.eventStream()
	started := false
	var backoff time.Duration
	faults := followFaults()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		for {
			res, err := reg.ListWorkerEvents(ctx, args)
			if started && faults > 0 {
				faults, err = faults-1, errors.New("injected fault ("+followFaultsEnv+")")
			}
			if ctx.Err() != nil {
				return nil
			}
			if err != nil && !started {
				return err
			}
			if err != nil {
				backoff = min(max(2*backoff, minFollowBackoff), maxFollowBackoff)
				fmt.Fprintf(out.stderr, "registryctl: workers events -follow: %v; trying again in %s\n", err, backoff)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				continue
			}
			if backoff != 0 {
				fmt.Fprintln(out.stderr, "registryctl: workers events -follow: reading the log again")
				backoff = 0
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

// The pauses of -follow between failed reads.
const (
	minFollowBackoff = 500 * time.Millisecond
	maxFollowBackoff = 30 * time.Second
)

// followFaultsEnv, set to N, makes the first N reads of -follow after its
// first one fail. Only tests set it, to see the follower ride them out.
const followFaultsEnv = "REGISTRYCTL_TEST_FOLLOW_FAULTS"

func followFaults() int {
	n, _ := strconv.Atoi(os.Getenv(followFaultsEnv))
	return n
}

// timeValue is a time flag (-since, -as-of, -after-expires): an RFC 3339
// time, or a duration relative to now, which the command resolves once it
// knows its clock: "10m" (also "90s", "2h", "3d") is that long ago, "+10m"
// that long from now, "0" now. A leading "-" is refused rather than
// guessed at: "-10m" reads as "ago" to some and as "before now" to others,
// and both are "10m".
type timeValue struct {
	at     time.Time
	offset time.Duration // from now, when relative: negative is ago
	rel    bool
	set    bool
}

// timeSyntax is what a time flag accepts, for its help and its errors.
const timeSyntax = "an RFC 3339 time (2026-01-02T15:04:05Z), a duration ago (90s, 10m, 2h, 3d) or a duration ahead (+10m)"

func (v *timeValue) String() string {
	switch {
	case !v.set:
		return ""
	case !v.rel:
		return formatTime(v.at)
	case v.offset > 0:
		return "+" + v.offset.String()
	}
	return (-v.offset).String()
}

func (v *timeValue) Set(s string) error {
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("%q: write %s for that long ago, +%s for that long ahead", s, s[1:], s[1:])
	}
	rest, ahead := strings.CutPrefix(s, "+")
	if d, ok := parseDuration(rest); ok {
		if !ahead {
			d = -d
		}
		*v = timeValue{offset: d, rel: true, set: true}
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("%q: want %s", s, timeSyntax)
	}
	*v = timeValue{at: t, set: true}
	return nil
}

// parseDuration reads a non-negative Go duration, or a count of days
// ("3d"): Go's durations stop at hours, and a log kept for days is read
// in days.
func parseDuration(s string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		return time.Duration(n) * 24 * time.Hour, err == nil
	}
	d, err := time.ParseDuration(s)
	return d, err == nil && d >= 0 && !strings.HasPrefix(s, "-")
}

// resolve returns the time, relative ones counted from now.
func (v timeValue) resolve(now time.Time) time.Time {
	if v.rel {
		return now.Add(v.offset)
	}
	return v.at
}

// newestValue is -newest: alone, newest first; with a count, "-newest N"
// or "-newest=N", the newest N events (with -follow, oldest first, and
// then new ones, as tail -n N -f prints).
type newestValue struct {
	on bool
	n  int // 0: no count given
}

func (v *newestValue) IsBoolFlag() bool { return true }

func (v *newestValue) String() string {
	if v.n > 0 {
		return strconv.Itoa(v.n)
	}
	return strconv.FormatBool(v.on)
}

func (v *newestValue) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > registry.MaxLimit {
			return fmt.Errorf("%q: want a count of events from 1 to %d, or no value", s, registry.MaxLimit)
		}
		*v = newestValue{on: true, n: n}
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q: want a count of events, or no value", s)
	}
	*v = newestValue{on: b}
	return nil
}

// takesCount says that "-newest N" is "-newest=N": a bool flag does not
// take the next word by itself.
func (v *newestValue) takesCount(next string) bool {
	_, err := strconv.Atoi(next)
	return err == nil
}

// joinCounts rewrites "-FLAG N" into "-FLAG=N" for the flags of a command
// whose value is a bool with an optional count (-newest), so that both
// spellings work.
func joinCounts(flags *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		if f := flags.Lookup(name); f != nil && strings.HasPrefix(args[i], "-") && i+1 < len(args) {
			if c, ok := f.Value.(interface{ takesCount(string) bool }); ok && c.takesCount(args[i+1]) {
				out = append(out, args[i]+"="+args[i+1])
				i++
				continue
			}
		}
		if args[i] == "--" {
			return append(out, args[i:]...)
		}
		out = append(out, args[i])
	}
	return out
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
	var asOfFlag, afterExpires timeValue
	flags.StringVar(&args.Namespace, "namespace", "", "only leases of namespace `NS` (default all)")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` leases per page (at most 10000)")
	all := flags.Bool("all", false, "list every page")
	wide := flags.Bool("wide", false, "show every column, in full")
	flags.Var(&asOfFlag, "as-of", "list leases "+asOf+" `T` (default now): "+timeSyntax)
	flags.Var(&afterExpires, "after-expires", "start after the lease of expiry `T` and -after-execution: "+timeSyntax)
	flags.Func("after-execution", "start after the lease of this execution `ID` ({fp:N}:uuid)", func(s string) (err error) {
		after.ExecutionID, err = registry.ParseExecutionID(s)
		return err
	})
	flags.Func("after-attempt", "start after this attempt `N` of -after-execution (default 0)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("%q: want an attempt index from 0 to %d", s, uint32(math.MaxUint32))
		}
		after.AttemptIndex = uint32(n)
		return nil
	})
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		// One as-of for every page, and in the continuation flags, so that
		// paging walks a single set of leases.
		args.AsOf = out.now()
		if asOfFlag.set {
			args.AsOf = asOfFlag.resolve(args.AsOf)
		}
		after.ExpiresAt = afterExpires.resolve(out.now())
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

func flagSet(flags *flag.FlagSet, name string) bool {
	set := false
	flags.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
