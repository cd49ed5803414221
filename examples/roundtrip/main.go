// Command roundtrip runs the registry's reference scenario, the one that
// the FlowFabric engine's worker-registry design walks through, on an
// embedded SQLite file and prints each step. It exits non-zero as soon as
// a step does not behave as the scenario says.
//
//	go run ./examples/roundtrip             # a throwaway database
//	go run ./examples/roundtrip -db demo.db # keep it (the file must be new)
//
// The program drives the clock: T is a fixed instant and every call passes
// its own time, or reads the registry's clock, which the scenario moves;
// so the run is the same on every machine and takes next to no time. W1
// runs the loop a worker process runs (StartWorker), whose heartbeats take
// the registry's clock; W2 and W3 make their calls by hand.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

const (
	namespace = "rfc025-demo"
	ttl       = 10 * time.Second
)

// t0 is the scenario's T.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func main() {
	dbPath := flag.String("db", "", "database file to create, or a postgres:// URL of a database without this scenario's namespace (default: a temporary file, removed afterwards)")
	flag.Parse()
	if err := run(context.Background(), *dbPath, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "roundtrip:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string, out io.Writer) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "roundtrip-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "registry.db")
	} else if registry.IsPostgresDSN(path) {
		// Checked below, once the registry is open.
	} else if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: the scenario needs a new database file", path)
	}
	s := &scenario{ctx: ctx, out: out}
	s.clock.Store(t0.UnixMilli())
	reg, err := registry.Open(ctx, path, registry.WithClock(s.now))
	if err != nil {
		return err
	}
	defer reg.Close()
	s.reg = reg
	if page, err := reg.ListWorkerEvents(ctx, registry.ListWorkerEventsArgs{Namespace: namespace, Limit: 1}); err != nil {
		return err
	} else if len(page.Events) > 0 {
		return fmt.Errorf("%s: namespace %q is in use: the scenario needs a fresh database", registry.RedactDSN(path), namespace)
	}
	return s.play(path)
}

type scenario struct {
	ctx   context.Context
	reg   *registry.Registry
	out   io.Writer
	clock atomic.Int64 // the registry's clock, Unix ms
}

// now is the registry's clock.
func (s *scenario) now() time.Time { return time.UnixMilli(s.clock.Load()).UTC() }

// at moves the registry's clock to offset from T.
func (s *scenario) at(offset time.Duration) { s.clock.Store(t0.Add(offset).UnixMilli()) }

// step prints what happened at offset from T and checks it against want.
func (s *scenario) step(offset time.Duration, what string, got, want any) error {
	fmt.Fprintf(s.out, "T+%-8s %-42s %v\n", offset, what, got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		//lint:ignore ST1005 "T+5s" is a time on the scenario's timeline, not a capitalised word.
		return fmt.Errorf("T+%s %s: got %v, want %v", offset, what, got, want)
	}
	return nil
}

func (s *scenario) play(path string) error {
	workers := []struct {
		instance, pool string
		lanes, caps    []string
	}{
		{"W1", "pool-a", []string{"default", "build"}, []string{"cuda"}},
		{"W2", "pool-b", []string{"default", "gpu"}, []string{"fp16"}},
		{"W3", "pool-c", []string{"build", "gpu"}, []string{"cpu"}},
	}
	// W1 is a worker process: its loop registers it and heartbeats every
	// few milliseconds of real time, at the registry's clock.
	w1, err := s.reg.StartWorker(s.ctx, registry.WorkerConfig{
		Namespace: namespace, WorkerID: workers[0].pool, WorkerInstanceID: workers[0].instance,
		Lanes: workers[0].lanes, Capabilities: workers[0].caps, LivenessTTL: ttl, HeartbeatInterval: 2 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	defer w1.Stop(s.ctx)
	if err := s.lastEvent(0, "start W1's loop (pool-a)", "W1", "registered"); err != nil {
		return err
	}
	for _, w := range workers[1:] {
		o, err := s.reg.RegisterWorker(s.ctx, registry.RegisterWorkerArgs{
			Namespace: namespace, WorkerID: w.pool, WorkerInstanceID: w.instance,
			Lanes: w.lanes, Capabilities: w.caps, LivenessTTL: ttl, Now: t0,
		})
		if err != nil {
			return err
		}
		if err := s.step(0, "register "+w.instance+" ("+w.pool+")", o, registry.Registered); err != nil {
			return err
		}
	}

	// The engine's part: three executions whose attempts hold leases.
	leases := []struct {
		name, holder string
		expires      time.Duration
	}{{"L1", "W1", 60 * time.Second}, {"L2", "W2", 12 * time.Second}, {"L3", "W3", 60 * time.Second}}
	names := map[registry.ExecutionID]string{}
	var rows []registrytest.Lease
	for i, l := range leases {
		id := registry.ExecutionID{Partition: uint16(i + 1), UUID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(l.name))}
		names[id] = l.name
		rows = append(rows, registrytest.Lease{
			ExecutionID: id, Namespace: namespace, State: "running",
			WorkerInstanceID: l.holder, LeaseEpoch: 1, ExpiresAt: t0.Add(l.expires),
		})
	}
	if err := s.writeLeases(path, rows); err != nil {
		return err
	}
	for _, l := range leases {
		fmt.Fprintf(s.out, "T+%-8s %-42s expires T+%s\n", time.Duration(0), "lease "+l.name+" held by "+l.holder, l.expires)
	}

	if err := s.loopHeartbeat(5*time.Second, "W1", 15*time.Second); err != nil {
		return err
	}
	// W1's code asks its loop before it takes a job: only a live worker
	// may start one (see startJob).
	if err := s.step(5*time.Second, "W1 checks its State before a job", startJob(w1), "live: starts the job"); err != nil {
		return err
	}
	if err := s.heartbeat(5*time.Second, "W2", registry.HeartbeatRefreshed, 15*time.Second); err != nil {
		return err
	}
	s.at(6 * time.Second)
	o, err := s.reg.MarkWorkerDead(s.ctx, registry.MarkWorkerDeadArgs{
		Namespace: namespace, WorkerInstanceID: "W3", Reason: "decommissioned", Now: t0.Add(6 * time.Second),
	})
	if err != nil {
		return err
	}
	if err := s.step(6*time.Second, `mark W3 dead ("decommissioned")`, o, registry.Marked); err != nil {
		return err
	}
	// W3's lease runs until T+60s, but W3 is gone: the engine takes it
	// back now rather than then.
	if err := s.orphans(6*time.Second, names, []string{"L3 held by W3, expires T+1m0s"}); err != nil {
		return err
	}
	for id, name := range names {
		if name == "L3" {
			if err := s.reclaim(path, id); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(s.out, "T+%-8s %-42s %s\n", 6*time.Second, "engine reclaims L3", "its attempt released")
	if err := s.orphans(6*time.Second, names, nil); err != nil {
		return err
	}
	if err := s.loopHeartbeat(14*time.Second, "W1", 24*time.Second); err != nil {
		return err
	}

	late := 15*time.Second + time.Millisecond
	s.at(late)
	if err := s.heartbeat(late, "W2", registry.HeartbeatNotRegistered, 0); err != nil {
		return err
	}
	rep, err := s.reg.SweepExpiredWorkers(s.ctx, t0.Add(late))
	if err != nil {
		return err
	}
	if err := s.step(late, "sweep: registrations removed", rep.Swept, 1); err != nil {
		return err
	}
	list, err := s.reg.ListWorkers(s.ctx, registry.ListWorkersArgs{Namespace: namespace, Now: t0.Add(late)})
	if err != nil {
		return err
	}
	var live []string
	for _, w := range list.Workers {
		live = append(live, w.WorkerInstanceID)
	}
	if err := s.step(late, "list workers", live, []string{"W1"}); err != nil {
		return err
	}
	expired, err := s.reg.ListExpiredLeases(s.ctx, registry.ListExpiredLeasesArgs{Namespace: namespace, AsOf: t0.Add(late)})
	if err != nil {
		return err
	}
	var got []string
	for _, l := range expired.Leases {
		got = append(got, fmt.Sprintf("%s held by %s, expired T+%s", names[l.ExecutionID], l.WorkerInstanceID, l.ExpiresAt.Sub(t0)))
	}
	if err := s.step(late, "expired leases", got, []string{"L2 held by W2, expired T+12s"}); err != nil {
		return err
	}
	// W1's process shuts down: a clean exit, not a kill.
	if err := w1.Stop(s.ctx); err != nil {
		return err
	}
	if err := s.lastEvent(late, "stop W1's loop", "W1", "deregistered"); err != nil {
		return err
	}
	if err := s.step(late, "W1 checks its State before a job", startJob(w1), "ended: takes no job"); err != nil {
		return err
	}
	fmt.Fprintln(s.out, "scenario complete: every step behaved as specified")
	return nil
}

// startJob is what a worker's code does before it starts a job: it asks
// its loop whether its registration is live. Once the registration has
// lapsed (its heartbeats did not get through in time), the engine may
// give the worker's leases to another worker, so a job started then could
// run twice; the loop keeps trying, and State is WorkerLive again once a
// heartbeat or a registration succeeds.
func startJob(w *registry.Worker) string {
	if st := w.State(); st != registry.WorkerLive {
		return st.String() + ": takes no job"
	}
	return "live: starts the job"
}

func (s *scenario) heartbeat(offset time.Duration, instance string, want registry.HeartbeatOutcome, nextExpiry time.Duration) error {
	res, err := s.reg.HeartbeatWorker(s.ctx, registry.HeartbeatWorkerArgs{
		Namespace: namespace, WorkerInstanceID: instance, Now: t0.Add(offset),
	})
	if err != nil {
		return err
	}
	got := res.Outcome.String()
	wantText := want.String()
	if res.Outcome == registry.HeartbeatRefreshed {
		got += fmt.Sprintf(", next expiry T+%s", res.NextExpiry.Sub(t0))
	}
	if want == registry.HeartbeatRefreshed {
		wantText += fmt.Sprintf(", next expiry T+%s", nextExpiry)
	}
	return s.step(offset, "heartbeat "+instance, got, wantText)
}

// loopHeartbeat moves the registry's clock to offset and waits for the
// instance's loop to heartbeat at that time.
func (s *scenario) loopHeartbeat(offset time.Duration, instance string, nextExpiry time.Duration) error {
	s.at(offset)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		info, ok, err := s.reg.GetWorker(s.ctx, registry.GetWorkerArgs{Namespace: namespace, WorkerInstanceID: instance})
		if err != nil {
			return err
		}
		if ok && info.LastHeartbeat.Equal(s.now()) {
			return s.step(offset, instance+"'s loop heartbeats", "next expiry T+"+info.ExpiresAt.Sub(t0).String(), "next expiry T+"+nextExpiry.String())
		}
		if time.Now().After(deadline) {
			//lint:ignore ST1005 "T+5s" is a time on the scenario's timeline, not a capitalised word.
			return fmt.Errorf("T+%s: %s's loop has not heartbeaten (live %v)", offset, instance, ok)
		}
	}
}

// lastEvent checks the kind of the instance's latest audit event, which
// says what a step did.
func (s *scenario) lastEvent(offset time.Duration, what, instance, want string) error {
	page, err := s.reg.ListWorkerEvents(s.ctx, registry.ListWorkerEventsArgs{Namespace: namespace, WorkerInstanceID: instance, Limit: 1, NewestFirst: true})
	if err != nil {
		return err
	}
	got := "no event"
	if len(page.Events) > 0 {
		got = page.Events[0].Kind
	}
	return s.step(offset, what, got, want)
}

// orphans lists the leases whose holder is not live, as of offset.
func (s *scenario) orphans(offset time.Duration, names map[registry.ExecutionID]string, want []string) error {
	res, err := s.reg.ListOrphanedLeases(s.ctx, registry.ListOrphanedLeasesArgs{Namespace: namespace, AsOf: t0.Add(offset)})
	if err != nil {
		return err
	}
	var got []string
	for _, l := range res.Leases {
		got = append(got, fmt.Sprintf("%s held by %s, expires T+%s", names[l.ExecutionID], l.WorkerInstanceID, l.ExpiresAt.Sub(t0)))
	}
	return s.step(offset, "orphaned leases (holder not live)", got, want)
}

// reclaim plays the engine taking a lease back: it releases the attempt,
// which the engine would then offer to another worker.
func (s *scenario) reclaim(path string, id registry.ExecutionID) error {
	sqlDB, err := s.engineDB(path)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	release := `UPDATE ff_attempt SET worker_instance_id = NULL, lease_expires_at_ms = NULL WHERE partition_key = ? AND execution_id = ?`
	var execution any = id.UUID[:]
	if registry.IsPostgresDSN(path) {
		release = `UPDATE ff_attempt SET worker_instance_id = NULL, lease_expires_at_ms = NULL WHERE partition_key = $1 AND execution_id = $2`
		execution = id.UUID.String()
	}
	_, err = sqlDB.ExecContext(s.ctx, release, int64(id.Partition), execution)
	return err
}

// engineDB opens the connection through which the scenario plays the
// engine.
func (s *scenario) engineDB(path string) (*sql.DB, error) {
	if registry.IsPostgresDSN(path) {
		return sql.Open("pgx", path)
	}
	return registry.OpenSQLiteDB(path)
}

// writeLeases plays the engine, which owns executions and attempts and
// writes them through its own connection.
func (s *scenario) writeLeases(path string, leases []registrytest.Lease) error {
	sqlDB, err := s.engineDB(path)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	_, err = registrytest.WriteLeases(s.ctx, sqlDB, leases...)
	return err
}
