package registry_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// Shape of TestStressInvariants. 32 goroutines share 12 instances in 2
// namespaces, so most operations collide with another on the same row; the
// TTLs are a few rounds of the shared clock, so registrations expire, get
// swept, or get replaced by a new register all the time.
const (
	stressGoroutines   = 32
	stressOpsDefault   = 100 // per goroutine and per subtest: ~15 s in all under -race on 2 cores
	stressOpsShort     = 25
	stressOpsCoverage  = 50 // from this many ops per goroutine, every path must be reached
	stressInstancesPer = 6  // per namespace
	stressLeases       = 240
	stressIntruderID   = "pool-intruder" // a second worker ID, to hit ErrInstanceReassigned
	stressMaxPages     = 200             // a walk longer than this is a runaway cursor
	stressSeedEnv      = "REGISTRY_STRESS_SEED"
	stressOpsEnv       = "REGISTRY_STRESS_OPS"
)

var (
	stressNamespaces = []string{"ns-a", "ns-b"}
	stressTTLs       = []time.Duration{20 * time.Millisecond, 60 * time.Millisecond, 200 * time.Millisecond}
	stressLanes      = []string{"default", "gpu", "batch"}
	stressCaps       = []string{"cuda", "avx512"}
)

// stressClock is the goroutines' shared fake clock. It only moves forward,
// one tick (2 ms) at a time. Every operation runs at an even millisecond
// after t0 and every sweep at an odd one, so that the audit log mostly
// tells a sweep's ttl_swept event from the one a register writes when it
// replaces an expired row (see runStress for when it cannot).
type stressClock struct{ ticks atomic.Int64 }

func (c *stressClock) now() time.Time {
	return t0.Add(time.Duration(2*c.ticks.Load()) * time.Millisecond)
}

func (c *stressClock) sweepNow() time.Time { return c.now().Add(time.Millisecond) }

// stressObs counts the outcomes one goroutine saw.
type stressObs struct {
	registered, refreshed, reassigned     int
	beats, beatsNotRegistered, beatsDrain int
	marked, markNotRegistered             int
	drains, drainNotRegistered            int
	sweeps, swept                         int
	workerWalks, leaseWalks, eventPages   int
	markReasons                           map[string]workerKey // reason of each Marked call → its instance
}

func (o *stressObs) String() string {
	return fmt.Sprintf("registered %d, refreshed %d, reassigned %d; heartbeats refreshed %d (%d told to drain), not registered %d; "+
		"marked %d, not registered %d; drains %d, not registered %d; %d sweeps swept %d; %d worker walks, %d lease walks, %d event pages",
		o.registered, o.refreshed, o.reassigned, o.beats, o.beatsDrain, o.beatsNotRegistered,
		o.marked, o.markNotRegistered, o.drains, o.drainNotRegistered, o.sweeps, o.swept, o.workerWalks, o.leaseWalks, o.eventPages)
}

func (o *stressObs) add(p *stressObs) {
	o.registered += p.registered
	o.refreshed += p.refreshed
	o.reassigned += p.reassigned
	o.beats += p.beats
	o.beatsNotRegistered += p.beatsNotRegistered
	o.beatsDrain += p.beatsDrain
	o.marked += p.marked
	o.markNotRegistered += p.markNotRegistered
	o.drains += p.drains
	o.drainNotRegistered += p.drainNotRegistered
	o.sweeps += p.sweeps
	o.swept += p.swept
	o.workerWalks += p.workerWalks
	o.leaseWalks += p.leaseWalks
	o.eventPages += p.eventPages
	for reason, k := range p.markReasons {
		o.markReasons[reason] = k
	}
}

// TestStressInvariants runs 32 goroutines of random registers, heartbeats
// (single and batched), mark-deads, drains, listings, sweeps and expired-
// lease walks against one database file, with a shared fake clock and TTLs
// short enough that registrations keep expiring. Every error fails the test,
// SQLITE_BUSY above all: the package promises that concurrent callers wait
// for the writer instead of failing. While running, every listing is checked
// against the contract (live rows only, strictly ordered pages, the lease
// walk exactly equal to the seeded leases). Afterwards the database itself
// is checked:
//
//	(a) a paged ListWorkers at the final time lists exactly the rows of
//	    ff_worker_registry that are live then, each once, as stored;
//	(b) the audit log is a well-formed history of the rows (checkHistory):
//	    each registration ends at most once, nothing happens to one that
//	    ended, and the rows left are exactly the registrations open in the
//	    log; with heartbeat events on, the log also gives every
//	    registration's expiry (each instance has one TTL), so each event is
//	    checked against the liveness rule at its own time;
//	(c) it records exactly what the callers were told: one registered event
//	    per Registered, one refreshed per Refreshed, one marked_dead per
//	    Marked (with that call's reason and instance), one drain_requested
//	    per DrainRequested, one heartbeat per refreshed heartbeat when
//	    heartbeat events are on, one ttl_swept at a sweep's time per row a
//	    sweep reported, and every other ttl_swept written together with a
//	    registered by a register that replaced an expired row.
//
// The seed is logged; REGISTRY_STRESS_SEED replays it and REGISTRY_STRESS_OPS
// sets the operations per goroutine (for long runs outside CI).
func TestStressInvariants(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(stressSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", stressSeedEnv, s, err)
		}
	}
	ops := stressOpsDefault
	if testing.Short() {
		ops = stressOpsShort
	}
	if s := os.Getenv(stressOpsEnv); s != "" {
		var err error
		if ops, err = strconv.Atoi(s); err != nil || ops < 1 {
			t.Fatalf("%s=%q: want a positive integer", stressOpsEnv, s)
		}
	}
	t.Logf("seed %d, %d goroutines x %d ops per subtest (replay with %s=%d)", seed, stressGoroutines, ops, stressSeedEnv, seed)
	// Heartbeats are a single statement without events and a transaction
	// with them: both paths must hold up.
	eachEngine(t, func(t *testing.T, s store) {
		for i, heartbeatEvents := range []bool{true, false} {
			t.Run(fmt.Sprintf("heartbeat_events=%v", heartbeatEvents), func(t *testing.T) {
				runStress(t, s, seed+uint64(i), ops, heartbeatEvents)
			})
		}
	})
}

// stressLease is a seeded lease and the ID it was written under.
type stressLease struct {
	registrytest.Lease
	ID registry.ExecutionID
}

// stressRun is the state the goroutines share.
type stressRun struct {
	r      *registry.Registry
	clock  *stressClock
	keys   []workerKey
	ttl    map[workerKey]time.Duration // each instance always registers with its own TTL
	leases []stressLease
}

func runStress(t *testing.T, st store, seed uint64, ops int, heartbeatEvents bool) {
	ctx := context.Background()
	clock := &stressClock{}
	r, b := setup(t, st, registry.WithClock(clock.now), registry.WithHeartbeatEvents(heartbeatEvents))
	s := &stressRun{r: r, clock: clock, ttl: map[workerKey]time.Duration{}}
	for _, ns := range stressNamespaces {
		for i := range stressInstancesPer {
			k := workerKey{ns, fmt.Sprintf("w-%d", i)}
			s.keys = append(s.keys, k)
			s.ttl[k] = stressTTLs[i%len(stressTTLs)]
		}
	}
	s.leases = seedStressLeases(t, b, rand.New(rand.NewPCG(seed, 0)), ops)

	start := time.Now()
	total := &stressObs{markReasons: map[string]workerKey{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range stressGoroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)+1))
			obs := &stressObs{markReasons: map[string]workerKey{}}
			defer func() {
				mu.Lock()
				total.add(obs)
				mu.Unlock()
			}()
			for i := range ops {
				if err := s.step(ctx, rng, g, i, obs); err != nil {
					t.Errorf("goroutine %d, op %d, at %s: %v", g, i, clock.now().Sub(t0), err)
					return
				}
				clock.ticks.Add(rng.Int64N(2))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	final := clock.now()
	t.Logf("%d ops in %v, fake clock at t0+%v: %v", stressGoroutines*ops, time.Since(start).Round(time.Millisecond), final.Sub(t0), total)

	// (a) The listing at the final time is the live rows, each once.
	_, rows := readState(t, b.raw.DB)
	var live []storedWorker
	expired := 0
	for _, w := range rows {
		if w.ExpiresMS > final.UnixMilli() {
			live = append(live, w)
		} else {
			expired++
		}
	}
	slices.SortFunc(live, func(a, b storedWorker) int {
		return cmp.Or(cmp.Compare(a.Key.Namespace, b.Key.Namespace), cmp.Compare(a.Key.Instance, b.Key.Instance))
	})
	listed, err := walkWorkers(ctx, r, registry.ListWorkersArgs{Limit: 3, Now: final})
	if err != nil {
		t.Fatalf("final listing: %v", err)
	}
	if len(listed) != len(live) {
		t.Errorf("final listing has %d workers, the table %d live rows (and %d expired)", len(listed), len(live), expired)
	}
	for i := range min(len(listed), len(live)) {
		w, row := listed[i], live[i]
		got := storedWorker{
			Key: workerKey{w.Namespace, w.WorkerInstanceID}, WorkerID: w.WorkerID,
			LastHeartbeatMS: w.LastHeartbeat.UnixMilli(), TTLMS: w.LivenessTTL.Milliseconds(),
			RegisteredAtMS: w.RegisteredAt.UnixMilli(), ExpiresMS: w.ExpiresAt.UnixMilli(), Draining: w.Draining,
		}
		if got != row {
			t.Errorf("final listing [%d] = %+v, table row %+v", i, got, row)
		}
	}
	var perNamespace []registry.WorkerInfo
	for _, ns := range stressNamespaces {
		ws, err := walkWorkers(ctx, r, registry.ListWorkersArgs{Namespace: ns, Limit: 2, Now: final})
		if err != nil {
			t.Fatalf("final listing of %s: %v", ns, err)
		}
		perNamespace = append(perNamespace, ws...)
	}
	equal(t, "final listings per namespace, concatenated", instances(perNamespace), instances(listed))

	// A last sweep, just after the final time, removes exactly the rows
	// that are not live then.
	rep, err := r.SweepExpiredWorkers(ctx, clock.sweepNow())
	if err != nil {
		t.Fatalf("final sweep: %v", err)
	}
	equal(t, "final sweep", rep, registry.SweepReport{Swept: expired})
	total.swept += rep.Swept

	// (b) The audit log is a well-formed history of the rows.
	events, rows := readState(t, b.raw.DB)
	equal(t, "rows after the final sweep", len(rows), len(live))
	// With heartbeat events on, the replay knows every registration's
	// expiry and checks each event against the liveness rule.
	opts := historyOptions{
		exactHeartbeat: heartbeatEvents,
		ttl:            func(k workerKey) time.Duration { return s.ttl[k] },
	}
	// Both stores key events by (instance, time, kind): a second event of
	// one kind in one millisecond moves to the next.
	opts.shiftMS = sqliteShiftMS
	stats := checkHistory(t, events, rows, opts)

	// (c) It records exactly what the callers were told.
	equal(t, "registered events (Registered outcomes)", stats.kinds["registered"], total.registered)
	equal(t, "refreshed events (Refreshed outcomes)", stats.kinds["refreshed"], total.refreshed)
	equal(t, "drain_requested events (DrainRequested outcomes)", stats.kinds["drain_requested"], total.drains)
	wantBeats := 0
	if heartbeatEvents {
		wantBeats = total.beats
	}
	equal(t, "heartbeat events (refreshed heartbeats)", stats.kinds["heartbeat"], wantBeats)
	marks := map[string]workerKey{}
	for _, e := range events {
		if e.Kind != "marked_dead" {
			continue
		}
		if _, dup := marks[e.Reason.String]; dup {
			t.Errorf("event %d: a second marked_dead with reason %q", e.ID, e.Reason.String)
		}
		marks[e.Reason.String] = e.Key
	}
	equal(t, "marked_dead events by reason (Marked outcomes)", marks, total.markReasons)
	equal(t, "marked_dead events (Marked outcomes)", stats.kinds["marked_dead"], total.marked)
	// Each row a sweep reports is one ttl_swept event, so the other
	// ttl_swept events are registers' over an expired row, each followed
	// in its transaction by its registered event (stats.replaced counts
	// the events so followed). The log cannot always tell which is which:
	// a sweep's event may be followed at once by a new registration, and
	// an explicit-Now heartbeat that moved an expiry back can make a
	// register's events move to the next millisecond, across the parity of
	// sweeps' (odd) and registers' (even) times. Hence bounds.
	ttlSwept := stats.kinds["ttl_swept"]
	byRegisters := ttlSwept - total.swept
	if byRegisters < 0 || byRegisters > stats.replaced {
		t.Errorf("%d ttl_swept events, %d rows reported swept: %d events by registers over an expired row, but only %d are followed by their registered event",
			ttlSwept, total.swept, byRegisters, stats.replaced)
	}
	t.Logf("audit log: %v; %d ttl_swept by sweeps, %d by registers over an expired row", stats.kinds, total.swept, byRegisters)
	if b.engine == engineSQLite {
		integrityCheck(t, b.path)
	}

	// The run must have exercised what it claims to test. (A short run may
	// legitimately miss a rare path; at the default length the rarest one
	// is reached 20 times or more.)
	if ops < stressOpsCoverage {
		return
	}
	for what, n := range map[string]int{
		"Registered": total.registered, "Refreshed": total.refreshed, "ErrInstanceReassigned": total.reassigned,
		"refreshed heartbeats": total.beats, "heartbeats not registered": total.beatsNotRegistered,
		"heartbeats told to drain": total.beatsDrain, "Marked": total.marked, "marks not registered": total.markNotRegistered,
		"DrainRequested": total.drains, "rows swept": total.swept, "expired rows replaced by a register": byRegisters,
	} {
		if n == 0 {
			t.Errorf("no %s in the whole run: the stress mix no longer reaches that path", what)
		}
	}
}

// seedStressLeases writes executions with leases whose expiries fall over
// the run's clock range, many of them equal across partitions of different
// digit counts, plus leases that must never be listed.
func seedStressLeases(t *testing.T, b *testBundle, rng *rand.Rand, ops int) []stressLease {
	t.Helper()
	partitions := []uint16{0, 1, 9, 10, 11, 99, 100, 1000, 65535}
	namespaces := []string{"ns-a", "ns-b", "ns-c", ""}
	states := []string{"running", "running", "active", "claimed", "completed", "cancelled"}
	// The clock ends near t0 + span ms: each of the 32*ops operations
	// moves it by 0 or 2 ms.
	span := int64(stressGoroutines * ops)
	var leases []registrytest.Lease
	for range stressLeases {
		l := registrytest.Lease{
			ExecutionID:  registry.ExecutionID{Partition: partitions[rng.IntN(len(partitions))]},
			Namespace:    namespaces[rng.IntN(len(namespaces))],
			State:        states[rng.IntN(len(states))],
			AttemptIndex: uint32(rng.IntN(4)),
			LeaseEpoch:   uint64(rng.IntN(5)),
		}
		for i := range l.ExecutionID.UUID {
			l.ExecutionID.UUID[i] = byte(rng.Uint32())
		}
		if rng.IntN(10) > 0 {
			l.WorkerInstanceID = fmt.Sprintf("w-%d", rng.IntN(stressInstancesPer))
		}
		if rng.IntN(20) > 0 {
			// 40 distinct expiries, so ties are common.
			l.ExpiresAt = t0.Add(time.Duration(rng.Int64N(40)*span/40-100) * time.Millisecond)
		}
		leases = append(leases, l)
	}
	ids := registrytest.InsertLeases(t, b.raw.DB, leases...)
	out := make([]stressLease, len(leases))
	for i, l := range leases {
		out[i] = stressLease{Lease: l, ID: ids[i]}
	}
	return out
}

func (s *stressRun) randomKey(rng *rand.Rand) workerKey { return s.keys[rng.IntN(len(s.keys))] }

// step runs one random operation and checks what it returned. Any error,
// or any answer that breaks the contract, is returned.
func (s *stressRun) step(ctx context.Context, rng *rand.Rand, g, i int, obs *stressObs) error {
	switch op := rng.IntN(100); {
	case op < 20:
		return s.register(ctx, rng, obs)
	case op < 36:
		k := s.randomKey(rng)
		before := s.clock.now()
		res, err := s.r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: k.Namespace, WorkerInstanceID: k.Instance})
		if err != nil {
			return err
		}
		return checkStressBeat(fmt.Sprintf("heartbeat %s", k), res, s.ttl[k], before, s.clock.now(), obs)
	case op < 46:
		return s.heartbeatBatch(ctx, rng, obs)
	case op < 56:
		k := s.randomKey(rng)
		reason := fmt.Sprintf("stress g%02d op%04d", g, i)
		o, err := s.r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: k.Namespace, WorkerInstanceID: k.Instance, Reason: reason})
		switch {
		case err != nil:
			return err
		case o == registry.Marked:
			obs.marked++
			obs.markReasons[reason] = k
		case o == registry.MarkNotRegistered:
			obs.markNotRegistered++
		default:
			return fmt.Errorf("mark dead %s: outcome %v", k, o)
		}
	case op < 62:
		k := s.randomKey(rng)
		o, err := s.r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: k.Namespace, WorkerInstanceID: k.Instance})
		switch {
		case err != nil:
			return err
		case o == registry.DrainRequested:
			obs.drains++
		case o == registry.DrainNotRegistered:
			obs.drainNotRegistered++
		default:
			return fmt.Errorf("drain %s: outcome %v", k, o)
		}
	case op < 74:
		return s.listWorkers(ctx, rng, obs)
	case op < 84:
		rep, err := s.r.SweepExpiredWorkers(ctx, s.clock.sweepNow())
		if err != nil {
			return err
		}
		if rep.PrunedEvents != 0 {
			return fmt.Errorf("sweep pruned %d events; none is older than the retention", rep.PrunedEvents)
		}
		obs.sweeps++
		obs.swept += rep.Swept
	case op < 92:
		return s.walkLeases(ctx, rng, obs)
	default:
		return s.eventPage(ctx, rng, obs)
	}
	return nil
}

func (s *stressRun) register(ctx context.Context, rng *rand.Rand, obs *stressObs) error {
	k := s.randomKey(rng)
	args := registry.RegisterWorkerArgs{
		Namespace:        k.Namespace,
		WorkerID:         "pool-" + k.Namespace,
		WorkerInstanceID: k.Instance,
		Lanes:            randomTokens(rng, stressLanes, 1),
		Capabilities:     randomTokens(rng, stressCaps, 0),
		LivenessTTL:      s.ttl[k],
	}
	if rng.IntN(10) == 0 {
		args.WorkerID = stressIntruderID
	}
	o, err := s.r.RegisterWorker(ctx, args)
	switch {
	case errors.Is(err, registry.ErrInstanceReassigned):
		obs.reassigned++
	case err != nil:
		return err
	case o == registry.Registered:
		obs.registered++
	case o == registry.Refreshed:
		obs.refreshed++
	default:
		return fmt.Errorf("register %s: outcome %v", k, o)
	}
	return nil
}

// heartbeatBatch sends 1 to 5 heartbeats, instances possibly repeated
// (which HeartbeatWorkers runs one by one) and times possibly explicit and
// different (which it runs as one statement per time).
func (s *stressRun) heartbeatBatch(ctx context.Context, rng *rand.Rand, obs *stressObs) error {
	batch := make([]registry.HeartbeatWorkerArgs, 1+rng.IntN(5))
	for i := range batch {
		k := s.randomKey(rng)
		batch[i] = registry.HeartbeatWorkerArgs{Namespace: k.Namespace, WorkerInstanceID: k.Instance}
		if rng.IntN(3) == 0 {
			batch[i].Now = s.clock.now().Add(-time.Duration(2*rng.IntN(4)) * time.Millisecond)
		}
	}
	before := s.clock.now()
	res, err := s.r.HeartbeatWorkers(ctx, batch)
	if err != nil {
		return err
	}
	after := s.clock.now()
	if len(res) != len(batch) {
		return fmt.Errorf("heartbeat batch of %d: %d results", len(batch), len(res))
	}
	for i, args := range batch {
		lo, hi := before, after
		if !args.Now.IsZero() {
			lo, hi = args.Now, args.Now
		}
		k := workerKey{args.Namespace, args.WorkerInstanceID}
		if err := checkStressBeat(fmt.Sprintf("batch heartbeat [%d] %s", i, k), res[i], s.ttl[k], lo, hi, obs); err != nil {
			return err
		}
	}
	return nil
}

// checkStressBeat checks a heartbeat's result against the times the call
// could have run at: NextExpiry is one of them plus the instance's TTL.
func checkStressBeat(what string, res registry.HeartbeatResult, ttl time.Duration, lo, hi time.Time, obs *stressObs) error {
	switch res.Outcome {
	case registry.HeartbeatRefreshed:
		obs.beats++
		if res.Directive == registry.DirectiveDrain {
			obs.beatsDrain++
		} else if res.Directive != registry.DirectiveNone {
			return fmt.Errorf("%s: directive %v", what, res.Directive)
		}
		if at := res.NextExpiry.Add(-ttl); at.Before(lo) || at.After(hi) {
			return fmt.Errorf("%s: NextExpiry t0+%v is not a time in [t0+%v, t0+%v] plus its TTL %v",
				what, res.NextExpiry.Sub(t0), lo.Sub(t0), hi.Sub(t0), ttl)
		}
		return nil
	case registry.HeartbeatNotRegistered:
		obs.beatsNotRegistered++
		if res != (registry.HeartbeatResult{Outcome: registry.HeartbeatNotRegistered}) {
			return fmt.Errorf("%s: not registered, yet %+v", what, res)
		}
		return nil
	}
	return fmt.Errorf("%s: outcome %v", what, res.Outcome)
}

// listWorkers walks a random listing in small pages and checks every page
// against the contract. Rows change between pages; the keyset cursor must
// still never repeat or go back.
func (s *stressRun) listWorkers(ctx context.Context, rng *rand.Rand, obs *stressObs) error {
	args := registry.ListWorkersArgs{Limit: 1 + rng.IntN(5), Now: s.clock.now()}
	if rng.IntN(2) == 0 {
		args.Namespace = stressNamespaces[rng.IntN(len(stressNamespaces))]
	}
	if rng.IntN(4) == 0 {
		args.Lane = stressLanes[rng.IntN(len(stressLanes))]
	}
	if rng.IntN(6) == 0 {
		args.Capability = stressCaps[rng.IntN(len(stressCaps))]
	}
	ws, err := walkWorkers(ctx, s.r, args)
	if err != nil {
		return err
	}
	obs.workerWalks++
	for _, w := range ws {
		k := workerKey{w.Namespace, w.WorkerInstanceID}
		switch {
		case args.Namespace != "" && w.Namespace != args.Namespace:
			return fmt.Errorf("listing of namespace %q returned %s", args.Namespace, k)
		case args.Lane != "" && !slices.Contains(w.Lanes, args.Lane):
			return fmt.Errorf("listing of lane %q returned %s with lanes %v", args.Lane, k, w.Lanes)
		case args.Capability != "" && !slices.Contains(w.Capabilities, args.Capability):
			return fmt.Errorf("listing of capability %q returned %s with capabilities %v", args.Capability, k, w.Capabilities)
		case w.LivenessTTL != s.ttl[k]:
			return fmt.Errorf("listed %s has TTL %v, always registered with %v", k, w.LivenessTTL, s.ttl[k])
		case w.WorkerID != "pool-"+w.Namespace && w.WorkerID != stressIntruderID:
			return fmt.Errorf("listed %s has worker ID %q, never registered", k, w.WorkerID)
		}
	}
	return nil
}

// walkWorkers follows ListWorkers' cursor to the end and checks each page:
// at most Limit workers, live at Now, ExpiresAt = LastHeartbeat + TTL, keys
// strictly increasing across pages, Next set only on a full page and equal
// to its last worker.
func walkWorkers(ctx context.Context, r *registry.Registry, args registry.ListWorkersArgs) ([]registry.WorkerInfo, error) {
	var all []registry.WorkerInfo
	for pages := 0; ; pages++ {
		if pages > stressMaxPages {
			return nil, fmt.Errorf("listing %+v: more than %d pages", args, stressMaxPages)
		}
		res, err := r.ListWorkers(ctx, args)
		if err != nil {
			return nil, err
		}
		if len(res.Workers) > args.Limit {
			return nil, fmt.Errorf("listing %+v: page of %d workers", args, len(res.Workers))
		}
		for _, w := range res.Workers {
			k := workerKey{w.Namespace, w.WorkerInstanceID}
			if n := len(all); n > 0 {
				prev := workerKey{all[n-1].Namespace, all[n-1].WorkerInstanceID}
				if cmp.Or(cmp.Compare(prev.Namespace, k.Namespace), cmp.Compare(prev.Instance, k.Instance)) >= 0 {
					return nil, fmt.Errorf("listing %+v: %s after %s", args, k, prev)
				}
			}
			if !w.ExpiresAt.After(args.Now) {
				return nil, fmt.Errorf("listing at t0+%v returned %s, which expired at t0+%v", args.Now.Sub(t0), k, w.ExpiresAt.Sub(t0))
			}
			if !w.ExpiresAt.Equal(w.LastHeartbeat.Add(w.LivenessTTL)) || len(w.Lanes) == 0 {
				return nil, fmt.Errorf("listing returned an inconsistent worker %+v", w)
			}
			all = append(all, w)
		}
		if res.Next == nil {
			return all, nil
		}
		if len(res.Workers) == 0 {
			return nil, fmt.Errorf("listing %+v: empty page with Next %+v", args, *res.Next)
		}
		last := res.Workers[len(res.Workers)-1]
		if len(res.Workers) != args.Limit || *res.Next != (registry.WorkerCursor{Namespace: last.Namespace, WorkerInstanceID: last.WorkerInstanceID}) {
			return nil, fmt.Errorf("listing %+v: page of %d ending at %s/%s has Next %+v", args, len(res.Workers), last.Namespace, last.WorkerInstanceID, *res.Next)
		}
		args.After = res.Next
	}
}

// walkLeases walks the expired leases as of a random time near the clock,
// in random page sizes, and compares the walk with the seeded leases: the
// leases are not written during the run, so it must be exactly the expected
// list, in (expiry, partition, UUID bytes) order.
func (s *stressRun) walkLeases(ctx context.Context, rng *rand.Rand, obs *stressObs) error {
	asOf := s.clock.now().Add(time.Duration(rng.IntN(400)-200) * time.Millisecond)
	namespace := []string{"", "ns-a", "ns-b", "ns-c"}[rng.IntN(4)]
	var want []stressLease
	for _, l := range s.leases {
		if l.WorkerInstanceID != "" && !l.ExpiresAt.IsZero() && !l.ExpiresAt.After(asOf) &&
			slices.Contains([]string{"running", "active", "claimed"}, l.State) &&
			(namespace == "" || namespace == l.Namespace) {
			want = append(want, l)
		}
	}
	slices.SortFunc(want, func(a, b stressLease) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), cmp.Compare(a.ID.Partition, b.ID.Partition),
			bytes.Compare(a.ID.UUID[:], b.ID.UUID[:]))
	})
	args := registry.ListExpiredLeasesArgs{AsOf: asOf, Namespace: namespace, Limit: 1 + rng.IntN(40)}
	var got []registry.ExpiredLease
	for pages := 0; ; pages++ {
		if pages > len(want)/args.Limit+1 {
			return fmt.Errorf("expired leases as of t0+%v in %q: more than %d pages of %d for %d leases",
				asOf.Sub(t0), namespace, pages, args.Limit, len(want))
		}
		res, err := s.r.ListExpiredLeases(ctx, args)
		if err != nil {
			return err
		}
		got = append(got, res.Leases...)
		if res.Next == nil {
			break
		}
		args.After = res.Next
	}
	obs.leaseWalks++
	if len(got) != len(want) {
		return fmt.Errorf("expired leases as of t0+%v in %q (pages of %d): %d listed, %d expected",
			asOf.Sub(t0), namespace, args.Limit, len(got), len(want))
	}
	for i, l := range got {
		w := want[i]
		lease := registry.ExpiredLease{
			ExecutionID: w.ID, LeaseID: w.ID.UUID, LeaseEpoch: w.LeaseEpoch, AttemptIndex: w.AttemptIndex,
			WorkerInstanceID: w.WorkerInstanceID, Namespace: w.Namespace, ExpiresAt: w.ExpiresAt.UTC(),
		}
		for j := range 4 {
			lease.LeaseID[8+j] ^= byte(w.AttemptIndex >> (24 - 8*j))
		}
		for j := range 8 {
			lease.LeaseID[j] ^= byte(w.LeaseEpoch >> (56 - 8*j))
		}
		if !l.ExpiresAt.Equal(lease.ExpiresAt) {
			return fmt.Errorf("expired leases as of t0+%v in %q: [%d] expires at %v, want %v",
				asOf.Sub(t0), namespace, i, l.ExpiresAt, lease.ExpiresAt)
		}
		l.ExpiresAt = lease.ExpiresAt
		if l != lease {
			return fmt.Errorf("expired leases as of t0+%v in %q (pages of %d): [%d] = %+v, want %+v",
				asOf.Sub(t0), namespace, args.Limit, i, l, lease)
		}
	}
	return nil
}

// eventPage reads an instance's newest events and checks the page's shape.
func (s *stressRun) eventPage(ctx context.Context, rng *rand.Rand, obs *stressObs) error {
	k := s.randomKey(rng)
	res, err := s.r.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{
		Namespace: k.Namespace, WorkerInstanceID: k.Instance, Limit: 5, NewestFirst: true,
	})
	if err != nil {
		return err
	}
	obs.eventPages++
	for i, e := range res.Events {
		if e.Namespace != k.Namespace || e.WorkerInstanceID != k.Instance {
			return fmt.Errorf("events of %s: got one of %s/%s", k, e.Namespace, e.WorkerInstanceID)
		}
		if i > 0 && e.ID >= res.Events[i-1].ID {
			return fmt.Errorf("events of %s, newest first: id %d after %d", k, e.ID, res.Events[i-1].ID)
		}
	}
	if res.Next != 0 && (len(res.Events) != 5 || res.Next != res.Events[4].ID) {
		return fmt.Errorf("events of %s: page of %d has Next %d", k, len(res.Events), res.Next)
	}
	return nil
}

// randomTokens returns a random subset of tokens with at least least of them.
func randomTokens(rng *rand.Rand, tokens []string, least int) []string {
	for {
		var out []string
		for _, tok := range tokens {
			if rng.IntN(2) == 0 {
				out = append(out, tok)
			}
		}
		if len(out) >= least {
			return out
		}
	}
}
