package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// command is one of registryctl's commands.
type command struct {
	name     string   // as typed: "workers list"
	synopsis string   // its flags, for the usage text
	doc      string   // what it does and its -json output, for its -h
	required []string // flags that must be given a non-empty value
	// setup defines the command's flags and returns the function that runs
	// it once they are parsed, so that the flags live in its closure.
	setup func(flags *flag.FlagSet) runFunc
}

type runFunc func(ctx context.Context, reg *registry.Registry, out *output) error

// line is the command's line in the usage text.
func (c *command) line() string {
	return strings.TrimSpace(fmt.Sprintf("%-16s %s", c.name, c.synopsis))
}

func (c *command) help() string {
	return "usage: registryctl [-db PATH|URL] [-json] " + strings.TrimSpace(c.name+" "+c.synopsis) + "\n\n" + c.doc + "\n"
}

var commands = []command{
	{
		name:     "workers list",
		synopsis: "[-namespace NS] [-lane L] [-capability C] [-limit N] [-all]",
		doc: `Lists live workers ordered by namespace and instance ID: one page, and when
more exist, the flags that continue after it on stderr; -all lists them all.

-json prints {"workers": [{"namespace", "worker_id", "worker_instance_id",
"lanes", "capabilities", "last_heartbeat", "registered_at", "expires_at",
"liveness_ttl_ms", "draining"}, ...], "next": {"namespace",
"worker_instance_id"} or null}.
`,
		setup: workersList,
	},
	{
		name:     "workers events",
		synopsis: "-namespace NS [-instance ID] [-limit N] [-newest] [-after ID]",
		doc: `Lists a namespace's audit events (registered, refreshed, heartbeat,
marked_dead, ttl_swept, drain_requested), oldest first unless -newest: one
page, and when more exist, the -after flag that continues after it on stderr.

-json prints {"events": [{"id", "at", "namespace", "worker_instance_id",
"kind", "reason"}, ...], "next": ID or null}.
`,
		required: []string{"namespace"},
		setup:    workersEvents,
	},
	{
		name:     "workers drain",
		synopsis: "-namespace NS -instance ID",
		doc: `Asks a live worker to finish its work in hand and take no more: its
heartbeats answer "drain" until it registers again. Prints drain_requested,
or not_registered and exits 3 when the worker is not live.

-json prints {"namespace", "worker_instance_id", "outcome": "drain_requested"
or "not_registered"}.
`,
		required: []string{"namespace", "instance"},
		setup:    workersDrain,
	},
	{
		name:     "workers kill",
		synopsis: "-namespace NS -instance ID [-reason TEXT]",
		doc: `Marks a live worker dead: removes its registration and records a
marked_dead event with the reason. Prints marked, or not_registered and
exits 3 when the worker is not live.

-json prints {"namespace", "worker_instance_id", "outcome": "marked" or
"not_registered"}.
`,
		required: []string{"namespace", "instance"},
		setup:    workersKill,
	},
	{
		name:     "leases expired",
		synopsis: "[-namespace NS] [-limit N] [-as-of RFC3339] [-all]",
		doc: `Lists the leases that expired at or before -as-of while their execution
is still active, claimed or running, ordered by expiry: one page, and when
more exist, the flags that continue after it on stderr; -all lists them all.

-json prints {"leases": [{"execution_id", "lease_id", "lease_epoch",
"attempt_index", "worker_instance_id", "namespace", "expires_at"}, ...],
"next": {"expires_at", "execution_id"} or null}.
`,
		setup: leasesExpired,
	},
	{
		name: "sweep",
		doc: `Removes every registration that is no longer live, recording a ttl_swept
event for each, and deletes events older than 7 days. Prints the counts.

-json prints {"swept": N, "pruned_events": N}.
`,
		setup: sweep,
	},
}

func workersList(flags *flag.FlagSet) runFunc {
	var args registry.ListWorkersArgs
	flags.StringVar(&args.Namespace, "namespace", "", "only workers of namespace `NS` (default all)")
	flags.StringVar(&args.Lane, "lane", "", "only workers serving lane `L`")
	flags.StringVar(&args.Capability, "capability", "", "only workers with capability `C`")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` workers per page (at most 10000)")
	all := flags.Bool("all", false, "list every page")
	afterNamespace := flags.String("after-namespace", "", "start after the worker of namespace `NS` (default -namespace) and -after-instance")
	afterInstance := flags.String("after-instance", "", "start after the worker of instance `ID`")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		if *afterNamespace != "" || *afterInstance != "" {
			args.After = &registry.WorkerCursor{
				Namespace:        cmp.Or(*afterNamespace, args.Namespace),
				WorkerInstanceID: *afterInstance,
			}
		}
		var workers []registry.WorkerInfo
		for {
			res, err := reg.ListWorkers(ctx, args)
			if err != nil {
				return err
			}
			workers = append(workers, res.Workers...)
			args.After = res.Next
			if res.Next == nil || !*all {
				break
			}
		}
		if err := out.workers(workers, args.After); err != nil {
			return err
		}
		if next := args.After; next != nil {
			out.more("workers", "-after-namespace", next.Namespace, "-after-instance", next.WorkerInstanceID)
		}
		return nil
	}
}

func workersEvents(flags *flag.FlagSet) runFunc {
	var args registry.ListWorkerEventsArgs
	flags.StringVar(&args.Namespace, "namespace", "", "namespace `NS` of the events (required)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "only events of worker instance `ID`")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` events per page (at most 10000)")
	flags.BoolVar(&args.NewestFirst, "newest", false, "newest first")
	flags.Int64Var(&args.After, "after", 0, "start after this event `ID` (with -newest, before it)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		res, err := reg.ListWorkerEvents(ctx, args)
		if err != nil {
			return err
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

func workersDrain(flags *flag.FlagSet) runFunc {
	var args registry.DrainArgs
	flags.StringVar(&args.Namespace, "namespace", "", "namespace `NS` of the worker (required)")
	flags.StringVar(&args.WorkerInstanceID, "instance", "", "worker instance `ID` (required)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		outcome, err := reg.RequestDrain(ctx, args)
		if err != nil {
			return err
		}
		return out.outcome(args.Namespace, args.WorkerInstanceID, outcome.String(), outcome == registry.DrainNotRegistered)
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
	var args registry.ListExpiredLeasesArgs
	var after registry.LeaseCursor
	flags.StringVar(&args.Namespace, "namespace", "", "only leases of namespace `NS` (default all)")
	flags.IntVar(&args.Limit, "limit", registry.DefaultLimit, "`N` leases per page (at most 10000)")
	all := flags.Bool("all", false, "list every page")
	flags.Func("as-of", "list leases expired at or before `RFC3339` time (default now)", timeFlag(&args.AsOf))
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
			args.AsOf = time.Now()
		}
		if flagSet(flags, "after-expires") || flagSet(flags, "after-execution") || flagSet(flags, "after-attempt") {
			args.After = &after
		}
		var leases []registry.ExpiredLease
		for {
			res, err := reg.ListExpiredLeases(ctx, args)
			if err != nil {
				return err
			}
			leases = append(leases, res.Leases...)
			args.After = res.Next
			if res.Next == nil || !*all {
				break
			}
		}
		if err := out.leases(leases, args.After); err != nil {
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
