//go:build integration

package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// djflagsFLAGS is django-flags' FLAGS setting in the settings file's JSON
// form (spec/django-flags.md §10.1). The test site gets the same dicts as
// its own FLAGS, so that its enable_flag and disable_flag commands know
// these flags as the library would.
const djflagsFLAGS = `{
	"S": [{"condition": "boolean", "value": "False", "required": false}],
	"SONLY": [{"condition": "boolean", "value": "True", "required": false}],
	"GATED": [{"condition": "parameter", "value": "enable_gate", "required": true}]
}`

const djflagsSeedPy = `
from django.contrib.auth.models import User
from waffle.models import Flag
User.objects.create_user("jane", password="pw")
User.objects.create_user("bob", password="pw")
Flag.objects.create(name="w_on", everyone=True)
`

// TestDjangoFlagsBehindFlagproxy runs django-flags' API in the real test
// site (flagproxy_django.djflags, answered from the header) behind the
// flagproxy binary, on SQLite under runserver and on PostgreSQL under
// gunicorn: flags_flagstate rows written by SQL and by the site's
// enable_flag/disable_flag commands, the FLAGS setting of the
// --django-settings file merged with the rows, the boolean, parameter and
// user conditions for anonymous and logged-in visitors, unknown names, and
// --sources restricting what is read. Every change is awaited through the
// snapshot version Django sees, then checked for every visitor.
func TestDjangoFlagsBehindFlagproxy(t *testing.T) {
	t.Parallel()
	eachSite(t, func(t *testing.T, db *siteDB, server string) {
		manage(t, db.URL, "shell", "-c", djflagsSeedPy)
		siteEnv := "FLAGPROXY_DJANGO_SETTINGS=" + `{"FLAGS": ` + djflagsFLAGS + `}`
		upstream := django(t, server, db.URL, siteEnv)
		settings := settingsFile(t, `, "FLAGS": `+djflagsFLAGS)
		proxyURL, adminURL := flagproxy(t, upstream, db.URL, "--django-settings", settings, "--poll-interval", "100ms")
		v := &djflagsVisitors{t: t, proxy: proxyURL, sessions: map[string]string{
			"anonymous": "",
			"jane":      loginThrough(t, proxyURL, "jane"),
			"bob":       loginThrough(t, proxyURL, "bob"),
		}}
		everyone := []string{"anonymous", "jane", "bob"}
		version := v.ask("anonymous", "nope", "").Version

		// (e) and (d): before any row, an unknown name is None; the
		// settings file's flags are known, each decided by its own FLAGS
		// conditions (GATED has only a required one: no boolean needed).
		v.check("no rows", everyone, []djflagsCase{
			{"nope", "", flagUnknown}, {"DB", "", flagUnknown},
			{"SONLY", "", flagOn}, {"S", "", flagOff},
			{"GATED", "", flagOff}, {"GATED", "enable_gate=True", flagOn}, {"GATED", "enable_gate=true", flagOff},
		})
		f := decodeFlags(t, rawGet(t, proxyURL, "/echo/"))
		for name, want := range map[string]bool{"SONLY": true, "S": false, "GATED": false, "w_on": true} {
			if got, ok := f.Flags[name]; !ok || got != want {
				t.Errorf("header flags[%q] = %v (present %v), want %v", name, got, ok, want)
			}
		}
		if _, ok := f.Flags["nope"]; ok {
			t.Errorf("header carries the unknown flag nope: %v", f.Flags)
		}

		// (a) A boolean row turns a DB-only flag on for everyone; its
		// change to False turns it off (known, so False, not None).
		db.Exec(t, `INSERT INTO flags_flagstate (name, "condition", "value", required) VALUES ('DB', 'boolean', 'True', ?)`, false)
		version = waitForVersion(t, proxyURL, version)
		v.check("DB boolean True", everyone, []djflagsCase{{"DB", "", flagOn}, {"DB", "x=1", flagOn}})
		db.Exec(t, `UPDATE flags_flagstate SET "value" = 'False' WHERE name = 'DB'`)
		version = waitForVersion(t, proxyURL, version)
		v.check("DB boolean False", everyone, []djflagsCase{{"DB", "", flagOff}})

		// (b) A parameter condition: only ?enable_beta=True, exactly, the
		// last value of the name winning.
		db.Exec(t, `INSERT INTO flags_flagstate (name, "condition", "value", required) VALUES ('P', 'parameter', 'enable_beta', ?)`, false)
		version = waitForVersion(t, proxyURL, version)
		v.check("parameter", everyone, []djflagsCase{
			{"P", "", flagOff}, {"P", "enable_beta=True", flagOn}, {"P", "enable_beta=False&enable_beta=True", flagOn},
			{"P", "enable_beta=true", flagOff}, {"P", "enable_beta=1", flagOff}, {"P", "enable_beta", flagOff},
			{"P", "enable_beta=True&enable_beta=False", flagOff}, {"P", "ENABLE_BETA=True", flagOff},
		})

		// (c) A user condition: only that logged-in user.
		db.Exec(t, `INSERT INTO flags_flagstate (name, "condition", "value", required) VALUES ('U', 'user', 'jane', ?)`, false)
		version = waitForVersion(t, proxyURL, version)
		v.check("user jane", []string{"jane"}, []djflagsCase{{"U", "", flagOn}})
		v.check("user jane", []string{"anonymous", "bob"}, []djflagsCase{{"U", "", flagOff}})

		// (d) Rows for flags of the settings file pool their conditions
		// with the settings' (spec §2.2): S (settings: boolean False) gains
		// user jane; GATED (settings: required parameter) gains a
		// non-required boolean False, which now has to be true too.
		db.Exec(t, `INSERT INTO flags_flagstate (name, "condition", "value", required) VALUES ('S', 'user', 'jane', ?), ('GATED', 'boolean', 'False', ?)`, false, false)
		version = waitForVersion(t, proxyURL, version)
		v.check("merged", []string{"jane"}, []djflagsCase{{"S", "", flagOn}})
		v.check("merged", []string{"anonymous", "bob"}, []djflagsCase{{"S", "", flagOff}})
		v.check("merged", everyone, []djflagsCase{{"GATED", "", flagOff}, {"GATED", "enable_gate=True", flagOff}})

		// The site's own enable_flag sets the first boolean row of GATED.
		manageEnv(t, db.URL, []string{siteEnv}, "enable_flag", "GATED")
		version = waitForVersion(t, proxyURL, version)
		v.check("enable_flag GATED", everyone, []djflagsCase{{"GATED", "", flagOff}, {"GATED", "enable_gate=True", flagOn}})
		// disable_flag of a flag the settings turn on creates a boolean
		// False row, and the flag stays on (spec §9).
		manageEnv(t, db.URL, []string{siteEnv}, "disable_flag", "SONLY")
		waitForVersion(t, proxyURL, version)
		v.check("disable_flag SONLY", everyone, []djflagsCase{{"SONLY", "", flagOn}, {"nope", "", flagUnknown}})
		var rows int
		if err := db.DB.QueryRow(`SELECT count(*) FROM flags_flagstate WHERE name = 'SONLY' AND "condition" = 'boolean' AND "value" = 'False'`).Scan(&rows); err != nil || rows != 1 {
			t.Errorf("disable_flag SONLY: %d boolean False rows (%v), want 1", rows, err)
		}

		// --sources: django-flags alone, then without it, in front of the
		// same site and database.
		checkReadySources(t, adminURL, true)
		only, onlyAdmin := flagproxy(t, upstream, db.URL, "--django-settings", settings, "--sources", "django-flags")
		checkReadySources(t, onlyAdmin, false, "django-flags")
		f = decodeFlags(t, rawGet(t, only, "/echo/"))
		if _, ok := f.Flags["w_on"]; ok {
			t.Errorf("--sources django-flags: the header carries waffle's w_on: %v", f.Flags)
		}
		for _, name := range []string{"DB", "P", "U", "S", "SONLY", "GATED"} {
			if _, ok := f.Flags[name]; !ok {
				t.Errorf("--sources django-flags: header lacks %s: %v", name, f.Flags)
			}
		}
		o := &djflagsVisitors{t: t, proxy: only, sessions: v.sessions}
		o.check("--sources django-flags", []string{"jane"}, []djflagsCase{{"U", "", flagOn}, {"S", "", flagOn}, {"SONLY", "", flagOn}})
		w, wAdmin := flagproxy(t, upstream, db.URL, "--django-settings", settings, "--sources", "waffle")
		checkReadySources(t, wAdmin, false, "waffle")
		o = &djflagsVisitors{t: t, proxy: w, sessions: v.sessions}
		o.check("--sources waffle", []string{"anonymous", "jane"}, []djflagsCase{{"SONLY", "", flagUnknown}, {"DB", "", flagUnknown}, {"U", "", flagUnknown}})
		if f := decodeFlags(t, rawGet(t, w, "/echo/")); !f.Flags["w_on"] {
			t.Errorf("--sources waffle: w_on = false, want true: %v", f.Flags)
		}
	})
}

// Expected answers of flag_state: True, False, or None (the name is unknown).
var (
	flagOn      = ptr(true)
	flagOff     = ptr(false)
	flagUnknown *bool
)

func ptr(b bool) *bool { return &b }

func tri(b *bool) string {
	if b == nil {
		return "None"
	}
	if *b {
		return "True"
	}
	return "False"
}

// djflagsCase is one question to the site's /djflags/<name>/ view.
type djflagsCase struct {
	name, query string
	want        *bool
}

// djflagsAnswer is what the test site's djflags view returns.
type djflagsAnswer struct {
	State    *bool   `json:"flag_state"`
	Enabled  *bool   `json:"flag_enabled"`
	Disabled *bool   `json:"flag_disabled"`
	Current  *bool   `json:"flag_state_current"`
	Version  string  `json:"version"`
	Header   string  `json:"state"`
	Error    *string `json:"error"`
	User     *string `json:"user"`
}

// djflagsVisitors asks the site's djflags view through a proxy as each
// visitor: a name maps to a Django session cookie, "" for anonymous.
type djflagsVisitors struct {
	t        *testing.T
	proxy    string
	sessions map[string]string
}

func (v *djflagsVisitors) ask(visitor, name, query string) djflagsAnswer {
	t := v.t
	t.Helper()
	u := v.proxy + "/djflags/" + url.PathEscape(name) + "/"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	session, ok := v.sessions[visitor]
	if !ok {
		t.Fatalf("no visitor %q", visitor)
	}
	if session != "" {
		req.Header.Set("Cookie", "sessionid="+session)
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s as %s: %d %s", u, visitor, resp.StatusCode, body)
	}
	var a djflagsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("GET %s: body %q: %v", u, body, err)
	}
	if a.Error != nil || a.Header != "ok" {
		t.Fatalf("GET %s as %s: flagproxy_django read no decisions: state %q, body %s", u, visitor, a.Header, body)
	}
	if (a.User != nil) != (session != "") {
		t.Fatalf("GET %s as %s: Django saw user %v", u, visitor, a.User)
	}
	return a
}

// check asks every case as every visitor and compares flag_state,
// flag_enabled, flag_disabled and flag_state without a request.
func (v *djflagsVisitors) check(step string, visitors []string, cases []djflagsCase) {
	v.t.Helper()
	for _, visitor := range visitors {
		for _, c := range cases {
			a := v.ask(visitor, c.name, c.query)
			disabled := c.want == nil || !*c.want
			if tri(a.State) != tri(c.want) || tri(a.Enabled) != tri(c.want) || tri(a.Current) != tri(c.want) ||
				a.Disabled == nil || *a.Disabled != disabled {
				v.t.Errorf("%s: %s as %s, query %q: flag_state %s, flag_enabled %s, flag_state() %s, flag_disabled %s; want %s, %s, %s, %v",
					step, c.name, visitor, c.query, tri(a.State), tri(a.Enabled), tri(a.Current), tri(a.Disabled),
					tri(c.want), tri(c.want), tri(c.want), disabled)
			}
		}
	}
}

// waitForVersion waits until the header carries a snapshot version other
// than old (a committed change has been loaded) and returns it.
func waitForVersion(t *testing.T, proxyURL, old string) string {
	t.Helper()
	start := time.Now()
	for {
		f := decodeFlags(t, rawGet(t, proxyURL, "/echo/"))
		if f.Version != old && f.State == "ok" {
			t.Logf("snapshot %s → %s after %v", old, f.Version, time.Since(start).Round(time.Millisecond))
			return f.Version
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("snapshot version still %s (state %s) after 5s", f.Version, f.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkReadySources compares /readyz's sources with want exactly or, when
// djangoFlagsAmong is true, wants django-flags among them.
func checkReadySources(t *testing.T, adminURL string, djangoFlagsAmong bool, want ...string) {
	t.Helper()
	resp, err := http.Get(adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct {
		Sources []string `json:"sources"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	if djangoFlagsAmong && !slices.Contains(ready.Sources, "django-flags") || !djangoFlagsAmong && !slices.Equal(ready.Sources, want) {
		t.Errorf("/readyz sources = %v, want %v (django-flags among them: %v)", ready.Sources, want, djangoFlagsAmong)
	}
}
