package registry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// cancelAfter is a context that becomes cancelled once Done has been asked
// for n times: run with n = 0, 1, 2, ... it cancels an operation at each
// point where the operation, database/sql or the driver looks at it.
type cancelAfter struct {
	context.Context
	mu   sync.Mutex
	left int
	done chan struct{}
}

func newCancelAfter(n int) *cancelAfter {
	return &cancelAfter{Context: context.Background(), left: n, done: make(chan struct{})}
}

func (c *cancelAfter) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == 0 {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	} else {
		c.left--
	}
	return c.done
}

func (c *cancelAfter) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

// TestCancelledWritesAreAllOrNothing cancels every write operation at every
// point it can be cancelled and checks that each attempt either failed and
// changed nothing, or succeeded with its whole effect.
func TestCancelledWritesAreAllOrNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, s store) {
		ops := []struct {
			name string
			// prepare brings a fresh registry to the operation's start.
			prepare func(t *testing.T, r *registry.Registry)
			run     func(ctx context.Context, r *registry.Registry) error
		}{
			{"register new", nil, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.RegisterWorker(ctx, registerArgs("ns", "w", t0))
				return err
			}},
			{"register over expired row", func(t *testing.T, r *registry.Registry) {
				mustRegister(t, r, registerArgs("ns", "w", t0))
			}, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.RegisterWorker(ctx, registerArgs("ns", "w", t0.Add(time.Minute)))
				return err
			}},
			{"heartbeat with events", func(t *testing.T, r *registry.Registry) {
				mustRegister(t, r, registerArgs("ns", "w", t0))
			}, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Second)})
				return err
			}},
			{"heartbeat batch with events", func(t *testing.T, r *registry.Registry) {
				mustRegister(t, r, registerArgs("ns", "a", t0))
				mustRegister(t, r, registerArgs("ns", "b", t0))
			}, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.HeartbeatWorkers(ctx, []registry.HeartbeatWorkerArgs{
					{Namespace: "ns", WorkerInstanceID: "a", Now: t0.Add(time.Second)},
					{Namespace: "ns", WorkerInstanceID: "b", Now: t0.Add(2 * time.Second)},
				})
				return err
			}},
			{"mark dead", func(t *testing.T, r *registry.Registry) {
				mustRegister(t, r, registerArgs("ns", "w", t0))
			}, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "w", Reason: "r", Now: t0})
				return err
			}},
			{"drain", func(t *testing.T, r *registry.Registry) {
				mustRegister(t, r, registerArgs("ns", "w", t0))
			}, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0})
				return err
			}},
			{"sweep of one batch", func(t *testing.T, r *registry.Registry) {
				mustRegister(t, r, registerArgs("ns", "a", t0))
				mustRegister(t, r, registerArgs("ns", "b", t0))
			}, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.SweepExpiredWorkers(ctx, t0.Add(time.Hour))
				return err
			}},
			{"prune events", func(t *testing.T, r *registry.Registry) {
				mustRegister(t, r, registerArgs("ns", "a", t0))
				mustRegister(t, r, registerArgs("ns", "b", t0))
			}, func(ctx context.Context, r *registry.Registry) error {
				_, err := r.PruneEvents(ctx, t0.Add(time.Hour))
				return err
			}},
		}
		for _, op := range ops {
			t.Run(op.name, func(t *testing.T) {
				// The effect of an uncancelled run, to compare against.
				rw, bw := setup(t, s, registry.WithHeartbeatEvents(true))
				if op.prepare != nil {
					op.prepare(t, rw)
				}
				if err := op.run(context.Background(), rw); err != nil {
					t.Fatal(err)
				}
				want := registryAndEvents(bw.snapshot(t))

				// Each attempt has a registry of its own, so attempts run
				// a few at a time: most of their time is spent setting up
				// a database, much of it waiting for Postgres.
				type attempt struct {
					before, after []string
					err           error
				}
				const atOnce = 4
				cancelledAt := 0
				for base, done := 0, false; !done; base += atOnce {
					if base > 200 {
						t.Fatal("operation never completed")
					}
					var attempts [atOnce]attempt
					// Parallel subtests in a group, so that each attempt's
					// database is released (a Postgres schema goes back to
					// the pool) once the group is done.
					t.Run(fmt.Sprint("attempts from ", base), func(t *testing.T) {
						for i := range attempts {
							t.Run(fmt.Sprint(base+i), func(t *testing.T) {
								t.Parallel()
								a := &attempts[i]
								r, b := setup(t, s, registry.WithHeartbeatEvents(true))
								if op.prepare != nil {
									op.prepare(t, r)
								}
								a.before = registryAndEvents(b.snapshot(t))
								a.err = op.run(newCancelAfter(base+i), r)
								a.after = registryAndEvents(b.snapshot(t))
							})
						}
					})
					if t.Failed() {
						t.FailNow()
					}
					// Every attempt is checked, those after the first that
					// completed too.
					for i, a := range attempts {
						n := base + i
						if a.err == nil {
							equal(t, "database after a completed run", a.after, want)
							done = true
							continue
						}
						if !errors.Is(a.err, context.Canceled) {
							t.Fatalf("cancelled at check %d: error %v does not match context.Canceled", n, a.err)
						}
						// A single autocommit statement may finish before the
						// driver notices the cancellation: whole, then, not partial.
						if !slices.Equal(a.after, a.before) && !slices.Equal(a.after, want) {
							t.Fatalf("run cancelled at check %d left a partial write:\n%q\nbefore:\n%q\nwhole:\n%q", n, a.after, a.before, want)
						}
						if !done {
							cancelledAt++
						}
					}
				}
				if cancelledAt == 0 {
					t.Fatal("no run was cancelled: the test proves nothing")
				}
				t.Logf("cancelled at %d points", cancelledAt)
			})
		}
	})
}

// registryAndEvents keeps the registry and event rows of a snapshot, and
// SQLite's id counter. Postgres's event ID sequence is left out: a
// sequence is not transactional, so a rolled-back insert still uses up an
// ID, which leaves a gap in the IDs but no row.
func registryAndEvents(snapshot string) []string {
	var rows []string
	for _, line := range strings.Split(snapshot, "\n") {
		if strings.HasPrefix(line, "ff_worker_registry ") || strings.HasPrefix(line, "ff_worker_registry_event ") ||
			strings.HasPrefix(line, "sqlite_sequence") {
			rows = append(rows, line)
		}
	}
	return rows
}
