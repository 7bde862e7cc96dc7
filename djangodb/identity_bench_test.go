package djangodb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	sqlite3 "github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// statements counts the statements sent through the "sqlite3_counting"
// driver, which the benchmark opens the database with: what the database
// sees, whatever the cache believes it sent.
var statements atomic.Int64

var registerCounting sync.Once

type countingDriver struct{ sqlite3.SQLiteDriver }

func (d *countingDriver) Open(name string) (driver.Conn, error) {
	c, err := d.SQLiteDriver.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingConn{c.(*sqlite3.SQLiteConn)}, nil
}

type countingConn struct{ *sqlite3.SQLiteConn }

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	statements.Add(1)
	return c.SQLiteConn.QueryContext(ctx, q, args)
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	statements.Add(1)
	return c.SQLiteConn.ExecContext(ctx, q, args)
}

// benchSessions makes a SQLite database with n logged-in users, each with a
// session, a group (of 10) and, for one in 7, a direct permission; group 0
// grants a permission too. It returns the read-only handle, counted, and
// the session keys.
func benchSessions(tb testing.TB, n int) (*sqlx.DB, []string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "db.sqlite3")
	w, err := sqlx.Open("sqlite3", "file:"+path+"?_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	tb.Cleanup(func() { w.Close() })
	applySchema(tb, w, "sqlite.sql")
	tx := w.MustBegin()
	tx.MustExec(`INSERT INTO django_content_type (app_label, model) VALUES ('featureflipper', 'feature')`)
	tx.MustExec(`INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'can_flip_with_url', '' FROM django_content_type`)
	tx.MustExec(`INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'can_view', '' FROM django_content_type`)
	for g := range 10 {
		tx.MustExec(`INSERT INTO auth_group (id, name) VALUES (?, ?)`, g+1, fmt.Sprintf("g%d", g))
	}
	tx.MustExec(`INSERT INTO auth_group_permissions (group_id, permission_id) VALUES (1, 1)`)
	password := "pbkdf2_sha256$260000$salt$hash="
	hash := hex.EncodeToString(saltedHMAC(authHashSalt, []byte(password), "k", sha256Alg))
	exp := pythonDatetime(time.Now().UTC().Add(24 * time.Hour))
	keys := make([]string, n)
	for i := range n {
		id := i + 1
		tx.MustExec(`INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES (?, ?, 0, ?, '', '', '', 0, 1, CURRENT_TIMESTAMP)`, id, password, fmt.Sprintf("user%d", id))
		tx.MustExec(`INSERT INTO auth_user_groups (user_id, group_id) VALUES (?, ?)`, id, i%10+1)
		if i%7 == 0 {
			tx.MustExec(`INSERT INTO auth_user_user_permissions (user_id, permission_id) VALUES (?, 2)`, id)
		}
		keys[i] = fmt.Sprintf("benchsession%020d", i)
		data := djangoDumps(tb, map[string]any{"_auth_user_id": strconv.Itoa(id), "_auth_user_backend": backendModel, "_auth_user_hash": hash},
			"django.contrib.sessions.SessionStore", "k", time.Now(), true)
		tx.MustExec(`INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)`, keys[i], data, exp)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	target, err := ParseURL("sqlite:///" + path)
	if err != nil {
		tb.Fatal(err)
	}
	registerCounting.Do(func() { sql.Register("sqlite3_counting", &countingDriver{}) })
	raw, err := sql.Open("sqlite3_counting", target.DSN)
	if err != nil {
		tb.Fatal(err)
	}
	h := sqlx.NewDb(raw, "sqlite3")
	h.SetMaxOpenConns(8)
	h.SetMaxIdleConns(8)
	tb.Cleanup(func() { h.Close() })
	return h, keys
}

// BenchmarkIdentityCache10kSessions sends requests from many goroutines
// over 10,000 logged-in sessions in turn, against SQLite, with the default
// cache settings, starting cold (as after a restart). It reports requests
// and database statements per second, the share of requests served as
// anonymous, and the share that waited more than a millisecond. Run it for
// longer than the TTL to see the steady state (steady-queries/s, the rate
// after the first two TTLs):
//
//	go test -run '^$' -bench 10kSessions -benchtime 20s ./djangodb/
func BenchmarkIdentityCache10kSessions(b *testing.B) {
	const n = 10000
	h, keys := benchSessions(b, n)
	ids, err := NewIdentities(h, SQLite, SessionConfig{SecretKey: "k", UseTZ: true})
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewIdentityCache(IdentityCacheConfig{Resolver: ids, Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	cookies := make([]engine.Values, n)
	for i, k := range keys {
		cookies[i] = engine.Params{"sessionid": k}
	}
	var next, anonymous, slow atomic.Int64
	ctx := context.Background()
	b.SetParallelism(32)
	statements.Store(0)
	// Sample the statements once a second, for the steady-state rate.
	type sample struct {
		at time.Time
		n  int64
	}
	var samples []sample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				samples = append(samples, sample{now, statements.Load()})
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) % n
			t0 := time.Now()
			s, _ := c.Subject(ctx, cookies[i])
			if time.Since(t0) > time.Millisecond {
				slow.Add(1)
			}
			if !s.Authenticated {
				anonymous.Add(1)
			}
		}
	})
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	close(stop)
	<-sampled
	b.ReportMetric(float64(b.N)/elapsed, "req/s")
	b.ReportMetric(float64(statements.Load())/elapsed, "queries/s")
	b.ReportMetric(float64(anonymous.Load())/float64(b.N), "anonymous/op")
	b.ReportMetric(float64(slow.Load())/float64(b.N), "waited>1ms/op")
	b.ReportMetric(testutil.ToFloat64(c.misses)/float64(b.N), "misses/op")
	// Past the cold start (two TTLs), if the run was long enough.
	if warm := start.Add(2 * DefaultIdentityTTL); len(samples) > 0 && samples[len(samples)-1].at.Sub(warm) > 5*time.Second {
		i := 0
		for samples[i].at.Before(warm) {
			i++
		}
		first, last := samples[i], samples[len(samples)-1]
		b.ReportMetric(float64(last.n-first.n)/last.at.Sub(first.at).Seconds(), "steady-queries/s")
	}
}

// BenchmarkResolveBatch re-checks 1,000 logged-in sessions together, as a
// sweep does in steady state (their data decoded before), against SQLite,
// which runs in the proxy's process: the proxy's CPU per re-checked
// session is ns/op divided by 1,000.
func BenchmarkResolveBatch(b *testing.B) {
	const n = 1000
	h, keys := benchSessions(b, n)
	ids, err := NewIdentities(h, SQLite, SessionConfig{SecretKey: "k", UseTZ: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	out, _ := ids.ResolveBatch(ctx, keys)
	for i, r := range out {
		if r.Reason != ReasonAuthenticated {
			b.Fatalf("session %d: %s %v", i, r.Reason, r.Err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		ids.ResolveBatch(ctx, keys)
	}
}

// BenchmarkIdentityCacheHitRotating answers known sessions from the cache,
// one session over and over, or n sessions in a scattered order, so that
// each comes back after n-1 others: what a hit costs when its entry is not
// in the CPU's caches, as in the harness's scenario (c). No database: the
// resolver is a map, and the TTL an hour. Each request's cookie value is
// made afresh, as a server parses it from the request, so that only the
// cache's own memory is cold.
func BenchmarkIdentityCacheHitRotating(b *testing.B) {
	for _, n := range []int{1, 10000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			users := make(map[string]engine.Subject, n)
			for i := range n {
				users[sessionValue(i)] = engine.Subject{UserID: strconv.Itoa(i), Authenticated: true, Active: true, Groups: []int64{1}}
			}
			c, err := NewIdentityCache(IdentityCacheConfig{Resolver: newFake(users), TTL: time.Hour, Entries: n, LookupsPerSecond: 1e6})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			for w := range 64 { // the first lookups, in batches
				wg.Go(func() {
					for i := w; i < n; i += 64 {
						c.Subject(ctx, engine.Params{"sessionid": sessionValue(i)})
					}
				})
			}
			wg.Wait()
			i := 0
			request := engine.Params{}
			for b.Loop() {
				i = (i + 7919) % n // 7919 is prime: every session, scattered
				request["sessionid"] = sessionValue(i)
				if s, _ := c.Subject(ctx, request); !s.Authenticated {
					b.Fatal("not answered")
				}
			}
			if m := testutil.ToFloat64(c.misses); m != float64(n) {
				b.Errorf("%v misses for %d sessions: not every request was a hit", m, n)
			}
		})
	}
}

// sessionValue returns the i-th session value of
// BenchmarkIdentityCacheHitRotating, newly made.
func sessionValue(i int) string {
	var b [34]byte
	v := strconv.AppendInt(append(b[:0], "session-"...), int64(i), 10)
	return string(v)
}
