package djangodb

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
)

// testDB is a fresh database with the schema Django's migrations create
// (testdata/schema), a writable handle for the test to insert rows with, and
// the Target a Loader opens read-only.
type testDB struct {
	Name    string
	Dialect Dialect
	Target  Target
	W       *sqlx.DB // writable; the loader never gets this one
}

// Exec runs statements on the writable handle, with ? placeholders
// rebound for the dialect.
func (d *testDB) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := d.W.Exec(d.W.Rebind(query), args...); err != nil {
		t.Fatalf("%s: exec %q: %v", d.Name, query, err)
	}
}

// Loader opens the database read-only the way flagproxy does.
func (d *testDB) Loader(t testing.TB, cfg Config) *Loader {
	t.Helper()
	db, err := Open(d.Target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := NewLoader(db, d.Dialect, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// eachDatabase runs f against a fresh SQLite database and, when
// FLAGPROXY_TEST_POSTGRES_DSN is set, a fresh PostgreSQL database.
func eachDatabase(t *testing.T, schema bool, f func(t *testing.T, db *testDB)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newSQLite(t, schema)) })
	t.Run("postgres", func(t *testing.T) { f(t, newPostgres(t, schema)) })
}

func newSQLite(t *testing.T, schema bool) *testDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	w, err := sqlx.Open("sqlite3", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	t.Cleanup(func() { w.Close() })
	if schema {
		applySchema(t, w, "sqlite.sql")
	} else if _, err := w.Exec(`CREATE TABLE unrelated (id integer)`); err != nil {
		t.Fatal(err)
	}
	target, err := ParseURL("sqlite:///" + path)
	if err != nil {
		t.Fatal(err)
	}
	return &testDB{Name: "sqlite", Dialect: SQLite, Target: target, W: w}
}

// postgresDSN returns FLAGPROXY_TEST_POSTGRES_DSN. Unset or "skip" skips
// the test, except under CI=true, where PostgreSQL tests must run.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("FLAGPROXY_TEST_POSTGRES_DSN")
	if dsn == "" || dsn == "skip" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but FLAGPROXY_TEST_POSTGRES_DSN is not set: PostgreSQL tests must run in CI")
		}
		t.Skip("set FLAGPROXY_TEST_POSTGRES_DSN (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) to run PostgreSQL tests")
	}
	return dsn
}

func newPostgres(t *testing.T, schema bool) *testDB {
	t.Helper()
	dsn := postgresDSN(t)
	admin, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	name := "flagproxy_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("postgres at FLAGPROXY_TEST_POSTGRES_DSN: create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	w, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if schema {
		applySchema(t, w, "postgres.sql")
	}
	target, err := ParseURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	return &testDB{Name: "postgres", Dialect: Postgres, Target: target, W: w}
}

func applySchema(t testing.TB, w *sqlx.DB, file string) {
	t.Helper()
	ddl, err := os.ReadFile(filepath.Join("testdata", "schema", file))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(string(ddl)); err != nil {
		t.Fatalf("apply %s: %v", file, err)
	}
}

// insertUser adds an auth_user row and returns its id.
func insertUser(t testing.TB, db *testDB, username string) int64 {
	t.Helper()
	var id int64
	q := db.W.Rebind(`INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
		VALUES ('', ?, ?, '', '', '', ?, ?, CURRENT_TIMESTAMP) RETURNING id`)
	if err := db.W.Get(&id, q, false, username, false, true); err != nil {
		t.Fatalf("insert user: %v", err)
	}
	return id
}

func insertGroup(t testing.TB, db *testDB, name string) int64 {
	t.Helper()
	var id int64
	if err := db.W.Get(&id, db.W.Rebind(`INSERT INTO auth_group (name) VALUES (?) RETURNING id`), name); err != nil {
		t.Fatalf("insert group: %v", err)
	}
	return id
}

// flagColumns lists every NOT NULL column of waffle_flag with the value
// Django's model supplies when the caller gives none.
func insertWaffleFlag(t testing.TB, db *testDB, name string, set map[string]any) int64 {
	t.Helper()
	cols := map[string]any{
		"name": name, "everyone": nil, "percent": nil, "testing": false, "superusers": true,
		"staff": false, "authenticated": false, "languages": "", "rollout": false, "note": "",
	}
	for k, v := range set {
		cols[k] = v
	}
	var names, marks []string
	var args []any
	for k, v := range cols {
		names = append(names, k)
		marks = append(marks, "?")
		args = append(args, v)
	}
	q := `INSERT INTO waffle_flag (` + strings.Join(names, ", ") + `, created, modified) VALUES (` +
		strings.Join(marks, ", ") + `, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) RETURNING id`
	var id int64
	if err := db.W.Get(&id, db.W.Rebind(q), args...); err != nil {
		t.Fatalf("insert waffle flag %q: %v", name, err)
	}
	return id
}
