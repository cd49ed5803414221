package registry

import (
	"fmt"

	"github.com/flowfabric/workerregistry/internal/dsn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// StoreKind is the kind of database a DSN names.
type StoreKind int

const (
	// StoreSQLite is a SQLite database file, or ":memory:".
	StoreSQLite StoreKind = iota + 1
	// StorePostgres is a Postgres database, reached through pgx.
	StorePostgres
)

// String returns "sqlite" or "postgres".
func (k StoreKind) String() string {
	switch k {
	case StoreSQLite:
		return "sqlite"
	case StorePostgres:
		return "postgres"
	}
	return fmt.Sprintf("StoreKind(%d)", int(k))
}

// DataSource is a parsed DSN: the store it names and how to reach it. Its
// String is the DSN with every secret masked, for messages and logs; a
// Postgres DSN's text is not kept. Build one with ParseDSN.
type DataSource struct{ src dsn.Source }

// Store returns the kind of database d names.
func (d DataSource) Store() StoreKind {
	switch {
	case d.src.Postgres:
		return StorePostgres
	case d.src.Path != "":
		return StoreSQLite
	}
	return 0
}

// Path returns the SQLite file's path, or "" for Postgres.
func (d DataSource) Path() string { return d.src.Path }

// PoolConfig returns a new copy of the pgx pool configuration of a
// Postgres DSN, or nil for SQLite. For a database/sql handle, use
// stdlib.OpenDB(*d.PoolConfig().ConnConfig).
func (d DataSource) PoolConfig() *pgxpool.Config {
	if d.src.Pool == nil {
		return nil
	}
	return d.src.Pool.Copy()
}

// String returns the DSN with every password and other secret replaced by
// "xxxxx". A SQLite path is returned as it is.
func (d DataSource) String() string { return d.src.Redacted }

// RedactError returns err with every secret of d masked in its message, for
// errors from pgx on connections that d configured. The result wraps err,
// so errors.Is and errors.As see the same chain.
func (d DataSource) RedactError(err error) error { return d.src.RedactError(err) }

// ParseDSN decides which store dsn names and parses it. Open and the
// commands in cmd/ all go through it, so they never disagree about a DSN.
//
//   - A URL with the scheme postgres or postgresql, in any case, is a
//     Postgres database: "postgres://user:password@host:5432/db?sslmode=require".
//     Its parameters configure the pool as pgxpool.ParseConfig documents
//     (pool_max_conns, for instance); a parameter pgx does not know is a
//     server setting (search_path, for instance).
//   - A libpq keyword/value string is a Postgres database too: a string in
//     which a libpq keyword (host, port, dbname, user, password, sslmode,
//     ...) starts a word and is followed by '=', as in
//     "host=db.internal dbname=registry user=registry". Every keyword must
//     be one that pgx uses: ParseDSN refuses an unknown keyword, naming it,
//     rather than passing it to the server. Server settings go in
//     options='-c name=value'.
//   - Any other URL (scheme://...) is refused, as is what looks like a
//     URL gone wrong: "://" anywhere, a leading quote, or a scheme such as
//     postgres:, file: or jdbc: without its slashes. None is shown.
//   - Anything else is the path of a SQLite file. ":memory:" is a private
//     in-memory database.
//
// In a URL, '@' may appear once, unescaped, ending the user name and
// password before any '/', '?' or '#'. pgx and libpq end the user part at
// the first '@' and Go's net/url at the last, so a password holding an
// unescaped '@' would otherwise be sent, in part, as a host name. ParseDSN
// refuses such a URL: percent-encode any other '@' as %40.
//
// An empty dsn is refused. Every error is a *ValidationError for the field
// "dsn", matching ErrInvalidInput, and shows the DSN only in its redacted
// form.
func ParseDSN(dsn string) (DataSource, error) {
	d, err := parseDSN(dsn)
	if err != nil {
		return DataSource{}, err
	}
	return d, nil
}

// parseDSN is ParseDSN, but returns the redacted form on failure too, for
// RedactDSN.
func parseDSN(s string) (DataSource, error) {
	src, err := dsn.Parse(s)
	if err != nil {
		return DataSource{src}, &ValidationError{Field: "dsn", Reason: err.Error()}
	}
	return DataSource{src}, nil
}
