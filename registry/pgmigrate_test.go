package registry_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/flowfabric/workerregistry/registry"
)

// TestConcurrentMigrateOnFreshPostgres starts 6 processes at once on a
// fresh Postgres schema, 4 rounds: half migrate as cmd/migrate's up does
// (SchemaVersion, then MigrateTo on the same pool), half Open. Every one
// must succeed. Before the migration lock was taken ahead of the
// transaction, most failed with "has the registry's own shape but no
// registry version table": the catalog they read was from before their
// wait for the lock.
func TestConcurrentMigrateOnFreshPostgres(t *testing.T) {
	t.Parallel()
	const processes, rounds = 6, 4
	for round := range rounds {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			dsn := postgresSchema(t)
			children := make([]*multiChild, processes)
			for i := range children {
				role := "pgmigrate"
				if i%2 == 1 {
					role = "pgopen"
				}
				children[i] = startChild(t, role, dsn)
			}
			// All start, then all go at once.
			for _, c := range children {
				if line := <-c.lines; line != "ready" {
					t.Fatalf("child said %q; stderr:\n%s", line, c.stderr.String())
				}
			}
			for _, c := range children {
				c.stdin.Close()
			}
			var wg sync.WaitGroup
			failures := make([]string, processes)
			for i, c := range children {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out := c.readAll()
					if err := c.cmd.Wait(); err != nil || len(out) == 0 || out[0] != "ok" {
						failures[i] = fmt.Sprintf("child %d: %v %q; stderr:\n%s", i, err, out, c.stderr.String())
					}
				}()
			}
			wg.Wait()
			if f := strings.Join(failures, ""); f != "" {
				t.Fatal(f)
			}
		})
	}
}

// pgMigrateChild is a child of TestConcurrentMigrateOnFreshPostgres: it
// says ready, waits for its stdin to close, migrates (or opens) the
// database, and prints ok or the error.
func pgMigrateChild(t *testing.T, open bool) {
	ctx := context.Background()
	dsn := os.Getenv(envChildDB)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	_, _ = os.Stdin.Read(make([]byte, 1))
	if open {
		var r *registry.Registry
		if r, err = registry.Open(ctx, dsn); err == nil {
			r.Close()
		}
	} else if _, err = registry.SchemaVersion(ctx, db); err == nil {
		_, err = registry.MigrateTo(ctx, db, math.MaxInt64)
	}
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("ok")
}
