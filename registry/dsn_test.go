package registry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/flowfabric/workerregistry/registry"
	"github.com/flowfabric/workerregistry/registry/registrytest"
)

// leaks returns a substring of secret, at least 3 bytes long, that s
// contains, or "".
func leaks(s, secret string) string {
	for n := len(secret); n >= 3; n-- {
		for i := 0; i+n <= len(secret); i++ {
			if strings.Contains(s, secret[i:i+n]) {
				return secret[i : i+n]
			}
		}
	}
	return ""
}

func TestParseDSN(t *testing.T) {
	type want struct {
		store    registry.StoreKind
		path     string // SQLite
		host     string // Postgres: the first host
		port     uint16
		user     string
		database string
		password string // what pgx will send, when not ""
		redacted string // String(), when not ""
		err      string // a substring of the error; "" for success
	}
	sqlite := func(path string) want { return want{store: registry.StoreSQLite, path: path, redacted: path} }
	pg := func(host string, port uint16, user, database string) want {
		return want{store: registry.StorePostgres, host: host, port: port, user: user, database: database}
	}
	withPassword := func(w want, pw string) want { w.password = pw; return w }
	withRedacted := func(w want, r string) want { w.redacted = r; return w }
	refused := func(err string) want { return want{err: err} }

	cases := []struct {
		name   string
		dsn    string
		secret string // must not show, even in part, in String or the error
		want   want
	}{
		{"file", "file.db", "", sqlite("file.db")},
		{"relative path", "./data/registry.db", "", sqlite("./data/registry.db")},
		{"absolute path with spaces", "/var/lib/my registry/reg 1.db", "", sqlite("/var/lib/my registry/reg 1.db")},
		{"memory", ":memory:", "", sqlite(":memory:")},
		{"path with '=' but no keyword", "data=1.db", "", sqlite("data=1.db")},
		{"path with a keyword inside a word", "/srv/host=1.db", "", sqlite("/srv/host=1.db")},
		{"Windows drive", `C:\\data\\registry.db`, "", sqlite(`C:\\data\\registry.db`)},
		// URLs gone wrong may hold passwords: refused, never shown, never a file.
		{"file: URI", "file:reg.db?mode=ro", "", refused("looks like a URL")},
		{"sqlite: URI", "sqlite:reg.db", "", refused("looks like a URL")},
		{"quoted URL", `"postgres://u:Zq7Xk9Wv@127.0.0.1:1/db"`, "Zq7Xk9Wv", refused("looks like a URL")},
		{"single-quoted URL", `'postgres://u:Zq7Xk9Wv@127.0.0.1:1/db'`, "Zq7Xk9Wv", refused("looks like a URL")},
		{"one slash", "postgres:/u:Zq7Xk9Wv@127.0.0.1:1/db", "Zq7Xk9Wv", refused("looks like a URL")},
		{"no slashes", "postgres:u:Zq7Xk9Wv@127.0.0.1", "Zq7Xk9Wv", refused("looks like a URL")},
		{"slashes without colon", "postgres//u:Zq7Xk9Wv@127.0.0.1:1/db", "Zq7Xk9Wv", refused("looks like a URL")},
		{"space before the scheme's colon", "postgres ://u:Zq7Xk9Wv@127.0.0.1:1/db", "Zq7Xk9Wv", refused("looks like a URL")},
		{"environment assignment", "DATABASE_URL=postgres://u:Zq7Xk9Wv@127.0.0.1:1/db", "Zq7Xk9Wv", refused("looks like a URL")},
		{"JDBC URL", "jdbc:postgresql://127.0.0.1/db?password=Zq7Xk9Wv", "Zq7Xk9Wv", refused("looks like a URL")},

		{"url", "postgres://u:S3cretPw@127.0.0.1:1/db?sslmode=disable", "S3cretPw",
			withRedacted(withPassword(pg("127.0.0.1", 1, "u", "db"), "S3cretPw"), "postgres://u:xxxxx@127.0.0.1:1/db?sslmode=disable")},
		{"upper-case scheme", "POSTGRES://u:S3cretPw@127.0.0.1:1/db?sslmode=disable", "S3cretPw",
			withRedacted(withPassword(pg("127.0.0.1", 1, "u", "db"), "S3cretPw"), "postgres://u:xxxxx@127.0.0.1:1/db?sslmode=disable")},
		{"mixed-case postgresql scheme", "PostgreSQL://reg:S3cretPw@db.internal/registry", "S3cretPw",
			withPassword(pg("db.internal", 5432, "reg", "registry"), "S3cretPw")},
		{"url with white space around it", " postgres://u@127.0.0.1/db\n", "", pg("127.0.0.1", 5432, "u", "db")},
		{"url without password", "postgres://registry@127.0.0.1:5433/registry", "",
			withRedacted(pg("127.0.0.1", 5433, "registry", "registry"), "postgres://registry@127.0.0.1:5433/registry")},
		{"':' in the password", "postgres://u:pa:ss:wd@127.0.0.1:1/db", "pa:ss:wd",
			withRedacted(withPassword(pg("127.0.0.1", 1, "u", "db"), "pa:ss:wd"), "postgres://u:xxxxx@127.0.0.1:1/db")},
		{"'@' escaped in the password", "postgres://u:Sec%40ret%409@127.0.0.1:1/db", "Sec%40ret%409",
			withPassword(pg("127.0.0.1", 1, "u", "db"), "Sec@ret@9")},
		{"password parameter", "postgres://u@127.0.0.1:1/db?password=S3cretPw&connect_timeout=1", "S3cretPw",
			withRedacted(withPassword(pg("127.0.0.1", 1, "u", "db"), "S3cretPw"), "postgres://u@127.0.0.1:1/db?password=xxxxx&connect_timeout=1")},
		{"percent-encoded password parameter", "postgres://u@127.0.0.1:1/db?pass%77ord=S3cretPw", "S3cretPw",
			withPassword(pg("127.0.0.1", 1, "u", "db"), "S3cretPw")},
		{"sslpassword parameter", "postgres://u@127.0.0.1:1/db?sslmode=disable&sslpassword=S3cretPw", "S3cretPw",
			withRedacted(pg("127.0.0.1", 1, "u", "db"), "postgres://u@127.0.0.1:1/db?sslmode=disable&sslpassword=xxxxx")},
		{"any parameter named for a password", "postgres://u@127.0.0.1:1/db?app_password=S3cretPw", "S3cretPw",
			withRedacted(pg("127.0.0.1", 1, "u", "db"), "postgres://u@127.0.0.1:1/db?app_password=xxxxx")},
		{"several hosts", "postgres://u:S3cretPw@h1:5433,h2:5434/db", "S3cretPw", pg("h1", 5433, "u", "db")},
		{"IPv6 host", "postgres://u:S3cretPw@[::1]:5433/db", "S3cretPw", pg("::1", 5433, "u", "db")},
		{"pool parameter", "postgres://u:S3cretPw@127.0.0.1/db?pool_max_conns=3", "S3cretPw", pg("127.0.0.1", 5432, "u", "db")},

		{"unescaped '@' in the password", "postgres://u:Sec@ret@9@127.0.0.1/db", "Sec@ret@9", refused("%40")},
		{"unescaped '@' in the password, mixed-case scheme", "Postgres://u:Sec@ret@9@127.0.0.1/db", "Sec@ret@9", refused("ambiguous")},
		{"'/' in the password", "postgres://u:pa/Zq9x7k@127.0.0.1/db", "pa/Zq9x7k", refused("%40")},
		{"'@' in a query without a path", "postgres://127.0.0.1?password=Sec@ret9", "Sec@ret9", refused("ambiguous")},
		{"password without '@'", "postgres://u:S3cretPw/db", "S3cretPw", refused("port is not a number")},
		{"bad percent-encoding in the password", "postgres://u:S3cr%zzetPw@127.0.0.1/db", "S3cr%zzetPw", refused("the password: invalid percent-encoding")},
		{"'=' in a password parameter", "postgres://u@127.0.0.1/db?password=S3c=retPw", "S3c=retPw", refused(`parameter "password": more than one '='`)},
		{"password parameter without key", "postgres://u@127.0.0.1/db?S3cretPw", "S3cretPw", refused("parameter 1 of the query has no '='")},
		{"value pgx refuses", "postgres://u:S3cretPw@127.0.0.1/db?sslmode=sometimes", "S3cretPw", refused("sslmode")},
		{"value pgxpool refuses", "postgres://u:S3cretPw@127.0.0.1/db?pool_max_conns=many", "S3cretPw", refused("pool_max_conns")},
		{"other scheme", "mysql://u:S3cretPw@127.0.0.1/db", "S3cretPw", refused(`unsupported URL scheme "mysql://"`)},
		{"file URL", "file:///var/lib/registry.db", "", refused("unsupported URL scheme")},
		{"empty", "", "", refused("dsn: must not be empty")},
		{"white space", " \t", "", refused("dsn: must not be empty")},

		{"keyword/value", "host=127.0.0.1 port=1 user=u password=S3cretPw dbname=db", "S3cretPw",
			withRedacted(withPassword(pg("127.0.0.1", 1, "u", "db"), "S3cretPw"), "host=127.0.0.1 port=1 user=u password=xxxxx dbname=db")},
		{"keyword/value, quoted password", `host=127.0.0.1 port=1 password='S3cret P\'w\\d' user=u dbname=db`, `S3cret P\'w\\d`,
			withRedacted(withPassword(pg("127.0.0.1", 1, "u", "db"), `S3cret P'w\d`), "host=127.0.0.1 port=1 password=xxxxx user=u dbname=db")},
		{"keyword/value, spaces around '='", "host = 127.0.0.1 dbname = db user = u password = S3cretPw", "S3cretPw",
			withPassword(pg("127.0.0.1", 5432, "u", "db"), "S3cretPw")},
		{"keyword/value, sslpassword", "host=127.0.0.1 user=u dbname=db sslmode=disable sslpassword=S3cretPw", "S3cretPw",
			withRedacted(pg("127.0.0.1", 5432, "u", "db"), "host=127.0.0.1 user=u dbname=db sslmode=disable sslpassword=xxxxx")},
		{"keyword/value, pool and options", "host=127.0.0.1 user=u dbname=db pool_max_conns=2 options='-c search_path=x'", "",
			pg("127.0.0.1", 5432, "u", "db")},
		{"keyword/value, unknown keyword", "host=127.0.0.1 passwrod=S3cretPw", "S3cretPw", refused(`unknown keyword "passwrod"`)},
		{"keyword/value, upper-case keyword", "HOST=127.0.0.1 password=S3cretPw", "S3cretPw", refused(`unknown keyword "HOST"`)},
		{"keyword/value, server setting", "host=127.0.0.1 search_path=x password=S3cretPw", "S3cretPw", refused(`unknown keyword "search_path"`)},
		{"keyword/value, libpq-only keyword", "hostaddr=127.0.0.1 password=S3cretPw", "S3cretPw", refused(`"hostaddr" is libpq's, but pgx does not support it`)},
		{"keyword/value, unquoted space in the password", "host=127.0.0.1 password=S3cret Pw=x9", "S3cret Pw=x9", refused("unknown keyword after a password")},
		{"keyword/value, unquoted words in the password", "host=127.0.0.1 password=S3cret Qz9k dbname=db", "S3cret Qz9k", refused("expected keyword=value")},
		{"keyword/value, unterminated quote", "host=127.0.0.1 password='S3cretPw", "S3cretPw", refused("unterminated quoted value")},
		{"keyword/value, value pgx refuses", "host=127.0.0.1 port=x1 password=S3cretPw", "S3cretPw", refused("invalid port")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := registry.ParseDSN(tc.dsn)
			redacted := registry.RedactDSN(tc.dsn)
			if tc.secret != "" {
				for what, s := range map[string]string{"RedactDSN": redacted, "String": ds.String(), "error": fmt.Sprint(err)} {
					if leak := leaks(s, tc.secret); leak != "" {
						t.Errorf("%s shows %q of the secret: %s", what, leak, s)
					}
				}
			}
			w := tc.want
			if w.err != "" {
				if err == nil || !strings.Contains(err.Error(), w.err) {
					t.Fatalf("ParseDSN(%q) = %v, want an error containing %q", tc.dsn, err, w.err)
				}
				var ve *registry.ValidationError
				if !errors.As(err, &ve) || ve.Field != "dsn" || !errors.Is(err, registry.ErrInvalidInput) {
					t.Errorf("error %v is not a ValidationError for dsn", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDSN(%q): %v", tc.dsn, err)
			}
			if ds.Store() != w.store {
				t.Fatalf("store = %v, want %v", ds.Store(), w.store)
			}
			if ds.String() != redacted {
				t.Errorf("String() = %q, RedactDSN = %q", ds.String(), redacted)
			}
			if w.redacted != "" && ds.String() != w.redacted {
				t.Errorf("String() = %q, want %q", ds.String(), w.redacted)
			}
			if got := registry.IsPostgresDSN(tc.dsn); got != (w.store == registry.StorePostgres) {
				t.Errorf("IsPostgresDSN = %v", got)
			}
			if w.store == registry.StoreSQLite {
				if ds.Path() != w.path || ds.PoolConfig() != nil {
					t.Errorf("Path() = %q, PoolConfig() = %v; want %q, nil", ds.Path(), ds.PoolConfig(), w.path)
				}
				return
			}
			cfg := ds.PoolConfig()
			if ds.Path() != "" || cfg == nil {
				t.Fatalf("Path() = %q, PoolConfig() = %v", ds.Path(), cfg)
			}
			c := cfg.ConnConfig
			if c.Host != w.host || c.Port != w.port || c.User != w.user || c.Database != w.database {
				t.Errorf("host %q port %d user %q database %q; want %q %d %q %q", c.Host, c.Port, c.User, c.Database, w.host, w.port, w.user, w.database)
			}
			if w.password != "" && c.Password != w.password {
				t.Errorf("password %q, want %q", c.Password, w.password)
			}
			// Each call is a copy: changing one leaves the DataSource as it was.
			cfg.ConnConfig.Host = "elsewhere"
			if ds.PoolConfig().ConnConfig.Host != w.host {
				t.Error("PoolConfig returns the DataSource's own config")
			}
		})
	}
}

func TestParseDSNPoolAndServerSettings(t *testing.T) {
	ds, err := registry.ParseDSN("host=127.0.0.1 dbname=db pool_max_conns=3 application_name=reg options='-c search_path=s1'")
	if err != nil {
		t.Fatal(err)
	}
	cfg := ds.PoolConfig()
	rp := cfg.ConnConfig.RuntimeParams
	if cfg.MaxConns != 3 || rp["application_name"] != "reg" || rp["options"] != "-c search_path=s1" || rp["pool_max_conns"] != "" {
		t.Fatalf("MaxConns %d, runtime params %v", cfg.MaxConns, rp)
	}
}

// TestRedactError checks that an error that quotes a secret of the
// DataSource comes back masked, and still matches its cause.
func TestRedactError(t *testing.T) {
	ds, err := registry.ParseDSN("postgres://u@127.0.0.1/db?password=S3cretPw")
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("server said: S3cretPw is wrong")
	got := ds.RedactError(cause)
	if strings.Contains(got.Error(), "S3cretPw") || !errors.Is(got, cause) {
		t.Fatalf("RedactError = %v (Is cause: %v)", got, errors.Is(got, cause))
	}
	if plain := errors.New("connection refused"); ds.RedactError(plain) != plain {
		t.Error("RedactError changed an error that shows no secret")
	}
	if ds.RedactError(nil) != nil {
		t.Error("RedactError(nil) != nil")
	}
}

// TestOpenDSNShapesLeakNothing opens every shape of Postgres DSN against a
// closed port: Open fails, its error shows no part of the password, and
// nothing is created in the working directory.
func TestOpenDSNShapesLeakNothing(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct{ dsn, password string }{
		{"POSTGRES://u:S3cretPw@127.0.0.1:1/db?sslmode=disable", "S3cretPw"},
		{"host=127.0.0.1 port=1 user=u password=S3cretPw dbname=db sslmode=disable", "S3cretPw"},
		{`host=127.0.0.1 port=1 user=u password='S3cret P\'w' dbname=db sslmode=disable`, `S3cret P'w`},
		{"postgres://u:Sec@ret@9@127.0.0.1:1/db", "Sec@ret@9"},
		{"postgres://u:pa:ss:wd@127.0.0.1:1/db?sslmode=disable", "pa:ss:wd"},
		{"postgres://u@127.0.0.1:1/db?password=S3cretPw&sslmode=disable", "S3cretPw"},
		{"postgres://u@127.0.0.1:1/db?sslpassword=S3cretPw&sslmode=disable", "S3cretPw"},
	} {
		_, err := registry.Open(context.Background(), tc.dsn)
		if err == nil {
			t.Fatalf("Open(%q) succeeded against a closed port", registry.RedactDSN(tc.dsn))
		}
		if leak := leaks(err.Error(), tc.password); leak != "" {
			t.Errorf("error shows %q of the password: %v", leak, err)
		}
		if entries, _ := os.ReadDir("."); len(entries) != 0 {
			t.Fatalf("Open(%q) created %v", registry.RedactDSN(tc.dsn), entries)
		}
	}
}

// TestOpenPostgresDSNForms opens the test server through an upper-case
// scheme and through a keyword/value DSN built from its URL.
func TestOpenPostgresDSNForms(t *testing.T) {
	upper, keyword := registrytest.PostgresDSNForms(t, registrytest.PostgresSchema(t, registrytest.PostgresDSN(t)))
	// The second Open finds the worker that the first registered: both
	// reached the test's schema.
	for i, dsn := range []string{upper, keyword} {
		r, err := registry.Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("Open(%q): %v", registry.RedactDSN(dsn), err)
		}
		got := mustRegister(t, r, registerArgs("ns", "w", t0))
		r.Close()
		if want := []registry.RegisterOutcome{registry.Registered, registry.Refreshed}[i]; got != want {
			t.Fatalf("Open(%q): register = %v, want %v", registry.RedactDSN(dsn), got, want)
		}
	}
}
