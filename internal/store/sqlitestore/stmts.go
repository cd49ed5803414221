package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/flowfabric/workerregistry/db/sqlitedb"
)

// stmtCache prepares each of the store's statements on its first use and
// keeps it: SQLite spends more time parsing a short statement than running
// it, and preparing all of them up front made every Open (a CLI command, a
// test) pay for the statements it never runs.
//
// A statement first used in a transaction is prepared on the transaction
// for that use, and for the cache once the transaction is over: the
// writer's pool has one connection, which the transaction holds.
type stmtCache struct {
	db    *sql.DB
	q     *sqlitedb.Queries // over the cache, outside transactions
	stmts sync.Map          // query → *sql.Stmt; read on every call, so no lock

	mu      sync.Mutex
	pending map[string]bool // first used in a transaction; see preparePending
	closed  bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	c := &stmtCache{db: db, pending: make(map[string]bool)}
	c.q = sqlitedb.New(cachedDBTX{c: c})
	return c
}

// queries returns sqlc's queries over the cache, in tx when tx is not nil.
func (c *stmtCache) queries(tx *sql.Tx) *sqlitedb.Queries {
	if tx == nil {
		return c.q
	}
	return sqlitedb.New(cachedDBTX{c: c, tx: tx})
}

var errStmtCacheClosed = errors.New("registry: statement cache closed")

// prepare prepares query on the cache's database and keeps it. A failed
// prepare is not kept: it may be a cancelled context, or a schema that is
// migrated later.
func (c *stmtCache) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, query)
	if c.closed {
		return nil, errors.Join(errStmtCacheClosed, st.Close())
	}
	if kept, loaded := c.stmts.LoadOrStore(query, st); loaded {
		// Another call prepared it meanwhile.
		return kept.(*sql.Stmt), st.Close()
	}
	return st, nil
}

// preparePending prepares the statements that transactions used before
// they were cached. It runs after a transaction, outside it; a failure is
// left for the next use to find.
func (c *stmtCache) preparePending(ctx context.Context) {
	c.mu.Lock()
	var queries []string
	for q := range c.pending {
		queries = append(queries, q)
	}
	c.mu.Unlock()
	for _, q := range queries {
		if _, err := c.prepare(ctx, q); err != nil {
			return
		}
	}
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var err error
	c.stmts.Range(func(q, st any) bool {
		err = errors.Join(err, st.(*sql.Stmt).Close())
		c.stmts.Delete(q)
		return true
	})
	return err
}

// cachedDBTX is sqlitedb.DBTX over a stmtCache: on the cache's database, or
// in a transaction of it.
type cachedDBTX struct {
	c  *stmtCache
	tx *sql.Tx
}

func (d cachedDBTX) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if v, ok := d.c.stmts.Load(query); ok {
		if d.tx != nil {
			return d.tx.StmtContext(ctx, v.(*sql.Stmt)), nil
		}
		return v.(*sql.Stmt), nil
	}
	if d.tx == nil {
		return d.c.prepare(ctx, query)
	}
	st, err := d.tx.PrepareContext(ctx, query)
	if err == nil {
		d.c.mu.Lock()
		d.c.pending[query] = true
		d.c.mu.Unlock()
	}
	return st, err
}

func (d cachedDBTX) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := d.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (d cachedDBTX) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if d.tx != nil {
		return d.tx.PrepareContext(ctx, query)
	}
	return d.c.db.PrepareContext(ctx, query)
}

func (d cachedDBTX) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := d.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs a statement that could not be prepared unprepared,
// so that its *sql.Row carries the error.
func (d cachedDBTX) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := d.prepared(ctx, query)
	if err != nil {
		if d.tx != nil {
			return d.tx.QueryRowContext(ctx, query, args...)
		}
		return d.c.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
