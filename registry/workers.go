package registry

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
)

// RegisterWorkerArgs are the arguments of RegisterWorker.
type RegisterWorkerArgs struct {
	Namespace        string
	WorkerID         string // pool identity, shared by many processes
	WorkerInstanceID string // this process; unique per boot
	Lanes            []string
	Capabilities     []string
	LivenessTTL      time.Duration // 1ms to 24h; truncated to the millisecond
	Now              time.Time     // zero: the registry's clock
	// Report, if set, is stored with the registration. Nil stores none
	// when the call registers (a new registration starts without one) and
	// keeps the stored one when it refreshes a live registration.
	Report *WorkerReport
}

// HeartbeatWorkerArgs are the arguments of HeartbeatWorker.
type HeartbeatWorkerArgs struct {
	Namespace        string
	WorkerInstanceID string
	Now              time.Time // zero: the registry's clock
	// Report, if set, replaces the stored one, in the heartbeat's own
	// statement; nil keeps the stored one. A heartbeat that finds no live
	// registration writes neither.
	Report *WorkerReport
}

// HeartbeatResult is what HeartbeatWorker returns.
type HeartbeatResult struct {
	Outcome HeartbeatOutcome
	// NextExpiry is when the registration stops being live unless it
	// heartbeats again: Now plus the stored TTL. Zero when not registered.
	NextExpiry time.Time
	// Directive tells the worker whether an operator asked it to drain.
	Directive Directive
}

// MarkWorkerDeadArgs are the arguments of MarkWorkerDead.
type MarkWorkerDeadArgs struct {
	Namespace        string
	WorkerInstanceID string
	Reason           string    // at most 256 bytes; recorded in the event
	Now              time.Time // zero: the registry's clock
}

// ListWorkersArgs are the arguments of ListWorkers.
type ListWorkersArgs struct {
	Namespace  string        // "" lists every namespace
	Lane       string        // "" matches any lane
	Capability string        // "" matches any capability
	After      *WorkerCursor // nil starts at the beginning
	Limit      int           // 0: DefaultLimit; above MaxLimit: MaxLimit
	Now        time.Time     // zero: the registry's clock
}

// WorkerCursor is the position after which a ListWorkers page starts: the
// last worker of the previous page.
type WorkerCursor struct {
	Namespace        string
	WorkerInstanceID string
}

// ListWorkersResult is a page of live workers.
type ListWorkersResult struct {
	Workers []WorkerInfo
	// Next is the cursor for the following page, nil when no more live
	// workers matched as of the call.
	Next *WorkerCursor
}

// WorkerInfo describes a live registration.
type WorkerInfo struct {
	Namespace        string
	WorkerID         string
	WorkerInstanceID string
	Lanes            []string // sorted, de-duplicated
	Capabilities     []string // sorted, de-duplicated; nil when none
	LastHeartbeat    time.Time
	RegisteredAt     time.Time
	ExpiresAt        time.Time // LastHeartbeat + LivenessTTL
	LivenessTTL      time.Duration
	Draining         bool
	// Report is the last report the worker sent with a registration or a
	// heartbeat; nil when it has sent none since it registered.
	Report *WorkerReport
}

// RegisterWorker registers a worker instance, or refreshes its live
// registration. It returns Registered when no live registration existed (an
// expired one not yet swept is replaced, and recorded as swept), and
// Refreshed when one did: lanes, capabilities, TTL and heartbeat are
// overwritten and RegisteredAt is kept. The registration is draining while
// a drain of the instance is pending (RequestDrain, until ResumeWorker),
// whether or not an earlier registration lapsed in between. A killed
// instance (MarkWorkerDead) may be registered here; a Worker's loop never
// registers one.
//
// An instance live under another worker ID is rejected with
// ErrInstanceReassigned and nothing is written.
func (r *Registry) RegisterWorker(ctx context.Context, args RegisterWorkerArgs) (RegisterOutcome, error) {
	return r.register(ctx, args, false)
}

// register is RegisterWorker; unlessKilled is registerWorker's.
func (r *Registry) register(ctx context.Context, args RegisterWorkerArgs, unlessKilled bool) (RegisterOutcome, error) {
	ctx, c := r.begin(ctx, opRegisterWorker)
	if err := r.check(); err != nil {
		return 0, c.end(ctx, r.opError(ctx, "register worker", err))
	}
	outcome, err := r.registerWorker(ctx, args, unlessKilled)
	r.countRegistration(ctx, outcome, err)
	if err != nil {
		return 0, c.end(ctx, r.opError(ctx, "register worker", err))
	}
	return outcome, c.end(ctx, nil)
}

// registerWorker registers; unlessKilled refuses, in the same
// transaction, an instance that MarkWorkerDead killed, with an error
// matching ErrMarkedDead.
func (r *Registry) registerWorker(ctx context.Context, args RegisterWorkerArgs, unlessKilled bool) (RegisterOutcome, error) {
	if err := validateNewID("namespace", args.Namespace); err != nil {
		return 0, err
	}
	if err := validateNewID("worker_instance_id", args.WorkerInstanceID); err != nil {
		return 0, err
	}
	if err := validateNewID("worker_id", args.WorkerID); err != nil {
		return 0, err
	}
	lanes, err := encodeTokens("lanes", args.Lanes, 1, maxLanes)
	if err != nil {
		return 0, err
	}
	caps, err := encodeTokens("capabilities", args.Capabilities, 0, maxCapabilities)
	if err != nil {
		return 0, err
	}
	ttl, err := validateLivenessTTL(args.LivenessTTL)
	if err != nil {
		return 0, err
	}
	report, err := validateReport(args.Report)
	if err != nil {
		return 0, err
	}
	now, err := r.millis("now", args.Now)
	if err != nil {
		return 0, err
	}

	outcome := Registered
	key := store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID}
	if w, ok := r.st.(store.OneStatementWriter); ok && !unlessKilled {
		// Postgres: the common case, a live registration refreshed, in one
		// statement with its event; anything else in the transaction below
		// (and the worker loop's registrations, which read the kill in it).
		now := r.lockedNow(args.Now, now)
		row := store.WorkerRow{
			Namespace: args.Namespace, WorkerInstanceID: args.WorkerInstanceID, WorkerID: args.WorkerID,
			Lanes: lanes, CapabilitiesCsv: caps, LastHeartbeatMs: now, LivenessTTLMs: ttl,
		}
		setReport(&row, report)
		refreshed, err := w.RefreshRegistration(ctx, row, !args.Now.IsZero())
		if err != nil {
			return 0, err
		}
		if refreshed {
			return Refreshed, nil
		}
	}
	err = r.inTx(ctx, func(q store.Writer) error {
		outcome = Registered // this run's, should an earlier one have failed
		newRow := func(now int64) store.WorkerRow {
			row := store.WorkerRow{
				Namespace:        args.Namespace,
				WorkerInstanceID: args.WorkerInstanceID,
				WorkerID:         args.WorkerID,
				Lanes:            lanes,
				CapabilitiesCsv:  caps,
				LastHeartbeatMs:  now,
				LivenessTTLMs:    ttl,
				RegisteredAtMs:   now,
				ExpiresAtMs:      now + ttl,
			}
			setReport(&row, report)
			return row
		}
		if rf, ok := q.(store.LiveRefresher); ok && !unlessKilled {
			// The common case, a live registration refreshed, in one
			// statement; anything else reads the row first. (A store with a
			// refresher holds the write lock from the transaction's start.)
			now := r.lockedNow(args.Now, now)
			refreshed, err := rf.RefreshLiveWorker(ctx, newRow(now))
			if err != nil {
				return err
			}
			if refreshed {
				outcome = Refreshed
				return insertEvent(ctx, q, args.Namespace, args.WorkerInstanceID, eventRefreshed, now, nil)
			}
		}
		prev, found, err := q.GetWorker(ctx, key)
		if err != nil {
			return err
		}
		if unlessKilled {
			// After GetWorker, which holds the key and its row (Postgres):
			// a kill deletes the live row, so one that committed while this
			// waited for it is read here, and one that has not yet begun
			// will delete what this writes.
			if err := refuseKilled(ctx, q, key); err != nil {
				return err
			}
		}
		// After getWorker, which holds the row (Postgres) if the
		// transaction did not hold the write lock from its start (SQLite).
		now = r.lockedNow(args.Now, now)
		row := newRow(now)
		switch {
		case !found:
		case prev.ExpiresAtMs > now:
			if prev.WorkerID != args.WorkerID {
				return &reassignedError{instance: args.WorkerInstanceID, liveWorker: prev.WorkerID, worker: args.WorkerID}
			}
			outcome, row.RegisteredAtMs = Refreshed, prev.RegisteredAtMs
			if report == nil {
				// A refresh without a report keeps the stored one.
				row.ReportInFlight, row.ReportCapacity, row.ReportVersion = prev.ReportInFlight, prev.ReportCapacity, prev.ReportVersion
			}
		default:
			// The old registration expired without being swept. Record its
			// end as the sweep would have, so that every registration in
			// the audit log ends exactly once.
			if err := insertEvent(ctx, q, args.Namespace, args.WorkerInstanceID, eventTTLSwept, now, nil); err != nil {
				return err
			}
		}
		if err := q.UpsertWorker(ctx, row); err != nil {
			return err
		}
		kind := eventRegistered
		if outcome == Refreshed {
			kind = eventRefreshed
		}
		return insertEvent(ctx, q, args.Namespace, args.WorkerInstanceID, kind, now, nil)
	})
	if err != nil {
		return 0, err
	}
	return outcome, nil
}

// refuseKilled returns an error matching ErrMarkedDead, with the kill's
// reason, if MarkWorkerDead killed the instance.
func refuseKilled(ctx context.Context, q store.Writer, key store.InstanceKey) error {
	kill, killed, err := q.GetKill(ctx, key)
	if err != nil || !killed {
		return err
	}
	reason := ""
	if kill.Reason != nil {
		reason = *kill.Reason
	}
	return fmt.Errorf("%w (%q)", ErrMarkedDead, reason)
}

// HeartbeatWorker moves a live registration's expiry to Now plus its TTL.
// A registration that is absent or expired gets HeartbeatNotRegistered and
// nothing is written: the worker must register again.
//
// With a zero Now, liveness and the expiry are judged at a time read once
// the heartbeat holds the write lock (SQLite) or the row's lock
// (Postgres), as for every write: a heartbeat that waited for another
// writer does not revive a registration that expired meanwhile, nor set an
// expiry already past. With an explicit Now, the expiry is Now plus the TTL
// even when that is earlier than the stored one. Heartbeat one instance
// from one goroutine.
func (r *Registry) HeartbeatWorker(ctx context.Context, args HeartbeatWorkerArgs) (HeartbeatResult, error) {
	ctx, c := r.begin(ctx, opHeartbeatWorker)
	if err := r.check(); err != nil {
		return HeartbeatResult{}, c.end(ctx, r.opError(ctx, "heartbeat worker", err))
	}
	res, err := r.heartbeatWorker(ctx, args)
	r.countHeartbeats(ctx, []HeartbeatResult{res}, 1, err)
	if err != nil {
		return HeartbeatResult{}, c.end(ctx, r.opError(ctx, "heartbeat worker", err))
	}
	return res, c.end(ctx, nil)
}

func (r *Registry) heartbeatWorker(ctx context.Context, args HeartbeatWorkerArgs) (HeartbeatResult, error) {
	if err := validateInstance(args.Namespace, args.WorkerInstanceID); err != nil {
		return HeartbeatResult{}, err
	}
	report, err := validateReport(args.Report)
	if err != nil {
		return HeartbeatResult{}, err
	}
	now, err := r.millis("now", args.Now)
	if err != nil {
		return HeartbeatResult{}, err
	}
	switch {
	case !r.cfg.heartbeatEvents && !args.Now.IsZero():
		// One statement needs no explicit transaction.
		return r.heartbeatOne(ctx, r.st.Writer(), args, report, now)
	case !r.cfg.heartbeatEvents:
		row, found, err := r.st.HeartbeatAt(ctx, store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID},
			report, func() int64 { return r.lockedNow(args.Now, now) })
		if err != nil {
			return HeartbeatResult{}, err
		}
		if !found {
			return HeartbeatResult{Outcome: HeartbeatNotRegistered}, nil
		}
		return heartbeatResult(row.ExpiresAtMs, row.Draining), nil
	}
	key := store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID}
	if w, ok := r.st.(store.OneStatementWriter); ok {
		// Postgres: the heartbeat and its event in one statement.
		row, found, err := w.HeartbeatWithEventAt(ctx, key, report, func() int64 { return r.lockedNow(args.Now, now) }, !args.Now.IsZero())
		if err != nil {
			return HeartbeatResult{}, err
		}
		if !found {
			return HeartbeatResult{Outcome: HeartbeatNotRegistered}, nil
		}
		return heartbeatResult(row.ExpiresAtMs, row.Draining), nil
	}
	var res HeartbeatResult
	err = r.inTx(ctx, func(q store.Writer) error {
		if args.Now.IsZero() {
			// Postgres: the row's lock first, then the time.
			if _, err := q.LockWorkers(ctx, []store.InstanceKey{key}, now); err != nil {
				return err
			}
		}
		res, err = r.heartbeatOne(ctx, q, args, report, r.lockedNow(args.Now, now))
		return err
	})
	return res, err
}

// heartbeatOne refreshes one live registration, writing report (validated
// args.Report) in the same statement, and, when heartbeat events are on,
// records the event; q must then be a transaction's.
func (r *Registry) heartbeatOne(ctx context.Context, q store.Writer, args HeartbeatWorkerArgs, report *store.Report, now int64) (HeartbeatResult, error) {
	row, found, err := q.HeartbeatLiveWorker(ctx, store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID}, report, now)
	if err != nil {
		return HeartbeatResult{}, err
	}
	if !found {
		return HeartbeatResult{Outcome: HeartbeatNotRegistered}, nil
	}
	if r.cfg.heartbeatEvents {
		if err := insertEvent(ctx, q, args.Namespace, args.WorkerInstanceID, eventHeartbeat, now, nil); err != nil {
			return HeartbeatResult{}, err
		}
	}
	return heartbeatResult(row.ExpiresAtMs, row.Draining), nil
}

func heartbeatResult(expiresAtMS int64, draining bool) HeartbeatResult {
	res := HeartbeatResult{Outcome: HeartbeatRefreshed, NextExpiry: fromMillis(expiresAtMS)}
	if draining {
		res.Directive = DirectiveDrain
	}
	return res
}

// MarkWorkerDead removes a live registration and records a marked_dead
// event with the reason, and a kill of the instance that outlives the
// event's pruning: a Worker's loop never registers a killed instance
// again (see StartWorker). A registration that is absent or already expired
// gets MarkNotRegistered and nothing is written; the sweep records the end
// of an expired one.
func (r *Registry) MarkWorkerDead(ctx context.Context, args MarkWorkerDeadArgs) (MarkDeadOutcome, error) {
	ctx, c := r.begin(ctx, opMarkWorkerDead)
	if err := r.check(); err != nil {
		return 0, c.end(ctx, r.opError(ctx, "mark worker dead", err))
	}
	outcome, err := r.markWorkerDead(ctx, args)
	if err != nil {
		return 0, c.end(ctx, r.opError(ctx, "mark worker dead", err))
	}
	return outcome, c.end(ctx, nil)
}

func (r *Registry) markWorkerDead(ctx context.Context, args MarkWorkerDeadArgs) (MarkDeadOutcome, error) {
	if err := validateInstance(args.Namespace, args.WorkerInstanceID); err != nil {
		return 0, err
	}
	if err := validateReason(args.Reason); err != nil {
		return 0, err
	}
	now, err := r.millis("now", args.Now)
	if err != nil {
		return 0, err
	}
	outcome := MarkNotRegistered
	err = r.inTx(ctx, func(q store.Writer) error {
		now = r.lockedNow(args.Now, now)
		outcome = MarkNotRegistered // this run's, should an earlier one have failed
		key := store.InstanceKey{Namespace: args.Namespace, InstanceID: args.WorkerInstanceID}
		ok, err := q.DeleteLiveWorker(ctx, key, now)
		if err != nil || !ok {
			return err
		}
		if err := q.RecordKill(ctx, key, now, &args.Reason); err != nil {
			return err
		}
		outcome = Marked
		return insertEvent(ctx, q, args.Namespace, args.WorkerInstanceID, eventMarkedDead, now, &args.Reason)
	})
	if err != nil {
		return 0, err
	}
	return outcome, nil
}

// ListWorkers returns a page of the registrations live at Now, ordered by
// namespace then instance ID (byte order), optionally filtered by namespace,
// lane and capability.
func (r *Registry) ListWorkers(ctx context.Context, args ListWorkersArgs) (ListWorkersResult, error) {
	ctx, c := r.begin(ctx, opListWorkers)
	if err := r.check(); err != nil {
		return ListWorkersResult{}, c.end(ctx, r.opError(ctx, "list workers", err))
	}
	res, err := r.listWorkers(ctx, args)
	if err != nil {
		return ListWorkersResult{}, c.end(ctx, r.opError(ctx, "list workers", err))
	}
	return res, c.end(ctx, nil)
}

func (r *Registry) listWorkers(ctx context.Context, args ListWorkersArgs) (ListWorkersResult, error) {
	if args.Namespace != "" {
		if err := validateID("namespace", args.Namespace); err != nil {
			return ListWorkersResult{}, err
		}
	}
	if args.Lane != "" {
		if err := validateToken("lane", args.Lane); err != nil {
			return ListWorkersResult{}, err
		}
	}
	if args.Capability != "" {
		if err := validateToken("capability", args.Capability); err != nil {
			return ListWorkersResult{}, err
		}
	}
	var after WorkerCursor
	if args.After != nil {
		after = *args.After
		if err := validateCursor(args.Namespace, after); err != nil {
			return ListWorkersResult{}, err
		}
	}
	limit, err := pageLimit(args.Limit)
	if err != nil {
		return ListWorkersResult{}, err
	}
	now, err := r.millis("now", args.Now)
	if err != nil {
		return ListWorkersResult{}, err
	}

	// One row more than the page tells whether another page exists.
	rows, err := r.st.Reader().ListWorkers(ctx, store.WorkerQuery{
		Namespace:      args.Namespace,
		AfterNamespace: after.Namespace,
		AfterInstance:  after.WorkerInstanceID,
		NowMs:          now,
		Lane:           args.Lane,
		Capability:     args.Capability,
		RowLimit:       limit + 1,
	})
	if err != nil {
		return ListWorkersResult{}, err
	}
	var res ListWorkersResult
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		res.Next = &WorkerCursor{Namespace: last.Namespace, WorkerInstanceID: last.WorkerInstanceID}
	}
	res.Workers = make([]WorkerInfo, len(rows))
	for i, row := range rows {
		if res.Workers[i], err = decodeWorker(row); err != nil {
			return ListWorkersResult{}, err
		}
	}
	return res, nil
}

// decodeWorker decodes a stored row. The engine writes rows too, with
// shapes the registry's validation would refuse (no lanes, a TTL of any
// size, even negative as an unsigned value cast to signed): they decode as
// stored, with the TTL saturated to what a Duration holds, rather than
// failing a whole page.
func decodeWorker(row store.WorkerRow) (WorkerInfo, error) {
	ttl := time.Duration(math.MaxInt64)
	if row.LivenessTTLMs < math.MaxInt64/int64(time.Millisecond) {
		ttl = time.Duration(max(row.LivenessTTLMs, math.MinInt64/int64(time.Millisecond))) * time.Millisecond
	}
	return WorkerInfo{
		Namespace:        row.Namespace,
		WorkerID:         row.WorkerID,
		WorkerInstanceID: row.WorkerInstanceID,
		Lanes:            decodeTokens(row.Lanes),
		Capabilities:     decodeTokens(row.CapabilitiesCsv),
		LastHeartbeat:    fromMillis(row.LastHeartbeatMs),
		RegisteredAt:     fromMillis(row.RegisteredAtMs),
		ExpiresAt:        fromMillis(row.ExpiresAtMs),
		LivenessTTL:      ttl,
		Draining:         row.Draining,
		Report:           decodeReport(row.ReportInFlight, row.ReportCapacity, row.ReportVersion),
	}, nil
}

func validateInstance(namespace, instanceID string) error {
	if err := validateID("namespace", namespace); err != nil {
		return err
	}
	return validateID("worker_instance_id", instanceID)
}

// validateCursor rejects a cursor that could not have come from a page of
// the same listing: a malformed one, or one from another namespace.
func validateCursor(namespace string, c WorkerCursor) error {
	if err := validateID("after.namespace", c.Namespace); err != nil {
		return err
	}
	if err := validateID("after.worker_instance_id", c.WorkerInstanceID); err != nil {
		return err
	}
	if namespace != "" && c.Namespace != namespace {
		return invalid("after.namespace", "cursor is from namespace %q, not %q", c.Namespace, namespace)
	}
	return nil
}
