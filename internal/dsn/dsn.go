// Package dsn parses the registry's data source names: a Postgres URL or
// libpq keyword/value string, checked as pgx will read it and redacted
// so that no secret reaches a message, or the path of a SQLite file.
// Package registry's ParseDSN and DataSource are its public face.
package dsn

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Source is a parsed DSN.
type Source struct {
	Postgres bool            // a Postgres DSN; else a SQLite path
	Path     string          // the SQLite path
	Pool     *pgxpool.Config // the Postgres pool's configuration
	Redacted string          // the DSN with every secret masked
	Secrets  []string        // the values masked in Redacted, to scrub from pgx's errors
}

// invalid is a parse error: the reason a DSN is refused.
func invalid(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// RedactError returns err with every secret of d masked in its message.
// The result wraps err.
func (d Source) RedactError(err error) error {
	if err == nil {
		return nil
	}
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// Its message quotes the connection string, redacted by pgx only
		// on a best-effort basis.
		pce.ConnString = d.Redacted
	}
	msg := err.Error()
	if scrubbed := scrub(msg, d.Secrets); scrubbed != msg {
		return &redactedError{msg: scrubbed, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// mask replaces a secret in a redacted DSN.
const mask = "xxxxx"

// scrub replaces every occurrence of a secret in s. Secrets shorter than
// three bytes are left: they turn up by chance in any text, and masking
// those would only point at them.
func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		if len(secret) >= 3 {
			s = strings.ReplaceAll(s, secret, mask)
		}
	}
	return s
}

// Parse decides which store dsn names and parses it, as registry.ParseDSN
// documents. On failure it returns the redacted form (and the secrets) too,
// for messages; its error is the reason alone, without the field.
func Parse(dsn string) (Source, error) {
	trimmed := strings.Trim(dsn, asciiSpaces)
	if trimmed == "" {
		return Source{}, invalid("must not be empty")
	}
	if m := urlScheme.FindStringSubmatch(trimmed); m != nil {
		scheme := strings.ToLower(m[1])
		if scheme != "postgres" && scheme != "postgresql" {
			d := Source{Redacted: m[0] + mask}
			return d, invalid("unsupported URL scheme %q: want postgres:// or postgresql://, or the path of a SQLite file", m[0])
		}
		return parseURL(scheme, trimmed[len(m[0]):])
	}
	if keywordDSN.MatchString(dsn) {
		return parseKeywordValue(dsn)
	}
	if looksLikeURL.MatchString(trimmed) {
		// A URL gone wrong (a quote, a missing slash, a JDBC prefix, an
		// environment assignment) may hold a password: never show it, and
		// never take it for a file name.
		return Source{Redacted: mask}, invalid("looks like a URL or connection string, not a file path (want postgres://..., host=... or the path of a SQLite file); not shown, as it may hold a password")
	}
	return Source{Path: dsn, Redacted: dsn}, nil
}

// looksLikeURL matches what is meant as a URL but is not one Open takes:
// "://" anywhere, a leading quote, or a scheme of a database or file URI
// without its slashes ("postgres:u:pw@host", "file:registry.db",
// "jdbc:postgresql:...") or without its colon ("postgres//..."). A Windows
// drive letter ("C:") is a path.
var looksLikeURL = regexp.MustCompile(`://|^["'` + "`" + `]|(?i)^(postgres|postgresql|jdbc|file|sqlite|sqlite3|mysql|http|https):|(?i)^postgres(ql)?//`)

// asciiSpaces are the characters libpq takes for white space.
const asciiSpaces = " \t\n\v\f\r"

var urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// parseURL parses the part of a Postgres URL after "scheme://", following
// the structure pgx's parser gives it (libpq's), so that the parts masked
// in the redacted form are the ones pgx takes for secrets.
func parseURL(scheme, rest string) (Source, error) {
	prefix := scheme + "://"
	suspect := Source{Redacted: prefix + mask}
	authorityEnd := strings.IndexAny(rest, "/?#")
	if authorityEnd < 0 {
		authorityEnd = len(rest)
	}
	if n := strings.Count(rest, "@"); n > 1 || (n == 1 && !strings.Contains(rest[:authorityEnd], "@")) {
		return suspect, invalid("ambiguous Postgres URL %s: '@' may appear once, ending the user name and password before the host; percent-encode any other '@' (in the password, for instance) as %%40", suspect.Redacted)
	}

	var b strings.Builder
	var secrets []string
	var firstErr error
	fail := func(format string, args ...any) {
		if firstErr == nil {
			firstErr = fmt.Errorf(format, args...)
		}
	}
	b.WriteString(prefix)

	p := rest
	if at := strings.IndexByte(p, '@'); at >= 0 {
		user, password, hasPassword := strings.Cut(p[:at], ":")
		p = p[at+1:]
		b.WriteString(user)
		if _, err := uriDecode(user); err != nil {
			fail("the user name: %v", err)
		}
		if hasPassword {
			b.WriteString(":" + mask)
			secrets = append(secrets, password)
			if decoded, err := uriDecode(password); err != nil {
				fail("the password: %v", err)
			} else {
				secrets = append(secrets, decoded)
			}
		}
		b.WriteByte('@')
	}

	// Hosts and ports: netloc[:port] separated by commas, as in pgx.
	netlocs := p
	for {
		if strings.HasPrefix(p, "[") {
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return suspect, invalid("Postgres URL %s: no ']' after '[' in the host", suspect.Redacted)
			}
			p = p[end+1:]
			if p != "" && !strings.ContainsRune(":/?,", rune(p[0])) {
				return suspect, invalid("Postgres URL %s: unexpected character after ']' in the host", suspect.Redacted)
			}
		} else {
			p = p[indexOrEnd(p, ":/?,"):]
		}
		if strings.HasPrefix(p, ":") {
			p = p[1:]
			end := indexOrEnd(p, "/?,")
			if strings.Trim(p[:end], "0123456789") != "" {
				// A port that is not a number may be a password that lost
				// its '@': show nothing.
				return suspect, invalid("Postgres URL %s: a port is not a number", suspect.Redacted)
			}
			p = p[end:]
		}
		if !strings.HasPrefix(p, ",") {
			break
		}
		p = p[1:]
	}
	hosts := netlocs[:len(netlocs)-len(p)]
	b.WriteString(hosts)
	if _, err := uriDecode(hosts); err != nil {
		fail("the host: %v", err)
	}

	if strings.HasPrefix(p, "/") {
		end := indexOrEnd(p, "?")
		b.WriteString(p[:end])
		if _, err := uriDecode(p[1:end]); err != nil {
			fail("the database name: %v", err)
		}
		p = p[end:]
	}
	if query, ok := strings.CutPrefix(p, "?"); ok {
		b.WriteByte('?')
		// As in pgx: "a=1&" ends after a=1, but "a=1&&b=2" has an empty
		// pair.
		for i := 0; query != ""; i++ {
			if i > 0 {
				b.WriteByte('&')
			}
			var pair string
			pair, query, _ = strings.Cut(query, "&")
			rawKey, rawValue, found := strings.Cut(pair, "=")
			key, err := uriDecode(rawKey)
			switch {
			case !found:
				b.WriteString(mask)
				fail("parameter %d of the query has no '='", i+1)
				continue
			case err != nil:
				b.WriteString(mask)
				fail("parameter %d of the query: its name: %v", i+1, err)
				continue
			}
			secret := isSecretKey(key)
			if secret {
				b.WriteString(rawKey + "=" + mask)
				secrets = append(secrets, rawValue)
			} else {
				b.WriteString(pair)
			}
			value, err := uriDecode(rawValue)
			switch {
			case strings.Contains(rawValue, "="):
				fail("parameter %q: more than one '='; percent-encode '=' in a value as %%3D", key)
			case err != nil:
				fail("parameter %q: %v", key, err)
			case secret:
				secrets = append(secrets, value)
			}
		}
	}

	d := Source{Postgres: true, Redacted: b.String(), Secrets: secrets}
	if firstErr != nil {
		return d, invalid("Postgres URL %s: %v", d.Redacted, firstErr)
	}
	// pgx knows the URL form by its scheme in lower case only.
	return d.parsePgx(prefix + rest)
}

// parsePgx completes d with pgx's parse of connString.
func (d Source) parsePgx(connString string) (Source, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return d, invalid("%s", d.RedactError(err))
	}
	d.Pool = cfg
	return d, nil
}

// indexOrEnd is strings.IndexAny, or len(s) when s has none of chars.
func indexOrEnd(s, chars string) int {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return i
	}
	return len(s)
}

// uriDecode percent-decodes one part of a URL by libpq's rules, which pgx
// follows: %XX with two hex digits, never %00, spaces only around the
// value. Its errors never quote the part, which may be a secret.
func uriDecode(raw string) (string, error) {
	s := strings.Trim(raw, " ")
	if strings.Contains(s, " ") {
		return "", errors.New("unexpected space (percent-encode it as %20)")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", errors.New("invalid percent-encoding ('%' must be followed by two hex digits; write '%' itself as %25)")
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if c == 0 {
			return "", errors.New("%00 is not allowed")
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isSecretKey reports whether the value of a parameter or keyword is
// masked: any name with "password" or "secret" in it, and libpq's SCRAM
// keys.
func isSecretKey(key string) bool {
	key = strings.ToLower(key)
	return strings.Contains(key, "password") || strings.Contains(key, "secret") ||
		key == "scram_client_key" || key == "scram_server_key"
}

// keywordUse says what pgx does with a keyword of a keyword/value DSN.
type keywordUse int

const (
	pgxKeyword    keywordUse = iota + 1 // pgx or pgxpool reads it
	serverKeyword                       // pgx sends it to the server, which knows it
	libpqOnly                           // libpq's, but pgx does not support it
)

// keywords are libpq's connection keywords (PostgreSQL 18) and pgx's own.
var keywords = map[string]keywordUse{
	"host": pgxKeyword, "port": pgxKeyword, "dbname": pgxKeyword, "user": pgxKeyword,
	"password": pgxKeyword, "passfile": pgxKeyword, "connect_timeout": pgxKeyword,
	"sslmode": pgxKeyword, "sslkey": pgxKeyword, "sslcert": pgxKeyword,
	"sslcertmode": pgxKeyword, "sslrootcert": pgxKeyword, "sslnegotiation": pgxKeyword,
	"sslpassword": pgxKeyword, "sslsni": pgxKeyword, "krbspn": pgxKeyword,
	"krbsrvname": pgxKeyword, "target_session_attrs": pgxKeyword, "service": pgxKeyword,
	"servicefile": pgxKeyword, "min_protocol_version": pgxKeyword,
	"max_protocol_version": pgxKeyword, "channel_binding": pgxKeyword,
	"require_auth": pgxKeyword,

	"statement_cache_capacity": pgxKeyword, "description_cache_capacity": pgxKeyword,
	"default_query_exec_mode": pgxKeyword,
	"pool_max_conns":          pgxKeyword, "pool_min_conns": pgxKeyword,
	"pool_min_idle_conns": pgxKeyword, "pool_max_conn_lifetime": pgxKeyword,
	"pool_max_conn_lifetime_jitter": pgxKeyword, "pool_max_conn_idle_time": pgxKeyword,
	"pool_health_check_period": pgxKeyword, "pool_ping_timeout": pgxKeyword,

	"application_name": serverKeyword, "client_encoding": serverKeyword, "options": serverKeyword,

	"hostaddr": libpqOnly, "fallback_application_name": libpqOnly, "keepalives": libpqOnly,
	"keepalives_idle": libpqOnly, "keepalives_interval": libpqOnly,
	"keepalives_count": libpqOnly, "tcp_user_timeout": libpqOnly, "replication": libpqOnly,
	"gssencmode": libpqOnly, "requiressl": libpqOnly, "sslcompression": libpqOnly,
	"sslkeylogfile": libpqOnly, "sslcrl": libpqOnly, "sslcrldir": libpqOnly,
	"requirepeer": libpqOnly, "ssl_min_protocol_version": libpqOnly,
	"ssl_max_protocol_version": libpqOnly, "gsslib": libpqOnly, "gssdelegation": libpqOnly,
	"load_balance_hosts": libpqOnly, "scram_client_key": libpqOnly,
	"scram_server_key": libpqOnly, "oauth_issuer": libpqOnly, "oauth_client_id": libpqOnly,
	"oauth_client_secret": libpqOnly, "oauth_scope": libpqOnly,
}

// keywordDSN matches a string that holds a keyword of a keyword/value DSN
// followed by '=' at the start of a word, in any case: such a string is
// never taken for a file name.
var keywordDSN = func() *regexp.Regexp {
	names := make([]string, 0, len(keywords))
	for k := range keywords {
		names = append(names, regexp.QuoteMeta(k))
	}
	slices.Sort(names)
	return regexp.MustCompile(`(?i)(?:^|[ \t\n\v\f\r])(?:` + strings.Join(names, "|") + `)[ \t\n\v\f\r]*=`)
}()

// parseKeywordValue parses a libpq keyword/value DSN, splitting it as pgx
// does, and checks its keywords.
func parseKeywordValue(dsn string) (Source, error) {
	var pairs []string // redacted
	var secrets []string
	var unknown, unnamed bool
	var unknownKey, unsupportedKey string
	redacted := func(complete bool) string {
		s := strings.Join(pairs, " ")
		if !complete {
			s = strings.TrimSpace(s + " ...")
		}
		return s
	}
	parseErr := func(reason string) (Source, error) {
		d := Source{Redacted: redacted(false), Secrets: secrets}
		return d, invalid("keyword/value DSN %q: %s", d.Redacted, reason)
	}
	if strings.IndexByte(dsn, 0) >= 0 {
		return parseErr("NUL byte")
	}

	s := strings.TrimLeft(dsn, asciiSpaces)
	afterSecret := false
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return parseErr("expected keyword=value")
		}
		key := strings.Trim(s[:eq], asciiSpaces)
		if key == "" || strings.ContainsAny(key, asciiSpaces) {
			// Not named: after an unquoted value with a space in it, the
			// words may be part of a password.
			return parseErr("expected keyword=value (quote a value that has spaces: key='a b')")
		}
		s = strings.TrimLeft(s[eq+1:], asciiSpaces)
		var raw string
		if strings.HasPrefix(s, "'") {
			end := 1
			for ; end < len(s) && s[end] != '\''; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return parseErr("unterminated quoted value")
			}
			raw, s = s[:end+1], s[end+1:]
		} else {
			end := 0
			for ; end < len(s) && !strings.ContainsRune(asciiSpaces, rune(s[end])); end++ {
				if s[end] == '\\' {
					end++
				}
			}
			end = min(end, len(s))
			raw, s = s[:end], s[end:]
		}
		s = strings.TrimLeft(s, asciiSpaces)

		use, known := keywords[key]
		secret := isSecretKey(key) || !known
		switch {
		case !known && afterSecret:
			// Perhaps the rest of a password with a space in it.
			pairs = append(pairs, mask)
			secrets = append(secrets, key)
		case secret:
			pairs = append(pairs, key+"="+mask)
		default:
			pairs = append(pairs, key+"="+raw)
		}
		if secret {
			secrets = append(secrets, raw, unquoteKeywordValue(raw))
		}
		switch {
		case !known && !unknown:
			unknown, unknownKey, unnamed = true, key, afterSecret
		case use == libpqOnly && unsupportedKey == "":
			unsupportedKey = key
		}
		afterSecret = secret
	}

	d := Source{Postgres: true, Redacted: redacted(true), Secrets: secrets}
	switch {
	case unknown && unnamed:
		return d, invalid("keyword/value DSN %q: unknown keyword after a password (quote a value that has spaces: password='a b')", d.Redacted)
	case unknown:
		return d, invalid("keyword/value DSN %q: unknown keyword %q (server settings go in options='-c name=value')", d.Redacted, unknownKey)
	case unsupportedKey != "":
		return d, invalid("keyword/value DSN %q: keyword %q is libpq's, but pgx does not support it", d.Redacted, unsupportedKey)
	}
	return d.parsePgx(dsn)
}

// unquoteKeywordValue returns the value that a raw keyword/value token
// stands for: quotes removed, and each backslash taking the next byte
// literally.
func unquoteKeywordValue(raw string) string {
	if len(raw) >= 2 && raw[0] == '\'' && raw[len(raw)-1] == '\'' {
		raw = raw[1 : len(raw)-1]
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' {
			i++
			if i == len(raw) {
				break
			}
		}
		b.WriteByte(raw[i])
	}
	return b.String()
}
