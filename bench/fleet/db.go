package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
)

// dialTimeout bounds every connection the harness or its relay opens.
const dialTimeout = 10 * time.Second

// harnessApp is the application_name of the harness's connection to the
// fleet's database.
const harnessApp = "flagproxy-fleet-harness"

// siteSpec is the generated flag set.
type siteSpec struct {
	Flags, Switches, Samples, Users, Groups int
	// UserLinkedFlags flags name UsersPerFlag users each; GroupLinkedFlags
	// name two groups each.
	UserLinkedFlags, UsersPerFlag, GroupLinkedFlags int
}

// changeFlag is the flag every change of the harness updates.
const changeFlag = "flag_0002"

// fleetDB is the throwaway database and the harness's connections.
type fleetDB struct {
	name  string
	admin *sql.DB // the maintenance database of the DSN: stats, CREATE/DROP
	db    *sql.DB // the fleet's database: schema, writer (one connection)
	// obs reads the primary's statistics of the database.
	obs *observer
	// url is the fleet database's URL with the DSN's credentials.
	url *url.URL
	// local is true when the server's backends are processes of this
	// machine whose CPU time /proc shows.
	local bool
}

// createDB makes flagproxy_fleet_<random> on the server of dsn, with the
// schema of djangodb/testdata/schema/postgres.sql and the flag set of spec.
func createDB(ctx context.Context, root, dsn string, spec siteSpec) (*fleetDB, error) {
	schema, err := os.ReadFile(filepath.Join(root, "djangodb", "testdata", "schema", "postgres.sql"))
	if err != nil {
		return nil, err
	}
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	admin.SetMaxOpenConns(2)
	var b [6]byte
	rand.Read(b[:])
	f := &fleetDB{name: "flagproxy_fleet_" + hex.EncodeToString(b[:]), admin: admin}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+f.name); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		f.drop()
		return nil, err
	}
	u.Path = "/" + f.name
	f.url = u
	// The harness's own connection is named, so that pg_stat_activity
	// counts leave it out whatever its backend.
	hu := *u
	hq := hu.Query()
	hq.Set("application_name", harnessApp)
	hu.RawQuery = hq.Encode()
	if f.db, err = sql.Open("postgres", hu.String()); err != nil {
		f.drop()
		return nil, err
	}
	f.db.SetMaxOpenConns(1)
	f.db.SetMaxIdleConns(1)
	f.db.SetConnMaxLifetime(0)
	if _, err := f.db.ExecContext(ctx, string(schema)); err != nil {
		f.drop()
		return nil, fmt.Errorf("postgres schema: %w", err)
	}
	if err := fill(ctx, f.db, spec); err != nil {
		f.drop()
		return nil, fmt.Errorf("fill %s: %w", f.name, err)
	}
	var pid int
	if err := f.db.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		f.drop()
		return nil, err
	}
	_, err = os.Stat(fmt.Sprintf("/proc/%d/stat", pid))
	f.local = err == nil && isLoopback(u)
	f.obs = &observer{admin: admin, name: f.name, local: f.local, primary: true}
	return f, nil
}

// drop removes the database (disconnecting whoever is still in it) and
// closes the harness's connections.
func (f *fleetDB) drop() error {
	if f.db != nil {
		f.db.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+f.name+" WITH (FORCE)")
	f.admin.Close()
	return err
}

func isLoopback(u *url.URL) bool {
	h := u.Hostname()
	if h == "" || h == "localhost" || strings.HasPrefix(u.Query().Get("host"), "/") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// fill writes groups, users, flags with user and group links, switches and
// samples in one transaction. Flag rules vary as a real site's do; each
// tenth kind is one rule.
func fill(ctx context.Context, db *sql.DB, spec siteSpec) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	exec := func(q string, args ...any) error {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return nil
	}
	const stamp = "2026-01-01 00:00:00+00"
	for g := 1; g <= spec.Groups; g++ {
		if err := exec(`INSERT INTO auth_group (id, name) VALUES ($1, $2)`, g, fmt.Sprintf("group_%d", g)); err != nil {
			return err
		}
	}
	for id := 1; id <= spec.Users; id++ {
		if err := exec(`INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES ($1, 'pbkdf2_sha256$260000$fleet$x', false, $2, '', '', '', $3, true, $4)`,
			id, fmt.Sprintf("user%05d", id), id%10 == 1, stamp); err != nil {
			return err
		}
		if err := exec(`INSERT INTO auth_user_groups (user_id, group_id) VALUES ($1, $2)`, id, 1+(id-1)%spec.Groups); err != nil {
			return err
		}
	}
	percents := []string{"5.0", "12.5", "33.3", "50.0", "75.0", "99.9"}
	userLinked, groupLinked := 0, 0
	for i := 1; i <= spec.Flags; i++ {
		var everyone, percent any
		staff, authenticated, testing, rollout := false, false, false, false
		languages := ""
		switch i % 10 {
		case 0:
			everyone = true
		case 1:
			everyone = false
		case 2, 9:
			percent = percents[i%len(percents)]
			rollout = i%4 == 0
			testing = i%10 == 9
		case 3:
			staff = true
		case 4:
			authenticated = true
		case 8:
			languages = "fr,de"
		}
		if err := exec(`INSERT INTO waffle_flag (id, name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified)
			VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8, $9, '', $10, $10)`,
			i, fmt.Sprintf("flag_%04d", i), everyone, percent, testing, staff, authenticated, languages, rollout, stamp); err != nil {
			return err
		}
		// Users and groups on flags of the "superusers only" and other
		// otherwise-off kinds, spread over the set.
		if (i%10 == 5 || i%10 == 6 || i%10 == 7) && userLinked < spec.UserLinkedFlags {
			userLinked++
			for k := range spec.UsersPerFlag {
				u := 1 + (i*37+k*131)%spec.Users
				if err := exec(`INSERT INTO waffle_flag_users (flag_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, i, u); err != nil {
					return err
				}
			}
		}
		if (i%10 == 6 || i%10 == 7) && groupLinked < spec.GroupLinkedFlags {
			groupLinked++
			for _, g := range []int{1 + i%spec.Groups, 1 + (i+2)%spec.Groups} {
				if err := exec(`INSERT INTO waffle_flag_groups (flag_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, i, g); err != nil {
					return err
				}
			}
		}
	}
	for i := range spec.Switches {
		if err := exec(`INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ($1, $2, '', $3, $3)`,
			fmt.Sprintf("switch_%02d", i), i%2 == 0, stamp); err != nil {
			return err
		}
	}
	for i := range spec.Samples {
		if err := exec(`INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES ($1, $2, '', $3, $3)`,
			fmt.Sprintf("sample_%02d", i), fmt.Sprintf("%d.0", i*10), stamp); err != nil {
			return err
		}
	}
	for _, seq := range []string{"auth_group", "auth_user", "waffle_flag"} {
		if err := exec(`SELECT setval('` + seq + `_id_seq', (SELECT max(id) FROM ` + seq + `))`); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// Leave autovacuum nothing to do after the fill, and keep it off the
	// flag tables of this throwaway database (a storage parameter of its
	// tables, not a server setting): its work is caused by the writes, not
	// by the proxies, and would land in random measurement windows.
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		return err
	}
	for _, t := range notifyTables {
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+pq.QuoteIdentifier(t)+` SET (autovacuum_enabled = false)`); err != nil {
			return err
		}
	}
	return nil
}

// siteCounts reads back what fill wrote, for the report.
func (f *fleetDB) siteCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, t := range []string{"waffle_flag", "waffle_flag_users", "waffle_flag_groups", "waffle_switch", "waffle_sample", "auth_user", "auth_group"} {
		var n int
		if err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, err
		}
		out[t] = n
	}
	return out, nil
}

// change updates changeFlag once: a new percent and note, so that every
// change makes rows (and a snapshot version) never seen before. ctx only
// bounds the wait for the connection: a statement canceled in flight
// makes lib/pq drop the connection, and the harness's connection would
// then be replaced by one the counts could mistake for a proxy's.
func (f *fleetDB) change(ctx context.Context, seq int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// No parameters: lib/pq then sends one simple query, one transaction
	// in pg_stat_database (with parameters it makes two round trips, each
	// counted as a transaction). The values are the harness's own numbers.
	percent := fmt.Sprintf("%d.%d", (seq/10)%100, seq%10)
	_, err := f.db.ExecContext(ctx, `UPDATE waffle_flag SET percent = `+percent+`, note = 'fleet change `+
		strconv.Itoa(seq)+`', modified = now() WHERE name = '`+changeFlag+`'`)
	return err
}

// --- notification triggers, from flagproxy_django/notify.py ---

// triggerSQL is the DDL of integration/python/flagproxy_django/notify.py,
// read from that file as djangodb/change_test.go reads it.
type triggerSQL struct {
	function, trigger, dropTrigger, dropFunction, announce string
}

func readNotifyPy(root string) (triggerSQL, error) {
	b, err := os.ReadFile(filepath.Join(root, "integration", "python", "flagproxy_django", "notify.py"))
	if err != nil {
		return triggerSQL{}, err
	}
	var missing []string
	find := func(re string) string {
		m := regexp.MustCompile(re).FindSubmatch(b)
		if m == nil {
			missing = append(missing, re)
			return ""
		}
		return strings.TrimSpace(string(m[1]))
	}
	t := triggerSQL{
		function:     find(`(?ms)^FUNCTION_SQL = r'''(.*?)'''`),
		trigger:      find(`(?ms)^TRIGGER_SQL = r'''(.*?)'''`),
		dropTrigger:  find(`(?m)^DROP_TRIGGER_SQL = '([^']*)'`),
		dropFunction: find(`(?m)^DROP_FUNCTION_SQL = '([^']*)'`),
		announce:     find(`(?m)^ANNOUNCE_SQL = "([^"]*)"`),
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("notify.py: no match for %s", strings.Join(missing, ", "))
	}
	return t, nil
}

// notifyTables is notify.py's flag_tables() for a site with the default
// WAFFLE_*_MODEL settings and the app label "flags" (the labels of the
// other installed apps name tables this schema does not have).
var notifyTables = []string{
	"featureflipper_feature", "flags_featureflag", "flags_featureflag_allowed_users", "flags_flagstate",
	"waffle_flag", "waffle_flag_groups", "waffle_flag_users", "waffle_sample", "waffle_switch",
}

// installTriggers does what notify.install does in a migration: the
// function, the trigger on every existing flag table, then the
// announcement, in one transaction.
func (f *fleetDB) installTriggers(ctx context.Context, t triggerSQL) ([]string, error) {
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var tables []string
	rows, err := tx.QueryContext(ctx, `SELECT c.relname FROM pg_catalog.pg_class c
		WHERE c.relname = ANY ($1) AND c.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY c.relname`,
		pq.Array(notifyTables))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, n)
	}
	rows.Close()
	if _, err := tx.ExecContext(ctx, t.function); err != nil {
		return nil, fmt.Errorf("FUNCTION_SQL: %w", err)
	}
	for _, table := range tables {
		q := pq.QuoteIdentifier(table)
		if _, err := tx.ExecContext(ctx, strings.ReplaceAll(t.dropTrigger, "{table}", q)); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, strings.ReplaceAll(t.trigger, "{table}", q)); err != nil {
			return nil, fmt.Errorf("TRIGGER_SQL on %s: %w", table, err)
		}
	}
	if _, err := tx.ExecContext(ctx, t.announce); err != nil {
		return nil, err
	}
	return tables, tx.Commit()
}

// uninstallTriggers drops the triggers and the function (notify.uninstall).
func (f *fleetDB) uninstallTriggers(ctx context.Context, t triggerSQL) error {
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, table := range notifyTables {
		if _, err := tx.ExecContext(ctx, strings.ReplaceAll(t.dropTrigger, "{table}", pq.QuoteIdentifier(table))); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, t.dropFunction); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, t.announce); err != nil {
		return err
	}
	return tx.Commit()
}

// --- what PostgreSQL says ---

// dbStats is the fleet database's row of pg_stat_database.
type dbStats struct {
	XactCommit, XactRollback, TupReturned, TupFetched, BlksHit, BlksRead int64
}

func (a dbStats) sub(b dbStats) dbStats {
	return dbStats{a.XactCommit - b.XactCommit, a.XactRollback - b.XactRollback, a.TupReturned - b.TupReturned,
		a.TupFetched - b.TupFetched, a.BlksHit - b.BlksHit, a.BlksRead - b.BlksRead}
}

// observer reads what one server (the primary, or a hot standby) says
// about the fleet's database.
type observer struct {
	admin   *sql.DB // that server's maintenance database
	name    string  // the fleet's database
	local   bool    // its backends are processes of this machine
	primary bool    // the harness writes here
	url     *url.URL
}

// openStandbyObserver connects to the standby of dsn and waits until the
// fleet's database, filled, has been replayed there.
func openStandbyObserver(ctx context.Context, dsn, name string, flags int) (*observer, error) {
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	admin.SetMaxOpenConns(2)
	u, err := url.Parse(dsn)
	if err != nil {
		admin.Close()
		return nil, err
	}
	u.Path = "/" + name
	o := &observer{admin: admin, name: name, local: isLoopback(u), url: u}
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		admin.Close()
		return nil, err
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM waffle_flag`).Scan(&n)
		if err == nil && n == flags {
			return o, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			admin.Close()
			return nil, fmt.Errorf("the standby did not replay the fleet's database within 60s (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (o *observer) stats(ctx context.Context) (dbStats, error) {
	var s dbStats
	err := o.admin.QueryRowContext(ctx, `SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, blks_hit, blks_read
		FROM pg_stat_database WHERE datname = $1`, o.name).
		Scan(&s.XactCommit, &s.XactRollback, &s.TupReturned, &s.TupFetched, &s.BlksHit, &s.BlksRead)
	return s, err
}

// activity is one look at pg_stat_activity.
type activity struct {
	Ours     int   // client backends in the fleet database, the harness's left out
	Harness  int   // the harness's own connections to the fleet database
	Active   int   // of Ours, state active
	Listen   int   // of Ours, listening (last query LISTEN or the empty ping)
	Others   int   // client backends of every other database (other users of the server)
	OurPIDs  []int // the backends counted in Ours
	MaxConns int
	Reserved int
}

func (o *observer) activity(ctx context.Context) (activity, error) {
	var a activity
	rows, err := o.admin.QueryContext(ctx, `SELECT pid, coalesce(datname, ''), coalesce(state, ''), coalesce(query, ''),
			coalesce(application_name, '') = $1
		FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`, harnessApp)
	if err != nil {
		return a, err
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var db, state, query string
		var harness bool
		if err := rows.Scan(&pid, &db, &state, &query, &harness); err != nil {
			return a, err
		}
		q := strings.ToUpper(strings.TrimSpace(query))
		switch {
		case db != o.name:
			a.Others++
		case harness:
			a.Harness++
		default:
			a.Ours++
			a.OurPIDs = append(a.OurPIDs, pid)
			if state == "active" {
				a.Active++
			}
			// A listening connection's last query is LISTEN, or the empty
			// query of lib/pq's Listener.Ping; the pool never sends one.
			if q == "" && state == "idle" || strings.HasPrefix(q, "LISTEN") {
				a.Listen++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return a, err
	}
	err = o.admin.QueryRowContext(ctx, `SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int`).
		Scan(&a.MaxConns, &a.Reserved)
	return a, err
}

// serverInfo describes the server for the report.
func (f *fleetDB) serverInfo(ctx context.Context) string {
	var v, maxc, sb string
	f.admin.QueryRowContext(ctx, `SELECT current_setting('server_version'), current_setting('max_connections'), current_setting('shared_buffers')`).Scan(&v, &maxc, &sb)
	return fmt.Sprintf("PostgreSQL %s, max_connections %s, shared_buffers %s", v, maxc, sb)
}
