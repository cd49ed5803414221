// Package schema holds the registry's goose migrations, one set per store,
// embedded so that a binary can migrate a database without the source tree.
//
// The files are plain goose SQL migrations and also work with the stock CLI:
//
//	goose -dir schema/sqlite -table ff_worker_registry_version sqlite3 dev.db up
//	goose -dir schema/postgres -table ff_worker_registry_version postgres "postgres://localhost/registry" up
//
// The registry records its version in its own table, not goose's default,
// so that it can share a database with an engine that uses goose too.
package schema

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql
var sqliteFiles embed.FS

//go:embed postgres/*.sql
var postgresFiles embed.FS

// SQLite holds the SQLite store's migrations, named NNNNN_description.sql
// at its root.
var SQLite = sub(sqliteFiles, "sqlite")

// Postgres holds the Postgres store's migrations, named like SQLite's. The
// two sets keep the same version numbers for the same change.
var Postgres = sub(postgresFiles, "postgres")

func sub(fsys fs.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a literal that go:embed has already checked
	}
	return s
}
