package registry

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/internal/store/pgstore"
	"github.com/flowfabric/workerregistry/schema"
)

// openPostgres opens a pool on the database that ds names and migrates it.
// pgx's errors are redacted: a connection error shows no secret of ds.
func openPostgres(ctx context.Context, ds DataSource, opts []Option) (*Registry, error) {
	r, err := openPostgresPool(ctx, ds.PoolConfig(), opts)
	return r, ds.RedactError(err)
}

func openPostgresPool(ctx context.Context, cfg *pgxpool.Config, opts []Option) (*Registry, error) {
	// A client that dies inside a transaction would otherwise hold its
	// locks, the audit-log lock among them, until TCP gives up on it
	// (hours). The registry's transactions last milliseconds; a URL that
	// sets the parameter keeps its own value.
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60s"
	}
	// The DSN's pool_max_conns is every connection the Registry opens:
	// writes get half of them, reads the rest (see pgstore.OpenPools).
	poolMaxConns := int(cfg.MaxConns)
	writes, reads, err := pgstore.OpenPools(ctx, cfg)
	if err != nil {
		return nil, err
	}
	st := pgstore.NewSplit(writes, reads, true)
	pool := writes
	// The pool connects lazily; connect now so that a wrong address or
	// password fails here, once, rather than in Migrate's retries.
	if err := pool.Ping(ctx); err != nil {
		st.Close()
		return nil, err
	}
	// IDs and reasons are UTF-8; another server encoding would reject some
	// that validation accepts.
	var encoding string
	if err := pool.QueryRow(ctx, "SHOW server_encoding").Scan(&encoding); err != nil {
		st.Close()
		return nil, err
	}
	if encoding != "UTF8" {
		st.Close()
		return nil, fmt.Errorf("database encoding is %s; the registry needs UTF8", encoding)
	}
	// goose speaks database/sql; this *sql.DB borrows the pool's
	// connections and leaves the pool open when closed.
	migrator := stdlib.OpenDBFromPool(pool)
	if newConfig(opts).autoMigrate {
		err = Migrate(ctx, migrator)
	} else {
		err = checkMigrated(ctx, migrator, schema.Postgres)
	}
	migrator.Close()
	if err != nil {
		st.Close()
		return nil, err
	}
	// The server's clock is read on the reads' connections: its round
	// trips never hold a connection that a heartbeat waits for.
	r := newPostgresRegistry(st, reads, opts)
	if err := st.Prepare(ctx, poolMaxConns, r.cfg.logger); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// NewPostgres returns a Registry over a pgx pool the caller owns, on a
// database already migrated (see Migrate, with stdlib.OpenDBFromPool(pool)).
// Close does not close the pool.
//
// Without WithClock it reads the server's clock at once (a few round
// trips, within 5 seconds; on failure it logs a warning and starts from
// the host's clock) and every 30 seconds until Close.
func NewPostgres(pool *pgxpool.Pool, opts ...Option) *Registry {
	return newPostgresRegistry(pgstore.New(pool, false), pool, opts)
}

func newPostgresRegistry(st store.Store, pool *pgxpool.Pool, opts []Option) *Registry {
	r := &Registry{st: st, cfg: newConfig(opts)}
	r.serverClock = r.cfg.usePostgresClock(pool)
	return r
}

// isPostgresDB reports whether db runs on pgx's database/sql driver.
func isPostgresDB(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

// RedactDSN returns dsn as ParseDSN's DataSource.String shows it: every
// password and other secret of a Postgres DSN replaced by "xxxxx" (or
// more hidden, for a DSN that ParseDSN refuses), a SQLite path as it is.
// It is for messages and logs; code that also opens the database can parse
// once with ParseDSN and print the DataSource.
func RedactDSN(dsn string) string {
	d, _ := parseDSN(dsn)
	return d.String()
}
