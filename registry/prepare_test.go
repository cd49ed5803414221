package registry_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/flowfabric/workerregistry/internal/flowfabrictest"
	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// compiledWrites records, by directory, the writes of the statements that
// SQLite compiled on the connections opened on files in that directory, as
// "insert ff_attempt", "update ff_worker_registry.last_heartbeat_ms" (an
// UPDATE, once per column it sets) and so on, and counts their commits.
var compiledWrites sync.Map // directory → *writeLog

type writeLog struct {
	mu      sync.Mutex
	writes  []string
	commits atomic.Int64 // transactions committed, autocommit statements included
}

// count returns how many compiled writes are one of writes.
func (l *writeLog) count(writes ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.writes {
		if slices.Contains(writes, w) {
			n++
		}
	}
	return n
}

// watchCompiles records the writes compiled on files in t's new directory,
// which it returns.
func watchCompiles(t *testing.T) (string, *writeLog) {
	dir := t.TempDir()
	log := &writeLog{}
	compiledWrites.Store(dir, log)
	t.Cleanup(func() { compiledWrites.Delete(dir) })
	return dir, log
}

var authorizedWrites = map[sqlite.AuthorizerActionCode]string{
	sqlite.AuthInsert: "insert", sqlite.AuthUpdate: "update", sqlite.AuthDelete: "delete",
}

// The hook is installed before any test opens a connection: the driver
// reads its hooks without a lock.
func init() {
	sqlite.RegisterConnectionHook(func(conn sqlite.ExecQuerierContext, dsn string) error {
		var log *writeLog
		compiledWrites.Range(func(dir, l any) bool {
			if strings.Contains(dsn, dir.(string)) {
				log = l.(*writeLog)
			}
			return log == nil
		})
		if log == nil {
			return nil
		}
		conn.(sqlite.HookRegisterer).RegisterCommitHook(func() int32 {
			log.commits.Add(1)
			return 0
		})
		// SQLite asks the authorizer about each table a statement writes
		// while it compiles the statement, so this sees every prepare.
		return conn.(sqlite.AuthorizerRegisterer).RegisterAuthorizer(func(action sqlite.AuthorizerActionCode, table, column, _, _ string) sqlite.AuthorizerReturnCode {
			if verb, ok := authorizedWrites[action]; ok {
				// An UPDATE is authorised once per column it sets: record
				// the column, so that a test counts one of them per compile.
				what := verb + " " + table
				if action == sqlite.AuthUpdate {
					what += "." + column
				}
				log.mu.Lock()
				log.writes = append(log.writes, what)
				log.mu.Unlock()
			}
			return sqlite.AuthorizerOK
		})
	})
}

// TestOpenPreparesNoFixtureStatement: the statements that write executions
// and attempts are registrytest's, generated into a package of their own,
// and a registry compiles none of them.
func TestOpenPreparesNoFixtureStatement(t *testing.T) {
	dir, log := watchCompiles(t)
	fixtureWrites := []string{"insert ff_exec_core", "insert ff_attempt"}

	ctx := context.Background()
	path := filepath.Join(dir, "registry.db")
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{}); err != nil {
		t.Fatal(err)
	}
	if n := log.count(fixtureWrites...); n > 0 {
		t.Errorf("the registry compiled %d inserts into executions or attempts: fixture statements in production", n)
	}

	// The same watch sees the fixtures' statements, so the check above can
	// fail.
	sqlDB, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	registrytest.InsertLeases(t, sqlDB, registrytest.Lease{Namespace: "ns", WorkerInstanceID: "w", ExpiresAt: time.UnixMilli(1)})
	if log.count(fixtureWrites...) == 0 {
		t.Error("the watch saw no insert from registrytest: it cannot see a fixture statement")
	}
}

// TestStatementsArePreparedOnce: the SQLite store prepares a statement on
// its first use and keeps it, in a transaction or not: a hundred calls
// compile each of their statements at most twice (a statement first used
// in a transaction is prepared there, then for the cache).
func TestStatementsArePreparedOnce(t *testing.T) {
	dir, log := watchCompiles(t)
	ctx := context.Background()
	for _, events := range []bool{false, true} {
		r, err := registry.Open(ctx, filepath.Join(dir, fmt.Sprintf("events-%v.db", events)), registry.WithHeartbeatEvents(events))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		mustRegister(t, r, registerArgs("ns", "w", t0))
		before := log.count("update ff_worker_registry.last_heartbeat_ms", "insert ff_worker_registry_event")
		for i := range 100 {
			hb := registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Duration(i+1) * time.Millisecond)}
			if res, err := r.HeartbeatWorker(ctx, hb); err != nil || res.Outcome != registry.HeartbeatRefreshed {
				t.Fatalf("heartbeat %d: %+v, %v", i, res, err)
			}
		}
		// Events off: the heartbeat's UPDATE alone, outside a transaction;
		// on: the UPDATE and the event's INSERT, in one.
		compiled := log.count("update ff_worker_registry.last_heartbeat_ms", "insert ff_worker_registry_event") - before
		if max := 4; compiled < 1 || compiled > max {
			t.Errorf("events %v: 100 heartbeats compiled their statements %d times, want 1 to %d", events, compiled, max)
		}
	}
}

// TestConcurrentHeartbeatsShareCommits: single heartbeats from 16
// goroutines that wait for the write turn together are committed together
// (internal/store/sqlitestore/beats.go), and each caller still gets its own worker's result.
// Half the goroutines give Now (one autocommit statement when alone), half
// let the registry read the time (a transaction when alone); one in four
// workers is draining and one in eight unknown.
func TestConcurrentHeartbeatsShareCommits(t *testing.T) {
	t.Run("registry", func(t *testing.T) {
		dir, log := watchCompiles(t)
		concurrentHeartbeats(t, filepath.Join(dir, "r.db"), log)
	})
	t.Run("flowfabric", func(t *testing.T) {
		// FlowFabric's own database, adopted, copied into the watched
		// directory.
		src, err := os.ReadFile(flowfabrictest.SQLite(t))
		if err != nil {
			t.Fatal(err)
		}
		dir, log := watchCompiles(t)
		path := filepath.Join(dir, "flowfabric.db")
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		concurrentHeartbeats(t, path, log)
	})
}

func concurrentHeartbeats(t *testing.T, path string, log *writeLog) {
	ctx := context.Background()
	r, err := registry.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const goroutines, perWorker = 16, 4
	id := func(g, w int) string { return fmt.Sprintf("g%d-w%d", g, w) }
	start := time.Now().Truncate(time.Millisecond)
	const ttl = 10 * time.Second // registerArgs's
	for g := range goroutines {
		for w := range perWorker {
			if w == 3 && g%2 == 0 {
				continue // unknown
			}
			mustRegister(t, r, registerArgs("ns", id(g, w), start))
			if w == 2 {
				if _, err := r.RequestDrain(ctx, registry.RequestDrainArgs{Namespace: "ns", WorkerInstanceID: id(g, w)}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	const rounds = 50
	before := log.commits.Load()
	last := make([][]time.Time, goroutines) // each worker's last expiry
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		last[g] = make([]time.Time, perWorker)
		wg.Go(func() {
			for i := range rounds {
				w := i % perWorker
				args := registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: id(g, w)}
				if g%2 == 1 {
					args.Now = start.Add(time.Duration(i+1) * time.Millisecond)
				}
				res, err := r.HeartbeatWorker(ctx, args)
				unknown := w == 3 && g%2 == 0
				switch {
				case err != nil:
					errs <- err
					return
				case unknown != (res.Outcome == registry.HeartbeatNotRegistered):
					errs <- fmt.Errorf("%s: outcome %v", id(g, w), res.Outcome)
					return
				case !unknown && (res.Directive == registry.DirectiveDrain) != (w == 2):
					errs <- fmt.Errorf("%s: directive %v", id(g, w), res.Directive)
					return
				case args.Now.IsZero() && !unknown && res.NextExpiry.Before(start.Add(ttl)):
					errs <- fmt.Errorf("%s: next expiry %v, before the start plus the TTL", id(g, w), res.NextExpiry)
					return
				case !args.Now.IsZero() && !unknown && !res.NextExpiry.Equal(args.Now.Add(ttl)):
					errs <- fmt.Errorf("%s: next expiry %v, want %v", id(g, w), res.NextExpiry, args.Now.Add(ttl))
					return
				}
				last[g][w] = res.NextExpiry
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	beats, commits := goroutines*rounds, log.commits.Load()-before
	t.Logf("%d heartbeats in %d commits", beats, commits)
	if commits*10 > int64(beats)*9 {
		t.Errorf("%d heartbeats took %d commits: concurrent heartbeats were not committed together", beats, commits)
	}
	workers, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Namespace: "ns", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]time.Time{}
	for _, w := range workers.Workers {
		stored[w.WorkerInstanceID] = w.ExpiresAt
	}
	for g := range goroutines {
		for w := range 3 {
			if got := stored[id(g, w)]; !got.Equal(last[g][w]) {
				t.Errorf("%s: stored expiry %v, want its last heartbeat's %v", id(g, w), got, last[g][w])
			}
		}
	}
}
