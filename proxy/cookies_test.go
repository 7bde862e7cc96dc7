package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

func TestWaffleCookies(t *testing.T) {
	const expires = "expires=Mon, 21 Dec 2026 07:58:48 GMT"
	tests := []struct {
		name     string
		flags    []engine.WaffleFlag
		settings *engine.WaffleSettings
		roll     float64
		target   string
		cookie   string
		want     []string
		on       bool
		source   string
	}{
		{
			name:  "percentage roll on",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(500)}},
			roll:  0.3, target: "/",
			want:   []string{"dwf_x=True; " + expires + "; Max-Age=2592000; Path=/; Secure", "flagproxy_waffle_renewed=1795247928; " + expires + "; Max-Age=2592000; Path=/; Secure"},
			on:     true,
			source: "roll",
		},
		{
			name:  "a fresh roll under a recent marker writes no marker",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(500)}},
			roll:  0.3, target: "/", cookie: "flagproxy_waffle_renewed=1795247900",
			want:   []string{"dwf_x=True; " + expires + "; Max-Age=2592000; Path=/; Secure"},
			on:     true,
			source: "roll",
		},
		{
			name:  "rollout off is a session cookie",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(500), Rollout: true}},
			roll:  0.9, target: "/",
			want:   []string{"dwf_x=False; Path=/; Secure"},
			source: "roll",
		},
		{
			name:  "existing cookie honoured and re-issued",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(999)}},
			roll:  0, target: "/", cookie: "dwf_x=False",
			want:   []string{"dwf_x=False; " + expires + "; Max-Age=2592000; Path=/; Secure", "flagproxy_waffle_renewed=1795247928; " + expires + "; Max-Age=2592000; Path=/; Secure"},
			source: "cookie",
		},
		{
			name:  "renewed less than a day ago: nothing to write",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(999)}},
			roll:  0, target: "/", cookie: "dwf_x=False; flagproxy_waffle_renewed=1795161529",
			source: "cookie",
		},
		{
			name:  "renewed a day ago: renew again",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(999)}},
			roll:  0, target: "/", cookie: "dwf_x=False; flagproxy_waffle_renewed=1795161528",
			want:   []string{"dwf_x=False; " + expires + "; Max-Age=2592000; Path=/; Secure", "flagproxy_waffle_renewed=1795247928; " + expires + "; Max-Age=2592000; Path=/; Secure"},
			source: "cookie",
		},
		{
			name:  "a changed value is written even when renewed recently",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(999)}},
			roll:  0, target: "/", cookie: "dwf_x=true; flagproxy_waffle_renewed=1795247900",
			want:   []string{"dwf_x=False; " + expires + "; Max-Age=2592000; Path=/; Secure"},
			source: "cookie",
		},
		{
			name:  "a marker from the future renews",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(999)}},
			roll:  0, target: "/", cookie: "dwf_x=False; flagproxy_waffle_renewed=1895247928",
			want:   []string{"dwf_x=False; " + expires + "; Max-Age=2592000; Path=/; Secure", "flagproxy_waffle_renewed=1795247928; " + expires + "; Max-Age=2592000; Path=/; Secure"},
			source: "cookie",
		},
		{
			name:  "quoted cookie with spaces",
			flags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(1)}},
			roll:  0.9, target: "/", cookie: `dwf_x = "True" `,
			want: []string{"dwf_x=True; " + expires + "; Max-Age=2592000; Path=/; Secure", "flagproxy_waffle_renewed=1795247928; " + expires + "; Max-Age=2592000; Path=/; Secure"},
			on:   true, source: "cookie",
		},
		{
			name:   "testing query",
			flags:  []engine.WaffleFlag{{Name: "x", Testing: true}},
			target: "/?dwft_x=1",
			want:   []string{"dwft_x=True; Path=/"},
			on:     true, source: "query",
		},
		{
			name:   "testing cookie writes nothing",
			flags:  []engine.WaffleFlag{{Name: "x", Testing: true}},
			target: "/", cookie: "dwft_x=True",
			on: true, source: "cookie",
		},
		{
			name:     "insecure, short max age",
			flags:    []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(500)}},
			settings: &engine.WaffleSettings{Cookie: "ab_%s", TestCookie: "dwft_%s", MaxAge: 60},
			roll:     0.3, target: "/",
			want: []string{"ab_x=True; expires=Sat, 21 Nov 2026 07:59:48 GMT; Max-Age=60; Path=/",
				"flagproxy_waffle_renewed=1795247928; expires=Sat, 21 Nov 2026 07:59:48 GMT; Max-Age=60; Path=/"},
			on:     true,
			source: "roll",
		},
		{
			name:  "colon is legal in Python",
			flags: []engine.WaffleFlag{{Name: "a:b", Percent: engine.PercentOf(500)}},
			roll:  0.3, target: "/",
			want: []string{"dwf_a:b=True; " + expires + "; Max-Age=2592000; Path=/; Secure", "flagproxy_waffle_renewed=1795247928; " + expires + "; Max-Age=2592000; Path=/; Secure"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := engine.Data{Sources: []engine.Source{engine.SourceWaffle}, WaffleFlags: tt.flags}
			if tt.settings != nil {
				d.Waffle = *tt.settings
			}
			hs := newHarness(t, Config{Rand: fixedRand(tt.roll)}, nil)
			hs.store.Publish(mustSnapshot(t, d), testNow())
			h := map[string][]string{}
			if tt.cookie != "" {
				h["Cookie"] = []string{tt.cookie}
			}
			res := hs.get(t, tt.target, h)
			if diff := cmp.Diff(tt.want, res.Header["Set-Cookie"]); diff != "" {
				t.Errorf("Set-Cookie (-want +got):\n%s", diff)
			}
			if tt.flags[0].Name != "x" {
				return
			}
			p := decode(t, hs.backend.last(t).Header)
			if p.Flags["x"] != tt.on || p.Sources["x"] != tt.source {
				t.Errorf("x = %v from %q, want %v from %q", p.Flags["x"], p.Sources["x"], tt.on, tt.source)
			}
		})
	}
}

func TestCookieKeepsUpstreamSetCookie(t *testing.T) {
	hs := newHarness(t, Config{Rand: fixedRand(0)}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sessionid=abc; HttpOnly; Path=/")
	})
	hs.store.Publish(mustSnapshot(t, engine.Data{
		Sources:     []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{{Name: "x", Percent: engine.PercentOf(500)}},
	}), testNow())
	res := hs.get(t, "/", nil)
	want := []string{"sessionid=abc; HttpOnly; Path=/", "dwf_x=True; expires=Mon, 21 Dec 2026 07:58:48 GMT; Max-Age=2592000; Path=/; Secure",
		"flagproxy_waffle_renewed=1795247928; expires=Mon, 21 Dec 2026 07:58:48 GMT; Max-Age=2592000; Path=/; Secure"}
	if diff := cmp.Diff(want, res.Header["Set-Cookie"]); diff != "" {
		t.Errorf("Set-Cookie (-want +got):\n%s", diff)
	}
}

// TestFirstVisitMarksRenewal: a first visit writes every percentage
// cookie and the renewal marker, so a browser that sends them back gets no
// Set-Cookie line on its second visit, and keeps its sides.
func TestFirstVisitMarksRenewal(t *testing.T) {
	hs := newHarness(t, Config{Rand: fixedRand(0.3)}, nil)
	hs.store.Publish(mustSnapshot(t, engine.Data{
		Sources: []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{{Name: "on", Percent: engine.PercentOf(500)},
			{Name: "off", Percent: engine.PercentOf(100)}, {Name: "t", Testing: true}},
	}), testNow())
	first := hs.get(t, "/?dwft_t=1", nil)
	var jar []string
	for _, c := range first.Cookies() {
		jar = append(jar, c.Name+"="+c.Value)
	}
	want := []string{"dwf_off=False", "dwf_on=True", "dwft_t=True", RefreshCookie + "=1795247928"}
	if diff := cmp.Diff(want, jar); diff != "" {
		t.Fatalf("first visit's cookies (-want +got):\n%s", diff)
	}
	second := hs.get(t, "/", http.Header{"Cookie": {strings.Join(jar, "; ")}})
	if got := second.Header["Set-Cookie"]; len(got) > 0 {
		t.Errorf("second visit wrote %q, want nothing", got)
	}
	if p := decode(t, hs.backend.last(t).Header); !p.Flags["on"] || p.Flags["off"] || p.Sources["on"] != "cookie" {
		t.Errorf("second visit: flags %v from %v, want on kept from its cookie", p.Flags, p.Sources)
	}
}

func TestIllegalCookieNamesAreSkipped(t *testing.T) {
	snap := mustSnapshot(t, engine.Data{
		Sources: []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{
			{Name: "has space", Percent: engine.PercentOf(500)},
			{Name: "ok", Percent: engine.PercentOf(500)},
			{Name: "semi;colon", Percent: engine.PercentOf(500)},
			{Name: "ünï", Percent: engine.PercentOf(500)},
		},
		Waffle: engine.WaffleSettings{Cookie: "%s", TestCookie: "dwft_%s", Secure: true, MaxAge: 10},
	})
	hs := newHarness(t, Config{Rand: fixedRand(0)}, nil)
	hs.store.Publish(snap, testNow())
	res := hs.get(t, "/", nil)
	want := []string{"ok=True; expires=Sat, 21 Nov 2026 07:58:58 GMT; Max-Age=10; Path=/; Secure",
		"flagproxy_waffle_renewed=1795247928; expires=Sat, 21 Nov 2026 07:58:58 GMT; Max-Age=10; Path=/; Secure"}
	if diff := cmp.Diff(want, res.Header["Set-Cookie"]); diff != "" {
		t.Errorf("Set-Cookie (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.cookiesSkipped); got != 3 {
		t.Errorf("skipped cookies = %v, want 3", got)
	}
}

func TestPythonAccepts(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"dwf_x", true}, {"a:b", true}, {"!#$%&'*+-.^_`|~:", true},
		{"", false}, {"a b", false}, {"a;b", false}, {"a=b", false}, {"a,b", false}, {"a\"b", false},
		{"a/b", false}, {"a@b", false}, {"é", false}, {"Path", false}, {"max-age", false}, {"SameSite", false},
	}
	for _, tt := range tests {
		if got := pythonAccepts(engine.Cookie{Name: tt.name, Value: "True"}); got != tt.ok {
			t.Errorf("pythonAccepts(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}
