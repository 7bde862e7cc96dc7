package djangodb

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// testIdentities opens db's Identities as a site with SECRET_KEY "k" and
// USE_TZ, closed when the test ends.
func testIdentities(t *testing.T, db *testDB) *Identities {
	t.Helper()
	h, err := Open(db.Target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: "k", UseTZ: true})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// batchKey is the session key of the i-th test user; loginSession names
// users by the key's first six characters.
func batchKey(i int) string { return fmt.Sprintf("%06d-batch-session-key", i) }

// addSession stores a session with data for key, expiring in an hour.
func addSession(t *testing.T, db *testDB, key string, data map[string]any) {
	t.Helper()
	value := djangoDumps(t, data, "django.contrib.sessions.SessionStore", "k", time.Now(), true)
	var exp any = time.Now().Add(time.Hour)
	if db.Dialect == SQLite {
		exp = pythonDatetime(time.Now().UTC().Add(time.Hour))
	}
	db.Exec(t, `INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)`, key, value, exp)
}

// TestResolveBatchSQL resolves, in one batch, sessions of every kind
// against real tables: each answer must be the one for its own value
// (checked against fixed expectations and against Resolve of that value
// alone), in four statements (sessions, users, groups, permissions).
func TestResolveBatchSQL(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		const n = 40
		uids := make([]string, n)
		for i := range n {
			uids[i] = loginSession(t, db, batchKey(i), "k")
		}
		db.Exec(t, `INSERT INTO django_content_type (app_label, model) VALUES ('featureflipper', 'feature')`)
		db.Exec(t, `INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'can_flip_with_url', '' FROM django_content_type`)
		db.Exec(t, `INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'can_view', '' FROM django_content_type`)
		beta := insertGroup(t, db, "beta")
		gamma := insertGroup(t, db, "gamma")
		db.Exec(t, `INSERT INTO auth_group_permissions (group_id, permission_id) SELECT ?, id FROM auth_permission WHERE codename = 'can_flip_with_url'`, beta)
		for i := 10; i < n; i++ {
			g := beta
			if i%2 == 1 {
				g = gamma
			}
			db.Exec(t, `INSERT INTO auth_user_groups (user_id, group_id) VALUES (?, ?)`, uids[i], g)
			if i%3 == 0 {
				db.Exec(t, `INSERT INTO auth_user_user_permissions (user_id, permission_id) SELECT ?, id FROM auth_permission WHERE codename = 'can_view'`, uids[i])
			}
		}
		db.Exec(t, `DELETE FROM django_session WHERE session_key = ?`, batchKey(1))                             // logout
		db.Exec(t, `UPDATE auth_user SET password = 'pbkdf2_sha256$changed' WHERE id = ?`, uids[2])             // password change
		db.Exec(t, `UPDATE auth_user SET is_active = ? WHERE id = ?`, false, uids[3])                           // deactivation
		db.Exec(t, `UPDATE auth_user SET is_superuser = ? WHERE id = ?`, true, uids[5])                         // superuser
		db.Exec(t, `UPDATE django_session SET expire_date = ? WHERE session_key = ?`, expired(db), batchKey(4)) // expired
		addSession(t, db, "anonymous-with-features", map[string]any{"feature_status_beta": "enabled"})
		addSession(t, db, "session-of-nobody-0001", map[string]any{"_auth_user_id": "999999", "_auth_user_backend": backendModel, "_auth_user_hash": "x"})

		ids := testIdentities(t, db)
		if _, err := ids.userShape(t.Context()); err != nil { // read once, outside the count
			t.Fatal(err)
		}
		type want struct {
			user   string
			reason Reason
		}
		expect := map[string]want{
			batchKey(1):                  {"", ReasonNoRow},
			batchKey(2):                  {"", ReasonHashMismatch},
			batchKey(3):                  {"", ReasonUserInactive},
			batchKey(4):                  {"", ReasonNoRow},
			strings.ToUpper(batchKey(7)): {"", ReasonNoRow}, // another key, however the database collates
			batchKey(7) + " ":            {"", ReasonNoRow},
			"anonymous-with-features":    {"", ReasonAnonymousSession},
			"session-of-nobody-0001":     {"", ReasonUserNotFound},
			"no-such-session-key":        {"", ReasonNoRow},
			"short":                      {"", ReasonShortKey},
			strings.Repeat("x", 41):      {"", ReasonNoRow},
			"abc\x00defghijk":            {"", ReasonNoRow},
		}
		for i := range n {
			if _, ok := expect[batchKey(i)]; !ok {
				expect[batchKey(i)] = want{uids[i], ReasonAuthenticated}
			}
		}
		var values []string
		for v := range expect {
			values = append(values, v)
		}
		values = append(values, batchKey(20)) // a duplicate
		out, queries := ids.ResolveBatch(t.Context(), values)
		if len(out) != len(values) {
			t.Fatalf("%d answers for %d values", len(out), len(values))
		}
		if queries != 4 {
			t.Errorf("%d statements for one batch, want 4 (sessions, users, groups, permissions)", queries)
		}
		for i, v := range values {
			got, w := out[i], expect[v]
			if got.Err != nil || got.Subject.UserID != w.user || got.Reason != w.reason || got.Subject.Authenticated != (w.user != "") {
				t.Errorf("%q: %s %+v (%v); want user %q, %s", v, got.Reason, got.Subject, got.Err, w.user, w.reason)
				continue
			}
			s, reason, until, err := ids.Resolve(t.Context(), v)
			if diff := cmp.Diff(Resolution{Subject: s, Reason: reason, Until: until, Err: err}, got); diff != "" {
				t.Errorf("%q: the batch's answer differs from Resolve's (-alone +batch):\n%s", v, diff)
			}
		}
		// Spot checks of groups and permissions, matched to their users.
		byValue := map[string]engine.Subject{}
		for i, v := range values {
			byValue[v] = out[i].Subject
		}
		if s := byValue[batchKey(12)]; !s.HasPerm("featureflipper.can_flip_with_url") || !s.HasPerm("featureflipper.can_view") || len(s.Groups) != 1 || s.Groups[0] != beta {
			t.Errorf("user 12 (beta, direct can_view): %+v", s)
		}
		if s := byValue[batchKey(13)]; s.HasPerm("featureflipper.can_flip_with_url") || s.HasPerm("featureflipper.can_view") || len(s.Groups) != 1 || s.Groups[0] != gamma {
			t.Errorf("user 13 (gamma, no permission): %+v", s)
		}
		if s := byValue[batchKey(5)]; !s.Superuser || s.Permissions != nil {
			t.Errorf("superuser: %+v (permissions are not read for superusers)", s)
		}
		if s := byValue["anonymous-with-features"]; !s.FeatureStatus["beta"] {
			t.Errorf("anonymous session lost its feature_status: %+v", s)
		}
	})
}

func expired(db *testDB) any {
	if db.Dialect == SQLite {
		return pythonDatetime(time.Now().UTC().Add(-time.Minute))
	}
	return time.Now().Add(-time.Minute)
}

// TestResolveBatchSplitsLongLists: more values than maxInList take one
// statement on django_session per maxInList, and still find their rows.
func TestResolveBatchSplitsLongLists(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		uid := loginSession(t, db, batchKey(0), "k")
		ids := testIdentities(t, db)
		ids.userShape(t.Context())
		values := make([]string, 2*maxInList+5)
		for i := range values {
			values[i] = fmt.Sprintf("missing-session-%06d", i)
		}
		values[len(values)-1] = batchKey(0)
		out, queries := ids.ResolveBatch(t.Context(), values)
		if s := out[len(out)-1]; s.Subject.UserID != uid {
			t.Errorf("the one real session: %+v", s)
		}
		for _, r := range out[:len(out)-1] {
			if r.Subject.Authenticated || r.Reason != ReasonNoRow {
				t.Fatalf("a missing session: %+v", r)
			}
		}
		// 3 on django_session, then users, groups and permissions.
		if queries != 3+3 {
			t.Errorf("%d statements, want 6", queries)
		}
	})
}

// TestResolveBatchSignedCookies: with signed_cookies the cookie is the
// session, so a batch reads only the user tables.
func TestResolveBatchSignedCookies(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		now := time.Now().Truncate(time.Second)
		var values []string
		var uids []string
		for i := range 3 {
			uid := loginSession(t, db, batchKey(i), "k")
			var password string
			if err := db.W.Get(&password, db.W.Rebind(`SELECT password FROM auth_user WHERE id = ?`), uid); err != nil {
				t.Fatal(err)
			}
			hash := hex.EncodeToString(saltedHMAC(authHashSalt, []byte(password), "k", sha256Alg))
			values = append(values, djangoDumps(t, map[string]any{"_auth_user_id": uid, "_auth_user_backend": backendModel, "_auth_user_hash": hash},
				signedCookiesSalt, "k", now, true))
			uids = append(uids, uid)
		}
		db.Exec(t, `UPDATE auth_user SET is_active = ? WHERE id = ?`, false, uids[2])
		h, err := Open(db.Target)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: "k", Engine: EngineSignedCookies, CookieAge: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ids.userShape(t.Context())
		out, queries := ids.ResolveBatch(t.Context(), values)
		if queries != 3 {
			t.Errorf("%d statements, want 3 (users, groups, permissions; no session query)", queries)
		}
		for i, want := range []string{uids[0], uids[1], ""} {
			if out[i].Subject.UserID != want || out[i].Err != nil {
				t.Errorf("cookie %d: %+v, want user %q", i, out[i], want)
			}
		}
		if out[2].Reason != ReasonUserInactive {
			t.Errorf("deactivated user: %s", out[2].Reason)
		}
	})
}

// loggedIn logs n users in with sessions batchKey(0..n-1) under the
// secret "k" and returns their ids and Identities on the database.
func loggedIn(t *testing.T, db *testDB, n int) ([]string, *Identities) {
	t.Helper()
	uids := make([]string, n)
	for i := range n {
		uids[i] = loginSession(t, db, batchKey(i), "k")
	}
	return uids, testIdentities(t, db)
}

// logOutChangeDeactivate does in the tables what Django does on a logout
// (session 1), a password change (user 2) and a deactivation (user 3).
func logOutChangeDeactivate(t *testing.T, db *testDB, uids []string) {
	t.Helper()
	db.Exec(t, `DELETE FROM django_session WHERE session_key = ?`, batchKey(1))
	db.Exec(t, `UPDATE auth_user SET password = 'pbkdf2_sha256$changed' WHERE id = ?`, uids[2])
	db.Exec(t, `UPDATE auth_user SET is_active = ? WHERE id = ?`, false, uids[3])
}

// TestIdentityCacheSQL puts the cache in front of real tables: concurrent
// visitors each get their own user in few statements, and a logout, a
// password change and a deactivation are seen once the answers are past
// TTL + RecheckWait + LookupTimeout.
func TestIdentityCacheSQL(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		const n = 30
		uids, ids := loggedIn(t, db, n)
		ids.userShape(t.Context())
		clk := &clock{t: time.Now()}
		c, err := NewIdentityCache(IdentityCacheConfig{Resolver: ids, Now: clk.now, BatchWait: 20 * time.Millisecond, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		check := func(round string, want func(i int) string) {
			t.Helper()
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					s, err := c.Subject(t.Context(), cookies(batchKey(i)))
					if err != nil || s.UserID != want(i) {
						t.Errorf("%s: visitor %d: %+v, %v; want user %q", round, i, s, err, want(i))
					}
				})
			}
			wg.Wait()
		}
		check("first", func(i int) string { return uids[i] })
		// 30 sessions, one batch in the usual case (a slow scheduler may
		// split it): 4 statements each.
		if q := testutil.ToFloat64(c.queries); q > 8 || int(q)%4 != 0 {
			t.Errorf("30 concurrent new sessions took %v statements, want 4 (or 8)", q)
		}
		logOutChangeDeactivate(t, db, uids)
		changed := func(i int) bool { return i >= 1 && i <= 3 }
		check("within the TTL", func(i int) string { return uids[i] })
		clk.advance(DefaultIdentityTTL + DefaultIdentityRecheckWait + DefaultIdentityLookupTimeout)
		check("past the bound", func(i int) string {
			if changed(i) {
				return ""
			}
			return uids[i]
		})
	})
}

// TestResolveBatchRecheckSeesDataChanges: a re-check of an unchanged
// session reuses its decoded data (and answers as a fresh lookup does),
// while data changed in the row, for another user, tampered with or
// logged out in place, is verified again.
func TestResolveBatchRecheckSeesDataChanges(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		key := batchKey(0)
		alice := loginSession(t, db, key, "k")
		bobKey := batchKey(1)
		bob := loginSession(t, db, bobKey, "k")
		h, err := Open(db.Target)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		newIDs := func() *Identities {
			ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: "k", UseTZ: true})
			if err != nil {
				t.Fatal(err)
			}
			return ids
		}
		ids := newIDs()
		resolve := func() Resolution {
			t.Helper()
			out, _ := ids.ResolveBatch(t.Context(), []string{key})
			fresh, _ := newIDs().ResolveBatch(t.Context(), []string{key})
			if diff := cmp.Diff(fresh[0], out[0]); diff != "" {
				t.Errorf("a re-check differs from a first lookup (-first +re-check):\n%s", diff)
			}
			return out[0]
		}
		if r := resolve(); r.Subject.UserID != alice || resolve().Subject.UserID != alice {
			t.Fatalf("alice's session: %+v", r)
		}
		if n := ids.decoded.Len(); n != 1 {
			t.Errorf("%d decoded sessions kept for one unchanged session, want 1", n)
		}
		setData := func(data string) {
			db.Exec(t, `UPDATE django_session SET session_data = ? WHERE session_key = ?`, data, key)
		}
		var bobData string
		if err := db.W.Get(&bobData, db.W.Rebind(`SELECT session_data FROM django_session WHERE session_key = ?`), bobKey); err != nil {
			t.Fatal(err)
		}
		setData(bobData)
		if r := resolve(); r.Subject.UserID != bob {
			t.Errorf("the row now holds bob's data: %+v", r)
		}
		last := "A"
		if strings.HasSuffix(bobData, last) {
			last = "B"
		}
		setData(bobData[:len(bobData)-1] + last)
		if r := resolve(); r.Subject.Authenticated || r.Reason != ReasonBadSignature {
			t.Errorf("tampered data: %+v, want a bad signature", r)
		}
		setData(djangoDumps(t, map[string]any{"feature_status_beta": "enabled"}, "django.contrib.sessions.SessionStore", "k", time.Now(), true))
		if r := resolve(); r.Subject.Authenticated || r.Reason != ReasonAnonymousSession || !r.Subject.FeatureStatus["beta"] {
			t.Errorf("logged out in place: %+v", r)
		}
	})
}

// TestIdentityCacheSQLSweep: the background re-check of sessions in use
// (a sweep, their data unchanged and not decoded again) sees a logout, a
// password change and a deactivation made in Django, in one batch of four
// statements, while the others keep their users.
func TestIdentityCacheSQLSweep(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		const n = 30
		uids, ids := loggedIn(t, db, n)
		clk := &clock{t: time.Now()}
		c, err := NewIdentityCache(IdentityCacheConfig{Resolver: ids, Now: clk.now, Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		visit := func(round string, want func(i int) string) {
			t.Helper()
			for i := range n {
				if s, err := c.Subject(t.Context(), cookies(batchKey(i))); err != nil || s.UserID != want(i) {
					t.Errorf("%s: visitor %d: %+v, %v; want user %q", round, i, s, err, want(i))
				}
			}
		}
		same := func(i int) string { return uids[i] }
		visit("first", same) // one by one: each waits for its lookup
		clk.advance(time.Second)
		visit("in use", same)
		logOutChangeDeactivate(t, db, uids)
		decoded := ids.decoded.Len()
		before := testutil.ToFloat64(c.queries)
		clk.advance(DefaultIdentityTTL - time.Second - c.ahead()) // the re-check window
		// Any request starts the sweep: here one whose value cannot be a
		// session, which costs no statement of its own.
		if s, err := c.Subject(t.Context(), cookies("short")); err != nil || s.Authenticated {
			t.Errorf("an implausible value: %+v, %v", s, err)
		}
		// Wait for the sweep's batch to be sent and its answers stored.
		pending := func() int {
			c.batch.mu.Lock()
			defer c.batch.mu.Unlock()
			return len(c.batch.calls)
		}
		for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(c.queries) < before+4 || pending() > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("no sweep within 10 s: %v statements", testutil.ToFloat64(c.queries)-before)
			}
			time.Sleep(10 * time.Millisecond)
		}
		visit("after the sweep", func(i int) string {
			if i >= 1 && i <= 3 {
				return ""
			}
			return uids[i]
		})
		if q := testutil.ToFloat64(c.queries) - before; q != 4 {
			t.Errorf("the sweep took %v statements, want 4 (one batch)", q)
		}
		if ids.decoded.Len() != decoded {
			t.Errorf("the re-check decoded session data again: %d decoded, was %d", ids.decoded.Len(), decoded)
		}
	})
}

// TestResolveBatchListsCarryAnyKey: a session key is matched exactly
// whatever characters it holds (a key is bound inside one list parameter,
// a JSON array on SQLite), and a key that differs only in a character the
// encoding escapes matches nothing.
func TestResolveBatchListsCarryAnyKey(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		odd := `k"ey\with<é>,]['` // plausible: 8+ runes, valid UTF-8, no NUL
		uid := loginSession(t, db, odd, "k")
		ids := testIdentities(t, db)
		near := strings.Replace(odd, `\`, `\\`, 1)
		out, _ := ids.ResolveBatch(t.Context(), []string{batchKey(1), odd, near})
		if out[1].Subject.UserID != uid {
			t.Errorf("the odd key: %+v, want user %s", out[1], uid)
		}
		for _, i := range []int{0, 2} {
			if out[i].Reason != ReasonNoRow {
				t.Errorf("value %d: %+v, want no row", i, out[i])
			}
		}
	})
}

// TestListsKeepStatementsFixed: however many values a batch binds, each
// statement has one parameter for them, so its text (and SQLite's prepared
// statement) is the same from batch to batch; long lists are cut at
// maxInList.
func TestListsKeepStatementsFixed(t *testing.T) {
	keys := make([]string, maxInList+3)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	got := lists(SQLite, keys)
	if len(got) != 2 {
		t.Fatalf("%d lists for %d keys, want 2", len(got), len(keys))
	}
	var back []string
	for _, l := range got {
		var part []string
		if err := json.Unmarshal([]byte(l.(string)), &part); err != nil {
			t.Fatal(err)
		}
		back = append(back, part...)
	}
	if !slices.Equal(back, keys) {
		t.Errorf("the lists do not give back the keys")
	}
	if l := list(SQLite, []int64{-1, 0, 42}); l != "[-1,0,42]" {
		t.Errorf("ints: %v", l)
	}
	if l, ok := list(Postgres, []int64{1, 2}).(pq.Int64Array); !ok || len(l) != 2 {
		t.Errorf("postgres ints: %#v", l)
	}
	ids := &Identities{dialect: SQLite}
	if c := ids.in("session_key"); strings.Count(c, "?") != 1 {
		t.Errorf("in = %q, want one parameter", c)
	}
}
