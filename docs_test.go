package workerregistry_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// docFiles are the documents whose links and names the tests check.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md", "CHANGELOG.md"}, docs...)
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#+\s+(.+)$`)
	codeFence = regexp.MustCompile("(?ms)^```.*?^```")
)

// slug is the anchor GitHub gives a heading.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// TestDocLinksExist: every relative link in the README, the CHANGELOG and
// docs/ names a file that exists, and every #anchor a heading of its
// target.
func TestDocLinksExist(t *testing.T) {
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := codeFence.ReplaceAllString(string(src), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s: link %q: %v", file, target, err)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			body, err := os.ReadFile(resolved)
			if err != nil {
				t.Errorf("%s: link %q: %v", file, target, err)
				continue
			}
			found := false
			for _, h := range mdHeading.FindAllStringSubmatch(codeFence.ReplaceAllString(string(body), ""), -1) {
				found = found || slug(h[1]) == anchor
			}
			if !found {
				t.Errorf("%s: link %q: no heading with that anchor in %s", file, target, resolved)
			}
		}
	}
}

// TestDocPathsExist: every path of the repository that the README and
// docs/ quote (`schema/sqlite/00002_executions.sql`, `cmd/migrate`) exists.
func TestDocPathsExist(t *testing.T) {
	quoted := regexp.MustCompile("`((?:schema|queries|internal|registry|cmd|examples|db|scripts|docs)/[A-Za-z0-9_./-]+)`")
	for _, file := range docFiles(t) {
		if file == "CHANGELOG.md" {
			continue // it names what changes removed
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range quoted.FindAllStringSubmatch(string(src), -1) {
			if _, err := os.Stat(strings.TrimSuffix(m[1], "/")); err != nil {
				t.Errorf("%s quotes %s: %v", file, m[1], err)
			}
		}
	}
}

// exportedNames returns the exported top-level names of the package in
// dir, and its methods as Type.Method, from its non-test files.
func exportedNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = true
					continue
				}
				typ := d.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					names[id.Name+"."+d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						names[s.Name.Name] = true
					case *ast.ValueSpec:
						for _, n := range s.Names {
							names[n.Name] = true
						}
					}
				}
			}
		}
	}
	return names
}

// TestDocNamesExist: every registry.X and registrytest.X the README,
// the CHANGELOG's unreleased changes and docs/ name is an exported name of
// that package, so that a renamed or removed name cannot linger in them.
func TestDocNamesExist(t *testing.T) {
	pkgs := map[string]map[string]bool{
		"registry":     exportedNames(t, "registry"),
		"registrytest": exportedNames(t, "registry/registrytest"),
	}
	ref := regexp.MustCompile(`\b(registry|registrytest)\.([A-Z]\w*)`)
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(src)
		if file == "CHANGELOG.md" {
			// Released entries may name what a later release removed.
			text, _, _ = strings.Cut(text, "\n## [0")
		}
		for _, m := range ref.FindAllStringSubmatch(text, -1) {
			if !pkgs[m[1]][m[2]] {
				t.Errorf("%s names %s.%s, which package %s does not export", file, m[1], m[2], m[1])
			}
		}
	}
	// Names a newcomer is sent to exist as such, Example functions too.
	examples := exportedExamples(t, "registry")
	readme, _ := os.ReadFile("README.md")
	for _, m := range regexp.MustCompile(`\bExample\w*`).FindAllString(string(readme), -1) {
		if !examples[m] {
			t.Errorf("README.md names %s, which registry's tests do not define", m)
		}
	}
}

func exportedExamples(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^func (Example\w*)\(`).FindAllStringSubmatch(string(src), -1) {
			out[m[1]] = true
		}
	}
	return out
}

// TestReadmeFirstProgramBuilds: the README's first Go program, within its
// first 60 lines, compiles against this module as it stands.
func TestReadmeFirstProgramBuilds(t *testing.T) {
	src, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(src), "```go\npackage main\n")
	if start < 0 {
		t.Fatal("README.md has no Go program (```go\\npackage main)")
	}
	if line := strings.Count(string(src[:start]), "\n") + 1; line > 60 {
		t.Errorf("the README's first program starts at line %d, want within the first 60", line)
	}
	body := string(src[start+len("```go\n"):])
	body = body[:strings.Index(body, "```")]
	// A directory the ./... pattern ignores (its name starts with a dot),
	// inside the module so that its imports resolve.
	dir, err := os.MkdirTemp(".", ".readme-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "vet", "./"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("the README's first program does not build: %v\n%s", err, out)
	}
}
