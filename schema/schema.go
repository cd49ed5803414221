// Package schema holds the registry's goose migrations, embedded so that a
// binary can migrate a database without the source tree.
//
// The files are plain goose SQL migrations and also work with the stock CLI:
//
//	goose -dir schema sqlite3 dev.db up
package schema

import "embed"

// FS holds the migrations, named NNNNN_description.sql at its root.
//
//go:embed *.sql
var FS embed.FS
