// Package djangodb reads a Django site's feature-flag tables (django-waffle,
// django-feature-flipper, the FeatureFlag model) from its PostgreSQL or
// SQLite database and turns them into engine snapshots.
//
// It knows SQL and Django's table names, and nothing about HTTP. Every load
// runs in one read-only transaction, so the M2M rows always match the flags
// they belong to. The SQLite driver (github.com/mattn/go-sqlite3) needs cgo:
// build with CGO_ENABLED=1 and a C compiler.
package djangodb

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"           // PostgreSQL driver "postgres"
	_ "github.com/mattn/go-sqlite3" // SQLite driver "sqlite3"
)

// ErrDatabaseURL is wrapped by every error ParseURL returns.
var ErrDatabaseURL = errors.New("invalid database URL")

// Dialect is the kind of database a URL names.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
	// File is a snapshot file (see ReadSnapshotFile) instead of a
	// database: DSN is its absolute path.
	File Dialect = "file"
)

// Target is a parsed database URL: which driver to use and how to reach the
// database. Redacted is safe to log.
type Target struct {
	Dialect  Dialect
	Driver   string // database/sql driver name
	DSN      string
	Redacted string
}

// ParseURL parses a database URL in dj-database-url's forms:
//
//	sqlite:///relative/path.db     (relative to the working directory)
//	sqlite:////absolute/path.db
//	postgres://user:pass@host:port/name?sslmode=…  (also postgresql://, pgsql://)
//	file:///absolute/path/flags.json  (a snapshot file instead of a database)
//
// PostgreSQL URLs without sslmode get sslmode=prefer, the default of libpq
// and so of Django's psycopg2 backend. A Unix socket directory is given as
// ?host=/var/run/postgresql. SQLite databases are opened read-only; the file
// must exist.
func ParseURL(raw string) (Target, error) {
	if raw == "" {
		return Target{}, fmt.Errorf("%w: empty", ErrDatabaseURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Target{}, fmt.Errorf("%w: %v", ErrDatabaseURL, err)
	}
	switch u.Scheme {
	case "sqlite", "sqlite3":
		return parseSQLite(u)
	case "postgres", "postgresql", "pgsql":
		return parsePostgres(u)
	case "file":
		return parseFile(u)
	case "":
		return Target{}, fmt.Errorf("%w: %q has no scheme (want sqlite:///path.db or postgres://user@host/name)", ErrDatabaseURL, u.Redacted())
	default:
		return Target{}, fmt.Errorf("%w: unsupported scheme %q (supported: sqlite, postgres, file)", ErrDatabaseURL, u.Scheme)
	}
}

func parseFile(u *url.URL) (Target, error) {
	if (u.Host != "" && u.Host != "localhost") || u.RawQuery != "" || u.Path == "" || !filepath.IsAbs(u.Path) {
		return Target{}, fmt.Errorf("%w: file URL %q: want file:///absolute/path/flags.json", ErrDatabaseURL, u.Redacted())
	}
	st, err := os.Stat(u.Path)
	switch {
	case err != nil:
		return Target{}, fmt.Errorf("%w: snapshot file: %v", ErrDatabaseURL, err)
	case st.IsDir():
		return Target{}, fmt.Errorf("%w: snapshot file %s is a directory", ErrDatabaseURL, u.Path)
	}
	return Target{Dialect: File, DSN: u.Path, Redacted: "file://" + u.Path}, nil
}

func parseSQLite(u *url.URL) (Target, error) {
	if u.Host != "" {
		return Target{}, fmt.Errorf("%w: sqlite URL %q has a host; use sqlite:///relative.db or sqlite:////absolute.db", ErrDatabaseURL, u.String())
	}
	if u.RawQuery != "" {
		return Target{}, fmt.Errorf("%w: sqlite URL takes no query parameters", ErrDatabaseURL)
	}
	// dj-database-url drops the one slash that separates the empty host
	// from the path: sqlite:///db.sqlite3 is "db.sqlite3".
	p := strings.TrimPrefix(u.Path, "/")
	if p == "" || p == ":memory:" {
		return Target{}, fmt.Errorf("%w: sqlite URL names no file (an in-memory database has no Django tables)", ErrDatabaseURL)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return Target{}, fmt.Errorf("%w: sqlite path %q: %v", ErrDatabaseURL, p, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return Target{}, fmt.Errorf("%w: sqlite database file %s does not exist (run Django's migrate first, or fix the path)", ErrDatabaseURL, abs)
	case err != nil:
		return Target{}, fmt.Errorf("%w: sqlite database file: %v", ErrDatabaseURL, err)
	case st.IsDir():
		return Target{}, fmt.Errorf("%w: sqlite database %s is a directory", ErrDatabaseURL, abs)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_query_only", "1")
	q.Set("_busy_timeout", "5000")
	q.Set("_txlock", "deferred")
	// Keep prepared statements: the identity batches run the same few
	// statements over and over (see Identities.in).
	q.Set("_stmt_cache_size", "16")
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
	return Target{Dialect: SQLite, Driver: "sqlite3", DSN: dsn, Redacted: "sqlite:///" + abs}, nil
}

func parsePostgres(u *url.URL) (Target, error) {
	q := u.Query()
	if u.Host == "" && q.Get("host") == "" {
		return Target{}, fmt.Errorf("%w: postgres URL %q has no host", ErrDatabaseURL, u.Redacted())
	}
	if strings.Trim(u.Path, "/") == "" {
		return Target{}, fmt.Errorf("%w: postgres URL %q names no database", ErrDatabaseURL, u.Redacted())
	}
	if u.Port() != "" {
		if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
			return Target{}, fmt.Errorf("%w: postgres URL %q: port %q is not a number from 1 to 65535", ErrDatabaseURL, u.Redacted(), u.Port())
		}
	}
	if q.Get("sslmode") == "" && os.Getenv("PGSSLMODE") == "" {
		q.Set("sslmode", "prefer")
	}
	if q.Get("connect_timeout") == "" && os.Getenv("PGCONNECT_TIMEOUT") == "" {
		// lib/pq waits for a connection's start-up handshake forever
		// without it, whatever the context says: a server that accepts
		// TCP but never answers (a blackholed or hung host) would hold
		// every load and identity lookup for the whole outage.
		q.Set("connect_timeout", defaultConnectTimeout)
	}
	c := *u
	c.Scheme = "postgres"
	c.RawQuery = q.Encode()
	return Target{Dialect: Postgres, Driver: "postgres", DSN: c.String(), Redacted: c.Redacted()}, nil
}

// defaultConnectTimeout is the PostgreSQL connect_timeout (seconds) when
// the database URL and PGCONNECT_TIMEOUT set none.
const defaultConnectTimeout = "5"

// poolIdleTime is how long an unused pool connection stays open.
const poolIdleTime = time.Minute

// Open opens the database a Target names. It does not connect; the first
// load does.
func Open(t Target) (*sqlx.DB, error) {
	db, err := sqlx.Open(t.Driver, t.DSN)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", t.Redacted, err)
	}
	// The poller needs one connection; identity lookups of uncached
	// sessions (rate-limited) share the rest. A connection left idle for
	// poolIdleTime is closed, so a burst (the start, an identity batch)
	// does not hold database connections for good.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(poolIdleTime)
	return db, nil
}
