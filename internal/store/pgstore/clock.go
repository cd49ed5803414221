package pgstore

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ServerClock is a Postgres server's clock, as a process reads it without
// asking: its host's clock plus an offset measured by round trips at Open
// and every serverClockRefresh after. Hosts whose clocks disagree then
// agree on liveness, since each stamps and judges by the server's time,
// and reading the clock costs what reading the host's does (Worker.State
// reads it on every call).
//
// A round trip's sample is (sent, server, received): the server read its
// clock somewhere between sent and received, so taking the midpoint leaves
// an error of at most half the round trip. Of serverClockSamples samples
// the one with the shortest round trip is kept, as NTP's clock filter
// does, since queueing only ever lengthens one. That half round trip, the
// uncertainty, is where it matters handled on the safe side: a worker
// judges its own lapse that much early (registry's Worker.State), and a sweep at the
// registry's clock judges that much late, so that a worker whose offset
// erred one way and a sweeper whose offset erred the other still never
// see a worker removed while it believes itself live. On a LAN it is well
// under a millisecond, the registry's resolution.
type ServerClock struct {
	host   func() time.Time
	offset atomic.Int64 // server − host, ns
	slack  atomic.Int64 // half the round trip of the sample kept, ns
	pool   *pgxpool.Pool
	logger *slog.Logger
	stop   chan struct{}
	done   sync.WaitGroup
	once   sync.Once
}

const (
	serverClockSamples = 5
	serverClockRefresh = 30 * time.Second
	serverClockTimeout = 5 * time.Second
)

// StartServerClock measures the offset at once, then every
// serverClockRefresh until close. A measurement that fails is logged and
// the offset kept (zero at first: the host's clock) until the next.
func StartServerClock(pool *pgxpool.Pool, host func() time.Time, logger *slog.Logger) *ServerClock {
	c := &ServerClock{host: host, pool: pool, logger: logger, stop: make(chan struct{})}
	c.refresh()
	c.done.Go(func() {
		t := time.NewTicker(serverClockRefresh)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.refresh()
			}
		}
	})
	return c
}

// Now is the server's time, as the host reads it without a round trip.
func (c *ServerClock) Now() time.Time { return c.host().Add(time.Duration(c.offset.Load())) }

// Uncertainty is how far Now may be from the server's clock.
func (c *ServerClock) Uncertainty() time.Duration { return time.Duration(c.slack.Load()) }

func (c *ServerClock) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), serverClockTimeout)
	defer cancel()
	if err := c.measure(ctx); err != nil {
		c.logger.Warn("worker registry could not read the Postgres server's clock; keeping the last offset",
			"err", err, "offset", time.Duration(c.offset.Load()))
	}
}

func (c *ServerClock) measure(ctx context.Context) error {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	best, offset := time.Duration(-1), time.Duration(0)
	for range serverClockSamples {
		sent := c.host()
		var server time.Time
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&server); err != nil {
			return err
		}
		rtt := c.host().Sub(sent) // monotonic
		if best < 0 || rtt < best {
			best, offset = rtt, server.Sub(sent.Add(rtt/2))
		}
	}
	c.offset.Store(int64(offset))
	c.slack.Store(int64(best / 2))
	return nil
}

// Close stops the refreshes.
func (c *ServerClock) Close() {
	c.once.Do(func() { close(c.stop) })
	c.done.Wait()
}
