package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// simpleSnapshot has one feature-flipper flag that is on.
func simpleSnapshot(t *testing.T) *engine.Snapshot {
	return mustSnapshot(t, engine.Data{
		Sources:  []engine.Source{engine.SourceFeatureFlipper},
		Features: []engine.Feature{{Name: "beta", Enabled: true}},
	})
}

func TestHostileInboundHeadersAreReplaced(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	hs.store.Publish(simpleSnapshot(t), testNow())
	hs.raw(t, rawRequest("/",
		`X-Flagproxy-Flags: {"flags":{"beta":false}}`,
		`x-flagproxy-flags: {"flags":{"admin":true}}`,
		`X_Flagproxy_Flags: evil`,
		`X-FLAGPROXY_FLAGS: evil`,
		`x_flagproxy-flags-1: evil`,
		`X-Flagproxy-Flags-1: evil`,
		`X-Flagproxy-Signature: t=1,v1=00`,
		`X-Flagproxy-Anything: evil`,
	))
	got := hs.backend.last(t)
	for k, vs := range got.Header {
		if inNamespace(k) && k != FlagsHeader {
			t.Errorf("backend saw %s: %q", k, vs)
		}
	}
	if vs := got.Header[FlagsHeader]; len(vs) != 1 {
		t.Fatalf("backend saw %d %s lines: %q", len(vs), FlagsHeader, vs)
	}
	p := decode(t, got.Header)
	if diff := cmp.Diff(map[string]bool{"beta": true}, p.Flags); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
}

func TestConnectionHeaderCannotRemoveFlags(t *testing.T) {
	hs := newHarness(t, Config{SigningKey: []byte("k")}, nil)
	hs.store.Publish(simpleSnapshot(t), testNow())
	hs.raw(t, "GET / HTTP/1.1\r\nHost: django.test\r\n"+
		"Connection: close, X-Flagproxy-Flags, X-Flagproxy-Signature, x_flagproxy_flags\r\n\r\n")
	got := hs.backend.last(t)
	if p := decode(t, got.Header); !p.Flags["beta"] {
		t.Errorf("flags = %v, want beta on", p.Flags)
	}
	if got.Header.Get(SignatureHeader) == "" {
		t.Errorf("signature header removed")
	}
}

func TestForwardedHeaders(t *testing.T) {
	spoof := []string{
		"X-Forwarded-For: 203.0.113.7",
		"X-Forwarded-Proto: https",
		"X-Forwarded-Host: evil.test",
		"X_Forwarded_Proto: https",
		"Forwarded: for=203.0.113.7",
		"X-Forwarded-Port: 443",
		"X-Forwarded-Ssl: on",
		"x_forwarded_ssl: on",
		"X-Real-Ip: 203.0.113.7",
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string
	}{
		{"untrusted peer", nil, map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "http",
			"X-Forwarded-Host":  "django.test",
			"Forwarded":         "",
			"X-Forwarded-Port":  "",
			"X-Forwarded-Ssl":   "",
			"X-Real-Ip":         "",
		}},
		{"untrusted network", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, map[string]string{
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "http",
			"X-Forwarded-Host":  "django.test",
			"Forwarded":         "",
			"X-Forwarded-Port":  "",
			"X-Forwarded-Ssl":   "",
			"X-Real-Ip":         "",
		}},
		{"trusted peer", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, map[string]string{
			"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  "evil.test",
			"Forwarded":         "for=203.0.113.7",
			"X-Forwarded-Port":  "443",
			"X-Forwarded-Ssl":   "on",
			"X-Real-Ip":         "203.0.113.7",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, Config{TrustedProxies: tt.trusted}, nil)
			hs.raw(t, rawRequest("/", spoof...))
			got := hs.backend.last(t)
			h := map[string]string{}
			for k := range tt.want {
				h[k] = strings.Join(got.Header[k], "|")
			}
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("forwarding headers (-want +got):\n%s", diff)
			}
			for k := range got.Header {
				if strings.Contains(k, "_") {
					t.Errorf("backend saw %s", k)
				}
			}
		})
	}
}

func TestURLAndHostReachUpstreamUnchanged(t *testing.T) {
	tests := []struct{ target, path, rawQuery string }{
		{"/a/b?enable_x&session_enable_y=1;z", "/a/b", "enable_x&session_enable_y=1;z"},
		{"/a%2Fb/?x=%zz&y=1+2&waffle_flag=1", "/a/b/", "x=%zz&y=1+2&waffle_flag=1"},
		{"/?dwft_x=1&dwft_x=0", "/", "dwft_x=1&dwft_x=0"},
		{"/plain", "/plain", ""},
	}
	hs := newHarness(t, Config{}, nil)
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			hs.raw(t, rawRequest(tt.target))
			got := hs.backend.last(t)
			if got.RequestURI != tt.target {
				t.Errorf("RequestURI = %q, want %q", got.RequestURI, tt.target)
			}
			if got.URL.Path != tt.path || got.URL.RawQuery != tt.rawQuery {
				t.Errorf("URL = %q ? %q, want %q ? %q", got.URL.Path, got.URL.RawQuery, tt.path, tt.rawQuery)
			}
			if got.Host != "django.test" {
				t.Errorf("Host = %q, want the inbound django.test", got.Host)
			}
		})
	}
}

func TestUpstreamPathPrefix(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	u, _ := url.Parse(hs.backend.URL + "/site/")
	p, err := New(Config{Upstream: u, Snapshots: hs.store})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()
	(&harness{frontend: front}).raw(t, rawRequest("/a?b=1;c"))
	if got := hs.backend.last(t).RequestURI; got != "/site/a?b=1;c" {
		t.Errorf("RequestURI = %q, want /site/a?b=1;c", got)
	}
}

func TestCookieLinesAreJoined(t *testing.T) {
	snap := mustSnapshot(t, engine.Data{
		Sources:     []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(500)}},
	})
	hs := newHarness(t, Config{Rand: fixedRand(0.1)}, nil)
	hs.store.Publish(snap, testNow())
	hs.raw(t, rawRequest("/", "Cookie: a=1", "Cookie: dwf_x=False"))
	got := hs.backend.last(t)
	if diff := cmp.Diff([]string{"a=1; dwf_x=False"}, got.Header["Cookie"]); diff != "" {
		t.Errorf("Cookie (-want +got):\n%s", diff)
	}
	p := decode(t, got.Header)
	if p.Flags["x"] || p.Sources["x"] != "cookie" {
		t.Errorf("x = %v from %q, want false from the second cookie line", p.Flags["x"], p.Sources["x"])
	}
}

func TestTestingHeader(t *testing.T) {
	snap := mustSnapshot(t, engine.Data{
		Sources:     []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{{Name: "my_flag", Testing: true}},
	})
	tests := []struct {
		header string
		on     bool
		source string
	}{
		{"Dwft-My-Flag: 1", true, "header"},
		{"dwft-my-flag: 1", true, "header"},
		{"dwft_my_flag: 1", false, ""}, // dropped or conflated by WSGI servers
		{"X-Other: 1", false, ""},
	}
	hs := newHarness(t, Config{}, nil)
	hs.store.Publish(snap, testNow())
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			hs.raw(t, rawRequest("/", tt.header))
			p := decode(t, hs.backend.last(t).Header)
			if p.Flags["my_flag"] != tt.on || p.Sources["my_flag"] != tt.source {
				t.Errorf("my_flag = %v from %q, want %v from %q", p.Flags["my_flag"], p.Sources["my_flag"], tt.on, tt.source)
			}
		})
	}
}

// TestLanguage checks that Config.Locale's LANGUAGE_CODE reaches waffle's
// languages column, from the outbound path, the cookies and every
// Accept-Language line; and that without a Locale the column never matches.
func TestLanguage(t *testing.T) {
	snap := mustSnapshot(t, engine.Data{
		Sources:     []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{{Name: "fr_only", Languages: "fr"}, {Name: "de_only", Languages: "de"}},
	})
	locale := engine.NewLocale(engine.LocaleSettings{I18N: true, LanguageCode: "en", Languages: []string{"en", "fr", "de"},
		CookieName: "django_language", Patterns: true, PrefixDefaultLanguage: true})
	tests := []struct {
		name   string
		locale *engine.Locale
		target string
		lines  []string
		fr, de bool
	}{
		{"no LocaleMiddleware", nil, "/", []string{"Accept-Language: fr"}, false, false},
		{"Accept-Language", locale, "/", []string{"Accept-Language: fr-CA"}, true, false},
		{"two Accept-Language lines", locale, "/", []string{"Accept-Language: xx", "Accept-Language: de;q=0.9"}, false, true},
		{"cookie", locale, "/", []string{"Cookie: django_language=de", "Accept-Language: fr"}, false, true},
		{"path prefix", locale, "/de/page", []string{"Accept-Language: fr"}, false, true},
		{"default", locale, "/", nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, Config{Locale: tt.locale}, nil)
			hs.store.Publish(snap, testNow())
			hs.raw(t, rawRequest(tt.target, tt.lines...))
			p := decode(t, hs.backend.last(t).Header)
			if p.Flags["fr_only"] != tt.fr || p.Flags["de_only"] != tt.de {
				t.Errorf("fr_only %v, de_only %v; want %v, %v", p.Flags["fr_only"], p.Flags["de_only"], tt.fr, tt.de)
			}
		})
	}
}

func TestHeaderValues(t *testing.T) {
	h := headerValues(http.Header{
		"Dwft-X":       {"1", "1"},
		"Dwft-My-Flag": {"0"},
		"Dwft_other":   {"1"},
		"X-A.b~c":      {"2"},
	})
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"dwft_x", "1,1", true},
		{"dwft-my-flag", "0", true},
		{"DWFT_MY_FLAG", "0", true},
		{"dWfT-mY-fLaG", "0", true},
		{"dwft_other", "", false},
		{"Dwft_other", "", false},
		{"x-a.B~C", "2", true},
		{"dwft-y", "", false},
		{"dwft-has space", "", false},
		{"", "", false},
		{strings.Repeat("a", 100), "", false},
	}
	for _, tt := range tests {
		if v, ok := h.Get(tt.name); v != tt.value || ok != tt.ok {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.value, tt.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { h.Get("dwft-my-flag") }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func TestIdentityAndOverrides(t *testing.T) {
	snap := mustSnapshot(t, engine.Data{
		Sources:      []engine.Source{engine.SourceFeatureFlag},
		FeatureFlags: []engine.FeatureFlag{{Key: "vip", Enabled: true, AllowedUsers: []string{"7"}}, {Key: "x", Enabled: true}},
	})
	tests := []struct {
		name      string
		cfg       Config
		want      map[string]bool
		sources   map[string]string
		idErrs    float64
		overrErrs float64
	}{
		{"no resolver", Config{}, map[string]bool{"vip": false, "x": false}, map[string]string{}, 0, 0},
		{"user 7", Config{Subjects: fakeResolver{s: engine.Subject{UserID: "7", Authenticated: true}}},
			map[string]bool{"vip": true, "x": false}, map[string]string{}, 0, 0},
		{"resolver error", Config{Subjects: fakeResolver{err: errors.New("db down")}},
			map[string]bool{"vip": false, "x": false}, map[string]string{}, 1, 0},
		{"url override", Config{Overrider: fakeOverrider{o: engine.Overrides{URL: map[string]bool{"x": true}}}},
			map[string]bool{"vip": false, "x": true}, map[string]string{"x": "url"}, 0, 0},
		{"override error", Config{Overrider: fakeOverrider{err: errors.New("bad cookie")}},
			map[string]bool{"vip": false, "x": false}, map[string]string{}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, tt.cfg, nil)
			hs.store.Publish(snap, testNow())
			hs.get(t, "/", nil)
			p := decode(t, hs.backend.last(t).Header)
			if diff := cmp.Diff(tt.want, p.Flags); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.sources, p.Sources); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(hs.proxy.metrics.identityErrors); got != tt.idErrs {
				t.Errorf("identity errors = %v, want %v", got, tt.idErrs)
			}
			if got := testutil.ToFloat64(hs.proxy.metrics.overrideErrors); got != tt.overrErrs {
				t.Errorf("override errors = %v, want %v", got, tt.overrErrs)
			}
		})
	}
}

// TestOverrideCookieAndCount: the overrider's cookie reaches the client and
// each flag an override decided is counted.
func TestOverrideCookieAndCount(t *testing.T) {
	snap := mustSnapshot(t, engine.Data{
		Sources:  []engine.Source{engine.SourceFeatureFlipper},
		Features: []engine.Feature{{Name: "a"}, {Name: "b", Enabled: true}},
	})
	cookie := &http.Cookie{Name: "flagproxy_overrides", Value: "v", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	hs := newHarness(t, Config{Overrider: fakeOverrider{
		o:      engine.Overrides{URL: map[string]bool{"a": true, "unknown": true}, Session: map[string]bool{"b": false}},
		cookie: cookie,
	}}, nil)
	hs.store.Publish(snap, testNow())
	resp := hs.get(t, "/", nil)
	if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || got[0] != cookie.String() {
		t.Errorf("Set-Cookie = %q, want %q", got, cookie.String())
	}
	p := decode(t, hs.backend.last(t).Header)
	if diff := cmp.Diff(map[string]string{"a": "url", "b": "session"}, p.Sources); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.overridesApplied.WithLabelValues("url", "on")); got != 1 {
		t.Errorf("url/on overrides counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.overridesApplied.WithLabelValues("session", "off")); got != 1 {
		t.Errorf("session/off overrides counted %v, want 1", got)
	}
}

// TestCrossSiteNavigationFlipsNothing: a request from another site reaches
// the overrider without its query, whether the browser says so with
// Sec-Fetch-Site or, lacking it (older Safari), with Origin or Referer.
func TestCrossSiteNavigationFlipsNothing(t *testing.T) {
	var saw []string
	hs := newHarness(t, Config{Overrider: fakeOverrider{sawQuery: &saw}}, nil)
	hs.store.Publish(mustSnapshot(t, engine.Data{}), testNow())
	host := hs.frontend.Listener.Addr().String()
	for _, tc := range []struct {
		header http.Header
		cross  bool
	}{
		{http.Header{"Sec-Fetch-Site": {"cross-site"}}, true},
		{http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"https://evil.test"}}, false},
		{http.Header{"Sec-Fetch-Site": {"none"}}, false},
		{http.Header{"Origin": {"https://evil.test"}}, true},
		{http.Header{"Origin": {"null"}}, true},
		{http.Header{"Origin": {"http://" + host}}, false},
		{http.Header{"Referer": {"https://evil.test/page?enable_x"}}, true},
		{http.Header{"Referer": {"http://" + strings.ToUpper(host) + "/page"}}, false},
		{http.Header{"Referer": {"::not a url"}}, true},
		{http.Header{"Origin": {"http://" + host}, "Referer": {"https://evil.test/"}}, false},
		{nil, false},
	} {
		saw = nil
		hs.get(t, "/?session_disable_x", tc.header)
		if got := len(saw) == 0; got != tc.cross {
			t.Errorf("%v: overrider got query %q, want cross-site %v", tc.header, saw, tc.cross)
		}
		if got := hs.backend.last(t).URL.RawQuery; got != "session_disable_x" {
			t.Errorf("the URL reached Django as %q", got)
		}
	}
}

func TestNewValidates(t *testing.T) {
	good, _ := url.Parse("http://127.0.0.1:8000")
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty", Config{}, []string{"upstream: missing", "snapshots: missing"}},
		{"relative", Config{Upstream: &url.URL{Path: "/x"}, Snapshots: &engine.Store{}}, []string{"scheme must be http or https"}},
		{"no host", Config{Upstream: &url.URL{Scheme: "http"}, Snapshots: &engine.Store{}}, []string{"missing host"}},
		{"query", Config{Upstream: &url.URL{Scheme: "http", Host: "x", RawQuery: "a=1"}, Snapshots: &engine.Store{}}, []string{"query or fragment"}},
		{"everything else", Config{Upstream: good, Snapshots: &engine.Store{}, StaleAfter: -1, UpstreamTimeout: -1,
			TrustedProxies: []netip.Prefix{{}}}, []string{"invalid prefix", "stale after", "upstream timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := New(Config{Upstream: good, Snapshots: &engine.Store{}}); err != nil {
		t.Errorf("New with a minimal config: %v", err)
	}
}

// TestTrailersCannotCarryOurHeaders sends a chunked request whose trailers
// name our header; neither the announcement nor the values may reach the
// backend.
func TestTrailersCannotCarryOurHeaders(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	hs.raw(t, "POST /t HTTP/1.1\r\nHost: django.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"+
		"Trailer: X-Flagproxy-Flags, X_Flagproxy_Signature\r\n\r\n"+
		"3\r\nabc\r\n0\r\nX-Flagproxy-Flags: forged\r\nX_Flagproxy_Signature: forged\r\n\r\n")
	got := hs.backend.last(t)
	for k, v := range got.Header {
		if inNamespace(k) && k != FlagsHeader || strings.Contains(strings.Join(v, ","), "forged") {
			t.Errorf("backend saw %s: %q", k, v)
		}
		if k == "Trailer" {
			t.Errorf("backend saw a trailer announcement %q", v)
		}
	}
	for k, v := range got.Trailer {
		if inNamespace(k) {
			t.Errorf("backend saw trailer %s: %q", k, v)
		}
	}
}
