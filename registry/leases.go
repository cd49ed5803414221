package registry

import (
	"context"
	"math"
	"time"

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
	res, err := r.listExpiredLeases(ctx, args)
	if err != nil {
		return ListExpiredLeasesResult{}, opError(ctx, "list expired leases", err)
	}
	return res, nil
}

func (r *Registry) listExpiredLeases(ctx context.Context, args ListExpiredLeasesArgs) (ListExpiredLeasesResult, error) {
	if args.Namespace != "" {
		if err := validateID("namespace", args.Namespace); err != nil {
			return ListExpiredLeasesResult{}, err
		}
	}
	limit, err := pageLimit(args.Limit)
	if err != nil {
		return ListExpiredLeasesResult{}, err
	}
	asOf, err := r.millis("as_of", args.AsOf)
	if err != nil {
		return ListExpiredLeasesResult{}, err
	}
	// Below every stored key: partitions start at 0.
	params := leaseQuery{
		AsOfMs:           asOf,
		AfterExpiresAtMs: math.MinInt64,
		AfterPartition:   -1,
		AfterExecutionID: []byte{},
		Namespace:        args.Namespace,
		RowLimit:         limit + 1,
	}
	if c := args.After; c != nil {
		if c.ExpiresAt.IsZero() {
			// Zero would otherwise mean the clock, which is never meant.
			return ListExpiredLeasesResult{}, invalid("after.expires_at", "must be set")
		}
		// Any time a stored lease has is a valid position, even one before
		// 1970: the engine, not this library, writes the expiries.
		if params.AfterExpiresAtMs, err = storedMillis("after.expires_at", c.ExpiresAt); err != nil {
			return ListExpiredLeasesResult{}, err
		}
		params.AfterPartition = int64(c.ExecutionID.Partition)
		params.AfterExecutionID = c.ExecutionID.UUID[:]
		params.AfterAttemptIndex = int64(c.AttemptIndex)
	}
	rows, err := r.st.reader().listExpiredLeases(ctx, params)
	if err != nil {
		return ListExpiredLeasesResult{}, err
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	res := ListExpiredLeasesResult{Leases: make([]ExpiredLease, len(rows))}
	for i, row := range rows {
		if res.Leases[i], err = decodeLease(row); err != nil {
			return ListExpiredLeasesResult{}, err
		}
	}
	if more {
		last := res.Leases[limit-1]
		res.Next = &LeaseCursor{ExpiresAt: last.ExpiresAt, ExecutionID: last.ExecutionID, AttemptIndex: last.AttemptIndex}
	}
	return res, nil
}

func decodeLease(row leaseRow) (ExpiredLease, error) {
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
