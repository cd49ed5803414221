package registry_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// engineWrites records, by directory, the statements that SQLite compiled
// to write the engine's tables, on the connections opened on files in that
// directory. Only the fixtures of registrytest write them.
var engineWrites sync.Map // directory → *writeLog

type writeLog struct {
	mu     sync.Mutex
	tables []string
}

func (l *writeLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tables...)
}

// The hook is installed before any test opens a connection: the driver
// reads its hooks without a lock.
func init() {
	sqlite.RegisterConnectionHook(func(conn sqlite.ExecQuerierContext, dsn string) error {
		var log *writeLog
		engineWrites.Range(func(dir, l any) bool {
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
			if action == sqlite.AuthInsert && (table == "ff_exec_core" || table == "ff_attempt") {
				log.mu.Lock()
				log.tables = append(log.tables, table)
				log.mu.Unlock()
			}
			return sqlite.AuthorizerOK
		})
	})
}

// TestOpenPreparesNoFixtureStatement: the statements that write executions
// and attempts are registrytest's, generated into a package of their own;
// Open prepares every statement of the store, on the writer and the read
// pool, and none of them.
func TestOpenPreparesNoFixtureStatement(t *testing.T) {
	dir := t.TempDir()
	log := &writeLog{}
	engineWrites.Store(dir, log)
	t.Cleanup(func() { engineWrites.Delete(dir) })

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
	if got := log.list(); len(got) > 0 {
		t.Errorf("Open prepared inserts into %v: fixture statements in production", got)
	}

	// The same watch sees the fixtures' statements, so the check above can
	// fail.
	sqlDB, err := registry.OpenSQLiteDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	registrytest.InsertLeases(t, sqlDB, registrytest.Lease{Namespace: "ns", WorkerInstanceID: "w", ExpiresAt: time.UnixMilli(1)})
	if got := log.list(); len(got) == 0 {
		t.Error("the watch saw no insert from registrytest: it cannot see a fixture statement")
	}
}
