package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/proxy"
)

// backdate sets the modified column of waffle rows in the SQLite file at
// path to days ago, as Django stores datetimes there.
func backdate(t *testing.T, path string, days int, table string, names ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().UTC().AddDate(0, 0, -days).Format("2006-01-02 15:04:05.000000")
	for _, n := range names {
		if _, err := db.Exec(fmt.Sprintf(`UPDATE %s SET modified = ? WHERE name = ?`, table), at, n); err != nil {
			t.Fatal(err)
		}
	}
}

func uniformNames(rep proxy.StaleReport, stale bool) []string {
	var out []string
	for _, u := range rep.Uniform {
		if u.Stale == stale {
			out = append(out, u.Kind.String()+":"+u.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestStaleCommand reads the demo's database with two rows backdated.
func TestStaleCommand(t *testing.T) {
	path := demoDB(t)
	backdate(t, path, 60, "waffle_flag", "new_checkout")
	backdate(t, path, 45, "waffle_switch", "maintenance_mode")
	base := []string{"--database", "sqlite:///" + path}
	var out, errs bytes.Buffer
	if code := run(t.Context(), append([]string{"stale", "--json"}, base...), env(nil), &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var rep proxy.StaleReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if got, want := uniformNames(rep, true), []string{"flag:new_checkout", "switch:maintenance_mode"}; !slices.Equal(got, want) {
		t.Errorf("stale %v, want %v", got, want)
	}
	if got, want := uniformNames(rep, false), []string{"flag:awesome_text", "flag:dark_mode", "flag:new-profile", "switch:search_v2"}; !slices.Equal(got, want) {
		t.Errorf("uniform, not stale %v, want %v", got, want)
	}
	if rep.Stale != 2 || rep.Reads.Reported || len(rep.Unread) != 0 || len(rep.Missing) != 0 {
		t.Errorf("report %+v", rep)
	}
	if code := run(t.Context(), append([]string{"stale", "--fail-on-stale"}, base...), env(nil), &out, &errs); code != exitFindings {
		t.Errorf("--fail-on-stale: exit %d", code)
	}
	if code := run(t.Context(), append([]string{"stale", "--fail-on-stale", "--stale-after-days", "90"}, base...), env(nil), &out, &errs); code != 0 {
		t.Errorf("--fail-on-stale --stale-after-days 90: exit %d", code)
	}
	if code := run(t.Context(), append([]string{"stale", "--stale-after-days", "0"}, base...), env(nil), &out, &errs); code != 2 {
		t.Errorf("--stale-after-days 0: exit %d", code)
	}
}

// TestStaleCommandAsksAdmin takes what the app read from a flagproxy's
// /flags.json.
func TestStaleCommandAsksAdmin(t *testing.T) {
	path := demoDB(t)
	now := time.Now().UTC()
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/flags.json" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"flags":[{"kind":"flag","name":"new_checkout","last_read":%q},{"kind":"flag","name":"beta_banner","last_read":%q}],
			"switches":[{"kind":"switch","name":"search_v2","last_read":"0001-01-01T00:00:00Z"}],"samples":[],
			"stale":{"reads":{"reported":true,"since":%q},"missing":[{"kind":"flag","name":"ghost","last_read":%q}]}}`,
			now.AddDate(0, 0, -1).Format(time.RFC3339), now.AddDate(0, 0, -35).Format(time.RFC3339),
			now.AddDate(0, 0, -40).Format(time.RFC3339), now.Format(time.RFC3339))
	}))
	defer admin.Close()
	var out, errs bytes.Buffer
	args := []string{"stale", "--database", "sqlite:///" + path, "--admin-url", admin.URL}
	if code := run(t.Context(), append(args, "--fail-on-missing"), env(nil), &out, &errs); code != exitFindings {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	text := out.String()
	t.Log(text)
	for _, want := range []string{"Not read by the app for 30 days (11)", "beta_banner", "Read by the app but defined nowhere (1)", "ghost"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text[strings.Index(text, "Not read"):], "new_checkout") {
		t.Errorf("new_checkout was read yesterday, yet listed unread:\n%s", text)
	}
	admin.Close()
	if code := run(t.Context(), args, env(nil), &out, &errs); code != 1 {
		t.Errorf("admin gone: exit %d", code)
	}
}
