//go:build integration

package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// seedConsolePy makes the users and flags of the console tests: flipper
// has flagproxy_django's flip permission, plain is in beta-testers; the
// flags have names with '-', '.', and a space, notes and descriptions.
const seedConsolePy = `
from django.contrib.auth.models import Group, Permission, User
from featureflipper.models import Feature
from waffle.models import Flag, Switch
from flags.models import FeatureFlag
flip = Permission.objects.get(content_type__app_label="flagproxy_django", codename="can_flip_with_url")
testers = Group.objects.create(name="beta-testers")
User.objects.create_user("flipper", password="pw").user_permissions.add(flip)
User.objects.create_user("plain", password="pw").groups.add(testers)
User.objects.create_user("staffer", password="pw", is_staff=True)
beta = Flag.objects.create(name="beta", staff=True, superusers=False, note="the new beta, for testers")
beta.groups.add(testers)
Flag.objects.create(name="new.checkout v2", superusers=False, note="dots and a space")
Switch.objects.create(name="maintenance", active=True, note="read-only mode")
Feature.objects.create(name="search", enabled=False, description="the new search page")
FeatureFlag.objects.create(key="gradual-rollout", enabled=True, rollout_percent=0)
`

// consoleSite is the test site behind a flagproxy, its users' sessions and
// the flagproxy's log.
type consoleSite struct {
	db            *siteDB
	proxy, admin  string
	log           *process
	sessions, ids map[string]string
	settings      string
}

func newConsoleSite(t *testing.T, db *siteDB, server string) *consoleSite {
	t.Helper()
	manage(t, db.URL, "shell", "-c", seedConsolePy)
	upstream := django(t, server, db.URL)
	s := &consoleSite{db: db, settings: settingsFile(t, ""), sessions: map[string]string{}, ids: map[string]string{}}
	listen, admin := freeAddr(t), freeAddr(t)
	s.log = start(t, "flagproxy", ".", nil, flagproxyBinary(t), "serve", "--listen", listen, "--admin-listen", admin,
		"--upstream", upstream, "--database", db.URL, "--django-settings", s.settings, "--override-cookie-secure=false",
		"--identity-cache-ttl", "1s")
	waitHTTP(t, "http://"+admin+"/readyz", 200, 15*time.Second)
	s.proxy, s.admin = "http://"+listen, "http://"+admin
	for _, u := range []string{"flipper", "plain", "staffer"} {
		s.sessions[u] = loginThrough(t, s.proxy, u)
		s.ids[u] = rawGet(t, s.proxy, "/echo/", "Cookie: sessionid="+s.sessions[u]).User.ID
	}
	return s
}

// browserClient is a client with the user's session, that does not
// follow redirects.
func (s *consoleSite) browserClient(t *testing.T, user string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(s.proxy)
	if user != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "sessionid", Value: s.sessions[user], Path: "/"}})
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func send(t *testing.T, c *http.Client, method, u string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// echoFlags is what Django saw on /echo/ for c.
func echoFlags(t *testing.T, c *http.Client, base, target string) flags {
	t.Helper()
	res, body := send(t, c, "GET", base+target, nil, nil)
	var e echo
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &e) != nil {
		t.Fatalf("GET %s: %d %s", target, res.StatusCode, body)
	}
	return decodeFlags(t, e)
}

var formToken = regexp.MustCompile(`name="token" value="([^"]+)"`)

// TestConsoleThroughFlagproxy drives the console, the refusals, the status
// page and explain against the real test site, on SQLite and PostgreSQL.
func TestConsoleThroughFlagproxy(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		s := newConsoleSite(t, db, server)
		flipper := s.browserClient(t, "flipper")
		res, page := send(t, flipper, "GET", s.proxy+"/_flagproxy/", nil, nil)
		for _, want := range []string{"gradual-rollout", "new.checkout v2", "staff, groups: beta-testers", "the new beta, for testers",
			"the new search page", "read-only mode", "On for session"} {
			if !strings.Contains(page, want) {
				t.Errorf("console (%d) lacks %q", res.StatusCode, want)
			}
		}
		// Others get the 404 of a path that does not exist.
		_, missing := send(t, s.browserClient(t, ""), "GET", s.proxy+"/_flagproxy/nothing", nil, nil)
		for _, who := range []string{"", "plain", "staffer"} {
			for _, p := range []string{"/_flagproxy/", "/_flagproxy/me.json"} {
				if res, body := send(t, s.browserClient(t, who), "GET", s.proxy+p, nil, nil); res.StatusCode != 404 || body != missing {
					t.Errorf("%q %s: %d %q", who, p, res.StatusCode, body)
				}
			}
		}
		// A session flip of a hyphenated FeatureFlag key.
		m := formToken.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no form token")
		}
		form := url.Values{"token": {m[1]}, "flag": {"gradual-rollout"}, "action": {"session-on"}, "page": {"/echo/"}}
		same := http.Header{"Origin": {s.proxy}, "Sec-Fetch-Site": {"same-origin"}}
		// From another site first: refused, nothing changes.
		if res, _ := send(t, flipper, "POST", s.proxy+"/_flagproxy/", form, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); res.StatusCode != 403 {
			t.Errorf("cross-site POST: %d", res.StatusCode)
		}
		if f := echoFlags(t, flipper, s.proxy, "/echo/"); f.Flags["gradual-rollout"] {
			t.Fatal("a cross-site POST flipped gradual-rollout")
		}
		if res, _ := send(t, flipper, "POST", s.proxy+"/_flagproxy/", form, same); res.StatusCode != 303 {
			t.Fatalf("POST: %d", res.StatusCode)
		}
		if f := echoFlags(t, flipper, s.proxy, "/echo/"); !f.Flags["gradual-rollout"] || f.Sources["gradual-rollout"] != "session" {
			t.Errorf("after the flip: %v %v", f.Flags, f.Sources)
		}
		// Any name the proxy knows, by URL.
		if f := echoFlags(t, flipper, s.proxy, "/echo/?enable_new.checkout%20v2"); !f.Flags["new.checkout v2"] {
			t.Errorf("enable_new.checkout%%20v2: %v", f.Flags)
		}
		checkRefusals(t, s)
		checkStatus(t, s)
		checkExplain(t, s)
	})
}

// checkRefusals: a refused flip leaves a log line and a count.
func checkRefusals(t *testing.T, s *consoleSite) {
	t.Helper()
	echoFlags(t, s.browserClient(t, "plain"), s.proxy, "/echo/?enable_beta")
	echoFlags(t, s.browserClient(t, "flipper"), s.proxy, "/echo/?enable_no_such_flag")
	out := s.log.out.String()
	for _, want := range []string{`msg="override refused" user_id=` + s.ids["plain"] + ` flag=beta param=enable_beta reason=not_permitted`,
		`user_id=` + s.ids["flipper"] + ` flag=no_such_flag param=enable_no_such_flag reason=unknown_flag`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	_, metrics := send(t, http.DefaultClient, "GET", s.admin+"/metrics", nil, nil)
	for _, want := range []string{`flagproxy_overrides_refused_total{reason="not_permitted"} 1`, `flagproxy_overrides_refused_total{reason="unknown_flag"} 1`,
		`flagproxy_flag_decisions_total{kind="flag",name="gradual-rollout",state="on"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// checkStatus: /flags.json and /flags list every flag with its rule,
// note and counts.
func checkStatus(t *testing.T, s *consoleSite) {
	t.Helper()
	_, body := send(t, http.DefaultClient, "GET", s.admin+"/flags.json", nil, nil)
	var rep struct {
		Version string
		State   string
		Poller  struct {
			LastSuccess time.Time `json:"last_success"`
		}
		Flags []struct {
			Name, Rule, Note, Source string
			Modified                 time.Time
			On                       uint64 `json:"decided_on"`
			Off                      uint64 `json:"decided_off"`
		}
		Switches []struct{ Name, Note string }
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range rep.Flags {
		got[f.Name] = f.Rule + " | " + f.Note
		if f.On+f.Off == 0 {
			t.Errorf("%s was never counted", f.Name)
		}
	}
	for name, want := range map[string]string{"beta": "staff, groups: beta-testers | the new beta, for testers",
		"new.checkout v2": "no one | dots and a space", "search": "disabled | the new search page", "gradual-rollout": "no one | "} {
		if g := got[name]; g != want {
			t.Errorf("%s: %q, want %q", name, g, want)
		}
	}
	if rep.Version == "" || rep.State != "ok" || rep.Poller.LastSuccess.IsZero() || len(rep.Switches) != 1 || rep.Switches[0].Note != "read-only mode" {
		t.Errorf("status: %s", body)
	}
	if res, html := send(t, http.DefaultClient, "GET", s.admin+"/flags", nil, nil); res.StatusCode != 200 || !strings.Contains(html, "staff, groups: beta-testers") {
		t.Errorf("/flags: %d", res.StatusCode)
	}
}

// checkExplain: /explain and `flagproxy explain` (reading the database,
// and asking the admin listener) agree with the header.
func checkExplain(t *testing.T, s *consoleSite) {
	t.Helper()
	plain := s.browserClient(t, "plain")
	for _, path := range []string{"/echo/", "/echo/?dwft_beta=1", "/echo/?enable_beta"} {
		f := echoFlags(t, plain, s.proxy, path)
		q := url.Values{"flag": {"beta"}, "user": {s.ids["plain"]}, "url": {path}}
		_, body := send(t, http.DefaultClient, "GET", s.admin+"/explain?"+q.Encode(), nil, nil)
		var a struct {
			Explanation struct {
				Decision struct{ On bool }
				Steps    []struct{ Check, Outcome string }
			}
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil || a.Explanation.Decision.On != f.Flags["beta"] {
			t.Errorf("%s: header %v, explain %s", path, f.Flags["beta"], body)
		}
	}
	for _, args := range [][]string{
		{"explain", "--flag", "beta", "--user", s.ids["plain"], "--url", "/checkout", "--database", s.db.URL, "--django-settings", s.settings},
		{"explain", "--flag", "beta", "--user", s.ids["plain"], "--url", "/checkout", "--admin", s.admin},
	} {
		out, err := exec.Command(flagproxyBinary(t), args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "flag beta: on") || !strings.Contains(string(out), "groups: in beta-testers → on") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	out, _ := exec.Command(flagproxyBinary(t), "--check-config", "--database", s.db.URL, "--django-settings", s.settings,
		"--flip-permission", "nosuch.can_flip").CombinedOutput()
	if !strings.Contains(string(out), "no permission named by --flip-permission exists") {
		t.Errorf("--check-config with a missing permission:\n%s", out)
	}
	out, _ = exec.Command(flagproxyBinary(t), "--check-config", "--database", s.db.URL, "--django-settings", s.settings).CombinedOutput()
	if strings.Contains(string(out), "warning") {
		t.Errorf("--check-config with the default permissions:\n%s", out)
	}
}
