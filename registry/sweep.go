package registry

import (
	"context"
	"fmt"
	"time"
)

// Batch sizes of the sweep and of event pruning. Each batch is one write
// transaction; at these sizes one stays well under 50 ms, so that writers
// such as heartbeats never wait long behind a large sweep.
const (
	sweepBatchSize = 1000
	pruneBatchSize = 2000
)

// Defaults of SweeperConfig.
const (
	DefaultSweepInterval  = 30 * time.Second
	DefaultEventRetention = 7 * 24 * time.Hour
)

// batchSweeper is a storeWriter that sweeps a batch in its own way:
// removes at most limit registrations not live at nowMS, records a
// ttl_swept event at nowMS for each, and returns how many it removed.
// Others sweep with deleteExpiredWorkers and insertEvents.
type batchSweeper interface {
	sweepExpiredBatch(ctx context.Context, nowMS int64, limit int) (int, error)
}

// SweepReport says what one sweep removed.
type SweepReport struct {
	Swept        int // registrations removed, each with a ttl_swept event
	PrunedEvents int // events older than the retention, deleted
}

// SweeperConfig configures RunSweeper. Durations other than zero must be
// at least a millisecond.
type SweeperConfig struct {
	Interval       time.Duration // between sweeps; zero: DefaultSweepInterval
	EventRetention time.Duration // events older are pruned; zero: the registry's (WithEventRetention)
}

// resolve applies cfg's defaults and rejects durations under a millisecond,
// the registry's resolution: a negative one is a caller's bug, and a
// retention that truncates to 0 ms would prune every event up to now.
// There is no upper bound: a Duration is at most 2^63 ns, about 9.2e12 ms,
// so now minus a retention cannot overflow.
func (cfg SweeperConfig) resolve(defaultRetention time.Duration) (interval, retention time.Duration, err error) {
	interval, retention = cfg.Interval, cfg.EventRetention
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	if retention == 0 {
		retention = defaultRetention
	}
	if interval < time.Millisecond {
		return 0, 0, invalid("interval", "must be at least 1ms (got %s)", interval)
	}
	if retention < time.Millisecond {
		return 0, 0, invalid("event_retention", "must be at least 1ms (got %s)", retention)
	}
	return interval, retention, nil
}

// SweepExpiredWorkers removes every registration that is not live at now
// (zero: the registry's clock), recording a ttl_swept event for each, and
// prunes events older than the registry's retention (WithEventRetention,
// default 7 days). It works in bounded batches, each its own transaction,
// and finds expired rows through the expiry index: with nothing expired it
// costs an index probe.
func (r *Registry) SweepExpiredWorkers(ctx context.Context, now time.Time) (SweepReport, error) {
	ctx, c := r.begin(ctx, opSweepExpiredWorkers)
	if err := r.check(); err != nil {
		return SweepReport{}, c.end(ctx, opError(ctx, "sweep expired workers", err))
	}
	rep, err := r.sweep(ctx, now, r.cfg.eventRetention)
	if err != nil {
		return rep, c.end(ctx, opError(ctx, "sweep expired workers", err))
	}
	return rep, c.end(ctx, nil)
}

// sweep is one sweep: of SweepExpiredWorkers, or of RunSweeper. With a meter
// provider it counts what it removed and refreshes the gauges.
func (r *Registry) sweep(ctx context.Context, now time.Time, retention time.Duration) (rep SweepReport, err error) {
	defer func() { r.countSweep(ctx, err) }()
	nowMS, err := r.millis("now", now)
	if err != nil {
		return rep, err
	}
	for {
		var n int
		err := r.inEventTx(ctx, func(q storeWriter) error {
			if b, ok := q.(batchSweeper); ok {
				var err error
				n, err = b.sweepExpiredBatch(ctx, nowMS, sweepBatchSize)
				return err
			}
			keys, err := q.deleteExpiredWorkers(ctx, nowMS, sweepBatchSize)
			n = len(keys) // this run's, should an earlier one have failed
			if err != nil || n == 0 {
				return err
			}
			return q.insertEvents(ctx, eventTTLSwept, nowMS, keys)
		})
		if err != nil {
			return rep, err
		}
		r.countSwept(ctx, n)
		rep.Swept += n
		if n < sweepBatchSize {
			break
		}
	}
	// Cannot overflow: nowMS is at least 0 and a retention at most ~9.2e12 ms.
	pruned, err := r.pruneEvents(ctx, nowMS-retention.Milliseconds())
	rep.PrunedEvents = int(pruned)
	if err != nil {
		return rep, err
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
		return 0, c.end(ctx, opError(ctx, "prune events", err))
	}
	if before.IsZero() {
		return 0, c.end(ctx, fmt.Errorf("prune events: %w", invalid("before", "must be set")))
	}
	beforeMS, err := r.millis("before", before)
	if err != nil {
		return 0, c.end(ctx, opError(ctx, "prune events", err))
	}
	n, err := r.pruneEvents(ctx, beforeMS)
	if err != nil {
		return n, c.end(ctx, opError(ctx, "prune events", err))
	}
	return n, c.end(ctx, nil)
}

func (r *Registry) pruneEvents(ctx context.Context, beforeMS int64) (int64, error) {
	var total int64
	for {
		n, err := r.st.writer().deleteEventsBefore(ctx, beforeMS, pruneBatchSize)
		r.countPruned(ctx, n)
		total += n
		if err != nil || n < pruneBatchSize {
			return total, err
		}
	}
}

// RunSweeper sweeps at once and then every cfg.Interval until ctx is done,
// and returns ctx's error. Each sweep takes its time from the registry's
// clock and is logged with the registry's logger, at INFO when it removed
// something and at DEBUG when it did not; a failed sweep is logged at
// ERROR and the next one runs as planned. A cfg out of range is rejected at once
// with an error matching ErrInvalidInput, before any sweep.
func (r *Registry) RunSweeper(ctx context.Context, cfg SweeperConfig) error {
	if err := r.check(); err != nil {
		return opError(ctx, "run sweeper", err)
	}
	interval, retention, err := cfg.resolve(r.cfg.eventRetention)
	if err != nil {
		return opError(ctx, "run sweeper", err)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		start := time.Now()
		sweepCtx, c := r.begin(ctx, opSweepExpiredWorkers)
		rep, err := r.sweep(sweepCtx, time.Time{}, retention)
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
