package pgstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowfabric/workerregistry/db/pgdb"
)

// Statements about one worker name its partition. On FlowFabric's 256-way
// hash-partitioned tables, a statement that names the parent table is
// planned on every call for its partition key (a generic plan over every
// partition costs more), about 90 µs of a heartbeat's bind; the same
// statement on the partition itself is a plain table's, prepared once per
// connection and planned in microseconds. So the router rewrites sqlc's
// text of each statement in routedQueries, at the DBTX layer, replacing the
// parent tables' names by those of the partitions that the statement's
// partition key argument routes to. Each partition's text differs, so
// pgx's statement cache prepares it once per partition per connection.
// The text keeps its partition_key predicate, so a rewritten statement
// reads and writes exactly what the parent's would (Postgres checks an
// INSERT into a partition against the partition's bound, too).
//
// Which partition holds a key is Postgres's hash of the key, not the key:
// the router reads it from the catalog, once per store, and routes nothing
// until it has (or when the tables are not hash-partitioned).

// routedQueries names the sqlc queries that are about one instance: the
// router finds their partition key argument in their text (partition_key
// = $N, or the first of an INSERT's columns and values).
var routedQueries = map[string]bool{
	"GetWorker":                       true,
	"UpsertWorker":                    true,
	"HeartbeatLiveWorker":             true,
	"HeartbeatLiveWorkerNoWait":       true,
	"HeartbeatWithEventNoWait":        true,
	"RefreshLiveWorkerNoWait":         true,
	"HeartbeatLiveWorkersInPartition": true,
	"LockWorkersInPartition":          true,
	"DeleteLiveWorker":                true,
	"RequestDrain":                    true,
	"RequestDrainWithEvent":           true,
	"ResumeWorker":                    true,
	"GetLiveWorker":                   true,
	"InsertEvent":                     true,
	"ListInstanceEventsAsc":           true,
	"ListInstanceEventsDesc":          true,
}

// partitionedTables are the parents whose names the router rewrites.
var partitionedTables = []string{"ff_worker_registry", "ff_worker_registry_event"}

var (
	queryName = regexp.MustCompile(`^-- name: (\w+) `)
	// A parent table's name as a word: not a longer name's prefix, not a
	// quoted literal ('ff_worker_registry'::regclass).
	tableName      = regexp.MustCompile(`'?\bff_worker_registry(?:_event)?\b`)
	keyPredicate   = regexp.MustCompile(`\bpartition_key = \$(\d+)\b`)
	insertKeyValue = regexp.MustCompile(`(?s)^INSERT INTO ff_worker_registry(?:_event)? \(\s*partition_key,.*?\)\s*VALUES\s*\(\s*\$(\d+)\b`)
)

// router rewrites the text of routed statements.
type router struct {
	// parts is nil until the catalog has been read; then the partitions'
	// quoted names, by table and partition key, or an empty map when the
	// tables are not partitioned as the router expects.
	parts atomic.Pointer[map[string]*[256]string]
	load  sync.Mutex
	stmts sync.Map // sqlc's text → *routedStmt
	// parents, set by tests, runs every statement as sqlc wrote it,
	// naming the parent tables, as if it were routed.
	parents bool
}

// routedStmt is one sqlc statement: the index of its partition key
// argument (-1: not routed) and its text for each partition key.
type routedStmt struct {
	name  string
	arg   int
	texts [256]string
}

// partitionsQuery reads, for each parent table, the partition that each
// partition key routes to.
const partitionsQuery = `
SELECT i.inhparent::regclass::text, k::smallint, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM unnest($1::text[]) AS t(name)
JOIN pg_inherits AS i ON i.inhparent = to_regclass(t.name)
JOIN pg_class AS c ON c.oid = i.inhrelid AND c.relkind = 'r'
JOIN pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\d+), remainder (\d+)') AS b(m)
JOIN generate_series(0, 255) AS k
  ON satisfies_hash_partition(i.inhparent, b.m[1]::integer, b.m[2]::integer, k::smallint)`

// loadPartitions reads the partitions from the catalog through db (a pool,
// never a transaction's connection: a failed read would abort it).
func (r *router) loadPartitions(ctx context.Context, db pgdb.DBTX) error {
	if r.parts.Load() != nil {
		return nil
	}
	r.load.Lock()
	defer r.load.Unlock()
	if r.parts.Load() != nil {
		return nil
	}
	rows, err := db.Query(ctx, partitionsQuery, partitionedTables)
	if err != nil {
		return err
	}
	found := map[string]*[256]string{}
	var (
		parent, name string
		key          int16
	)
	_, err = pgx.ForEachRow(rows, []any{&parent, &key, &name}, func() error {
		if key < 0 || key > 255 {
			return nil
		}
		// A parent found through the search path prints unqualified.
		parent = parent[strings.LastIndexByte(parent, '.')+1:]
		if found[parent] == nil {
			found[parent] = new([256]string)
		}
		found[parent][key] = name
		return nil
	})
	if err != nil {
		return err
	}
	parts := map[string]*[256]string{}
	for _, table := range partitionedTables {
		p := found[table]
		if p == nil || slicesContain(p[:], "") {
			// Not 256 hash partitions of a smallint key: route nothing.
			parts = map[string]*[256]string{}
			break
		}
		parts[table] = p
	}
	r.parts.Store(&parts)
	return nil
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// stmt returns what the router knows of sqlc's text sql, nil while the
// partitions are unknown.
func (r *router) stmt(sql string) *routedStmt {
	p := r.parts.Load()
	if p == nil {
		return nil
	}
	if s, ok := r.stmts.Load(sql); ok {
		return s.(*routedStmt)
	}
	s := newRoutedStmt(sql, *p)
	actual, _ := r.stmts.LoadOrStore(sql, s)
	return actual.(*routedStmt)
}

// newRoutedStmt prepares sql's rewrites, or marks it not routed.
func newRoutedStmt(sql string, parts map[string]*[256]string) *routedStmt {
	s := &routedStmt{arg: -1}
	m := queryName.FindStringSubmatch(sql)
	if m == nil || !routedQueries[m[1]] || len(parts) == 0 {
		return s
	}
	s.name = m[1]
	arg, ok := partitionKeyArg(sql)
	if !ok {
		return s
	}
	for key := range s.texts {
		s.texts[key] = rewriteTables(sql, func(table string) string { return parts[table][key] })
	}
	s.arg = arg
	return s
}

// partitionKeyArg returns the index in the argument list of sql's
// partition key: the parameter of its first partition_key predicate, or
// of an INSERT's first value when partition_key is its first column.
func partitionKeyArg(sql string) (int, bool) {
	body := sql[strings.IndexByte(sql, '\n')+1:]
	m := keyPredicate.FindStringSubmatch(body)
	if m == nil {
		m = insertKeyValue.FindStringSubmatch(stripComments(body))
	}
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n - 1, err == nil && n > 0
}

// stripComments drops -- comments, line by line.
func stripComments(sql string) string {
	var b strings.Builder
	for line := range strings.Lines(sql) {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i] + "\n"
		}
		if strings.TrimSpace(line) != "" {
			b.WriteString(line)
		}
	}
	return b.String()
}

// rewriteTables replaces each parent table's name in sql by partition(name).
func rewriteTables(sql string, partition func(table string) string) string {
	return tableName.ReplaceAllStringFunc(sql, func(name string) string {
		if strings.HasPrefix(name, "'") {
			return name
		}
		return partition(name)
	})
}

// routes reports whether the router routes statements, reading the
// partitions through loader (a pool, or nil) if it has not yet.
func (r *router) routes(ctx context.Context, loader pgdb.DBTX) bool {
	if r.parts.Load() == nil && loader != nil {
		_ = r.loadPartitions(ctx, loader) // not yet: statements name the parents
	}
	p := r.parts.Load()
	return r.parents || p != nil && len(*p) > 0
}

// text returns the text to run for sql with args.
func (r *router) text(sql string, args []any) string {
	if r.parents {
		return sql
	}
	s := r.stmt(sql)
	if s == nil || s.arg < 0 || s.arg >= len(args) {
		return sql
	}
	if key, ok := args[s.arg].(int16); ok && key >= 0 && key <= 255 {
		return s.texts[key]
	}
	return sql
}

// routedDB is a pgdb.DBTX that runs routed statements on their partitions,
// and says which setting to change when the server has no connection
// left for it.
type routedDB struct {
	db     pgdb.DBTX
	r      *router
	limits *connLimits
	pool   bool // db is a pool, through which the router may read the partitions
}

// text returns the text to run for sql with args.
func (d routedDB) text(ctx context.Context, sql string, args []any) string {
	if d.pool && d.r.parts.Load() == nil {
		d.r.routes(ctx, d.db)
	}
	return d.r.text(sql, args)
}

func (d routedDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := d.db.Exec(ctx, d.text(ctx, sql, args), args...)
	return tag, d.limits.explain(err)
}

func (d routedDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := d.db.Query(ctx, d.text(ctx, sql, args), args...)
	return rows, d.limits.explain(err)
}

func (d routedDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return explainedRow{d.db.QueryRow(ctx, d.text(ctx, sql, args), args...), d.limits}
}

func (d routedDB) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, q := range b.QueuedQueries {
		q.SQL = d.text(ctx, q.SQL, q.Arguments)
	}
	return d.db.SendBatch(ctx, b)
}

type explainedRow struct {
	row    pgx.Row
	limits *connLimits
}

func (r explainedRow) Scan(dest ...any) error { return r.limits.explain(r.row.Scan(dest...)) }

// connLimits are the pool's and the server's connection limits, for the
// error that says which to change.
type connLimits struct {
	poolMaxConns   int // the DSN's pool_max_conns: both pools together
	maxConnections int // the server's max_connections; 0 when unknown
}

// explain adds to Postgres's too_many_connections (53300, "sorry, too
// many clients already") which settings to change.
func (l *connLimits) explain(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "53300" {
		return err
	}
	server := "the server's max_connections"
	if l != nil && l.maxConnections > 0 {
		server = fmt.Sprintf("the server's max_connections (%d)", l.maxConnections)
	}
	pool := "pool_max_conns in the DSN"
	if l != nil && l.poolMaxConns > 0 {
		pool = fmt.Sprintf("pool_max_conns in the DSN (%d, this process's reads and writes together)", l.poolMaxConns)
	}
	return fmt.Errorf("%w: the server has no connection left: lower %s, in every process that shares the server, or raise %s", err, pool, server)
}
