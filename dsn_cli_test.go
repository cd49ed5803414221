package workerregistry_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/internal/clitest"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// TestMain removes the commands that clitest built.
func TestMain(m *testing.M) { clitest.Main(m, nil) }

// buildCLIs builds cmd/migrate and cmd/registryctl, once for the test
// process.
func buildCLIs(t *testing.T) (migrate, registryctl *clitest.Command) {
	t.Helper()
	return clitest.Build(t, "./cmd/migrate"), clitest.Build(t, "./cmd/registryctl")
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestCLIsLeakNoPassword runs both commands on DSNs of every shape that
// cannot open (a closed port, or a DSN the parser refuses): each fails,
// prints no part of the password, and creates nothing in its working
// directory.
func TestCLIsLeakNoPassword(t *testing.T) {
	migrate, registryctl := buildCLIs(t)
	const bad, failure = 2, 1 // exit statuses: bad command line, failure
	cases := []struct {
		name, dsn, password string
		code                int
		message             string // in stderr
	}{
		{"upper-case scheme", "POSTGRES://u:S3cretPw@127.0.0.1:1/db?sslmode=disable", "S3cretPw", failure, "connect"},
		{"keyword/value", "host=127.0.0.1 port=1 user=u password=S3cretPw dbname=db sslmode=disable", "S3cretPw", failure, "connect"},
		{"keyword/value, quoted password", `host=127.0.0.1 port=1 user=u password='S3cret P\'wd' dbname=db sslmode=disable`, `S3cret P'wd`, failure, "connect"},
		{"unescaped '@' in the password", "postgres://u:Sec@ret@9@127.0.0.1:1/db", "Sec@ret@9", bad, "%40"},
		{"unescaped '@', mixed-case scheme", "Postgres://u:Sec@ret@9@127.0.0.1:1/db", "Sec@ret@9", bad, "%40"},
		{"':' in the password", "postgres://u:pa:ss:wd@127.0.0.1:1/db?sslmode=disable", "pa:ss:wd", failure, "connect"},
		{"password parameter", "postgres://u@127.0.0.1:1/db?password=S3cretPw&sslmode=disable", "S3cretPw", failure, "connect"},
		{"sslpassword parameter", "postgres://u@127.0.0.1:1/db?sslmode=disable&sslpassword=S3cretPw", "S3cretPw", failure, "connect"},
		{"keyword/value sslpassword", "host=127.0.0.1 port=1 user=u dbname=db sslmode=disable sslpassword=S3cretPw", "S3cretPw", failure, "connect"},
		{"password without '@'", "postgres://u:S3cretPw/db", "S3cretPw", bad, "port is not a number"},
		{"keyword/value, misspelt keyword", "host=127.0.0.1 port=1 passwrod=S3cretPw", "S3cretPw", bad, `unknown keyword "passwrod"`},
		{"keyword/value, unquoted space in the password", "host=127.0.0.1 port=1 password=S3cret Pw9=x", "S3cret Pw9=x", bad, "unknown keyword after a password"},
		{"other scheme", "mysql://u:S3cretPw@127.0.0.1:1/db", "S3cretPw", bad, "unsupported URL scheme"},
		{"quoted URL", `"postgres://u:S3cretPw@127.0.0.1:1/db"`, "S3cretPw", bad, "looks like a URL"},
		{"scheme without slashes", "postgres:u:S3cretPw@localhost", "S3cretPw", bad, "looks like a URL"},
		{"environment assignment", "DATABASE_URL=postgres://u:S3cretPw@127.0.0.1:1/db", "S3cretPw", bad, "looks like a URL"},
		{"SQLite URI", "file:reg.db?mode=ro", "", bad, "looks like a URL"},
		{"empty", "", "", bad, "-db: must not be empty"},
	}
	commands := []struct {
		bin  *clitest.Command
		args []string
	}{
		{migrate, []string{"status"}},
		{migrate, []string{"up"}},
		{registryctl, []string{"workers", "list"}},
		{registryctl, []string{"sweep"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range commands {
				name := c.bin.Name() + " " + strings.Join(c.args, " ")
				dir := t.TempDir()
				before := listDir(t, dir)
				res := c.bin.Run(t, dir, nil, append([]string{"-db", tc.dsn}, c.args...)...)
				if res.Code != tc.code || !strings.Contains(res.Stderr, tc.message) {
					t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", name, res.Code, res.Stderr, tc.code, tc.message)
				}
				if leak := res.Leak(tc.password); leak != "" {
					t.Errorf("%s prints %q of the password:\nstdout: %s\nstderr: %s", name, leak, res.Stdout, res.Stderr)
				}
				if after := listDir(t, dir); !slices.Equal(before, after) {
					t.Errorf("%s: working directory held %v, now %v", name, before, after)
				}
			}
		})
	}
}

// TestCLIsOpenPostgresDSNForms runs both commands on the test server
// through an upper-case URL scheme and a keyword/value DSN.
func TestCLIsOpenPostgresDSNForms(t *testing.T) {
	upper, keyword := registrytest.PostgresDSNForms(t, registrytest.PostgresSchema(t, registrytest.PostgresDSN(t)))

	migrate, registryctl := buildCLIs(t)
	dir := t.TempDir()
	for _, step := range []struct {
		bin  *clitest.Command
		args []string
		want string // in stdout
	}{
		{migrate, []string{"-db", keyword, "up"}, "OK    up 00001_"},
		{migrate, []string{"-db", upper, "status"}, "applied"},
		{registryctl, []string{"-db", keyword, "-json", "workers", "list"}, `"workers": []`},
		{registryctl, []string{"-db", upper, "-json", "sweep"}, `"swept": 0`},
	} {
		res := step.bin.Run(t, dir, nil, step.args...)
		if res.Code != 0 || !strings.Contains(res.Stdout, step.want) {
			t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", step.bin.Name(), step.args[2:], res.Code, res.Stdout, res.Stderr)
		}
	}
	if entries := listDir(t, dir); len(entries) != 0 {
		t.Fatalf("the commands created %v", entries)
	}
}
