// Package registrytest provides fixtures for tests of code that uses the
// registry, as net/http/httptest does for handlers: a registry on a fresh
// database file, and executions with attempts holding leases, written the
// way the engine writes them:
//
//	func TestReclaim(t *testing.T) {
//		reg, sqlDB := registrytest.Open(t)
//		registrytest.InsertLeases(t, sqlDB, registrytest.Lease{
//			Namespace: "demo", WorkerInstanceID: "worker-1", ExpiresAt: past,
//		})
//		res, err := reg.ListExpiredLeases(ctx, registry.ListExpiredLeasesArgs{Namespace: "demo"})
//		...
//	}
package registrytest

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/flowfabric/workerregistry/db/sqlitefixtures"
	"github.com/flowfabric/workerregistry/registry"
)

// Lease describes an execution with one attempt. With a holder and an
// expiry the attempt holds a lease.
type Lease struct {
	// ExecutionID is the execution; a zero UUID gets a random one.
	ExecutionID registry.ExecutionID
	// Namespace is stored in the execution's raw_fields; "" stores none.
	Namespace string
	// State is the execution's public_state; "" means "running". It must
	// be one of LeaseStates: the held states the registry lists leases of
	// (active, claimed, running) or a state in which the engine holds no
	// lease (waiting, suspended, completed, failed, cancelled). Any other
	// is refused, naming the field, so that a typo ("runing") does not
	// silently write a lease that no listing returns.
	State            string
	AttemptIndex     uint32
	LeaseEpoch       uint64
	WorkerInstanceID string    // the holder; "" for none
	ExpiresAt        time.Time // the lease's expiry; zero for none
}

// Open opens a registry on a new database file in tb.TempDir, and a second
// connection to the same file for fixtures and inspection. Both are closed
// when the test ends.
func Open(tb testing.TB, opts ...registry.Option) (*registry.Registry, *sql.DB) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "registry.db")
	r, err := registry.Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	sqlDB, err := registry.OpenSQLiteDB(path)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	tb.Cleanup(func() { sqlDB.Close() })
	return r, sqlDB
}

// TextRows returns the rows of queries that each select one text column,
// one query's rows after another's. It fails the test on error.
func TextRows(tb testing.TB, sqlDB *sql.DB, queries ...string) []string {
	tb.Helper()
	var out []string
	for _, q := range queries {
		rows, err := sqlDB.Query(q)
		if err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				tb.Fatalf("registrytest: %v", err)
			}
			out = append(out, s)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			tb.Fatalf("registrytest: %v", err)
		}
	}
	return out
}

// InsertLeases writes each lease's execution and attempt and returns the
// execution IDs, random UUIDs filled in. sqlDB is a SQLite or a Postgres
// database (pgx's database/sql driver) that holds the registry's schema
// (see registry.Migrate). It fails the test on error.
func InsertLeases(tb testing.TB, sqlDB *sql.DB, leases ...Lease) []registry.ExecutionID {
	tb.Helper()
	ids, err := WriteLeases(context.Background(), sqlDB, leases...)
	if err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
	return ids
}

// WriteLeases is InsertLeases for code that is not a test, such as a demo
// playing the engine's part.
func WriteLeases(ctx context.Context, sqlDB *sql.DB, leases ...Lease) ([]registry.ExecutionID, error) {
	ids := make([]registry.ExecutionID, len(leases))
	err := writeLeases(ctx, sqlDB, len(leases), func(i int) Lease { return leases[i] },
		func(i int, id registry.ExecutionID) { ids[i] = id })
	return ids, err
}

// batchSize bounds a bulk insert's transactions, so that a million leases
// do not pile up in one WAL.
const batchSize = 10000

// InsertLeasesFunc writes n leases made by lease(0) to lease(n-1), for data
// sets too large to hold as a slice, and reports each one's execution ID to
// written if it is not nil. It fails the test on error.
func InsertLeasesFunc(tb testing.TB, sqlDB *sql.DB, n int, lease func(i int) Lease, written func(i int, id registry.ExecutionID)) {
	tb.Helper()
	if err := writeLeases(context.Background(), sqlDB, n, lease, written); err != nil {
		tb.Fatalf("registrytest: %v", err)
	}
}

func writeLeases(ctx context.Context, sqlDB *sql.DB, n int, lease func(i int) Lease, written func(i int, id registry.ExecutionID)) error {
	for start := 0; start < n; start += batchSize {
		if err := writeBatch(ctx, sqlDB, start, min(n, start+batchSize), lease, written); err != nil {
			return err
		}
	}
	return nil
}

// LeaseStates are the execution states a Lease may have: first those in
// which the registry lists an attempt's lease (active, claimed, running),
// then those in which the engine holds none.
var LeaseStates = []string{"active", "claimed", "running", "waiting", "suspended", "completed", "failed", "cancelled"}

func validateLease(i int, l Lease) error {
	if l.State != "" && !slices.Contains(LeaseStates, l.State) {
		return fmt.Errorf("lease %d: State: %q is not an execution state (want one of %s)", i, l.State, strings.Join(LeaseStates, ", "))
	}
	return nil
}

func writeBatch(ctx context.Context, sqlDB *sql.DB, start, end int, lease func(i int) Lease, written func(i int, id registry.ExecutionID)) error {
	// Key order makes the inserts appends to the primary key's B-tree
	// rather than random probes.
	batch := make([]Lease, 0, end-start)
	for i := start; i < end; i++ {
		l := lease(i)
		if err := validateLease(i, l); err != nil {
			return err
		}
		if l.ExecutionID.UUID == uuid.Nil {
			l.ExecutionID.UUID = uuid.New()
		}
		if written != nil {
			written(i, l.ExecutionID)
		}
		batch = append(batch, l)
	}
	slices.SortFunc(batch, func(a, b Lease) int {
		return cmp.Or(cmp.Compare(a.ExecutionID.Partition, b.ExecutionID.Partition),
			bytes.Compare(a.ExecutionID.UUID[:], b.ExecutionID.UUID[:]))
	})
	if _, ok := sqlDB.Driver().(*stdlib.Driver); ok {
		return copyBatch(ctx, sqlDB, batch)
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	extra, err := engineColumns(ctx, tx)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		ins, err := prepareEngineInserts(ctx, tx, extra)
		if err != nil {
			return err
		}
		defer ins.close()
		for _, l := range batch {
			if err := ins.insert(ctx, l); err != nil {
				return fmt.Errorf("lease %v: %w", l.ExecutionID, err)
			}
		}
		return tx.Commit()
	}
	q, err := sqlitefixtures.Prepare(ctx, tx)
	if err != nil {
		return err
	}
	defer q.Close()
	for _, l := range batch {
		if err := insertLease(ctx, q, l); err != nil {
			return fmt.Errorf("lease %v: %w", l.ExecutionID, err)
		}
	}
	return tx.Commit()
}

// engineColumns returns, by table, the NOT NULL columns without a default
// that FlowFabric's ff_exec_core and ff_attempt have beyond the registry's,
// each with the value a fixture gives it: none on a database the registry
// made, the engine's lane, phases, states and creation time on a FlowFabric
// database.
func engineColumns(ctx context.Context, tx *sql.Tx) (map[string][]engineColumn, error) {
	known := map[string]bool{
		"partition_key": true, "execution_id": true, "public_state": true, "raw_fields": true,
		"attempt_index": true, "worker_instance_id": true, "lease_epoch": true, "lease_expires_at_ms": true,
	}
	out := map[string][]engineColumn{}
	for _, table := range []string{"ff_exec_core", "ff_attempt"} {
		rows, err := tx.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?) WHERE "notnull" AND dflt_value IS NULL AND pk = 0`, table)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				rows.Close()
				return nil, err
			}
			if !known[name] {
				out[table] = append(out[table], engineColumn{name, fixtureValue(name, typ)})
			}
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

type engineColumn struct {
	name  string
	value any
}

// fixtureValue is what a fixture writes in an engine column it does not
// model: a plausible value for the columns FlowFabric has, else a zero.
func fixtureValue(name, typ string) any {
	switch name {
	case "lane_id":
		return "default"
	case "lifecycle_phase":
		return "active"
	case "ownership_state":
		return "leased"
	case "eligibility_state":
		return "not_applicable"
	case "attempt_state":
		return "running_attempt"
	}
	switch strings.ToUpper(typ) {
	case "TEXT":
		return ""
	case "BLOB":
		return []byte{}
	}
	return 0
}

// engineInserts writes leases where FlowFabric's tables need more columns
// than the registry's fixtures know, through two statements prepared once
// per batch.
type engineInserts struct {
	extra         map[string][]engineColumn
	exec, attempt *sql.Stmt
}

func prepareEngineInserts(ctx context.Context, tx *sql.Tx, extra map[string][]engineColumn) (*engineInserts, error) {
	statement := func(table string, cols []string) string {
		for _, c := range extra[table] {
			cols = append(cols, c.name)
		}
		return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) + ")"
	}
	e := &engineInserts{extra: extra}
	var err error
	if e.exec, err = tx.PrepareContext(ctx, statement("ff_exec_core", []string{"partition_key", "execution_id", "public_state", "raw_fields"})); err != nil {
		return nil, err
	}
	if e.attempt, err = tx.PrepareContext(ctx, statement("ff_attempt", []string{"partition_key", "execution_id", "attempt_index", "worker_instance_id", "lease_epoch", "lease_expires_at_ms"})); err != nil {
		e.exec.Close()
		return nil, err
	}
	return e, nil
}

func (e *engineInserts) close() {
	e.exec.Close()
	e.attempt.Close()
}

func (e *engineInserts) insert(ctx context.Context, l Lease) error {
	id := l.ExecutionID
	raw, err := rawFields(l)
	if err != nil {
		return err
	}
	values := func(table string, vals ...any) []any {
		for _, c := range e.extra[table] {
			vals = append(vals, c.value)
		}
		return vals
	}
	if _, err := e.exec.ExecContext(ctx, values("ff_exec_core", int64(id.Partition), id.UUID[:], state(l), string(raw))...); err != nil {
		return err
	}
	var holder, expires any
	if l.WorkerInstanceID != "" {
		holder = l.WorkerInstanceID
	}
	if !l.ExpiresAt.IsZero() {
		expires = l.ExpiresAt.UnixMilli()
	}
	_, err = e.attempt.ExecContext(ctx, values("ff_attempt", int64(id.Partition), id.UUID[:], int64(l.AttemptIndex), holder, int64(l.LeaseEpoch), expires)...)
	return err
}

// copyBatch writes a batch to Postgres with COPY, in one transaction on
// the pgx connection under sqlDB. On a FlowFabric database, the engine's
// NOT NULL columns that the registry does not model get fixture values.
func copyBatch(ctx context.Context, sqlDB *sql.DB, batch []Lease) error {
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		return pgx.BeginFunc(ctx, driverConn.(*stdlib.Conn).Conn(), func(tx pgx.Tx) error {
			execCols := []string{"partition_key", "execution_id", "public_state", "raw_fields"}
			attemptCols := []string{"partition_key", "execution_id", "attempt_index", "worker_instance_id", "lease_epoch", "lease_expires_at_ms"}
			extra, err := postgresEngineColumns(ctx, tx, append(execCols, attemptCols...))
			if err != nil {
				return err
			}
			execs := make([][]any, len(batch))
			attempts := make([][]any, len(batch))
			for i, l := range batch {
				id := l.ExecutionID
				raw, err := rawFields(l)
				if err != nil {
					return err
				}
				var holder, expires any
				if l.WorkerInstanceID != "" {
					holder = l.WorkerInstanceID
				}
				if !l.ExpiresAt.IsZero() {
					expires = l.ExpiresAt.UnixMilli()
				}
				execs[i] = append([]any{int32(id.Partition), id.UUID, state(l), raw}, extraValues(extra["ff_exec_core"])...)
				attempts[i] = append([]any{int32(id.Partition), id.UUID, int32(l.AttemptIndex), holder, int64(l.LeaseEpoch), expires},
					extraValues(extra["ff_attempt"])...)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ff_exec_core"}, append(execCols, extraNames(extra["ff_exec_core"])...), pgx.CopyFromRows(execs)); err != nil {
				return fmt.Errorf("copy executions: %w", err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ff_attempt"}, append(attemptCols, extraNames(extra["ff_attempt"])...), pgx.CopyFromRows(attempts)); err != nil {
				return fmt.Errorf("copy attempts: %w", err)
			}
			return nil
		})
	})
}

// postgresEngineColumns is engineColumns on Postgres.
func postgresEngineColumns(ctx context.Context, tx pgx.Tx, known []string) (map[string][]engineColumn, error) {
	out := map[string][]engineColumn{}
	for _, table := range []string{"ff_exec_core", "ff_attempt"} {
		rows, err := tx.Query(ctx, `
			SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
			  AND a.attnotnull AND NOT a.atthasdef AND NOT a.attname = ANY ($2)`, table, known)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				rows.Close()
				return nil, err
			}
			v := fixtureValue(name, typ)
			switch typ {
			case "text[]":
				v = []string{}
			case "bigint", "integer", "smallint":
				v = 0
			case "jsonb", "json":
				v = "{}"
			case "boolean":
				v = false
			}
			out[table] = append(out[table], engineColumn{name, v})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func extraNames(cols []engineColumn) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

func extraValues(cols []engineColumn) []any {
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = c.value
	}
	return out
}

func state(l Lease) string {
	if l.State == "" {
		return "running"
	}
	return l.State
}

func rawFields(l Lease) ([]byte, error) {
	fields := map[string]string{}
	if l.Namespace != "" {
		fields["namespace"] = l.Namespace
	}
	return json.Marshal(fields)
}

func insertLease(ctx context.Context, q *sqlitefixtures.Queries, l Lease) error {
	id := l.ExecutionID
	raw, err := rawFields(l)
	if err != nil {
		return err
	}
	if err := q.InsertExecution(ctx, sqlitefixtures.InsertExecutionParams{
		PartitionKey: int64(id.Partition),
		ExecutionID:  id.UUID[:],
		PublicState:  state(l),
		RawFields:    string(raw),
	}); err != nil {
		return err
	}
	attempt := sqlitefixtures.InsertAttemptParams{
		PartitionKey: int64(id.Partition),
		ExecutionID:  id.UUID[:],
		AttemptIndex: int64(l.AttemptIndex),
		LeaseEpoch:   int64(l.LeaseEpoch),
	}
	if l.WorkerInstanceID != "" {
		attempt.WorkerInstanceID = &l.WorkerInstanceID
	}
	if !l.ExpiresAt.IsZero() {
		ms := l.ExpiresAt.UnixMilli()
		attempt.LeaseExpiresAtMs = &ms
	}
	return q.InsertAttempt(ctx, attempt)
}
