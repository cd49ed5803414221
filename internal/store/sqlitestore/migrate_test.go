package sqlitestore

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/flowfabric/workerregistry/internal/store"
	"github.com/flowfabric/workerregistry/schema"
)

// TestRenamedMigrationsReadAsApplied shows that a database migrated when
// versions 6 and 7 were named for the Postgres store reads as current
// under today's names: goose records versions only, so the version table
// such a database holds (0 to the latest) is the one a migration today
// writes. The test writes that table by hand, as the old library left it,
// and has goose (the stock CLI's code) read it, migrate down past the
// renamed files and up again.
func TestRenamedMigrationsReadAsApplied(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	latest := store.LatestVersion(schema.SQLite)
	if _, err := MigrateFile(ctx, path, latest); err != nil {
		t.Fatal(err)
	}
	db, err := OpenForMigration(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The old library's history: versions 0..latest, no names.
	rows, err := db.QueryContext(ctx, `SELECT version_id FROM `+store.VersionTable+` WHERE is_applied ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	migrations, err := store.ReadMigrations(schema.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{0}
	for _, m := range migrations {
		want = append(want, m.Version)
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("version table holds %v, want %v", versions, want)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, schema.SQLite, goose.WithTableName(store.VersionTable))
	if err != nil {
		t.Fatal(err)
	}
	status, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if s.State != goose.StateApplied {
			t.Errorf("%s: %s, want applied", s.Source.Path, s.State)
		}
	}
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("down to 5 past the renamed files: %v", err)
	}
	if v, err := SchemaVersion(ctx, db); err != nil || v != 5 {
		t.Fatalf("after down: version %d, %v", v, err)
	}
	if _, err := Migrate(ctx, db, latest); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if v, err := SchemaVersion(ctx, db); err != nil || v != latest {
		t.Fatalf("after up: version %d, %v; want %d", v, err, latest)
	}
}
