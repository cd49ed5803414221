package registry

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// sqliteMigration is one embedded goose migration of the SQLite store.
type sqliteMigration struct {
	version int64
	name    string // file name, for messages and goose results
	up      string // the Up section's SQL, run as one script; down goes through goose
}

// sqliteMigrations reads the embedded SQLite migrations in version order.
func sqliteMigrations(fsys fs.FS) ([]sqliteMigration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []sqliteMigration
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		up, err := gooseUpSection(string(text))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		out = append(out, sqliteMigration{version: v, name: name, up: up})
	}
	slices.SortFunc(out, func(a, b sqliteMigration) int { return cmp.Compare(a.version, b.version) })
	return out, nil
}

// gooseUpSection returns the text of a goose SQL file's Up section. SQLite runs a section as one script, so statements need not be
// split; the annotations that would change how goose runs a file (no
// transaction, environment substitution) are refused, since the runner
// applies every pending file in one transaction.
func gooseUpSection(text string) (string, error) {
	var up strings.Builder
	inUp := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if ann, ok := strings.CutPrefix(strings.TrimSpace(line), "-- +goose "); ok {
			switch ann = strings.TrimSpace(ann); {
			case strings.EqualFold(ann, "Up"), strings.EqualFold(ann, "Down"):
				inUp = strings.EqualFold(ann, "Up")
			case strings.EqualFold(ann, "StatementBegin"), strings.EqualFold(ann, "StatementEnd"):
			default:
				return "", fmt.Errorf("annotation %q is not supported by the SQLite runner", ann)
			}
			continue
		}
		if inUp {
			up.WriteString(line)
			up.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if up.Len() == 0 {
		return "", errors.New("no -- +goose Up section")
	}
	return up.String(), nil
}

// migrateSQLite applies the pending SQLite migrations up to target (all of
// them when target is the latest) in one immediate transaction, and
// records each in VersionTable as goose does, so that goose and the stock
// CLI read the same history. Either every pending migration is applied or,
// on any failure, none is and the database is as it was. It fails, writing
// nothing, when the database is newer than target's migrations.
func migrateSQLite(ctx context.Context, db *sql.DB, target int64) ([]*goose.MigrationResult, error) {
	migrations, err := sqliteMigrations(schemaFor(false))
	if err != nil {
		return nil, err
	}
	latest := migrations[len(migrations)-1].version
	target = min(target, latest)
	store, err := database.NewStore(database.DialectSQLite3, VersionTable)
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
	err = conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)`, VersionTable).Scan(&exists)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	var current int64
	if exists {
		if current, err = store.GetLatestVersion(ctx, conn); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
	}
	if current > latest {
		return nil, newerSchemaError(current, latest)
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
		if err := store.CreateVersionTable(ctx, conn); err != nil {
			return nil, fmt.Errorf("create %s: %w", VersionTable, err)
		}
		if err := store.Insert(ctx, conn, database.InsertRequest{Version: 0}); err != nil {
			return nil, fmt.Errorf("create %s: %w", VersionTable, err)
		}
	}
	if adopt && target >= flowfabricShapeVersion {
		// FlowFabric's migrations made what versions 1 to 3 make: record
		// them as applied, run none of them.
		for _, m := range migrations {
			if m.version > flowfabricShapeVersion {
				break
			}
			if err := store.Insert(ctx, conn, database.InsertRequest{Version: m.version}); err != nil {
				return nil, fmt.Errorf("adopt FlowFabric database: %w (nothing was applied)", err)
			}
			results = append(results, &goose.MigrationResult{
				Source: &goose.Source{Type: goose.TypeSQL, Path: path.Join("schema/sqlite", m.name), Version: m.version},
				Empty:  true, Direction: "up",
			})
		}
		current = flowfabricShapeVersion
	} else if adopt {
		return nil, fmt.Errorf("a FlowFabric database is adopted at version %d; it cannot stop at %d", flowfabricShapeVersion, target)
	}
	for _, m := range migrations {
		if m.version <= current || m.version > target {
			continue
		}
		start := time.Now()
		if _, err := conn.ExecContext(ctx, m.up); err != nil {
			return nil, fmt.Errorf("migration %s: %w (nothing was applied)", m.name, err)
		}
		if err := store.Insert(ctx, conn, database.InsertRequest{Version: m.version}); err != nil {
			return nil, fmt.Errorf("migration %s: %w (nothing was applied)", m.name, err)
		}
		results = append(results, &goose.MigrationResult{
			Source:    &goose.Source{Type: goose.TypeSQL, Path: path.Join("schema/sqlite", m.name), Version: m.version},
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
