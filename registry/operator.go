package registry

import (
	"context"
	"time"
)

// ListWorkersIncludingExpired is ListWorkers for operators' eyes: the same
// filters, order and paging, over every stored registration, including
// those whose TTL ran out and that the sweep has not removed yet. args.Now
// is not used: a registration whose ExpiresAt is at or before the caller's
// now is one of those. Everything else in the package treats such a
// registration as absent, and the engine should list workers with
// ListWorkers.
func (r *Registry) ListWorkersIncludingExpired(ctx context.Context, args ListWorkersArgs) (ListWorkersResult, error) {
	ctx, c := r.begin(ctx, opListWorkersIncludingExpired)
	if err := r.check(); err != nil {
		return ListWorkersResult{}, c.end(ctx, r.opError(ctx, "list workers including expired", err))
	}
	// Every stored registration was live at the Unix epoch: its heartbeat
	// is not before 1970 and its TTL is positive. So the live listing at
	// that instant is the whole table, through the same statements.
	args.Now = time.UnixMilli(0)
	res, err := r.listWorkers(ctx, args)
	if err != nil {
		return ListWorkersResult{}, c.end(ctx, r.opError(ctx, "list workers including expired", err))
	}
	return res, c.end(ctx, nil)
}
