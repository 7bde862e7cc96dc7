package djangodb

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// sharedSessionVectors is the specification's vector file, checked out
// beside the repository (as in CI); testdata holds a copy for a bare clone.
const (
	sharedSessionVectors = "../../shared/spec/vectors/django-sessions.json"
	localSessionVectors  = "testdata/django-sessions.json"
)

type sessionVectors struct {
	Cases []sessionCase `json:"cases"`
}

type sessionCase struct {
	ID            string `json:"id"`
	DjangoVersion string `json:"django_version"`
	Engine        string `json:"session_engine"`
	Settings      struct {
		SecretKey              string   `json:"SECRET_KEY"`
		SecretKeyFallbacks     []string `json:"SECRET_KEY_FALLBACKS"`
		SessionCookieName      string   `json:"SESSION_COOKIE_NAME"`
		SessionCookieAge       int64    `json:"SESSION_COOKIE_AGE"`
		AuthenticationBackends []string `json:"AUTHENTICATION_BACKENDS"`
		DefaultHashing         string   `json:"DEFAULT_HASHING_ALGORITHM"`
	} `json:"settings"`
	NowUnix      int64  `json:"now_unix"`
	CookieHeader string `json:"cookie_header"`
	SigningSalt  string `json:"signing_salt"`
	Sessions     []struct {
		Key    string `json:"session_key"`
		Data   string `json:"session_data"`
		Expire string `json:"expire_date"`
	} `json:"django_session_rows"`
	Users []struct {
		ID        int64  `json:"id"`
		Username  string `json:"username"`
		Password  string `json:"password"`
		Active    bool   `json:"is_active"`
		Staff     bool   `json:"is_staff"`
		Superuser bool   `json:"is_superuser"`
	} `json:"auth_user_rows"`
	Expected struct {
		Result string `json:"result"`
		UserID string `json:"user_id"`
		Reason string `json:"reason"`
	} `json:"expected"`
}

// loadSessionVectors reads FLAGPROXY_SESSION_VECTORS, or the shared file,
// or its copy in testdata when the specification is not checked out.
func loadSessionVectors(t *testing.T) (string, sessionVectors) {
	t.Helper()
	path := os.Getenv("FLAGPROXY_SESSION_VECTORS")
	if path == "" {
		path = sharedSessionVectors
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = localSessionVectors
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("session vectors: %v", err)
	}
	var v sessionVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("session vectors %s: %v", path, err)
	}
	if len(v.Cases) == 0 {
		t.Fatalf("session vectors %s hold no cases", path)
	}
	return path, v
}

// TestSessionVectors replays every case of a django-sessions.json-format
// file: the rows go into a database with Django's schema, the cookie
// header is parsed as Django parses it, and the visitor must come out
// exactly as the real Django saw it.
func TestSessionVectors(t *testing.T) {
	path, v := loadSessionVectors(t)
	t.Logf("%d cases from %s", len(v.Cases), path)
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		for _, c := range v.Cases {
			t.Run(c.ID, func(t *testing.T) { runSessionCase(t, db, c) })
		}
	})
}

func runSessionCase(t *testing.T, db *testDB, c sessionCase) {
	for _, table := range []string{"django_session", "auth_user_user_permissions", "auth_user_groups", "auth_user"} {
		db.Exec(t, `DELETE FROM `+table)
	}
	for _, s := range c.Sessions {
		exp, err := time.Parse(time.RFC3339Nano, s.Expire)
		if err != nil {
			t.Fatalf("expire_date %q: %v", s.Expire, err)
		}
		var expArg any = exp
		if db.Dialect == SQLite {
			expArg = pythonDatetime(exp.UTC()) // USE_TZ=True, as the vectors were made
		}
		db.Exec(t, `INSERT INTO django_session (session_key, session_data, expire_date) VALUES (?, ?, ?)`, s.Key, s.Data, expArg)
	}
	for _, u := range c.Users {
		db.Exec(t, `INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
			VALUES (?, ?, ?, ?, '', '', '', ?, ?, CURRENT_TIMESTAMP)`, u.ID, u.Password, u.Superuser, u.Username, u.Staff, u.Active)
	}
	cfg := SessionConfig{
		DjangoVersion:           c.DjangoVersion,
		SecretKey:               c.Settings.SecretKey,
		SecretKeyFallbacks:      c.Settings.SecretKeyFallbacks,
		DefaultHashingAlgorithm: c.Settings.DefaultHashing,
		Engine:                  c.Engine,
		CookieAge:               time.Duration(c.Settings.SessionCookieAge) * time.Second,
		UseTZ:                   true,
		AuthenticationBackends:  c.Settings.AuthenticationBackends,
		Now:                     func() time.Time { return time.Unix(c.NowUnix, 0) },
	}
	if c.Engine != EngineDB && c.Engine != EngineCachedDB && c.Engine != EngineSignedCookies {
		// A custom engine: the site's configuration names its store class.
		cfg.StoreQualname = strings.TrimPrefix(c.SigningSalt, "django.contrib.sessions.")
	}
	h, err := Open(db.Target)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ids, err := NewIdentities(h, db.Dialect, cfg)
	if err != nil {
		t.Fatal(err)
	}
	name := c.Settings.SessionCookieName
	if name == "" {
		name = "sessionid"
	}
	value, _ := engine.ParseCookies(c.CookieHeader).Get(name)
	s, reason, _, err := ids.Resolve(t.Context(), value)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	switch c.Expected.Result {
	case "authenticated":
		if !s.Authenticated || s.UserID != c.Expected.UserID {
			t.Errorf("got %+v (%s), want user %s", s, reason, c.Expected.UserID)
		}
	case "anonymous":
		if s.Authenticated || s.UserID != "" {
			t.Errorf("got user %q (%s), want anonymous (%s)", s.UserID, reason, c.Expected.Reason)
		}
	default:
		t.Fatalf("unknown expected result %q", c.Expected.Result)
	}
}

// TestPermissionVectors loads each version's auth tables from the vectors
// (ids differ between versions) and checks has_perm for every user and
// backend setting against what Django answered.
func TestPermissionVectors(t *testing.T) {
	path := os.Getenv("FLAGPROXY_SESSION_VECTORS")
	if path == "" {
		path = sharedSessionVectors
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = localSessionVectors
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Permissions []struct {
			Rows    map[string]json.RawMessage `json:"rows"`
			HasPerm []struct {
				Backends []string        `json:"AUTHENTICATION_BACKENDS"`
				UserID   int64           `json:"user_id"`
				Results  map[string]bool `json:"results"`
			} `json:"has_perm"`
		} `json:"permissions"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Permissions) == 0 {
		t.Fatalf("%s holds no permission fixtures", path)
	}
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		for i, p := range v.Permissions {
			rows := func(table string) [][]any {
				var out [][]any
				if err := json.Unmarshal(p.Rows[table], &out); err != nil {
					t.Fatalf("rows of %s: %v", table, err)
				}
				return out
			}
			for _, table := range []string{"auth_user_user_permissions", "auth_user_groups", "auth_group_permissions", "auth_user", "auth_group", "auth_permission", "django_content_type"} {
				db.Exec(t, `DELETE FROM `+table)
			}
			for _, r := range rows("django_content_type") {
				db.Exec(t, `INSERT INTO django_content_type (id, app_label, model) VALUES (?, ?, ?)`, r...)
			}
			for _, r := range rows("auth_permission") {
				db.Exec(t, `INSERT INTO auth_permission (id, content_type_id, codename, name) VALUES (?, ?, ?, '')`, r...)
			}
			for _, r := range rows("auth_group") {
				db.Exec(t, `INSERT INTO auth_group (id, name) VALUES (?, ?)`, r...)
			}
			for _, r := range rows("auth_user") {
				db.Exec(t, `INSERT INTO auth_user (id, username, is_active, is_staff, is_superuser, password, first_name, last_name, email, date_joined)
					VALUES (?, ?, ?, ?, ?, '', '', '', '', CURRENT_TIMESTAMP)`, r...)
			}
			for _, r := range rows("auth_group_permissions") {
				db.Exec(t, `INSERT INTO auth_group_permissions (group_id, permission_id) VALUES (?, ?)`, r...)
			}
			for _, r := range rows("auth_user_groups") {
				db.Exec(t, `INSERT INTO auth_user_groups (user_id, group_id) VALUES (?, ?)`, r...)
			}
			for _, r := range rows("auth_user_user_permissions") {
				db.Exec(t, `INSERT INTO auth_user_user_permissions (user_id, permission_id) VALUES (?, ?)`, r...)
			}
			h, err := Open(db.Target)
			if err != nil {
				t.Fatal(err)
			}
			for _, hp := range p.HasPerm {
				ids, err := NewIdentities(h, db.Dialect, SessionConfig{SecretKey: "k", AuthenticationBackends: hp.Backends})
				if err != nil {
					t.Fatal(err)
				}
				shape, err := ids.userShape(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				pk := strconv.FormatInt(hp.UserID, 10)
				u, found, err := ids.userRow(t.Context(), shape, pk)
				if err != nil || !found {
					t.Fatalf("user %s: found %v, %v", pk, found, err)
				}
				s, err := ids.subject(t.Context(), shape, pk, u)
				if err != nil {
					t.Fatal(err)
				}
				for perm, want := range hp.Results {
					if got := s.HasPerm(perm); got != want {
						t.Errorf("fixture %d, backends %v, user %d: has_perm(%q) = %v, want %v", i, hp.Backends, hp.UserID, perm, got, want)
					}
				}
			}
			h.Close()
		}
	})
}
