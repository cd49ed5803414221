package registry_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// compiledWrites records, by directory, the writes of the statements that
// SQLite compiled on the connections opened on files in that directory,
// as "insert ff_attempt", "update ff_worker_registry" and so on.
var compiledWrites sync.Map // directory → *writeLog

type writeLog struct {
	mu     sync.Mutex
	writes []string
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
		// SQLite asks the authorizer about each table a statement writes
		// while it compiles the statement, so this sees every prepare.
		return conn.(sqlite.AuthorizerRegisterer).RegisterAuthorizer(func(action sqlite.AuthorizerActionCode, table, _, _, _ string) sqlite.AuthorizerReturnCode {
			if verb, ok := authorizedWrites[action]; ok {
				log.mu.Lock()
				log.writes = append(log.writes, verb+" "+table)
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
		before := log.count("update ff_worker_registry", "insert ff_worker_registry_event")
		for i := range 100 {
			hb := registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w", Now: t0.Add(time.Duration(i+1) * time.Millisecond)}
			if res, err := r.HeartbeatWorker(ctx, hb); err != nil || res.Outcome != registry.HeartbeatRefreshed {
				t.Fatalf("heartbeat %d: %+v, %v", i, res, err)
			}
		}
		// Events off: the heartbeat's UPDATE alone, outside a transaction;
		// on: the UPDATE and the event's INSERT, in one.
		compiled := log.count("update ff_worker_registry", "insert ff_worker_registry_event") - before
		if max := 4; compiled < 1 || compiled > max {
			t.Errorf("events %v: 100 heartbeats compiled their statements %d times, want 1 to %d", events, compiled, max)
		}
	}
}
