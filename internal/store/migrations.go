package store

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/pressly/goose/v3"
)

// VersionTable is the table in which goose records the registry's schema
// version, in place of goose's default goose_db_version: the registry's
// tables often live in a database that the engine migrates with goose too,
// and the two histories must not mix.
const VersionTable = "ff_worker_registry_version"

// MigrationLockID is the Postgres advisory lock that serialises the
// registry's migrations ("ffwr" "migr" as bytes).
const MigrationLockID = 0x6666_7772_6d69_6772

// LatestVersion is the version of the newest migration in fsys.
func LatestVersion(fsys fs.FS) int64 {
	names, _ := fs.Glob(fsys, "*.sql")
	var latest int64
	for _, name := range names {
		if v, err := goose.NumericComponent(name); err == nil {
			latest = max(latest, v)
		}
	}
	return latest
}

// NewerSchemaError reports a database migrated by a newer version of the
// library than this one.
func NewerSchemaError(current, latest int64) error {
	return fmt.Errorf("database schema version %d is newer than this library's latest (%d): upgrade the library", current, latest)
}

// Migration is one embedded goose migration of a store.
type Migration struct {
	Version int64
	Name    string // file name, for messages and goose results
	Up      string // the Up section's SQL, run as one script; down goes through goose
}

// ReadMigrations reads a store's embedded migrations in version order.
func ReadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		up, err := gooseUpSection(string(text))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, Up: up})
	}
	slices.SortFunc(out, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}

// gooseUpSection returns the text of a goose SQL file's Up section. Both
// runners run a section as one script, so statements need not be split;
// the annotations that would change how goose runs a file (no
// transaction, environment substitution) are refused, since the runners
// apply files in transactions of their own.
func gooseUpSection(text string) (string, error) {
	var up strings.Builder
	inUp := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if ann, ok := strings.CutPrefix(strings.TrimSpace(line), "-- +goose "); ok {
			switch ann = strings.TrimSpace(ann); {
			case strings.EqualFold(ann, "Up"), strings.EqualFold(ann, "Down"):
				inUp = strings.EqualFold(ann, "Up")
			case strings.EqualFold(ann, "StatementBegin"), strings.EqualFold(ann, "StatementEnd"):
			default:
				return "", fmt.Errorf("annotation %q is not supported by the SQLite runner", ann)
			}
			continue
		}
		if inUp {
			up.WriteString(line)
			up.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if up.Len() == 0 {
		return "", errors.New("no -- +goose Up section")
	}
	return up.String(), nil
}
