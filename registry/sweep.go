package registry

import (
	"context"
	"fmt"
	"math"
	"time"
)

// pruneBatchSize is the batch size of event pruning. Each batch is one
// write transaction; at this size one stays well under 50 ms, so that
// writers such as heartbeats never wait long behind a large prune. (Each
// store bounds its sweep's batches itself: see store.Store.)
const pruneBatchSize = 2000

// pruneEvery is how often, by the sweeps' times, a registry's sweeps prune
// the audit log: pruning days-old events a minute late costs nothing, and
// on Postgres even a prune with nothing to do probes every partition.
const pruneEvery = time.Minute

// DefaultSweepInterval is SweeperConfig's default Interval, and
// DefaultEventRetention is the retention without WithEventRetention.
const (
	DefaultSweepInterval  = 30 * time.Second
	DefaultEventRetention = 7 * 24 * time.Hour
)

// SweepReport says what one sweep removed.
type SweepReport struct {
	Swept        int // registrations removed, each with a ttl_swept event
	PrunedEvents int // events older than the retention, deleted
}

// SweeperConfig configures RunSweeper. Its sweeps prune events older than
// the registry's retention (WithEventRetention), as SweepExpiredWorkers
// does: a registry has one retention.
type SweeperConfig struct {
	// Interval is the time between sweeps; zero means
	// DefaultSweepInterval. Any other value must be at least a millisecond.
	Interval time.Duration
}

// interval applies cfg's default and rejects an interval under a
// millisecond, the registry's resolution: a negative one is a caller's
// bug. There is no upper bound.
func (cfg SweeperConfig) interval() (time.Duration, error) {
	interval := cfg.Interval
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	if interval < time.Millisecond {
		return 0, invalid("interval", "must be at least 1ms (got %s)", interval)
	}
	return interval, nil
}

// SweepExpiredWorkers removes every registration that is not live at now
// (zero: the registry's clock), recording a ttl_swept event for each, and
// prunes events older than the registry's retention (WithEventRetention,
// default 7 days), at most once a minute of sweep time per Registry
// (PruneEvents prunes at once). It finds expired rows by scanning, off the
// writer's path (on SQLite a read connection, on Postgres partition by
// partition), and removes them in bounded batches, each its own
// transaction: with nothing expired it writes nothing.
func (r *Registry) SweepExpiredWorkers(ctx context.Context, now time.Time) (SweepReport, error) {
	ctx, c := r.begin(ctx, opSweepExpiredWorkers)
	if err := r.check(); err != nil {
		return SweepReport{}, c.end(ctx, r.opError(ctx, "sweep expired workers", err))
	}
	rep, err := r.sweep(ctx, now)
	if err != nil {
		return rep, c.end(ctx, r.opError(ctx, "sweep expired workers", err))
	}
	return rep, c.end(ctx, nil)
}

// sweep is one sweep: of SweepExpiredWorkers, or of RunSweeper. With a meter
// provider it counts what it removed and refreshes the gauges.
func (r *Registry) sweep(ctx context.Context, now time.Time) (rep SweepReport, err error) {
	defer func() { r.countSweep(ctx, err) }()
	if now.IsZero() {
		// Late by the clock's uncertainty (see pgstore.ServerClock): a sweep must
		// never remove a registration that its worker still takes for live.
		now = r.cfg.clock().Add(-r.cfg.slack())
	}
	nowMS, err := r.millis("now", now)
	if err != nil {
		return rep, err
	}
	rep.Swept, err = r.st.SweepExpired(ctx, nowMS, func(n int) { r.countSwept(ctx, n) })
	if err != nil {
		return rep, err
	}
	// A clock set back more than pruneEvery prunes again too.
	if next := r.nextPrune.Load(); nowMS >= next || next-nowMS > pruneEvery.Milliseconds() {
		// Cannot overflow: nowMS is at least 0 and a retention at most ~9.2e12 ms.
		pruned, err := r.pruneEvents(ctx, nowMS-r.cfg.eventRetention.Milliseconds())
		rep.PrunedEvents = int(pruned)
		if err != nil {
			return rep, err
		}
		if err := r.pruneDirectives(ctx, nowMS); err != nil {
			return rep, err
		}
		// pruneEvents stops at a partial batch: nothing older is left.
		r.nextPrune.Store(nowMS + min(pruneEvery.Milliseconds(), math.MaxInt64-nowMS))
	}
	if err := r.refreshGauges(ctx, nowMS); err != nil {
		// The sweep did its work; the gauges keep the last counts.
		r.cfg.logger.WarnContext(ctx, "worker registry gauges not refreshed", "err", err)
	}
	return rep, nil
}

// PruneEvents deletes the events recorded before the given time, in bounded
// batches, and returns how many it deleted.
func (r *Registry) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	ctx, c := r.begin(ctx, opPruneEvents)
	if err := r.check(); err != nil {
		return 0, c.end(ctx, r.opError(ctx, "prune events", err))
	}
	if before.IsZero() {
		return 0, c.end(ctx, fmt.Errorf("prune events: %w", invalid("before", "must be set")))
	}
	beforeMS, err := r.millis("before", before)
	if err != nil {
		return 0, c.end(ctx, r.opError(ctx, "prune events", err))
	}
	n, err := r.pruneEvents(ctx, beforeMS)
	if err != nil {
		return n, c.end(ctx, r.opError(ctx, "prune events", err))
	}
	return n, c.end(ctx, nil)
}

func (r *Registry) pruneEvents(ctx context.Context, beforeMS int64) (int64, error) {
	var total int64
	for {
		n, err := r.st.Writer().DeleteEventsBefore(ctx, beforeMS, pruneBatchSize)
		r.countPruned(ctx, n)
		total += n
		if err != nil || n < pruneBatchSize {
			return total, err
		}
	}
}

// minKillRetention is the least time for which a kill is kept (see
// pruneDirectives).
const minKillRetention = 30 * 24 * time.Hour

// pruneDirectives prunes what no worker needs of the directives that
// outlive registrations (RequestDrain's, MarkWorkerDead's): withdrawn
// drains; drains of instances absent for longer than the event retention
// (their process is long gone, as its events are); and kills older than
// the longer of the event retention and minKillRetention. A kill must
// outlive the process it killed, which may come back from a pause (a
// stopped process, a suspended VM) of any length; instance IDs are unique
// per boot and kills are operators' acts, so keeping each for a month
// costs a few rows, and the floor keeps a registry with a short event
// retention from forgetting kills that another relies on.
func (r *Registry) pruneDirectives(ctx context.Context, nowMS int64) error {
	retention := r.cfg.eventRetention.Milliseconds()
	_, err := r.st.Writer().PruneDirectives(ctx, nowMS-retention, nowMS-max(retention, minKillRetention.Milliseconds()))
	return err
}

// RunSweeper sweeps at once and then every cfg.Interval until ctx is done,
// and returns ctx's error, or one matching ErrClosed once the registry is
// closed. Each sweep takes its time from the registry's
// clock and is logged with the registry's logger, at INFO when it removed
// something and at DEBUG when it did not; a failed sweep is logged at
// ERROR and the next one runs as planned. A cfg out of range is rejected at once
// with an error matching ErrInvalidInput, before any sweep.
func (r *Registry) RunSweeper(ctx context.Context, cfg SweeperConfig) error {
	if err := r.check(); err != nil {
		return opError(ctx, "run sweeper", err)
	}
	interval, err := cfg.interval()
	if err != nil {
		return opError(ctx, "run sweeper", err)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if err := r.check(); err != nil {
			return opError(ctx, "run sweeper", err)
		}
		start := time.Now()
		sweepCtx, c := r.begin(ctx, opSweepExpiredWorkers)
		rep, err := r.sweep(sweepCtx, time.Time{})
		if err != nil && ctx.Err() == nil && r.closed.Load() {
			return c.end(sweepCtx, r.opError(ctx, "run sweeper", err))
		}
		_ = c.end(sweepCtx, err)
		switch {
		case err != nil && ctx.Err() == nil:
			r.cfg.logger.ErrorContext(ctx, "worker registry sweep failed", "err", err,
				"swept", rep.Swept, "pruned_events", rep.PrunedEvents)
		case err != nil:
		case rep.Swept == 0 && rep.PrunedEvents == 0:
			r.cfg.logger.DebugContext(ctx, "worker registry sweep",
				"swept", 0, "pruned_events", 0, "took", time.Since(start))
		default:
			r.cfg.logger.InfoContext(ctx, "worker registry sweep",
				"swept", rep.Swept, "pruned_events", rep.PrunedEvents, "took", time.Since(start))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}
