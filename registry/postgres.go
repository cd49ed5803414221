package registry

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/flowfabric/workerregistry/schema"
)

// openPostgres opens a pool on the database at dsn and migrates it.
func openPostgres(ctx context.Context, dsn string, opts []Option) (*Registry, error) {
	// pgx knows the URL form by its scheme in lower case only.
	scheme, rest, _ := strings.Cut(dsn, "://")
	cfg, err := pgxpool.ParseConfig(strings.ToLower(scheme) + "://" + rest)
	if err != nil {
		return nil, err
	}
	// A client that dies inside a transaction would otherwise hold its
	// locks, the audit-log lock among them, until TCP gives up on it
	// (hours). The registry's transactions last milliseconds; a URL that
	// sets the parameter keeps its own value.
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60s"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The pool connects lazily; connect now so that a wrong address or
	// password fails here, once, rather than in Migrate's retries.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	// IDs and reasons are UTF-8; another server encoding would reject some
	// that validation accepts.
	var encoding string
	if err := pool.QueryRow(ctx, "SHOW server_encoding").Scan(&encoding); err != nil {
		pool.Close()
		return nil, err
	}
	if encoding != "UTF8" {
		pool.Close()
		return nil, fmt.Errorf("database encoding is %s; the registry needs UTF8", encoding)
	}
	// goose speaks database/sql; this *sql.DB borrows the pool's
	// connections and leaves the pool open when closed.
	migrator := stdlib.OpenDBFromPool(pool)
	err = Migrate(ctx, migrator)
	migrator.Close()
	if err != nil {
		pool.Close()
		return nil, err
	}
	st := newPostgresStore(pool)
	st.owned = true
	return &Registry{st: st, cfg: newConfig(opts)}, nil
}

// NewPostgres returns a Registry over a pgx pool the caller owns, on a
// database already migrated (see Migrate, with stdlib.OpenDBFromPool(pool)).
// Close does not close the pool.
func NewPostgres(pool *pgxpool.Pool, opts ...Option) *Registry {
	return &Registry{st: newPostgresStore(pool), cfg: newConfig(opts)}
}

// isPostgresDB reports whether db runs on pgx's database/sql driver.
func isPostgresDB(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

// schemaFor returns the migrations of the Postgres or the SQLite store.
func schemaFor(postgres bool) fs.FS {
	if postgres {
		return schema.Postgres
	}
	return schema.SQLite
}

// RedactDSN returns dsn with a Postgres URL's passwords, in the user part
// or the password and sslpassword parameters, replaced by "xxxxx", for
// messages and logs. A SQLite path is returned as it is.
func RedactDSN(dsn string) string {
	if !IsPostgresDSN(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	q := u.Query()
	for _, key := range []string{"password", "sslpassword"} {
		if q.Has(key) {
			q.Set(key, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// keywordDSN matches a libpq keyword/value connection string
// ("host=db dbname=registry ..."), which Open does not take: it would
// otherwise be taken for a file name.
var keywordDSN = regexp.MustCompile(`(^|\s)(host|hostaddr|port|dbname|user|password|sslmode)=`)
