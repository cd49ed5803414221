package pgstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/schema"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// Migrate applies the pending Postgres migrations up to target,
// each in a transaction of its own (a migration that fails leaves no trace)
// and records each in the version table as goose does. A FlowFabric database is
// adopted in the transaction of the first migration it runs.
//
// Migrators of one database run one at a time, under the advisory lock
// that goose's session locker takes for cmd/migrate's down and status. It
// is a session lock, taken before the first transaction begins: a
// backend reads the catalog changes that others committed (invalidation
// messages) when a transaction starts, and when it locks a relation, but
// not when it gets an advisory lock. A migrator that waited for the lock
// inside its transaction, as this one did, went on with the catalog as it
// was before the wait: to_regclass said the version table that the
// winner had just made did not exist, and three of four processes that
// migrated a fresh database together failed.
func Migrate(ctx context.Context, db *sql.DB, target int64) ([]*goose.MigrationResult, error) {
	migrations, err := store.ReadMigrations(schema.Postgres)
	if err != nil {
		return nil, err
	}
	vs, err := database.NewStore(database.DialectPostgres, store.VersionTable)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(store.MigrationLockID)); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	defer func() {
		if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(store.MigrationLockID)); uerr != nil {
			// The session must not go back to the pool holding the lock:
			// closing it releases the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	var results []*goose.MigrationResult
	for {
		res, done, err := migrateStep(ctx, conn, vs, migrations, target)
		results = append(results, res...)
		if err != nil || done {
			return results, err
		}
	}
}

// migrateStep applies the next pending migration, if any, and
// reports whether none was left.
// The caller holds the migration lock on conn.
func migrateStep(ctx context.Context, conn *sql.Conn, vs database.Store, migrations []store.Migration, target int64) (results []*goose.MigrationResult, done bool, err error) {
	latest := migrations[len(migrations)-1].Version
	target = min(target, latest)
	// READ COMMITTED by name: each statement sees what the migrator before
	// this one committed.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, false, fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, store.VersionTable).Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("read schema version: %w", err)
	}
	var current int64
	if exists {
		if current, err = vs.GetLatestVersion(ctx, tx); err != nil {
			return nil, false, fmt.Errorf("read schema version: %w", err)
		}
	}
	if current > latest {
		return nil, false, store.NewerSchemaError(current, latest)
	}
	if current >= target {
		return nil, true, tx.Commit()
	}
	adopt := false
	if current == 0 {
		if adopt, err = adoptablePostgres(ctx, tx); err != nil {
			return nil, false, err
		}
	}
	if adopt && target < flowfabricPostgresShapeVersion+1 {
		return nil, false, fmt.Errorf("a FlowFabric database is adopted at version %d; it cannot stop at %d", flowfabricPostgresShapeVersion+1, target)
	}
	if !exists {
		if err := vs.CreateVersionTable(ctx, tx); err != nil {
			return nil, false, fmt.Errorf("create %s: %w", store.VersionTable, err)
		}
		if err := vs.Insert(ctx, tx, database.InsertRequest{Version: 0}); err != nil {
			return nil, false, fmt.Errorf("create %s: %w", store.VersionTable, err)
		}
	}
	if adopt {
		// FlowFabric's migrations made what versions 1 to 6 make: record
		// them as applied and run none of them; version 7 runs in this
		// transaction, so that adoption is all or nothing.
		for _, m := range migrations {
			if m.Version > flowfabricPostgresShapeVersion {
				break
			}
			if err := vs.Insert(ctx, tx, database.InsertRequest{Version: m.Version}); err != nil {
				return nil, false, fmt.Errorf("adopt FlowFabric database: %w (nothing was applied)", err)
			}
			results = append(results, &goose.MigrationResult{
				Source: &goose.Source{Type: goose.TypeSQL, Path: path.Join("schema/postgres", m.Name), Version: m.Version},
				Empty:  true, Direction: "up",
			})
		}
		current = flowfabricPostgresShapeVersion
	}
	for _, m := range migrations {
		if m.Version <= current {
			continue
		}
		start := time.Now()
		if _, err := tx.ExecContext(ctx, m.Up); err != nil {
			return nil, false, fmt.Errorf("migration %s: %w (nothing of it was applied)", m.Name, err)
		}
		if err := vs.Insert(ctx, tx, database.InsertRequest{Version: m.Version}); err != nil {
			return nil, false, fmt.Errorf("migration %s: %w (nothing of it was applied)", m.Name, err)
		}
		if err := tx.Commit(); err != nil {
			return nil, false, fmt.Errorf("commit migration %s: %w", m.Name, err)
		}
		results = append(results, &goose.MigrationResult{
			Source:    &goose.Source{Type: goose.TypeSQL, Path: path.Join("schema/postgres", m.Name), Version: m.Version},
			Duration:  time.Since(start),
			Direction: "up",
		})
		return results, m.Version >= target, nil
	}
	return nil, true, tx.Commit()
}

// flowfabricPostgresShapeVersion is the version at which the Postgres
// store's tables have FlowFabric's partitioned shape: a FlowFabric database
// is adopted at it.
const flowfabricPostgresShapeVersion = 6

// flowfabricPostgresColumns are the columns, with their types, that the
// registry needs in each of FlowFabric's Postgres tables.
var flowfabricPostgresColumns = []struct {
	table   string
	columns map[string]string
}{
	{"ff_worker_registry", map[string]string{
		"partition_key": "smallint", "namespace": "text", "worker_instance_id": "text", "worker_id": "text",
		"lanes": "text[]", "capabilities_csv": "text", "last_heartbeat_ms": "bigint",
		"liveness_ttl_ms": "bigint", "registered_at_ms": "bigint"}},
	{"ff_worker_registry_event", map[string]string{
		"partition_key": "smallint", "namespace": "text", "worker_instance_id": "text",
		"event_kind": "text", "event_at_ms": "bigint", "reason": "text"}},
	{"ff_exec_core", map[string]string{
		"partition_key": "", "execution_id": "uuid", "public_state": "text", "raw_fields": "jsonb"}},
	{"ff_attempt", map[string]string{
		"partition_key": "", "execution_id": "uuid", "attempt_index": "integer", "worker_instance_id": "text",
		"lease_epoch": "bigint", "lease_expires_at_ms": "bigint"}},
}

// adoptablePostgres reports whether a database without the registry's
// history is FlowFabric's, which the registry adopts; an error says why a
// database that has an ff_worker_registry cannot be adopted.
func adoptablePostgres(ctx context.Context, tx *sql.Tx) (bool, error) {
	var found bool
	if err := tx.QueryRowContext(ctx, `SELECT to_regclass('ff_worker_registry') IS NOT NULL`).Scan(&found); err != nil || !found {
		return false, err
	}
	for _, t := range flowfabricPostgresColumns {
		rows, err := tx.QueryContext(ctx, `
			SELECT a.attname, format_type(a.atttypid, a.atttypmod)
			FROM pg_attribute AS a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, t.table)
		if err != nil {
			return false, err
		}
		have := map[string]string{}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				rows.Close()
				return false, err
			}
			have[name] = typ
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return false, err
		}
		if t.table == "ff_worker_registry" && have["expires_at_ms"] != "" {
			return false, errors.New("cannot adopt this database: ff_worker_registry has the registry's own shape but no registry version table (nothing was applied)")
		}
		for col, typ := range t.columns {
			switch got, ok := have[col]; {
			case !ok:
				return false, fmt.Errorf("cannot adopt this database: ff_worker_registry exists, so it should be FlowFabric's, but %s has no column %s (nothing was applied)", t.table, col)
			case typ != "" && got != typ:
				return false, fmt.Errorf("cannot adopt this database: %s.%s is %s, not FlowFabric's %s (nothing was applied)", t.table, col, got, typ)
			}
		}
	}
	return true, nil
}

// SchemaVersion returns the registry schema version of the database, 0
// when it holds no registry, without writing anything.
func SchemaVersion(ctx context.Context, db *sql.DB) (int64, error) {
	var found bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, store.VersionTable).Scan(&found); err != nil || !found {
		return 0, err
	}
	var v int64
	err := db.QueryRowContext(ctx, `SELECT coalesce(max(version_id), 0) FROM `+store.VersionTable).Scan(&v)
	return v, err
}
