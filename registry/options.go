package registry

import (
	"io"
	"log/slog"
	"time"

	"github.com/flowfabric/workerregistry/internal/store/pgstore"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a Registry.
type Option func(*config)

type config struct {
	clock           func() time.Time
	clockSet        bool             // WithClock set clock
	hostNow         func() time.Time // the host's clock; tests move it (export_test.go)
	clockSlack      func() time.Duration
	logger          *slog.Logger
	heartbeatEvents bool
	eventRetention  time.Duration
	autoMigrate     bool
	meterProvider   metric.MeterProvider
	tracerProvider  trace.TracerProvider
	obs             *observer // nil without either provider
}

func newConfig(opts []Option) config {
	c := config{
		clock:          time.Now,
		logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		eventRetention: DefaultEventRetention,
		autoMigrate:    true,
	}
	for _, o := range opts {
		o(&c)
	}
	if !c.clockSet && c.hostNow != nil {
		c.clock = c.hostNow
	}
	if c.hostNow == nil {
		c.hostNow = time.Now
	}
	c.obs = newObserver(c.meterProvider, c.tracerProvider)
	return c
}

// WithClock sets the clock used when an args struct leaves Now or AsOf zero.
// Tests use it to drive TTLs without sleeping. A nil clock is ignored.
//
// Without it, a registry on SQLite reads the host's clock, which is the
// server's (every process that shares the file runs on its host). A
// registry on Postgres reads the database server's clock: the host's plus
// an offset measured by a few round trips when the Registry is made and
// every 30 seconds after (see the package doc, "Clocks"), so that hosts
// whose clocks disagree still agree on who is live.
func WithClock(clock func() time.Time) Option {
	return func(c *config) {
		if clock != nil {
			c.clock = clock
			c.clockSet = true
		}
	}
}

// usePostgresClock makes the server's clock the registry's, unless
// WithClock set one, and returns what the Registry must close.
func (c *config) usePostgresClock(pool *pgxpool.Pool) *pgstore.ServerClock {
	if c.clockSet {
		return nil
	}
	sc := pgstore.StartServerClock(pool, c.hostNow, c.logger)
	c.clock, c.clockSlack = sc.Now, sc.Uncertainty
	return sc
}

// slack is how far the registry's clock may be from the store's: zero
// but for the Postgres server's clock (see pgstore.ServerClock).
func (c *config) slack() time.Duration {
	if c.clockSlack == nil {
		return 0
	}
	return c.clockSlack()
}

// WithLogger sets the logger for background work such as the sweeper. The
// default discards everything. A nil logger is ignored.
func WithLogger(logger *slog.Logger) Option {
	return func(c *config) {
		if logger != nil {
			c.logger = logger
		}
	}
}

// WithHeartbeatEvents records a heartbeat event for every refreshed
// heartbeat. It is off by default: heartbeats are the hot path and would
// dominate the audit log.
func WithHeartbeatEvents(on bool) Option {
	return func(c *config) { c.heartbeatEvents = on }
}

// WithEventRetention sets how long sweeps keep audit events, those of
// SweepExpiredWorkers and of RunSweeper alike; older ones are pruned. The
// default is DefaultEventRetention (7 days). Values below a millisecond,
// the registry's resolution, are ignored: one that truncated to 0 ms would
// prune every event up to now.
func WithEventRetention(d time.Duration) Option {
	return func(c *config) {
		if d >= time.Millisecond {
			c.eventRetention = d
		}
	}
}

// WithAutoMigrate(false) makes Open neither create nor migrate a database:
// it opens one that is at this library's schema version already and fails
// otherwise, changing nothing, with an error matching ErrNotMigrated. Tools
// that must never write a schema into a database they were pointed at by
// mistake use it. The default, true, creates and migrates. With it, a SQLite
// file that the process cannot write is opened for reading alone (see
// ErrReadOnly).
func WithAutoMigrate(on bool) Option {
	return func(c *config) { c.autoMigrate = on }
}

// WithMeterProvider records the registry's metrics with mp's meter: a
// histogram of every call's duration, workerregistry.operation.duration (in
// seconds; attributes db.system.name, workerregistry.operation and
// workerregistry.outcome, "ok" or "error"); the counters
// workerregistry.registrations and workerregistry.heartbeats (by
// workerregistry.outcome: registered or refreshed, refreshed or
// not_registered, or error), workerregistry.sweeps,
// workerregistry.workers.swept and workerregistry.events.pruned; and the
// gauges workerregistry.workers.live (by workerregistry.namespace) and
// workerregistry.leases.expired (counted up to 10000). The gauges report
// what the last sweep counted (SweepExpiredWorkers or RunSweeper's): a
// collection never queries the database, and a registry that never sweeps
// reports none. With a meter provider each sweep walks the live
// registrations, in pages of 1000, and reads up to 10000 rows of the
// expired-lease index. The default, and a nil mp, records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meterProvider = mp }
}

// WithTracerProvider makes every call of the registry's methods a span of
// tp's tracer, named workerregistry.<operation> (such as
// workerregistry.heartbeat_worker), with the attributes db.system.name
// ("sqlite" or "postgresql"), workerregistry.operation and
// workerregistry.outcome; a failed call records its error and sets the
// span's status to Error. Each sweep of RunSweeper is a span of its own.
// The default, and a nil tp, traces nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracerProvider = tp }
}
