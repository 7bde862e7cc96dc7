package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flagproxy/flagproxy/djangodb"
)

// demoDB creates the demo's database in a temporary directory.
func demoDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	if err := djangodb.CreateSQLite(t.Context(), path, demoSeed); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExplainCommand reads the demo's database and explains a group rule
// for bob, a refused override for him, and a name that does not exist.
func TestExplainCommand(t *testing.T) {
	path := demoDB(t)
	base := []string{"--database", "sqlite:///" + path, "--secret-key", demoSecretKey}
	var out, errs bytes.Buffer
	code := run(t.Context(), append([]string{"explain", "--flag", "beta_dashboard", "--user", "2", "--url", "/x?enable_dark_mode"}, base...),
		env(nil), &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	for _, want := range []string{"flag beta_dashboard: on", "groups: in beta-testers → on", "superusers, groups: beta-testers",
		"refused enable_dark_mode (not_permitted)", "for the beta-testers group"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(t.Context(), append([]string{"explain", "--flag", "nope"}, base...), env(nil), &out, &errs); code != 1 {
		t.Errorf("an unknown flag: exit %d", code)
	}
	if code := run(t.Context(), []string{"explain"}, env(nil), &out, &errs); code != 2 {
		t.Errorf("no --flag: exit %d", code)
	}
}

// TestDemoLogin: the demo's buttons log in as a sample user, with a
// session flagproxy recognises.
func TestDemoLogin(t *testing.T) {
	site, err := newDemoSite(demoDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer site.db.Close()
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"user": {"alice"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	site.ServeHTTP(rec, req)
	var session string
	for _, c := range rec.Result().Cookies() {
		if c.Name == "sessionid" {
			session = c.Value
		}
	}
	if rec.Code != http.StatusSeeOther || session == "" {
		t.Fatalf("login: %d %v", rec.Code, rec.Result().Cookies())
	}
	req = httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(&http.Cookie{Name: demoUserCookie, Value: "alice"})
	rec = httptest.NewRecorder()
	site.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), "Logged in as <b>alice</b>") || !strings.Contains(rec.Body.String(), "/_flagproxy/") {
		t.Errorf("the page does not say who is logged in")
	}
}
