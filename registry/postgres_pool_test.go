package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// withDSNParams returns dsn with params set.
func withDSNParams(t testing.TB, dsn string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestPostgresHeartbeatsDoNotQueueBehindListings runs 8 listings at once,
// each reading a page over 20,000 workers with a filter that matches none, on
// the default pool (4 connections), while one goroutine heartbeats: a
// heartbeat must not wait for a page. Writes have connections of their
// own, so the heartbeats' median stays under a quarter of a page's (they
// still share the server's CPUs with the listings).
func TestPostgresHeartbeatsDoNotQueueBehindListings(t *testing.T) {
	ctx := context.Background()
	dsn := postgresSchema(t)
	r, err := registry.Open(ctx, withDSNParams(t, dsn, map[string]string{"pool_max_conns": "4"}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	if _, err := db.ExecContext(ctx, `INSERT INTO ff_worker_registry (partition_key, namespace, worker_instance_id,
			worker_id, lanes, capabilities_csv, last_heartbeat_ms, liveness_ttl_ms, registered_at_ms)
		SELECT ff_worker_registry_partition_key(id), 'ns', id, 'pool', '{default}', '', $1::bigint, 3600000, $1::bigint
		FROM generate_series(1, 20000) AS s(i), LATERAL (SELECT 'w' || i AS id) AS k`, now.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE ff_worker_registry"); err != nil {
		t.Fatal(err)
	}

	var (
		stop  atomic.Bool
		mu    sync.Mutex
		pages []time.Duration
		wg    sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				res, err := r.ListWorkers(ctx, registry.ListWorkersArgs{Lane: "none", Limit: registry.MaxLimit})
				if err != nil {
					t.Error(err)
					return
				}
				if len(res.Workers) != 0 {
					t.Errorf("listing matched %d", len(res.Workers))
				}
				mu.Lock()
				pages = append(pages, time.Since(start))
				mu.Unlock()
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // the listings under way
	var beats []time.Duration
	for i := range 100 {
		start := time.Now()
		res, err := r.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "w" + itoa(1+i%20000)})
		if err != nil || res.Outcome != registry.HeartbeatRefreshed {
			t.Fatalf("heartbeat: %+v, %v", res, err)
		}
		beats = append(beats, time.Since(start))
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	beat, page := median(beats), median(pages)
	t.Logf("heartbeat median %v (max %v) during %d listing pages of median %v", beat, slices.Max(beats), len(pages), page)
	if beat > page/4 {
		t.Errorf("heartbeat median %v is more than a quarter of a listing page's (%v): heartbeats queue behind reads", beat, page)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}

// TestPostgresPoolLargerThanMaxConnections: Open warns, naming both
// settings, of a pool that the server cannot serve; and an operation that
// the server refuses a connection (here the role's connection limit, the
// same error as max_connections') says which setting to change.
func TestPostgresPoolLargerThanMaxConnections(t *testing.T) {
	ctx := context.Background()
	dsn := postgresSchema(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	r, err := registry.Open(ctx, withDSNParams(t, dsn, map[string]string{"pool_max_conns": "100000"}), registry.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	mu.Lock()
	got := logs.String()
	mu.Unlock()
	for _, want := range []string{"WARN", "pool_max_conns=100000", "max_connections="} {
		if !strings.Contains(got, want) {
			t.Errorf("Open's log has no %q:\n%s", want, got)
		}
	}

	// A role that may open two connections.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	role := "registry_limited_" + strings.ToLower(rand.Text()[:8])
	var schema string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN CONNECTION LIMIT 2",
		"GRANT USAGE ON SCHEMA " + schema + " TO " + role,
		"GRANT ALL ON ALL TABLES IN SCHEMA " + schema + " TO " + role,
		"GRANT ALL ON ALL SEQUENCES IN SCHEMA " + schema + " TO " + role,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := db.ExecContext(context.Background(), q); err != nil {
				t.Error(err)
			}
		}
	})
	u, _ := url.Parse(withDSNParams(t, dsn, map[string]string{"pool_max_conns": "8"}))
	u.User = url.User(role)
	limited, err := registry.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for range 4 {
				_, err := limited.HeartbeatWorker(ctx, registry.HeartbeatWorkerArgs{Namespace: "ns", WorkerInstanceID: "i" + itoa(g)})
				if err == nil {
					_, err = limited.ListWorkers(ctx, registry.ListWorkersArgs{})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	first := <-errs
	if first == nil {
		t.Fatal("16 goroutines on a role limited to 2 connections met no refused connection")
	}
	for _, want := range []string{"pool_max_conns", "max_connections"} {
		if !strings.Contains(first.Error(), want) {
			t.Errorf("error does not name %s: %v", want, first)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
