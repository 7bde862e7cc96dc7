package djangodb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"

	"github.com/flagproxy/flagproxy/engine"
)

// workStatements counts what the database is asked to do through a counting
// driver: every query, exec, begin, commit and rollback is one statement.
var workStatements atomic.Int64

var registerWorkCounting sync.Once

// workTarget returns t with its driver wrapped by one that counts
// workStatements.
func workTarget(t Target) Target {
	registerWorkCounting.Do(func() {
		sql.Register("work-sqlite3", workDriver{&sqlite3.SQLiteDriver{}})
		sql.Register("work-postgres", workDriver{&pq.Driver{}})
	})
	t.Driver = "work-" + t.Driver
	return t
}

type workDriver struct{ d driver.Driver }

func (c workDriver) Open(name string) (driver.Conn, error) {
	cn, err := c.d.Open(name)
	if err != nil {
		return nil, err
	}
	return &workConn{cn}, nil
}

// workConn passes everything to the driver's connection and counts.
// The drivers implement the context interfaces, which database/sql prefers.
type workConn struct{ c driver.Conn }

func (c *workConn) Prepare(q string) (driver.Stmt, error) { return c.c.Prepare(q) }
func (c *workConn) Close() error                          { return c.c.Close() }
func (c *workConn) Begin() (driver.Tx, error) {
	return nil, driver.ErrSkip
}

func (c *workConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	workStatements.Add(1)
	tx, err := c.c.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return workTx{tx}, nil
}

func (c *workConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	workStatements.Add(1)
	return c.c.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *workConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	workStatements.Add(1)
	return c.c.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *workConn) Ping(ctx context.Context) error {
	if p, ok := c.c.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *workConn) ResetSession(ctx context.Context) error {
	if r, ok := c.c.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *workConn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.c.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type workTx struct{ tx driver.Tx }

func (t workTx) Commit() error   { workStatements.Add(1); return t.tx.Commit() }
func (t workTx) Rollback() error { workStatements.Add(1); return t.tx.Rollback() }

// TestCountingDriverCountsALoad pins what one load costs, the unit of the
// database-work figures: on the Django schema with every source present.
func TestCountingDriverCountsALoad(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		db.Target = workTarget(db.Target)
		l := db.Loader(t, Config{})
		before := workStatements.Load()
		if _, err := l.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		n := workStatements.Load() - before
		t.Logf("%s: one load is %d statements", db.Name, n)
		if n < 5 || n > 20 {
			t.Errorf("one load = %d statements, want between 5 and 20", n)
		}
	})
}

// TestDatabaseWork measures the statements one proxy sends per second,
// idle and while a flag changes ten times a second, with and without
// change detection, at the default poll intervals. It takes about a
// minute: set FLAGPROXY_MEASURE_WORK=1 to run it. The listening
// connection's pings (one a poll interval) are not counted here.
func TestDatabaseWork(t *testing.T) {
	if os.Getenv("FLAGPROXY_MEASURE_WORK") == "" {
		t.Skip("a one-minute measurement: set FLAGPROXY_MEASURE_WORK=1")
	}
	const window = 5 * time.Second
	type mode struct {
		name     string
		postgres bool
		changes  bool // use a Watch
		notify   bool
		interval time.Duration
	}
	modes := []mode{
		{"sqlite, every poll a load (before)", false, false, false, time.Second},
		{"sqlite, PRAGMA data_version", false, true, false, DefaultSQLiteInterval},
		{"postgres, every poll a load (before)", true, false, false, time.Second},
		{"postgres, fingerprint", true, true, false, time.Second},
		{"postgres, NOTIFY", true, true, true, time.Second},
	}
	var table []string
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var db *testDB
			if m.postgres {
				db = newPostgres(t, true)
				installTriggers(t, db)
			} else {
				db = newSQLite(t, true)
			}
			db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ('s', false, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
			db.Target = workTarget(db.Target)
			var loads func() int
			if m.changes {
				w := startWatched(t, db, WatchConfig{Notify: m.notify, NotifyDSN: strings.Replace(db.Target.DSN, "work-", "", 1)}, m.interval)
				if m.notify {
					waitFor(t, 5*time.Second, w.notifyActive)
				}
				loads = w.loads.count
			} else {
				cl := &countingLoader{l: db.Loader(t, Config{})}
				p, err := NewPoller(PollerConfig{Loader: cl, Sink: &engine.Store{}, Interval: m.interval})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { p.Run(ctx); close(done) }()
				t.Cleanup(func() { cancel(); <-done })
				loads = cl.count
			}
			time.Sleep(time.Second) // past the start
			measure := func(change bool) (float64, float64) {
				s0, l0 := workStatements.Load(), loads()
				deadline := time.Now().Add(window)
				for time.Now().Before(deadline) {
					if change {
						db.Exec(t, `UPDATE waffle_switch SET active = NOT active`)
					}
					time.Sleep(100 * time.Millisecond)
				}
				secs := window.Seconds()
				return float64(workStatements.Load()-s0) / secs, float64(loads()-l0) / secs
			}
			idleS, idleL := measure(false)
			busyS, busyL := measure(true)
			table = append(table, fmt.Sprintf("| %s, every %v | %.1f (%.2f loads) | %.1f (%.1f loads) |",
				m.name, m.interval, idleS, idleL, busyS, busyL))
		})
	}
	t.Logf("statements per second (loads per second), one proxy:\n| mode | idle | 10 commits/s |\n| --- | --- | --- |\n%s",
		strings.Join(table, "\n"))
}

// TestPollCosts measures what one poll costs on flag tables of a mid-sized
// site (200 waffle flags with 1,000 user links, 50 switches, 20 samples):
// a check of each kind, and a full load. Set FLAGPROXY_MEASURE_WORK=1.
func TestPollCosts(t *testing.T) {
	if os.Getenv("FLAGPROXY_MEASURE_WORK") == "" {
		t.Skip("a measurement: set FLAGPROXY_MEASURE_WORK=1")
	}
	const n = 300
	timeIt := func(t *testing.T, what string, f func() error) {
		t.Helper()
		start := time.Now()
		for range n {
			if err := f(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		t.Logf("%-30s %8v a call", what, (time.Since(start) / n).Round(time.Microsecond))
	}
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		seedMidSizedSite(t, db)
		reader, err := Open(db.Target)
		if err != nil {
			t.Fatal(err)
		}
		defer reader.Close()
		l, err := NewLoader(reader, db.Dialect, Config{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWatch(WatchConfig{DB: reader, Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		timeIt(t, "full load", func() error { _, err := l.Load(t.Context()); return err })
		if db.Dialect == SQLite {
			timeIt(t, "PRAGMA data_version", func() error { _, err := w.Changed(t.Context()); return err })
			return
		}
		if _, err := w.Changed(t.Context()); err != nil { // lists the tables
			t.Fatal(err)
		}
		timeIt(t, "fingerprint query", func() error { _, err := w.queryCatalog(t.Context(), w.present, true); return err })
		timeIt(t, "catalog query (NOTIFY active)", func() error { _, err := w.queryCatalog(t.Context(), w.present, false); return err })
	})
}

func seedMidSizedSite(tb testing.TB, db *testDB) {
	tb.Helper()
	now := "CURRENT_TIMESTAMP"
	for i := range 50 {
		db.Exec(tb, `INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES ('', ?, ?, '', '', '', ?, ?, `+now+`)`, false, fmt.Sprintf("u%d", i), false, true)
	}
	for i := range 200 {
		db.Exec(tb, `INSERT INTO waffle_flag (name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified)
			VALUES (?, NULL, NULL, ?, ?, ?, ?, '', ?, '', `+now+`, `+now+`)`, fmt.Sprintf("flag_%d", i), false, true, false, false, false)
	}
	db.Exec(tb, `INSERT INTO waffle_flag_users (flag_id, user_id) SELECT f.id, u.id FROM waffle_flag f, auth_user u WHERE (f.id + u.id) % 10 = 0`)
	for i := range 50 {
		db.Exec(tb, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES (?, ?, '', `+now+`, `+now+`)`, fmt.Sprintf("switch_%d", i), i%2 == 0)
	}
	for i := range 20 {
		db.Exec(tb, `INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES (?, 50.0, '', `+now+`, `+now+`)`, fmt.Sprintf("sample_%d", i))
	}
}
