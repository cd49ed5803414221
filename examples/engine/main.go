// Command engine plays an execution engine beside the registry, with
// plain SQL in transactions on the engine's own tables and no test
// package: it creates executions, lets workers claim leases on them,
// extends the leases as the workers heartbeat, and takes back the leases
// that expired (Registry.ListExpiredLeases) and those whose holder is gone
// (Registry.ListOrphanedLeases). Every lease change is fenced by
// lease_epoch: a holder whose lease was taken back changes nothing, and
// the program checks that it does. It prints each step and exits non-zero
// as soon as one does not behave as expected.
//
//	go run ./examples/engine
//
// The lease contract (which columns and states the registry reads) is in
// docs/leases.md. This program writes the registry's own minimal tables,
// in a SQLite file of a temporary directory; on a FlowFabric database the
// engine writes its full rows, and the registry reads the same columns.
//
// The program drives the clock: every call passes its own time, so the run
// is the same on every machine and takes next to no time.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/flowfabric/workerregistry/registry"
)

const (
	namespace = "engine-demo"
	workerTTL = 10 * time.Second
)

// t0 is the scenario's T.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(1)
	}
}

// engine is the engine's side: its own connection to the database file,
// and the executions it created, by name for the printout.
type engine struct {
	db    *sql.DB
	names map[registry.ExecutionID]string
	out   io.Writer
	now   time.Time
}

// lease is what a worker holds: an attempt of an execution, fenced by its
// epoch.
type lease struct {
	exec    registry.ExecutionID
	attempt uint32
	epoch   uint64
	holder  string
}

func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "engine-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "engine.db")

	// The registry creates the file and its schema, the engine's two
	// tables included (a FlowFabric database has them already).
	reg, err := registry.Open(ctx, path)
	if err != nil {
		return err
	}
	defer reg.Close()
	// The engine's own connection to the same file: immediate write
	// transactions, so that concurrent writers queue instead of failing,
	// and a busy timeout long enough to wait for the registry's writer.
	db, err := sql.Open(registry.SQLiteDriverName,
		"file:"+path+"?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	if err != nil {
		return err
	}
	defer db.Close()
	e := &engine{db: db, names: map[registry.ExecutionID]string{}, out: out, now: t0}

	if err := e.scenario(ctx, reg); err != nil {
		return err
	}
	fmt.Fprintln(out, "engine scenario complete: every lease change behaved as expected")
	return nil
}

func (e *engine) scenario(ctx context.Context, reg *registry.Registry) error {
	for _, w := range []string{"W1", "W2"} {
		outcome, err := reg.RegisterWorker(ctx, registry.RegisterWorkerArgs{Namespace: namespace, WorkerID: "pool",
			WorkerInstanceID: w, Lanes: []string{"default"}, LivenessTTL: workerTTL, Now: e.now})
		if err := e.check("register "+w, outcome, err, registry.Registered); err != nil {
			return err
		}
	}
	var execs []registry.ExecutionID
	for i, name := range []string{"E1", "E2", "E3"} {
		id, err := e.createExecution(ctx, uint16(i), name)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		execs = append(execs, id)
	}
	e1, e2, e3 := execs[0], execs[1], execs[2]

	// Workers claim work; E2's lease is short.
	l1, err := e.claim(ctx, e1, "W1", 30*time.Second)
	if err != nil {
		return err
	}
	l2, err := e.claim(ctx, e2, "W1", 5*time.Second)
	if err != nil {
		return err
	}
	l3, err := e.claim(ctx, e3, "W2", 30*time.Second)
	if err != nil {
		return err
	}

	// T+3s: W1 extends E1's lease as it heartbeats.
	e.now = t0.Add(3 * time.Second)
	if err := e.extend(ctx, l1, 30*time.Second, 1); err != nil {
		return err
	}

	// T+6s: E2's lease expired; the engine takes it back, and W1, which
	// still believes it holds it, can no longer extend it.
	e.now = t0.Add(6 * time.Second)
	expired, err := reg.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{Namespace: namespace, AsOf: e.now})
	if err != nil {
		return fmt.Errorf("list expired leases: %w", err)
	}
	if err := e.expectLeases("expired leases", expired.Leases, l2); err != nil {
		return err
	}
	if err := e.reclaim(ctx, expired.Leases); err != nil {
		return err
	}
	if err := e.extend(ctx, l2, 30*time.Second, 0); err != nil {
		return err
	}
	l2b, err := e.claim(ctx, e2, "W2", 30*time.Second)
	if err != nil {
		return err
	}

	// T+7s: an operator kills W2; its leases are orphans at once, long
	// before they expire.
	e.now = t0.Add(7 * time.Second)
	marked, err := reg.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: namespace, WorkerInstanceID: "W2", Reason: "bad host", Now: e.now})
	if err := e.check("mark W2 dead", marked, err, registry.Marked); err != nil {
		return err
	}
	orphans, err := reg.ListOrphanedLeases(ctx, registry.ListOrphanedLeasesArgs{Namespace: namespace, AsOf: e.now})
	if err != nil {
		return fmt.Errorf("list orphaned leases: %w", err)
	}
	// Both expire at T+30s and T+36s: E3's first.
	if err := e.expectLeases("orphaned leases", orphans.Leases, l3, l2b); err != nil {
		return err
	}
	if err := e.reclaim(ctx, orphans.Leases); err != nil {
		return err
	}
	l3b, err := e.claim(ctx, e3, "W1", 30*time.Second)
	if err != nil {
		return err
	}

	// T+8s: W2 was only paused, and wakes up: everything it tries is
	// fenced off.
	e.now = t0.Add(8 * time.Second)
	if err := e.extend(ctx, l3, 30*time.Second, 0); err != nil {
		return err
	}
	if err := e.complete(ctx, l3, 0); err != nil {
		return err
	}

	// T+9s: W1 finishes E1 and E3.
	e.now = t0.Add(9 * time.Second)
	if err := e.complete(ctx, l1, 1); err != nil {
		return err
	}
	if err := e.complete(ctx, l3b, 1); err != nil {
		return err
	}
	expired, err = reg.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{Namespace: namespace, AsOf: e.now.Add(time.Hour)})
	if err != nil {
		return err
	}
	if err := e.expectLeases("expired leases an hour later", expired.Leases); err != nil {
		return err
	}
	return e.expectStates(ctx, map[registry.ExecutionID]string{e1: "completed", e2: "waiting", e3: "completed"})
}

// createExecution writes an execution waiting for a worker. Its namespace
// is in raw_fields, where the registry reads it.
func (e *engine) createExecution(ctx context.Context, partition uint16, name string) (registry.ExecutionID, error) {
	id := registry.ExecutionID{Partition: partition, UUID: uuid.New()}
	e.names[id] = name
	_, err := e.db.ExecContext(ctx, `INSERT INTO ff_exec_core (partition_key, execution_id, public_state, raw_fields)
		VALUES (?, ?, 'waiting', json_object('namespace', ?))`, int64(id.Partition), id.UUID[:], namespace)
	e.print("create "+name, "waiting")
	return id, err
}

// claim gives a waiting execution to a worker: in one transaction, the
// execution becomes claimed and gets a new attempt whose lease the worker
// holds until now+d, with an epoch above every earlier one of the
// execution. The execution's state fences the claim: two engines claiming
// at once, one wins.
func (e *engine) claim(ctx context.Context, id registry.ExecutionID, holder string, d time.Duration) (lease, error) {
	what := fmt.Sprintf("%s claims %s", holder, e.names[id])
	l := lease{exec: id, holder: holder}
	err := e.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ff_exec_core SET public_state = 'claimed'
			WHERE partition_key = ? AND execution_id = ? AND public_state = 'waiting'`, int64(id.Partition), id.UUID[:])
		if err := oneRow(res, err); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(attempt_index) + 1, 0), coalesce(max(lease_epoch), 0) + 1
			FROM ff_attempt WHERE partition_key = ? AND execution_id = ?`, int64(id.Partition), id.UUID[:]).Scan(&l.attempt, &l.epoch); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ff_attempt (partition_key, execution_id, attempt_index, worker_instance_id, lease_epoch, lease_expires_at_ms)
			VALUES (?, ?, ?, ?, ?, ?)`, int64(id.Partition), id.UUID[:], l.attempt, holder, l.epoch, e.now.Add(d).UnixMilli())
		return err
	})
	if err != nil {
		return l, fmt.Errorf("%s: %w", what, err)
	}
	e.print(what, fmt.Sprintf("attempt %d, epoch %d, expires %s", l.attempt, l.epoch, e.at(e.now.Add(d))))
	return l, nil
}

// extend moves a lease's expiry to now+d, as the holder's heartbeat does.
// The update names the epoch and the holder and requires the lease to be
// unexpired: a holder whose lease was taken back changes nothing. want is
// the number of rows that must change (1, or 0 for a stale holder).
func (e *engine) extend(ctx context.Context, l lease, d time.Duration, want int64) error {
	res, err := e.db.ExecContext(ctx, `UPDATE ff_attempt SET lease_expires_at_ms = ?
		WHERE partition_key = ? AND execution_id = ? AND attempt_index = ? AND lease_epoch = ?
		  AND worker_instance_id = ? AND lease_expires_at_ms > ?`,
		e.now.Add(d).UnixMilli(), int64(l.exec.Partition), l.exec.UUID[:], l.attempt, l.epoch, l.holder, e.now.UnixMilli())
	return e.fenced(fmt.Sprintf("%s extends %s (epoch %d)", l.holder, e.names[l.exec], l.epoch), res, err, want)
}

// complete finishes an execution, fenced like extend: only the holder of
// the current, unexpired lease can.
func (e *engine) complete(ctx context.Context, l lease, want int64) error {
	var n int64
	err := e.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE ff_attempt SET worker_instance_id = NULL, lease_expires_at_ms = NULL
			WHERE partition_key = ? AND execution_id = ? AND attempt_index = ? AND lease_epoch = ?
			  AND worker_instance_id = ? AND lease_expires_at_ms > ?`,
			int64(l.exec.Partition), l.exec.UUID[:], l.attempt, l.epoch, l.holder, e.now.UnixMilli())
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err // fenced off: nothing to complete
		}
		_, err = tx.ExecContext(ctx, `UPDATE ff_exec_core SET public_state = 'completed'
			WHERE partition_key = ? AND execution_id = ?`, int64(l.exec.Partition), l.exec.UUID[:])
		return err
	})
	return e.fenced(fmt.Sprintf("%s completes %s (epoch %d)", l.holder, e.names[l.exec], l.epoch), rowCount(n), err, want)
}

// reclaim takes back the listed leases, each in a transaction fenced by
// what the listing returned (attempt, epoch, holder and expiry): a lease
// that its holder extended or finished meanwhile, or that another engine
// took back, is left alone. The execution waits for a new claim.
func (e *engine) reclaim(ctx context.Context, leases []registry.ExpiredLease) error {
	for _, l := range leases {
		var n int64
		err := e.tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE ff_attempt SET worker_instance_id = NULL, lease_expires_at_ms = NULL
				WHERE partition_key = ? AND execution_id = ? AND attempt_index = ? AND lease_epoch = ?
				  AND worker_instance_id = ? AND lease_expires_at_ms = ?`,
				int64(l.ExecutionID.Partition), l.ExecutionID.UUID[:], l.AttemptIndex, l.LeaseEpoch,
				l.WorkerInstanceID, l.ExpiresAt.UnixMilli())
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil || n == 0 {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE ff_exec_core SET public_state = 'waiting'
				WHERE partition_key = ? AND execution_id = ?`, int64(l.ExecutionID.Partition), l.ExecutionID.UUID[:])
			return err
		})
		what := fmt.Sprintf("reclaim %s from %s (epoch %d)", e.names[l.ExecutionID], l.WorkerInstanceID, l.LeaseEpoch)
		if err := e.fenced(what, rowCount(n), err, 1); err != nil {
			return err
		}
	}
	return nil
}

// tx runs f in a write transaction and commits it, or rolls it back when
// f fails.
func (e *engine) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// rowCount is a sql.Result of n rows, for a change made in a transaction.
type rowCount int64

func (n rowCount) LastInsertId() (int64, error) { return 0, errors.New("no insert") }
func (n rowCount) RowsAffected() (int64, error) { return int64(n), nil }

// fenced checks that a fenced change changed want rows.
func (e *engine) fenced(what string, res sql.Result, err error, want int64) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	got := "done"
	if n == 0 {
		got = "fenced off: 0 rows"
	}
	e.print(what, got)
	if n != want {
		return fmt.Errorf("%s: %d rows changed, want %d", what, n, want)
	}
	return nil
}

func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%d rows changed, want 1 (%v)", n, err)
	}
	return nil
}

// expectLeases checks a listing against the leases expected, in order.
func (e *engine) expectLeases(what string, got []registry.ExpiredLease, want ...lease) error {
	var names []string
	for _, l := range got {
		names = append(names, fmt.Sprintf("%s held by %s (epoch %d)", e.names[l.ExecutionID], l.WorkerInstanceID, l.LeaseEpoch))
	}
	e.print(what, "["+strings.Join(names, ", ")+"]")
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		w := want[i]
		ok = got[i].ExecutionID == w.exec && got[i].AttemptIndex == w.attempt && got[i].LeaseEpoch == w.epoch && got[i].WorkerInstanceID == w.holder
	}
	if !ok {
		return fmt.Errorf("%s: got %v, want %d leases %v", what, names, len(want), want)
	}
	return nil
}

// expectStates checks the executions' states and that none still has a
// holder unless it is claimed.
func (e *engine) expectStates(ctx context.Context, want map[registry.ExecutionID]string) error {
	var got []string
	for id, state := range want {
		var s string
		var holders int
		if err := e.db.QueryRowContext(ctx, `SELECT c.public_state,
			(SELECT count(*) FROM ff_attempt AS a WHERE a.partition_key = c.partition_key AND a.execution_id = c.execution_id AND a.worker_instance_id IS NOT NULL)
			FROM ff_exec_core AS c WHERE c.partition_key = ? AND c.execution_id = ?`, int64(id.Partition), id.UUID[:]).Scan(&s, &holders); err != nil {
			return err
		}
		got = append(got, e.names[id]+" "+s)
		if s != state || holders != 0 {
			return fmt.Errorf("%s: state %s with %d holders, want %s with none", e.names[id], s, holders, state)
		}
	}
	slices.Sort(got)
	e.print("executions", strings.Join(got, ", "))
	return nil
}

func (e *engine) check(what string, got any, err error, want any) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	e.print(what, fmt.Sprint(got))
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}

func (e *engine) print(what, result string) {
	fmt.Fprintf(e.out, "%-6s %-36s %s\n", e.at(e.now), what, result)
}

// at is t as an offset from T.
func (e *engine) at(t time.Time) string { return "T+" + t.Sub(t0).String() }
