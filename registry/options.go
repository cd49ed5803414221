package registry

import (
	"io"
	"log/slog"
	"time"
)

// Option configures a Registry.
type Option func(*config)

type config struct {
	clock           func() time.Time
	logger          *slog.Logger
	heartbeatEvents bool
	eventRetention  time.Duration
	autoMigrate     bool
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
	return c
}

// WithClock sets the clock used when an args struct leaves Now or AsOf zero.
// Tests use it to drive TTLs without sleeping. A nil clock is ignored.
func WithClock(clock func() time.Time) Option {
	return func(c *config) {
		if clock != nil {
			c.clock = clock
		}
	}
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

// WithEventRetention sets how long the sweep keeps audit events; older ones
// are pruned. The default is DefaultEventRetention (7 days). Values below a
// millisecond are ignored.
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
// mistake use it. The default, true, creates and migrates.
func WithAutoMigrate(on bool) Option {
	return func(c *config) { c.autoMigrate = on }
}
