package registry

import (
	"context"
	"math"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/google/uuid"
)

// ListExpiredLeasesArgs are the arguments of ListExpiredLeases.
type ListExpiredLeasesArgs struct {
	AsOf      time.Time    // leases expiring at or before it; zero: the registry's clock
	Namespace string       // "" lists every namespace
	After     *LeaseCursor // nil starts at the beginning
	Limit     int          // 0: DefaultLimit; above MaxLimit: MaxLimit
}

// LeaseCursor is the position after which a ListExpiredLeases page starts:
// the last lease of the previous page.
type LeaseCursor struct {
	ExpiresAt   time.Time // as stored: any time that int64 milliseconds since 1970 can hold
	ExecutionID ExecutionID
	// AttemptIndex orders two held attempts of one execution that share an
	// expiry, which the engine's tables allow. Next sets it; a cursor built
	// by hand without it repeats that execution's later attempts.
	AttemptIndex uint32
}

// ListExpiredLeasesResult is a page of expired leases.
type ListExpiredLeasesResult struct {
	Leases []ExpiredLease
	// Next is the cursor for the following page, nil when no more expired
	// leases matched as of the call.
	Next *LeaseCursor
}

// ExpiredLease is an attempt whose lease expired while its execution is
// still in a leased state, so that the engine can reclaim it.
type ExpiredLease struct {
	ExecutionID      ExecutionID
	LeaseID          uuid.UUID // derived from execution, attempt and epoch
	LeaseEpoch       uint64
	AttemptIndex     uint32
	WorkerInstanceID string // the holder
	Namespace        string // the execution's; "" when it has none
	ExpiresAt        time.Time
}

// ListExpiredLeases returns a page of the leases that expired at or before
// AsOf: attempts with a holder whose execution is active, claimed or running.
// Pages are ordered by (expiry, partition, execution UUID bytes, attempt);
// walking them with Next visits every such lease exactly once.
func (r *Registry) ListExpiredLeases(ctx context.Context, args ListExpiredLeasesArgs) (ListExpiredLeasesResult, error) {
	ctx, c := r.begin(ctx, opListExpiredLeases)
	if err := r.check(); err != nil {
		return ListExpiredLeasesResult{}, c.end(ctx, r.opError(ctx, "list expired leases", err))
	}
	res, err := r.listExpiredLeases(ctx, args)
	if err != nil {
		return ListExpiredLeasesResult{}, c.end(ctx, r.opError(ctx, "list expired leases", err))
	}
	return res, c.end(ctx, nil)
}

func (r *Registry) listExpiredLeases(ctx context.Context, args ListExpiredLeasesArgs) (ListExpiredLeasesResult, error) {
	params, limit, err := r.leaseQuery(args.AsOf, args.Namespace, args.After, args.Limit)
	if err != nil {
		return ListExpiredLeasesResult{}, err
	}
	rows, err := r.st.Reader().ListExpiredLeases(ctx, params)
	if err != nil {
		return ListExpiredLeasesResult{}, err
	}
	leases, next, err := leasePage(rows, limit)
	if err != nil {
		return ListExpiredLeasesResult{}, err
	}
	return ListExpiredLeasesResult{Leases: leases, Next: next}, nil
}

// leaseQuery validates the arguments of a lease listing and returns its
// query, which asks for one row more than the page, and the page's size.
func (r *Registry) leaseQuery(asOf time.Time, namespace string, after *LeaseCursor, pageSize int) (store.LeaseQuery, int, error) {
	if namespace != "" {
		if err := validateID("namespace", namespace); err != nil {
			return store.LeaseQuery{}, 0, err
		}
	}
	limit, err := pageLimit(pageSize)
	if err != nil {
		return store.LeaseQuery{}, 0, err
	}
	asOfMS, err := r.millis("as_of", asOf)
	if err != nil {
		return store.LeaseQuery{}, 0, err
	}
	// Below every stored key: partitions start at 0.
	params := store.LeaseQuery{
		AsOfMs:           asOfMS,
		AfterExpiresAtMs: math.MinInt64,
		AfterPartition:   -1,
		AfterExecutionID: []byte{},
		Namespace:        namespace,
		RowLimit:         limit + 1,
	}
	if c := after; c != nil {
		if c.ExpiresAt.IsZero() {
			// Zero would otherwise mean the clock, which is never meant.
			return store.LeaseQuery{}, 0, invalid("after.expires_at", "must be set")
		}
		// Any time a stored lease has is a valid position, even one before
		// 1970: the engine, not this library, writes the expiries.
		if params.AfterExpiresAtMs, err = storedMillis("after.expires_at", c.ExpiresAt); err != nil {
			return store.LeaseQuery{}, 0, err
		}
		params.AfterPartition = int64(c.ExecutionID.Partition)
		params.AfterExecutionID = c.ExecutionID.UUID[:]
		params.AfterAttemptIndex = int64(c.AttemptIndex)
	}
	return params, limit, nil
}

// leasePage decodes a page of rows, which hold one more than limit when
// another page follows, and returns the cursor of that page.
func leasePage(rows []store.LeaseRow, limit int) ([]ExpiredLease, *LeaseCursor, error) {
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	leases := make([]ExpiredLease, len(rows))
	for i, row := range rows {
		var err error
		if leases[i], err = decodeLease(row); err != nil {
			return nil, nil, err
		}
	}
	if !more {
		return leases, nil, nil
	}
	last := leases[limit-1]
	return leases, &LeaseCursor{ExpiresAt: last.ExpiresAt, ExecutionID: last.ExecutionID, AttemptIndex: last.AttemptIndex}, nil
}

func decodeLease(row store.LeaseRow) (ExpiredLease, error) {
	execution, err := uuid.FromBytes(row.ExecutionID)
	if err != nil || row.PartitionKey < 0 || row.PartitionKey > math.MaxUint16 ||
		row.AttemptIndex < 0 || row.AttemptIndex > math.MaxInt32 || row.LeaseEpoch < 0 {
		return ExpiredLease{}, corrupt("attempt (partition %d, execution %x, attempt %d, epoch %d)",
			row.PartitionKey, row.ExecutionID, row.AttemptIndex, row.LeaseEpoch)
	}
	attempt, epoch := uint32(row.AttemptIndex), uint64(row.LeaseEpoch)
	return ExpiredLease{
		ExecutionID:      ExecutionID{Partition: uint16(row.PartitionKey), UUID: execution},
		LeaseID:          leaseID(execution, attempt, epoch),
		LeaseEpoch:       epoch,
		AttemptIndex:     attempt,
		WorkerInstanceID: row.WorkerInstanceID,
		Namespace:        row.Namespace,
		ExpiresAt:        fromMillis(row.LeaseExpiresAtMs),
	}, nil
}
