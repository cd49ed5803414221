package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/schema"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// Migrate applies the pending migrations up to and including target, as
// migrate does, retrying while another migrator holds the database.
func Migrate(ctx context.Context, db *sql.DB, target int64) ([]*goose.MigrationResult, error) {
	// Migrators wait for each other at BEGIN IMMEDIATE for as long as
	// db's busy timeout allows; a db without one fails at once, so retry.
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		res, err := migrate(ctx, db, target)
		if err == nil || !IsBusy(err) || wait > maxMigrateWait {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// maxMigrateWait bounds the retries of a migration that finds the
// database busy: about 2.5 s in all.
const maxMigrateWait = 1280 * time.Millisecond

// SchemaVersion returns the registry schema version of the database, 0
// when it holds no registry, without writing anything: goose's own version
// calls create the version table where it is missing.
func SchemaVersion(ctx context.Context, db *sql.DB) (int64, error) {
	var found bool
	err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`, store.VersionTable).Scan(&found)
	if err != nil || !found {
		return 0, err
	}
	var v int64
	err = db.QueryRowContext(ctx, `SELECT coalesce(max(version_id), 0) FROM `+store.VersionTable).Scan(&v)
	return v, err
}

// migrate applies the pending SQLite migrations up to target (all of
// them when target is the latest) in one immediate transaction, and
// records each in the version table as goose does, so that goose and the stock
// CLI read the same history. Either every pending migration is applied or,
// on any failure, none is and the database is as it was. It fails, writing
// nothing, when the database is newer than target's migrations.
func migrate(ctx context.Context, db *sql.DB, target int64) ([]*goose.MigrationResult, error) {
	migrations, err := store.ReadMigrations(schema.SQLite)
	if err != nil {
		return nil, err
	}
	latest := migrations[len(migrations)-1].Version
	target = min(target, latest)
	vs, err := database.NewStore(database.DialectSQLite3, store.VersionTable)
	if err != nil {
		return nil, err
	}
	// A *sql.Conn, so that BEGIN IMMEDIATE is ours whatever db's DSN says
	// about transactions: a deferred transaction that reads the version
	// and then writes would fail with SQLITE_BUSY under a racing migrator
	// instead of waiting for it.
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// A context that ended, or a failed script, may have rolled back
		// already ("no transaction is active"). A connection that is
		// still in a transaction after this must not go back to the pool.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil && !strings.Contains(err.Error(), "no transaction is active") {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	var exists bool
	err = conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`, store.VersionTable).Scan(&exists)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	var current int64
	if exists {
		if current, err = vs.GetLatestVersion(ctx, conn); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
	}
	if current > latest {
		return nil, store.NewerSchemaError(current, latest)
	}
	var results []*goose.MigrationResult
	if current >= target {
		return results, nil
	}
	adopt := false
	if current == 0 {
		if adopt, err = adoptable(ctx, conn); err != nil {
			return nil, err
		}
	}
	if !exists {
		if err := vs.CreateVersionTable(ctx, conn); err != nil {
			return nil, fmt.Errorf("create %s: %w", store.VersionTable, err)
		}
		if err := vs.Insert(ctx, conn, database.InsertRequest{Version: 0}); err != nil {
			return nil, fmt.Errorf("create %s: %w", store.VersionTable, err)
		}
	}
	if adopt && target >= flowfabricShapeVersion {
		// FlowFabric's migrations made what versions 1 to 3 make: record
		// them as applied, run none of them.
		for _, m := range migrations {
			if m.Version > flowfabricShapeVersion {
				break
			}
			if err := vs.Insert(ctx, conn, database.InsertRequest{Version: m.Version}); err != nil {
				return nil, fmt.Errorf("adopt FlowFabric database: %w (nothing was applied)", err)
			}
			results = append(results, &goose.MigrationResult{
				Source: &goose.Source{Type: goose.TypeSQL, Path: path.Join("schema/sqlite", m.Name), Version: m.Version},
				Empty:  true, Direction: "up",
			})
		}
		current = flowfabricShapeVersion
	} else if adopt {
		return nil, fmt.Errorf("a FlowFabric database is adopted at version %d; it cannot stop at %d", flowfabricShapeVersion, target)
	}
	for _, m := range migrations {
		if m.Version <= current || m.Version > target {
			continue
		}
		start := time.Now()
		if _, err := conn.ExecContext(ctx, m.Up); err != nil {
			return nil, fmt.Errorf("migration %s: %w (nothing was applied)", m.Name, err)
		}
		if err := vs.Insert(ctx, conn, database.InsertRequest{Version: m.Version}); err != nil {
			return nil, fmt.Errorf("migration %s: %w (nothing was applied)", m.Name, err)
		}
		results = append(results, &goose.MigrationResult{
			Source:    &goose.Source{Type: goose.TypeSQL, Path: path.Join("schema/sqlite", m.Name), Version: m.Version},
			Duration:  time.Since(start),
			Direction: "up",
		})
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("commit migrations: %w", err)
	}
	committed = true
	return results, nil
}

// flowfabricShapeVersion is the version at which the registry's tables have
// FlowFabric's shapes: a FlowFabric database is adopted at it.
const flowfabricShapeVersion = 3

// flowfabricColumns are the columns the registry needs in each of
// FlowFabric's tables.
var flowfabricColumns = []struct {
	table   string
	columns []string
}{
	{"ff_worker_registry", []string{"namespace", "worker_instance_id", "worker_id", "lanes", "capabilities_csv", "last_heartbeat_ms", "liveness_ttl_ms", "registered_at_ms"}},
	{"ff_worker_registry_event", []string{"namespace", "worker_instance_id", "event_kind", "event_at_ms", "reason"}},
	{"ff_exec_core", []string{"partition_key", "execution_id", "public_state", "raw_fields"}},
	{"ff_attempt", []string{"partition_key", "execution_id", "attempt_index", "worker_instance_id", "lease_epoch", "lease_expires_at_ms"}},
}

// adoptable reports whether a database without the registry's history is
// FlowFabric's, whose own migrations made the worker registry's tables:
// false when ff_worker_registry does not exist, an error when it exists but
// any of FlowFabric's tables lacks a column the registry reads.
func adoptable(ctx context.Context, conn *sql.Conn) (bool, error) {
	var found bool
	err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ff_worker_registry')`).Scan(&found)
	if err != nil || !found {
		return false, err
	}
	for _, t := range flowfabricColumns {
		rows, err := conn.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, t.table)
		if err != nil {
			return false, err
		}
		have := map[string]bool{}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return false, err
			}
			have[name] = true
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return false, err
		}
		for _, c := range t.columns {
			if !have[c] {
				return false, fmt.Errorf("cannot adopt this database: ff_worker_registry exists, so it should be FlowFabric's, but %s has no column %s (nothing was applied)", t.table, c)
			}
		}
		if t.table == "ff_worker_registry" && have["expires_at_ms"] {
			return false, errors.New("cannot adopt this database: ff_worker_registry has the registry's own shape but no registry version table (nothing was applied)")
		}
	}
	// Event IDs are rowids.
	if _, err := conn.ExecContext(ctx, `SELECT rowid FROM ff_worker_registry_event LIMIT 0`); err != nil {
		return false, fmt.Errorf("cannot adopt this database: ff_worker_registry_event has no rowid: %w (nothing was applied)", err)
	}
	return true, nil
}
