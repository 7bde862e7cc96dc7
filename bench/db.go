package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq"
	_ "github.com/mattn/go-sqlite3"
)

// loggedInFlag is on only for authenticated visitors: the upstream reads it
// to tell whether flagproxy recognised the session.
const loggedInFlag = "bench_logged_in"

// The site's groups, switches and samples.
const (
	benchGroups   = 5
	benchSwitches = 20
	benchSamples  = 10
)

// siteSpec is one generated Django database.
type siteSpec struct {
	Flags int // waffle flags, loggedInFlag included
	Users int // users, each with one live session
}

// site is a generated database and what a client needs to log in to it.
type site struct {
	URL      string   // --database for flagproxy
	Sessions []string // session keys, one per user, user 1 first
	cleanup  func()
}

// benchSecretKey is the SECRET_KEY of the generated site.
const benchSecretKey = "flagproxy-bench-secret-key-not-for-production-0123456789"

// flagRow is one waffle_flag row.
type flagRow struct {
	name                                               string
	everyone                                           *bool
	percent                                            *string
	testing, superusers, staff, authenticated, rollout bool
	languages                                          string
	users                                              []int
	groups                                             []int
}

// flagRows makes n flags of mixed rules: everyone on and off, percentages
// (some with rollout), staff, authenticated, superusers only, users,
// groups, languages and testing mode, one kind in ten each; the first is
// loggedInFlag. Every flag has waffle's default superusers = True except
// the marker.
func flagRows(n, users int) []flagRow {
	rows := []flagRow{{name: loggedInFlag, authenticated: true}}
	t, f := true, false
	percents := []string{"5.0", "12.5", "33.3", "50.0", "75.0", "99.9"}
	for i := 1; i < n; i++ {
		r := flagRow{name: fmt.Sprintf("flag_%04d", i), superusers: true}
		switch i % 10 {
		case 0:
			r.everyone = &t
		case 1:
			r.everyone = &f
		case 2:
			r.percent = &percents[i%len(percents)]
			r.rollout = i%4 == 0
		case 3:
			r.staff = true
		case 4:
			r.authenticated = true
		case 5:
			// superusers only
		case 6:
			for k := range 3 {
				r.users = append(r.users, 1+(i*7+k*131)%users)
			}
			if i%20 == 6 {
				r.users[0] = 1 // some user flags name the single-session user
			}
		case 7:
			r.groups = []int{1 + i%benchGroups, 1 + (i+2)%benchGroups}
		case 8:
			r.languages = "fr, de"
		case 9:
			r.testing = true
			r.percent = &percents[i%len(percents)]
		}
		rows = append(rows, r)
	}
	return rows
}

// dialect says how to write to one database.
type dialect struct {
	name string
	// bind turns ? placeholders into the dialect's.
	bind func(string) string
	// expire formats django_session.expire_date.
	expire func(time.Time) any
}

var sqliteDialect = dialect{
	name: "sqlite",
	bind: func(q string) string { return q },
	// USE_TZ = True: naive UTC text, as Django writes it.
	expire: func(t time.Time) any { return t.UTC().Format("2006-01-02 15:04:05") },
}

var postgresDialect = dialect{
	name: "postgres",
	bind: func(q string) string {
		var b strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				b.WriteString("$" + strconv.Itoa(n))
				continue
			}
			b.WriteRune(r)
		}
		return b.String()
	},
	expire: func(t time.Time) any { return t },
}

// createSQLite makes a SQLite database file at path with the schema of
// djangodb/testdata/schema/sqlite.sql and fills it.
func createSQLite(ctx context.Context, root, path string, spec siteSpec) (*site, error) {
	schema, err := os.ReadFile(filepath.Join(root, "djangodb", "testdata", "schema", "sqlite.sql"))
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, string(schema)); err != nil {
		return nil, fmt.Errorf("sqlite schema: %w", err)
	}
	sessions, err := fill(ctx, db, sqliteDialect, spec)
	if err != nil {
		return nil, fmt.Errorf("fill %s: %w", path, err)
	}
	return &site{URL: "sqlite:///" + path, Sessions: sessions, cleanup: func() {}}, nil
}

// createPostgres makes a fresh database next to dsn's, with the schema of
// djangodb/testdata/schema/postgres.sql, and fills it. The site's cleanup
// drops it.
func createPostgres(ctx context.Context, root, dsn string, spec siteSpec) (*site, error) {
	schema, err := os.ReadFile(filepath.Join(root, "djangodb", "testdata", "schema", "postgres.sql"))
	if err != nil {
		return nil, err
	}
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	var b [6]byte
	rand.Read(b[:])
	name := "flagproxy_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin.ExecContext(c, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	}
	u, err := url.Parse(dsn)
	if err != nil {
		drop()
		return nil, err
	}
	u.Path = "/" + name
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		drop()
		return nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, string(schema)); err != nil {
		drop()
		return nil, fmt.Errorf("postgres schema: %w", err)
	}
	sessions, err := fill(ctx, db, postgresDialect, spec)
	if err != nil {
		drop()
		return nil, fmt.Errorf("fill %s: %w", name, err)
	}
	return &site{URL: u.String(), Sessions: sessions, cleanup: drop}, nil
}

// fill writes groups, users with one session each, flags with their users
// and groups, switches and samples in one transaction, and returns the
// session keys in user order.
func fill(ctx context.Context, db *sql.DB, d dialect, spec siteSpec) ([]string, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	stmts := map[string]*sql.Stmt{}
	exec := func(q string, args ...any) error {
		s, ok := stmts[q]
		if !ok {
			if s, err = tx.PrepareContext(ctx, d.bind(q)); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			stmts[q] = s
		}
		if _, err := s.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return nil
	}
	const stamp = "2026-01-01 00:00:00"
	for g := 1; g <= benchGroups; g++ {
		if err := exec(`INSERT INTO auth_group (id, name) VALUES (?, ?)`, g, fmt.Sprintf("group_%d", g)); err != nil {
			return nil, err
		}
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	now := time.Now()
	expire := d.expire(now.Add(14 * 24 * time.Hour))
	sessions := make([]string, 0, spec.Users)
	for id := 1; id <= spec.Users; id++ {
		password := fmt.Sprintf("pbkdf2_sha256$260000$benchsalt%d$%s", id, strings.Repeat("x", 43))
		// User 1 is staff in group 1 and not a superuser, so the rules
		// are decided one by one; others vary.
		staff, super := id%10 == 1, id%100 == 50
		if err := exec(`INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES (?, ?, ?, ?, '', '', '', ?, ?, ?)`, id, password, super, fmt.Sprintf("user%05d", id), staff, true, stamp); err != nil {
			return nil, err
		}
		if err := exec(`INSERT INTO auth_user_groups (user_id, group_id) VALUES (?, ?)`, id, 1+(id-1)%benchGroups); err != nil {
			return nil, err
		}
		key := sessionKey(rng)
		data, err := loginSessionData(strconv.Itoa(id), password, benchSecretKey, now)
		if err != nil {
			return nil, err
		}
		if err := exec(`INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)`, key, data, expire); err != nil {
			return nil, err
		}
		sessions = append(sessions, key)
	}
	for i, f := range flagRows(spec.Flags, spec.Users) {
		id := i + 1
		var everyone, percent any
		if f.everyone != nil {
			everyone = *f.everyone
		}
		if f.percent != nil {
			percent = *f.percent
		}
		if err := exec(`INSERT INTO waffle_flag (id, name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)`,
			id, f.name, everyone, percent, f.testing, f.superusers, f.staff, f.authenticated, f.languages, f.rollout, stamp, stamp); err != nil {
			return nil, err
		}
		seen := map[int]bool{}
		for _, u := range f.users {
			if !seen[u] {
				seen[u] = true
				if err := exec(`INSERT INTO waffle_flag_users (flag_id, user_id) VALUES (?, ?)`, id, u); err != nil {
					return nil, err
				}
			}
		}
		for _, g := range f.groups {
			if err := exec(`INSERT INTO waffle_flag_groups (flag_id, group_id) VALUES (?, ?)`, id, g); err != nil {
				return nil, err
			}
		}
	}
	for i := range benchSwitches {
		if err := exec(`INSERT INTO waffle_switch (name, active, note, created, modified) VALUES (?, ?, '', ?, ?)`,
			fmt.Sprintf("switch_%02d", i), i%2 == 0, stamp, stamp); err != nil {
			return nil, err
		}
	}
	for i := range benchSamples {
		if err := exec(`INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES (?, ?, '', ?, ?)`,
			fmt.Sprintf("sample_%02d", i), fmt.Sprintf("%d.0", i*10), stamp, stamp); err != nil {
			return nil, err
		}
	}
	for _, s := range stmts {
		s.Close()
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return sessions, nil
}

// sessionKey is a key like Django's get_random_string(32) of lowercase
// letters and digits.
func sessionKey(rng *mrand.Rand) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	for i := range b {
		b[i] = chars[rng.IntN(len(chars))]
	}
	return string(b)
}

// settingsJSON is the --django-settings file of the generated site: its
// SECRET_KEY, time zone handling, and LocaleMiddleware with three
// languages so the languages rule has work to do.
func settingsJSON() string {
	return `{
  "SECRET_KEY": "` + benchSecretKey + `",
  "DJANGO_VERSION": "4.2",
  "USE_TZ": true,
  "TIME_ZONE": "UTC",
  "MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware", "django.middleware.locale.LocaleMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware"],
  "LANGUAGE_CODE": "en-us",
  "LANGUAGES": [["en", "English"], ["fr", "French"], ["de", "German"]],
  "WAFFLE_SECURE": false
}
`
}
