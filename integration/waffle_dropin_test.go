//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWaffleDropIn runs a waffle site (django/waffleshop) whose views,
// template and tests use django-waffle's own imports, unchanged, with the
// waffle drop-in behind the flagproxy binary. The database is an existing
// waffle site's (migrated without the drop-in); swapping needs no migration.
// The shop's own test suite passes on waffle's testutils (its test database
// is migrated fresh with the drop-in). A permitted user's ?enable_x reaches
// the view and the template alike, a change in the table arrives after the
// proxy reloads, and shadow mode reports a real disagreement (the site turned
// WAFFLE_OVERRIDE on after the proxy's settings file was written) but not
// the random rolls of a percentage flag.
func TestWaffleDropIn(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		shadowLog := filepath.Join(t.TempDir(), "shadow.log")
		siteSettings, _ := json.Marshal(map[string]any{"FLAGPROXY_SHADOW": true, "FLAGPROXY_SHADOW_LOG": shadowLog, "WAFFLE_OVERRIDE": true})
		shop := []string{"DJANGO_SETTINGS_MODULE=waffleshop.settings", "FLAGPROXY_DJANGO_SETTINGS=" + string(siteSettings)}

		manageEnv(t, db.URL, shop, "migrate", "--noinput", "-v", "0")
		manageEnv(t, db.URL, shop, "makemigrations", "--check", "--dry-run")
		manageEnv(t, db.URL, shop, "test", "waffleshop", "--noinput", "-v", "1")
		manageEnv(t, db.URL, shop, "shell", "-c", seedShopPy)

		upstream := django(t, server, db.URL, shop...)
		// The proxy's settings file was written before the site set WAFFLE_OVERRIDE.
		proxyURL, _ := flagproxy(t, upstream, db.URL, "--django-settings", settingsFile(t, ""),
			"--override-cookie-secure=false", "--poll-interval", "100ms")
		flipper, plain := loginThrough(t, proxyURL, "flipper"), loginThrough(t, proxyURL, "plain")

		for _, c := range []struct {
			session string
			want    bool
		}{{flipper, true}, {plain, false}, {"", false}} {
			got := shopGet(t, proxyURL, "/checkout/?enable_new_checkout", c.session)
			if got.View != c.want || got.Template != map[bool]string{true: "new checkout", false: "old checkout"}[c.want] {
				t.Errorf("session %q: ?enable_new_checkout gave view %v, template %q; want %v", c.session, got.View, got.Template, c.want)
			}
		}
		status := getJSON[struct {
			Flags map[string]struct {
				IsActive bool `json:"is_active"`
			} `json:"flags"`
		}](t, proxyURL+"/waffle_status?enable_new_checkout", flipper)
		if !status.Flags["new_checkout"].IsActive {
			t.Errorf("waffle_status for the flipper: %+v", status.Flags)
		}

		// Shadow mode: rolls are quiet, WAFFLE_OVERRIDE (which the proxy
		// was not told about) is a real disagreement.
		halves := map[bool]int{}
		for range 20 {
			halves[shopGet(t, proxyURL, "/checkout/", "").Half]++
		}
		shopGet(t, proxyURL, "/checkout/?new_checkout=1", "")
		report := shadowReport(t, db.URL, shop)
		if len(report) != 1 || report[0].Name != "new_checkout" || report[0].Count != 2 || report[0].Answers["header off, waffle on"] != 2 {
			t.Errorf("shadow report: %+v, want only new_checkout, header off and waffle on, twice (view and template); rolls of half_rollout %v", report, halves)
		}

		// A change in the table, through waffle's own command.
		manageEnv(t, db.URL, shop, "waffle_flag", "new_checkout", "--everyone")
		waitForFlag(t, proxyURL, "new_checkout", true, 10*time.Second)
		if got := shopGet(t, proxyURL, "/checkout/", ""); !got.View || got.Template != "new checkout" {
			t.Errorf("after waffle_flag --everyone: view %v, template %q", got.View, got.Template)
		}
	})
}

const seedShopPy = `
from django.contrib.auth.models import Permission, User
from waffle import get_waffle_flag_model, get_waffle_switch_model
flip = Permission.objects.get(content_type__app_label="flagproxy_django", codename="can_flip_with_url")
User.objects.create_user("flipper", password="pw").user_permissions.add(flip)
User.objects.create_user("plain", password="pw")
get_waffle_flag_model().objects.create(name="new_checkout", superusers=False)
get_waffle_flag_model().objects.create(name="half_rollout", percent=50, superusers=False)
get_waffle_switch_model().objects.create(name="maintenance", active=False)
`

// shopPage is what waffleshop's checkout view returns.
type shopPage struct {
	View        bool   `json:"view"`
	Template    string `json:"template"`
	Half        bool   `json:"half"`
	Maintenance bool   `json:"maintenance"`
}

func shopGet(t *testing.T, base, path, session string) shopPage {
	t.Helper()
	return getJSON[shopPage](t, base+path, session)
}

func getJSON[T any](t *testing.T, u, session string) T {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if session != "" {
		req.Header.Set("Cookie", "sessionid="+session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v T
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return v
}

type shadowRow struct {
	Kind    string         `json:"kind"`
	Name    string         `json:"name"`
	Count   int            `json:"count"`
	Answers map[string]int `json:"answers"`
}

func shadowReport(t *testing.T, dbURL string, env []string) []shadowRow {
	t.Helper()
	out := manageEnv(t, dbURL, env, "flagproxy_shadow_report", "--json")
	var report struct {
		Mismatches []shadowRow `json:"mismatches"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &report); err != nil {
		t.Fatalf("flagproxy_shadow_report --json: %v\n%s", err, out)
	}
	return report.Mismatches
}
