// Package sqlctest reads the registry's sqlc queries as text and shows
// SQLite's plans for them, for the tests of the stores' statements: a test
// of a query plan checks the statement the code runs, from its one source.
package sqlctest

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Query reads the query called name from the sqlc file at path (relative
// to the repository's root), with its sqlc.arg and sqlc.narg parameters
// numbered ?1, ?2, ... in order of first use.
func Query(t testing.TB, path, name string) string {
	t.Helper()
	query, _ := QueryParams(t, path, name)
	return query
}

// QueryParams is Query that also returns the parameters' names, in the
// order of their numbers.
func QueryParams(t testing.TB, path, name string) (string, []string) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	_, query, ok := strings.Cut(string(src), "-- name: "+name+" ")
	if !ok {
		t.Fatalf("no query %s in %s", name, path)
	}
	query, _, _ = strings.Cut(query, "-- name: ")
	query = query[strings.Index(query, "\n")+1:]
	params := map[string]int{}
	var names []string
	query = sqlcArg.ReplaceAllStringFunc(query, func(m string) string {
		name := m[strings.Index(m, "(")+1 : len(m)-1]
		if _, ok := params[name]; !ok {
			params[name] = len(params) + 1
			names = append(names, name)
		}
		return "?" + strconv.Itoa(params[name])
	})
	return query, names
}

var sqlcArg = regexp.MustCompile(`sqlc\.n?arg\((\w+)\)`)

// SQLitePlan returns SQLite's EXPLAIN QUERY PLAN of query on db, a line a
// step.
func SQLitePlan(t testing.TB, db *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// RepoRoot returns the repository's folder: the nearest above the test's
// working directory (its package's folder) that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
