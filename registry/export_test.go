package registry

import "time"

// WithHostClock replaces the host's clock, for tests: what the registry
// reads without WithClock (on SQLite its clock, on Postgres the base to
// which the server's offset is added) and what the worker loop compares
// with the registry's clock. It lets a test put a registry on a host whose
// clock is off without touching the machine's.
func WithHostClock(host func() time.Time) Option {
	return func(c *config) { c.hostNow = host }
}
