package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flagproxy/flagproxy/djangodb"
)

// TestDemoSite checks the demo's stand-in app: it renders the flags header
// it received and flips rows in the database like Django's admin.
func TestDemoSite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	if err := djangodb.CreateSQLite(t.Context(), path, demoSeed); err != nil {
		t.Fatal(err)
	}
	site, err := newDemoSite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer site.db.Close()

	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Flagproxy-Flags", `{"flags":{"awesome_text":true,"dark_mode":false},"switches":{},"samples":{},"sources":{},"version":"v1","state":"ok"}`)
	rec := httptest.NewRecorder()
	site.ServeHTTP(rec, req)
	body := rec.Body.String()
	for _, want := range []string{"This awesome text shows", "<code>v1</code>", "featureflipper_feature", "dark_mode"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	form := url.Values{"table": {"featureflipper_feature"}, "name": {"dark_mode"}}
	req = httptest.NewRequest("POST", "/flip", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	site.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("flip: %d %s", rec.Code, rec.Body)
	}
	var on bool
	if err := site.db.Get(&on, `SELECT enabled FROM featureflipper_feature WHERE name = 'dark_mode'`); err != nil || !on {
		t.Errorf("dark_mode after flip: %v, %v; want enabled", on, err)
	}

	form = url.Values{"table": {"auth_user"}, "name": {"x"}}
	req = httptest.NewRequest("POST", "/flip", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	site.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("flip of a table the demo does not offer: %d, want 400", rec.Code)
	}
}
