package djangodb

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestToPK(t *testing.T) {
	ints := map[any]string{
		"1": "1", " 42 ": "42", "+7": "7", "1_000": "1000", "-3": "-3", "007": "7",
		"99999999999999999999": "99999999999999999999",
		jsonNumber("12"):       "12", jsonNumber("1.9"): "1", true: "1",
	}
	for in, want := range ints {
		if got, ok := toPK(in, false); !ok || got != want {
			t.Errorf("toPK(%#v) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []any{"", "_1", "1_", "1__0", "1.5", "0x10", "١", nil, []any{1}, map[string]any{}} {
		if got, ok := toPK(bad, false); ok {
			t.Errorf("toPK(%#v) = %q, want refused", bad, got)
		}
	}
	uuids := map[string]string{
		"6F1E2D3C-4B5A-4978-8A69-5B4C3D2E1F00":          "6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00",
		"6f1e2d3c4b5a49788a695b4c3d2e1f00":              "6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00",
		"{6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00}":        "6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00",
		"urn:uuid:6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00": "6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00",
	}
	for in, want := range uuids {
		if got, ok := toPK(in, true); !ok || got != want {
			t.Errorf("toPK(%q, uuid) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []any{"6f1e2d3c", "zzzzzzzz-4b5a-4978-8a69-5b4c3d2e1f00", jsonNumber("1")} {
		if got, ok := toPK(bad, true); ok {
			t.Errorf("toPK(%#v, uuid) = %q, want refused", bad, got)
		}
	}
}

func TestSessionConfigValidate(t *testing.T) {
	bad := []struct {
		cfg  SessionConfig
		says string
	}{
		{SessionConfig{DjangoVersion: "2.2"}, "3.2 to 6.x"},
		{SessionConfig{DjangoVersion: "7.0"}, "3.2 to 6.x"},
		{SessionConfig{DjangoVersion: "four"}, "major.minor"},
		{SessionConfig{DjangoVersion: "3.2", DefaultHashingAlgorithm: "md5"}, "DEFAULT_HASHING_ALGORITHM"},
		{SessionConfig{Engine: "django.contrib.sessions.backends.cache"}, "cache"},
		{SessionConfig{Engine: "myapp.redis_sessions"}, "SESSION_STORE_QUALNAME"},
		{SessionConfig{SecretKeyFallbacks: []string{"old"}}, "Django version is not"},
		{SessionConfig{AuthUserModel: "nodot"}, "AUTH_USER_MODEL"},
	}
	for _, b := range bad {
		if err := b.cfg.Validate(); err == nil || !strings.Contains(err.Error(), b.says) {
			t.Errorf("%+v: Validate() = %v, want an error saying %q", b.cfg, err, b.says)
		}
	}
	good := []SessionConfig{
		{}, {DjangoVersion: "3.2.25"}, {DjangoVersion: "4.1.7", SecretKeyFallbacks: []string{"old"}},
		{Engine: "myapp.sessions", StoreQualname: "CustomSessionStore"}, {Engine: EngineSignedCookies},
	}
	for _, g := range good {
		if err := g.Validate(); err != nil {
			t.Errorf("%+v: %v", g, err)
		}
	}
}

// signedCookieSetup returns Identities for the signed_cookies engine with a
// movable clock, and a cookie value for a logged-in user.
func signedCookieSetup(t *testing.T, db *testDB, age time.Duration, clk *clock) (*Identities, string, string) {
	t.Helper()
	uid := loginSession(t, db, "unusedkey0123456789", "k")
	var password string
	if err := db.W.Get(&password, db.W.Rebind(`SELECT password FROM auth_user WHERE id = ?`), uid); err != nil {
		t.Fatal(err)
	}
	hash := hex.EncodeToString(saltedHMAC(authHashSalt, []byte(password), "k", sha256Alg))
	value := djangoDumps(t, map[string]any{"_auth_user_id": uid, "_auth_user_backend": backendModel, "_auth_user_hash": hash},
		signedCookiesSalt, "k", clk.t, true)
	h, err := Open(db.Target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: "k", Engine: EngineSignedCookies, CookieAge: age, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return ids, value, uid
}

// TestSignedCookieExpiryBoundsTheCache: a signed cookie accepted near its
// max age is not served from the cache once it has expired.
func TestSignedCookieExpiryBoundsTheCache(t *testing.T) {
	db := newSQLite(t, true)
	clk := &clock{t: time.Now().Truncate(time.Second)}
	ids, value, uid := signedCookieSetup(t, db, time.Minute, clk)
	c, err := NewIdentityCache(IdentityCacheConfig{Resolver: ids, TTL: time.Hour, Now: clk.now, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(59 * time.Second)
	if s, _ := c.Subject(t.Context(), cookies(value)); s.UserID != uid {
		t.Fatalf("59 s old cookie: %+v, want user %s", s, uid)
	}
	clk.advance(time.Second) // age == max age: Django still accepts
	if s, _ := c.Subject(t.Context(), cookies(value)); s.UserID != uid {
		t.Fatalf("cookie at its max age: %+v, want user %s", s, uid)
	}
	clk.advance(time.Second)
	if s, _ := c.Subject(t.Context(), cookies(value)); s.Authenticated {
		t.Fatal("an expired signed cookie was served from the cache")
	}
	// SESSION_COOKIE_AGE = 0 means what it means to Django: any age > 0 expires.
	clk0 := &clock{t: time.Now().Truncate(time.Second)}
	ids0, value0, _ := signedCookieSetup(t, newSQLite(t, true), 0, clk0)
	clk0.advance(time.Second)
	if s, reason, _, _ := ids0.Resolve(t.Context(), value0); s.Authenticated || reason != ReasonExpired {
		t.Errorf("SESSION_COOKIE_AGE=0, 1 s old: %+v (%s), want expired", s, reason)
	}
}

// TestCustomUserModelWithUUIDKeys reads a custom AUTH_USER_MODEL whose
// primary key is a UUID (stored as 32 hex digits on SQLite, uuid on
// PostgreSQL), with its own groups table, and SQLite's expire_date in
// local time (USE_TZ = False).
func TestCustomUserModelWithUUIDKeys(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		idType, idValue := "char(32)", "6f1e2d3c4b5a49788a695b4c3d2e1f00"
		if db.Dialect == Postgres {
			idType, idValue = "uuid", "6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00"
		}
		db.Exec(t, `CREATE TABLE members_member (id `+idType+` PRIMARY KEY, password varchar(128) NOT NULL, is_active bool NOT NULL, is_staff bool NOT NULL, is_superuser bool NOT NULL)`)
		db.Exec(t, `CREATE TABLE members_member_groups (id integer PRIMARY KEY, member_id `+idType+` NOT NULL, group_id integer NOT NULL)`)
		db.Exec(t, `CREATE TABLE members_member_user_permissions (id integer PRIMARY KEY, member_id `+idType+` NOT NULL, permission_id integer NOT NULL)`)
		password := "argon2$x"
		db.Exec(t, `INSERT INTO members_member VALUES (?, ?, ?, ?, ?)`, idValue, password, true, true, false)
		gid := insertGroup(t, db, "beta")
		db.Exec(t, `INSERT INTO members_member_groups VALUES (1, ?, ?)`, idValue, gid)
		db.Exec(t, `INSERT INTO django_content_type (app_label, model) VALUES ('featureflipper', 'feature')`)
		db.Exec(t, `INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'can_flip_with_url', '' FROM django_content_type`)
		db.Exec(t, `INSERT INTO auth_group_permissions (group_id, permission_id) SELECT ?, id FROM auth_permission`, gid)

		uuid := "6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00"
		hash := hex.EncodeToString(saltedHMAC(authHashSalt, []byte(password), "k", sha256Alg))
		data := djangoDumps(t, map[string]any{"_auth_user_id": uuid, "_auth_user_backend": backendModel, "_auth_user_hash": hash},
			"django.contrib.sessions.SessionStore", "k", time.Now(), true)
		chicago, err := time.LoadLocation("America/Chicago")
		if err != nil {
			t.Skip("no time zone data")
		}
		var exp any = time.Now().Add(time.Hour)
		if db.Dialect == SQLite {
			// USE_TZ = False: Django writes TIME_ZONE's wall clock.
			exp = pythonDatetime(time.Now().In(chicago).Add(time.Hour))
		}
		db.Exec(t, `INSERT INTO django_session VALUES (?, ?, ?)`, "memberkey0123456789", data, exp)
		h, err := Open(db.Target)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: "k", AuthUserModel: "members.Member", UseTZ: false, TimeZone: chicago})
		if err != nil {
			t.Fatal(err)
		}
		s, reason, _, err := ids.Resolve(t.Context(), "memberkey0123456789")
		if err != nil || s.UserID != uuid || !s.Staff || len(s.Groups) != 1 || !s.HasPerm("featureflipper.can_flip_with_url") {
			t.Fatalf("Resolve = %+v, %s, %v; want the member with group beta and the flip permission", s, reason, err)
		}
		// Read as UTC, the same local expire_date would be 5-6 hours off.
		if db.Dialect == SQLite {
			ids.cfg.UseTZ = true
			db.Exec(t, `UPDATE django_session SET expire_date = ?`, pythonDatetime(time.Now().In(chicago).Add(time.Minute)))
			if s, _, _, _ := ids.Resolve(t.Context(), "memberkey0123456789"); s.Authenticated {
				t.Error("a local-time expire_date compared as UTC still matched; the zone is not honoured")
			}
		}
	})
}

// TestUnknownBackendPermissionsFailClosed: Django asks every backend, and
// one flagproxy does not reproduce may deny; only the superuser shortcut
// remains.
func TestUnknownBackendPermissionsFailClosed(t *testing.T) {
	db := newSQLite(t, true)
	uid := loginSession(t, db, "permkey0123456789", "k")
	db.Exec(t, `INSERT INTO django_content_type (app_label, model) VALUES ('featureflipper', 'feature')`)
	db.Exec(t, `INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'can_flip_with_url', '' FROM django_content_type`)
	db.Exec(t, `INSERT INTO auth_user_user_permissions (user_id, permission_id) SELECT ?, id FROM auth_permission`, uid)
	h, err := Open(db.Target)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		backends []string
		want     bool
	}{
		{[]string{backendModel}, true},
		{[]string{"myapp.DenyBackend", backendModel}, false},
	} {
		ids, err := NewIdentities(h, SQLite, SessionConfig{SecretKey: "k", UseTZ: true, AuthenticationBackends: tc.backends})
		if err != nil {
			t.Fatal(err)
		}
		s, reason, _, err := ids.Resolve(t.Context(), "permkey0123456789")
		if err != nil || !s.Authenticated {
			t.Fatalf("%v: %+v %s %v", tc.backends, s, reason, err)
		}
		if got := s.HasPerm("featureflipper.can_flip_with_url"); got != tc.want {
			t.Errorf("%v: HasPerm = %v, want %v", tc.backends, got, tc.want)
		}
	}
}

// TestHostileSessionValues: values no row can have are refused without a
// database error, so they are cached and counted like any refusal.
func TestHostileSessionValues(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		ids := testIdentities(t, db)
		for _, v := range []string{"abc\x00defghij", strings.Repeat("a", 41), "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "short"} {
			s, _, _, err := ids.Resolve(t.Context(), v)
			if err != nil || s.Authenticated {
				t.Errorf("Resolve(%q) = %+v, %v; want anonymous without error", v, s, err)
			}
		}
		// A user id beyond auth_user.id's range names no user.
		data := djangoDumps(t, map[string]any{"_auth_user_id": "99999999999", "_auth_user_backend": backendModel, "_auth_user_hash": "x"},
			"django.contrib.sessions.SessionStore", "k", time.Now(), false)
		var exp any = time.Now().Add(time.Hour)
		if db.Dialect == SQLite {
			exp = pythonDatetime(time.Now().UTC().Add(time.Hour))
		}
		db.Exec(t, `INSERT INTO django_session VALUES (?, ?, ?)`, "bigidkey0123456789", data, exp)
		if s, reason, _, err := ids.Resolve(t.Context(), "bigidkey0123456789"); err != nil || s.Authenticated || reason != ReasonUserNotFound {
			t.Errorf("huge user id: %+v, %s, %v; want user_not_found without error", s, reason, err)
		}
	})
}
