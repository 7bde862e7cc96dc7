package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// consoleOverrider is a small Overrider for the console tests: a visitor
// with the permission "app.flip" may flip; session overrides are kept in
// a plain cookie "ovr" of name=on|off pairs; names the snapshot does not
// know, and everything asked by others or cross-site, are refused.
type consoleOverrider struct{}

func (consoleOverrider) Overrides(_ context.Context, q engine.OverrideQuery) (engine.Overrides, *http.Cookie, error) {
	o := engine.Overrides{Allowed: q.Subject.HasPerm("app.flip"), Session: map[string]bool{}, URL: map[string]bool{}}
	stored, _ := q.Cookies.Get("ovr")
	if o.Allowed && stored != "" {
		vals, _ := url.ParseQuery(stored)
		for k, v := range vals {
			o.Session[k] = v[0] == "on"
		}
	}
	changed := false
	for _, key := range q.Keys {
		prefix, name := splitParam(key)
		switch {
		case prefix == "":
			continue
		case q.CrossSite:
			o.Refused = append(o.Refused, engine.Refusal{Param: key, Name: name, Reason: engine.RefusedCrossSite})
		case !o.Allowed:
			o.Refused = append(o.Refused, engine.Refusal{Param: key, Name: name, Reason: engine.RefusedNotPermitted})
		case prefix == "session_clear_features":
			clear(o.Session)
			changed = true
		case !q.Knows(name):
			o.Refused = append(o.Refused, engine.Refusal{Param: key, Name: name, Reason: engine.RefusedUnknownFlag})
		case strings.HasPrefix(prefix, "session_"):
			o.Session[name], changed = prefix == "session_enable_", true
		default:
			o.URL[name] = prefix == "enable_"
		}
	}
	var c *http.Cookie
	if changed {
		vals := url.Values{}
		for k, on := range o.Session {
			vals.Set(k, map[bool]string{true: "on", false: "off"}[on])
		}
		c = &http.Cookie{Name: "ovr", Value: vals.Encode(), Path: "/"}
	}
	return o, c, nil
}

func splitParam(key string) (prefix, name string) {
	if key == "session_clear_features" {
		return key, ""
	}
	for _, p := range []string{"session_enable_", "session_disable_", "enable_", "disable_"} {
		if n, ok := strings.CutPrefix(key, p); ok {
			return p, n
		}
	}
	return "", ""
}

// consoleData has a hyphenated FeatureFlag key, a waffle flag with dots
// and a space, a group rule with a note, a switch and a sample.
func consoleData() engine.Data {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlag}
	d.WaffleFlags = []engine.WaffleFlag{
		{Name: "beta", Staff: true, Groups: []int64{7}, Info: engine.Info{Note: "the new beta, for testers"}},
		{Name: "new.checkout v2", Everyone: engine.No},
	}
	d.FeatureFlags = []engine.FeatureFlag{{Key: "gradual-rollout", Enabled: true, RolloutPercent: 25}}
	d.Switches = []engine.Switch{{Name: "maintenance", Active: true}}
	d.Samples = []engine.Sample{{Name: "trace", Percent: engine.PercentOf(0)}}
	d.Groups = []engine.Group{{ID: 7, Name: "beta-testers"}}
	return d
}

// consoleHarness is a proxy with the console, a flipper (session
// "s-flip", may flip), a plain user ("s-plain") and a log.
func consoleHarness(t *testing.T, public bool) (*harness, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	sessions := sessionResolver{
		"s-flip":  {UserID: "1", Username: "flipper", Authenticated: true, Active: true, Permissions: []string{"app.flip"}},
		"s-plain": {UserID: "2", Username: "plain", Authenticated: true, Active: true, Groups: []int64{7}},
	}
	hs := newHarness(t, Config{Subjects: sessions, Overrider: consoleOverrider{}, ConsolePublic: public, Rand: fixedRand(0.5),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	hs.store.Publish(mustSnapshot(t, consoleData()), testNow())
	return hs, &logs
}

// client is a browser: a cookie jar, no redirects followed.
func client(t *testing.T, hs *harness, session string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(hs.frontend.URL)
	if session != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "sessionid", Value: session}})
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

func getPage(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	return do(t, c, req)
}

var tokenRE = regexp.MustCompile(`name="token" value="([^"]+)"`)

// post submits a console form, from the console's own origin unless
// header says otherwise.
func post(t *testing.T, hs *harness, c *http.Client, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, hs.frontend.URL+"/_flagproxy/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", hs.frontend.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, c, req)
}

func TestConsoleForAPermittedVisitor(t *testing.T) {
	hs, _ := consoleHarness(t, false)
	c := client(t, hs, "s-flip")
	res, body := getPage(t, c, hs.frontend.URL+"/_flagproxy/")
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
	for _, want := range []string{"gradual-rollout", "new.checkout v2", "beta", "maintenance", "trace", "staff, groups: beta-testers",
		"the new beta, for testers", "no rule matched", "On for session", "Clear all overrides", "rollout", "flipper"} {
		if !strings.Contains(body, want) {
			t.Errorf("the console lacks %q", want)
		}
	}
	m := tokenRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no form token")
	}
	// On for the session: a hyphenated FeatureFlag key.
	res, _ = post(t, hs, c, url.Values{"token": {m[1]}, "flag": {"gradual-rollout"}, "action": {"session-on"}, "page": {"/"}}, nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/_flagproxy/?") {
		t.Fatalf("flip: %d %v", res.StatusCode, res.Header)
	}
	_, body = getPage(t, c, hs.frontend.URL+res.Header.Get("Location"))
	if !strings.Contains(body, "gradual-rollout is on for this session") || !strings.Contains(body, "session override") {
		t.Errorf("the page after the flip does not show it:\n%s", body)
	}
	getPage(t, c, hs.frontend.URL+"/page")
	if p := decode(t, hs.backend.last(t).Header); !p.Flags["gradual-rollout"] || p.Sources["gradual-rollout"] != "session" {
		t.Errorf("the next page: %v %v", p.Flags, p.Sources)
	}
	// On once: a redirect to the page with the (escaped) parameter.
	res, _ = post(t, hs, c, url.Values{"token": {m[1]}, "flag": {"new.checkout v2"}, "action": {"once-on"}, "page": {"/shop?x=1"}}, nil)
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/shop?x=1&enable_new.checkout+v2" {
		t.Fatalf("once: %d %q", res.StatusCode, loc)
	}
	getPage(t, c, hs.frontend.URL+res.Header.Get("Location"))
	if p := decode(t, hs.backend.last(t).Header); !p.Flags["new.checkout v2"] || p.Sources["new.checkout v2"] != "url" {
		t.Errorf("once: %v %v", p.Flags, p.Sources)
	}
	// me.json.
	_, body = getPage(t, c, hs.frontend.URL+"/_flagproxy/me.json")
	var me struct {
		MayFlip bool `json:"may_flip"`
		Flags   map[string]struct {
			On       bool          `json:"on"`
			Reason   engine.Reason `json:"reason"`
			Source   engine.Source `json:"source"`
			Because  string        `json:"because"`
			Override string        `json:"override"`
		} `json:"flags"`
		Switches map[string]struct{ On bool } `json:"switches"`
	}
	if err := json.Unmarshal([]byte(body), &me); err != nil {
		t.Fatal(err)
	}
	gr := me.Flags["gradual-rollout"]
	if !me.MayFlip || !gr.On || gr.Reason != engine.ReasonOverrideSession || gr.Source != engine.SourceFeatureFlag || gr.Override != "session" ||
		!me.Switches["maintenance"].On || len(me.Flags) != 3 {
		t.Errorf("me.json: %s", body)
	}
	// Clear.
	res, _ = post(t, hs, c, url.Values{"token": {m[1]}, "action": {"clear"}}, nil)
	_, body = getPage(t, c, hs.frontend.URL+res.Header.Get("Location"))
	if !strings.Contains(body, "every override of this session was cleared") || strings.Contains(body, "session override") {
		t.Errorf("after clear:\n%s", body)
	}
}

// TestConsoleHiddenFromOthers: anonymous and plain visitors get exactly
// the 404 of a path that does not exist, for the page, me.json and a POST.
func TestConsoleHiddenFromOthers(t *testing.T) {
	hs, _ := consoleHarness(t, false)
	_, want := getPage(t, client(t, hs, ""), hs.frontend.URL+"/_flagproxy/nothing")
	for _, session := range []string{"", "s-plain"} {
		c := client(t, hs, session)
		for _, path := range []string{"/_flagproxy/", "/_flagproxy/me.json", "/_flagproxy/?page=/x"} {
			res, body := getPage(t, c, hs.frontend.URL+path)
			if res.StatusCode != 404 || body != want || len(res.Cookies()) != 0 || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("%q %s: %d %q %v", session, path, res.StatusCode, body, res.Header)
			}
		}
		if res, body := post(t, hs, c, url.Values{"action": {"clear"}}, nil); res.StatusCode != 404 || body != want {
			t.Errorf("%q POST: %d %q", session, res.StatusCode, body)
		}
	}
	// --console-public: read-only for them.
	pub, _ := consoleHarness(t, true)
	res, body := getPage(t, client(t, pub, "s-plain"), pub.frontend.URL+"/_flagproxy/")
	if res.StatusCode != 200 || strings.Contains(body, "On for session") || !strings.Contains(body, "read only") {
		t.Errorf("public console: %d", res.StatusCode)
	}
	if res, _ := post(t, pub, client(t, pub, "s-plain"), url.Values{"action": {"clear"}}, nil); res.StatusCode != 403 {
		t.Errorf("public console, POST by a plain user: %d", res.StatusCode)
	}
}

// TestConsoleRefusesCrossSitePosts: another site's POST, even with a valid
// token, and a same-origin POST without one, change nothing.
func TestConsoleRefusesCrossSitePosts(t *testing.T) {
	hs, _ := consoleHarness(t, false)
	c := client(t, hs, "s-flip")
	_, body := getPage(t, c, hs.frontend.URL+"/_flagproxy/")
	token := tokenRE.FindStringSubmatch(body)[1]
	form := url.Values{"token": {token}, "flag": {"beta"}, "action": {"session-on"}}
	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}},
		"Sec-Fetch-Site same-site":  {"Sec-Fetch-Site": {"same-site"}, "Origin": {"https://other.django.test"}},
		"Origin only":               {"Sec-Fetch-Site": nil, "Origin": {"https://evil.example"}},
	} {
		if res, _ := post(t, hs, c, form, h); res.StatusCode != 403 || len(res.Cookies()) != 0 {
			t.Errorf("%s: %d %v", name, res.StatusCode, res.Cookies())
		}
	}
	for name, f := range map[string]url.Values{
		"no token":     {"flag": {"beta"}, "action": {"session-on"}},
		"forged token": {"token": {strings.Repeat("A", len(token))}, "flag": {"beta"}, "action": {"session-on"}},
	} {
		if res, _ := post(t, hs, c, f, nil); res.StatusCode != 403 || len(res.Cookies()) != 0 {
			t.Errorf("%s: %d", name, res.StatusCode)
		}
	}
	// Another visitor's token does not pass either.
	other := client(t, hs, "s-flip")
	if res, _ := post(t, hs, other, form, nil); res.StatusCode != 403 {
		t.Errorf("a token of another browser: %d", res.StatusCode)
	}
	getPage(t, c, hs.frontend.URL+"/page")
	if p := decode(t, hs.backend.last(t).Header); p.Flags["beta"] {
		t.Error("a refused POST flipped beta")
	}
}

// TestRefusedOverridesAreLoggedAndCounted: each refused parameter is one
// info line with the user and the reason, and one count.
func TestRefusedOverridesAreLoggedAndCounted(t *testing.T) {
	hs, logs := consoleHarness(t, false)
	getPage(t, client(t, hs, ""), hs.frontend.URL+"/page?enable_beta&session_enable_gradual-rollout&x=1")
	getPage(t, client(t, hs, "s-flip"), hs.frontend.URL+"/page?enable_nope")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.frontend.URL+"/page?enable_beta", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	do(t, client(t, hs, "s-flip"), req)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var refused []string
	for _, l := range lines {
		if strings.Contains(l, "override refused") {
			refused = append(refused, l)
		}
	}
	want := []string{"user_id=anonymous flag=beta param=enable_beta reason=not_permitted",
		"user_id=anonymous flag=gradual-rollout param=session_enable_gradual-rollout reason=not_permitted",
		"user_id=1 flag=nope param=enable_nope reason=unknown_flag", "user_id=1 flag=beta param=enable_beta reason=cross_site"}
	if len(refused) != len(want) {
		t.Fatalf("refusal lines:\n%s", strings.Join(refused, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(refused[i], "level=INFO") || !strings.Contains(refused[i], w) {
			t.Errorf("line %d = %q, want %q", i, refused[i], w)
		}
	}
	if err := testutil.GatherAndCompare(hs.reg, strings.NewReader(`
# HELP flagproxy_overrides_refused_total Override parameters (enable_x, session_enable_x, …) not applied, by reason (not_permitted, unknown_flag, cross_site, too_many).
# TYPE flagproxy_overrides_refused_total counter
flagproxy_overrides_refused_total{reason="cross_site"} 1
flagproxy_overrides_refused_total{reason="not_permitted"} 2
flagproxy_overrides_refused_total{reason="too_many"} 0
flagproxy_overrides_refused_total{reason="unknown_flag"} 1
`), "flagproxy_overrides_refused_total"); err != nil {
		t.Error(err)
	}
	if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "x=1") }) {
		t.Error("a parameter that is no override was logged")
	}
}
