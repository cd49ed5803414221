package registry

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

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
	// Statements about one worker are prepared once per partition (256
	// of each) on each connection; pgx's default cache of 512 would
	// evict them as a fleet's heartbeats go round the partitions. A DSN
	// that sets statement_cache_capacity keeps its own value.
	if !strings.Contains(cfg.ConnString(), "statement_cache_capacity") {
		cfg.ConnConfig.StatementCacheCapacity = statementCacheCapacity
	}
	poolMaxConns := int(cfg.MaxConns)
	writes, reads := splitPool(cfg)
	wpool, err := pgxpool.NewWithConfig(ctx, writes)
	if err != nil {
		return nil, err
	}
	rpool := wpool
	closeAll := func() {
		if rpool != wpool {
			rpool.Close()
		}
		wpool.Close()
	}
	if reads != nil {
		if rpool, err = pgxpool.NewWithConfig(ctx, reads); err != nil {
			wpool.Close()
			return nil, err
		}
	}
	pool := wpool
	// The pool connects lazily; connect now so that a wrong address or
	// password fails here, once, rather than in Migrate's retries.
	if err := pool.Ping(ctx); err != nil {
		closeAll()
		return nil, err
	}
	// IDs and reasons are UTF-8; another server encoding would reject some
	// that validation accepts.
	var encoding string
	if err := pool.QueryRow(ctx, "SHOW server_encoding").Scan(&encoding); err != nil {
		closeAll()
		return nil, err
	}
	if encoding != "UTF8" {
		closeAll()
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
		closeAll()
		return nil, err
	}
	cfgOpts := newConfig(opts)
	st := pgstore.NewSplit(wpool, rpool, true)
	maxConnections, reserved, err := st.Prepare(ctx, poolMaxConns)
	if err != nil {
		closeAll()
		return nil, err
	}
	if poolMaxConns > maxConnections-reserved {
		cfgOpts.logger.Warn("registry: pool_max_conns is more connections than the server's max_connections accepts (less superuser_reserved_connections): lower pool_max_conns in the DSN or raise max_connections on the server",
			"pool_max_conns", poolMaxConns, "max_connections", maxConnections, "superuser_reserved_connections", reserved)
	}
	return &Registry{st: st, cfg: cfgOpts}, nil
}

// statementCacheCapacity is the pgx statement cache of the registry's
// connections: the statements about one worker, prepared once per
// partition, and the others.
const statementCacheCapacity = 4096

// splitPool splits cfg, whose MaxConns is the DSN's pool_max_conns (or
// pgxpool's default, the larger of 4 and the number of CPUs), into the
// pool that writes and the pool that reads, so that long reads (listings,
// lease walks) never hold the connections that heartbeats wait for:
// writes get half the connections, rounded up, and reads the rest;
// pool_min_conns splits the same way. With pool_max_conns=1 there is
// one pool, and reads returns nil.
func splitPool(cfg *pgxpool.Config) (writes, reads *pgxpool.Config) {
	if cfg.MaxConns < 2 {
		return cfg, nil
	}
	writes, reads = cfg, cfg.Copy()
	writes.MaxConns, reads.MaxConns = (cfg.MaxConns+1)/2, cfg.MaxConns/2
	writes.MinConns, reads.MinConns = min((cfg.MinConns+1)/2, writes.MaxConns), min(cfg.MinConns/2, reads.MaxConns)
	return writes, reads
}

// NewPostgres returns a Registry over a pgx pool the caller owns, on a
// database already migrated (see Migrate, with stdlib.OpenDBFromPool(pool)).
// Close does not close the pool.
func NewPostgres(pool *pgxpool.Pool, opts ...Option) *Registry {
	return &Registry{st: pgstore.New(pool, false), cfg: newConfig(opts)}
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
	return d.redacted
}
