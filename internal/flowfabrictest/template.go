package flowfabrictest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Template is a SQLite database built once per test process, of which
// each test gets a copy: copying a file costs a fraction of creating and
// migrating a database (about 130 ms under -race), which every test does.
type Template struct {
	once  sync.Once
	bytes []byte
	err   error
}

// Copy writes the template, which build makes on first use in a
// directory of its own and returns the path of, to a file named name in
// t.TempDir, and returns its path.
func (d *Template) Copy(t testing.TB, name string, build func(dir string) (string, error)) string {
	t.Helper()
	d.once.Do(func() {
		dir, err := os.MkdirTemp("", "registry-template")
		if err != nil {
			d.err = err
			return
		}
		defer os.RemoveAll(dir)
		path, err := build(dir)
		if err == nil {
			d.bytes, err = os.ReadFile(path)
		}
		d.err = err
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, d.bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
