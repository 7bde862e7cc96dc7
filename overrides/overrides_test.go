package overrides

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

var (
	keyA = []byte("0123456789abcdef0123456789abcdef-a")
	keyB = []byte("0123456789abcdef0123456789abcdef-b")
)

var (
	anon    = engine.Anonymous
	perm    = engine.Subject{UserID: "1", Authenticated: true, Active: true, Permissions: []string{"featureflipper.can_flip_with_url"}}
	perm2   = engine.Subject{UserID: "2", Authenticated: true, Active: true, Permissions: []string{"featureflipper.can_flip_with_url"}}
	plain   = engine.Subject{UserID: "3", Authenticated: true, Active: true}
	staff   = engine.Subject{UserID: "4", Authenticated: true, Active: true, Staff: true}
	super   = engine.Subject{UserID: "5", Authenticated: true, Active: true, Superuser: true}
	revoked = engine.Subject{UserID: "1", Authenticated: true, Active: true} // perm's user after the permission was withdrawn
)

func newOverrider(t *testing.T, cfg Config) *Overrider {
	t.Helper()
	if cfg.Keys == nil {
		cfg.Keys = [][]byte{keyA}
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// request runs one request: query string, the override cookie (if any)
// and the subject; it returns the overrides and the cookie value after the
// request (the one sent, or the one set).
func request(t *testing.T, o *Overrider, rawQuery, cookie string, s engine.Subject) (engine.Overrides, string, *http.Cookie) {
	t.Helper()
	cookies := engine.Params{}
	if cookie != "" {
		cookies[o.cfg.CookieName] = cookie
	}
	keys := engine.ParseQueryKeys(rawQuery)
	got, set, err := o.Overrides(context.Background(), engine.OverrideQuery{Keys: keys, Cookies: cookies, Subject: s, Snapshot: knowing(t, keys)})
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		cookie = set.Value
	}
	return got, cookie, set
}

// TestFeatureFlipperScenarios follows spec/feature-flipper.md §13 with
// DESIGN.md §3's gate: URL overrides, like session ones, need the flip
// permission.
func TestFeatureFlipperScenarios(t *testing.T) {
	on, off := true, false
	tests := []struct {
		name    string
		subject engine.Subject
		status  map[string]bool // the Django session's feature_status_ entries
		query   string
		anonOK  bool
		url     map[string]bool
		session map[string]bool
	}{
		{"1 nothing", anon, nil, "", false, nil, nil},
		{"2 anonymous enable_ is gated", anon, nil, "enable_search", false, nil, nil},
		{"3 anonymous session_enable_ ignored", anon, nil, "session_enable_search", false, nil, nil},
		{"4 plain user session_enable_ ignored", plain, nil, "session_enable_search", false, nil, nil},
		{"5 permitted session_enable_", perm, nil, "session_enable_search", false, nil, map[string]bool{"search": on}},
		{"9 Django session entries need no permission", plain, map[string]bool{"search": true}, "", false, nil, map[string]bool{"search": on}},
		{"10 a disabling entry", anon, map[string]bool{"profile": false}, "", false, nil, map[string]bool{"profile": off}},
		{"11 value ignored", perm, nil, "enable_search=false", false, map[string]bool{"search": on}, nil},
		{"12 any name the snapshot knows, hyphens included", perm, nil, "enable_beta-x&enable_new.checkout%20v2", false, map[string]bool{"beta-x": on, "new.checkout v2": on}, nil},
		{"13 unknown names are refused", perm, nil, "enable_unknown", false, nil, nil},
		{"15 anonymous flipping on", anon, nil, "session_enable_search&enable_x", true, map[string]bool{"x": on}, map[string]bool{"search": on}},
		{"16 case-sensitive", perm, nil, "enable_Search", false, map[string]bool{"Search": on}, nil},
		{"17 url and session", perm, nil, "session_enable_search&enable_search", false, map[string]bool{"search": on}, map[string]bool{"search": on}},
		{"18 trailing newline", perm, nil, "enable_search%0A", false, map[string]bool{"search": on}, nil},
		{"21 semicolon is no separator: one name, a;enable_b", perm, nil, "enable_a;enable_b", false, map[string]bool{"a;enable_b": on}, nil},
		{"superuser may flip", super, nil, "enable_x", false, map[string]bool{"x": on}, nil},
		{"staff alone may not", staff, nil, "enable_x", false, nil, nil},
		{"disable extension", perm, nil, "disable_x&session_disable_y", false, map[string]bool{"x": off}, map[string]bool{"y": off}},
		{"disable beats enable", perm, nil, "enable_x&disable_x", false, map[string]bool{"x": off}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOverrider(t, Config{AnonymousFlipping: tt.anonOK})
			s := tt.subject
			s.FeatureStatus = tt.status
			got, _, _ := request(t, o, tt.query, "", s)
			want := engine.Overrides{URL: tt.url, Session: tt.session}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(engine.Overrides{}, "Allowed", "Refused")); diff != "" {
				t.Errorf("overrides (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSessionOverridesLastAndClear(t *testing.T) {
	o := newOverrider(t, Config{})
	_, c, set := request(t, o, "session_enable_search&session_disable_beta", "", perm)
	if set == nil || !set.HttpOnly || set.SameSite != http.SameSiteLaxMode || set.Path != "/" || set.MaxAge <= 0 {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/, a max age", set)
	}
	for range 3 {
		got, _, set := request(t, o, "", c, perm)
		if !got.Session["search"] || got.Session["beta"] != false || len(got.Session) != 2 || set != nil {
			t.Fatalf("later request: %+v (set %v)", got, set)
		}
	}
	// Clearing first, then adding in the same request.
	got, c2, _ := request(t, o, "session_clear_features&session_enable_profile", c, perm)
	if diff := cmp.Diff(map[string]bool{"profile": true}, got.Session); diff != "" {
		t.Errorf("after clear+enable (-want +got):\n%s", diff)
	}
	got, _, set = request(t, o, "session_clear_features", c2, perm)
	if len(got.Session) != 0 || set == nil || set.MaxAge >= 0 {
		t.Errorf("after clear: %+v, cookie %+v; want none and a deleting cookie", got, set)
	}
}

// TestStoredOverridesStayWithTheirUser: the cookie applies only to the user
// who set it, and only while that user may flip.
func TestStoredOverridesStayWithTheirUser(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := newOverrider(t, Config{Registerer: reg})
	_, c, _ := request(t, o, "session_enable_search", "", perm)
	for name, s := range map[string]engine.Subject{"another permitted user": perm2, "anonymous": anon, "a user without the permission": plain, "the same user after the permission was withdrawn": revoked} {
		got, _, set := request(t, o, "", c, s)
		if len(got.Session) != 0 || set != nil {
			t.Errorf("%s: %+v, cookie set %v; want nothing", name, got, set)
		}
	}
	// Another permitted user who stores overrides gets a cookie of their own.
	got, c2, _ := request(t, o, "session_enable_other", c, perm2)
	if diff := cmp.Diff(map[string]bool{"other": true}, got.Session); diff != "" {
		t.Errorf("second user's overrides (-want +got):\n%s", diff)
	}
	if got, _, _ := request(t, o, "", c2, perm); len(got.Session) != 0 {
		t.Errorf("the second user's cookie applied to the first: %+v", got)
	}
	if n := testutil.ToFloat64(o.rejected.WithLabelValues("foreign_user")); n < 2 {
		t.Errorf("foreign_user count = %v", n)
	}
	if n := testutil.ToFloat64(o.rejected.WithLabelValues("not_allowed")); n != 1 {
		t.Errorf("not_allowed count = %v, want 1", n)
	}
}

func TestTamperedExpiredAndForeignKeyCookiesChangeNothing(t *testing.T) {
	o := newOverrider(t, Config{MaxAge: time.Hour})
	_, c, _ := request(t, o, "session_enable_search", "", perm)
	flip := []byte(c)
	flip[len(flip)/2] ^= 1
	other := newOverrider(t, Config{Keys: [][]byte{keyB}})
	_, foreign, _ := request(t, other, "session_enable_search", "", perm)
	for name, v := range map[string]string{
		"tampered": string(flip), "truncated": c[:len(c)-5], "garbage": "%%%", "empty-ish": "x",
		"another deployment's key": foreign,
	} {
		got, _, set := request(t, o, "", v, perm)
		if len(got.Session) != 0 || set != nil {
			t.Errorf("%s: %+v (set %v), want nothing", name, got, set)
		}
	}
	if n := testutil.ToFloat64(o.rejected.WithLabelValues("invalid")); n != 5 {
		t.Errorf("invalid count = %v, want 5", n)
	}
}

// TestKeyRotation: a cookie made with the old key still reads when the old
// key follows a new one, and is rewritten with the new key.
func TestKeyRotation(t *testing.T) {
	old := newOverrider(t, Config{Keys: [][]byte{keyA}})
	_, c, _ := request(t, old, "session_enable_search", "", perm)
	rotated := newOverrider(t, Config{Keys: [][]byte{keyB, keyA}})
	got, c2, _ := request(t, rotated, "session_enable_more", c, perm)
	if !got.Session["search"] || !got.Session["more"] {
		t.Fatalf("rotated read: %+v", got)
	}
	onlyNew := newOverrider(t, Config{Keys: [][]byte{keyB}})
	if got, _, _ := request(t, onlyNew, "", c2, perm); !got.Session["search"] {
		t.Errorf("cookie rewritten after rotation does not read with the new key alone: %+v", got)
	}
	if got, _, _ := request(t, onlyNew, "", c, perm); len(got.Session) != 0 {
		t.Errorf("an old-key cookie read after the old key was retired: %+v", got)
	}
}

func TestStoredOverridesAreBounded(t *testing.T) {
	o := newOverrider(t, Config{MaxStored: 10})
	var q []string
	for i := range 40 {
		q = append(q, "session_enable_flag_"+strings.Repeat("x", 60)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	got, c, _ := request(t, o, strings.Join(q, "&"), "", perm)
	if len(got.Session) != 10 {
		t.Errorf("%d overrides kept, want 10", len(got.Session))
	}
	if len(c) > maxCookieLength {
		t.Errorf("cookie of %d bytes", len(c))
	}
	if _, err := New(Config{Keys: [][]byte{[]byte("short")}}); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

func TestFromQuery(t *testing.T) {
	got := FromQuery(engine.ParseQueryKeys("enable_b&enable_a=0&enable_a&disable_c&session_enable_d&session_disable_e&session_clear_features=no&enable_&enable_caf%C3%A9&other=1&enable_x%0A"))
	want := Query{Enable: []string{"a", "b", "café", "x"}, Disable: []string{"c"}, SessionEnable: []string{"d"}, SessionDisable: []string{"e"}, SessionClear: true}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Query{}, "Params", "TooMany")); diff != "" {
		t.Errorf("FromQuery (-want +got):\n%s", diff)
	}
	if !FromQuery(nil).Empty() {
		t.Error("nil query is not empty")
	}
}

// TestFromQueryKeepsTheFirst64InQueryOrder: beyond 64 names the first in
// the query win, every time (a map's order would pick at random).
func TestFromQueryKeepsTheFirst64InQueryOrder(t *testing.T) {
	var parts []string
	for i := range 80 {
		parts = append(parts, fmt.Sprintf("enable_f%02d", 79-i))
	}
	parts = append(parts, "enable_search")
	raw := strings.Join(parts, "&")
	for range 20 {
		q := FromQuery(engine.ParseQueryKeys(raw))
		if len(q.Enable) != 64 || slices.Contains(q.Enable, "search") || !slices.Contains(q.Enable, "f79") || slices.Contains(q.Enable, "f15") {
			t.Fatalf("FromQuery kept %v", q.Enable)
		}
	}
	if q := FromQuery(engine.ParseQueryKeys("enable_a&enable_a&enable_b")); !slices.Equal(q.Enable, []string{"a", "b"}) {
		t.Errorf("duplicates: %v", q.Enable)
	}
}

func FuzzFromQuery(f *testing.F) {
	for _, s := range []string{"enable_x", "session_enable_a&session_clear_features", "disable_%0A&enable_%00", "enable_a;enable_b", "session_disable_Z9_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q := FromQuery(engine.ParseQueryKeys(raw))
		for _, l := range [][]string{q.Enable, q.Disable, q.SessionEnable, q.SessionDisable} {
			for i, n := range l {
				if !engine.OverrideName(n) {
					t.Fatalf("unflippable name %q from %q", n, raw)
				}
				if i > 0 && l[i-1] >= n {
					t.Fatalf("names not sorted and unique: %q", l)
				}
			}
		}
	})
}

// FuzzOverrideCookie: whatever cookie value a client sends, the overrider
// neither fails nor grants a stored override it did not write.
func FuzzOverrideCookie(f *testing.F) {
	o, err := New(Config{Keys: [][]byte{keyA}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("MTcwMDAwMDAwMHx4fHk=")
	f.Add("")
	f.Add(strings.Repeat("A", 5000))
	f.Fuzz(func(t *testing.T, v string) {
		got, set, err := o.Overrides(context.Background(), engine.OverrideQuery{Cookies: engine.Params{DefaultCookieName: v}, Subject: perm})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Session) != 0 || len(got.URL) != 0 || set != nil {
			t.Fatalf("cookie %q gave %+v", v, got)
		}
	})
}

// TestLongNamesFitTheCookie: with the defaults and names of the longest
// kinds (feature-flipper 40, waffle 100 characters), the stored overrides
// are cut to what fits a browser's cookie, and the request's other
// overrides are never lost.
func TestLongNamesFitTheCookie(t *testing.T) {
	for _, n := range []int{40, 100} {
		o := newOverrider(t, Config{})
		var q []string
		for i := range 70 {
			q = append(q, fmt.Sprintf("session_enable_%s%03d", strings.Repeat("n", n-3), i))
		}
		s := perm
		s.FeatureStatus = map[string]bool{"fs": true}
		got, _, set := request(t, o, strings.Join(append(q, "enable_x"), "&"), "", s)
		if !got.URL["x"] || !got.Session["fs"] {
			t.Errorf("%d-character names: the URL or Django-session override was lost: %+v", n, got)
		}
		if set == nil || len(set.Name)+1+len(set.Value) > maxCookieLength {
			t.Fatalf("%d-character names: cookie %v", n, set)
		}
		stored := len(got.Session) - 1
		if stored < 10 {
			t.Errorf("%d-character names: only %d overrides stored", n, stored)
		}
		again, _, _ := request(t, o, "", set.Value, perm)
		if len(again.Session) != stored {
			t.Errorf("%d-character names: %d stored, %d read back", n, stored, len(again.Session))
		}
	}
}

func TestExpiredCookieChangesNothing(t *testing.T) {
	o := newOverrider(t, Config{MaxAge: time.Second})
	_, c, _ := request(t, o, "session_enable_search", "", perm)
	if got, _, _ := request(t, o, "", c, perm); !got.Session["search"] {
		t.Fatal("fresh cookie not read")
	}
	time.Sleep(2100 * time.Millisecond)
	if got, _, _ := request(t, o, "", c, perm); len(got.Session) != 0 {
		t.Errorf("expired cookie applied: %+v", got)
	}
}

// knowing is a snapshot whose flags are every name the keys ask to flip,
// except those beginning with "unknown".
func knowing(t testing.TB, keys []string) *engine.Snapshot {
	t.Helper()
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceFeatureFlipper}
	seen := map[string]bool{}
	for _, p := range FromQuery(keys).Params {
		if p.Name != "" && !seen[p.Name] && !strings.HasPrefix(p.Name, "unknown") {
			seen[p.Name] = true
			d.Features = append(d.Features, engine.Feature{Name: p.Name})
		}
	}
	s, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRefusals: every override parameter not applied is reported once,
// with its reason.
func TestRefusals(t *testing.T) {
	o := newOverrider(t, Config{})
	snap := knowing(t, []string{"enable_beta", "enable_gradual-rollout"})
	ask := func(raw string, s engine.Subject, crossSite bool) engine.Overrides {
		t.Helper()
		got, _, err := o.Overrides(context.Background(), engine.OverrideQuery{Keys: engine.ParseQueryKeys(raw), Subject: s, Snapshot: snap, CrossSite: crossSite})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	tests := []struct {
		name      string
		raw       string
		s         engine.Subject
		crossSite bool
		want      []engine.Refusal
		allowed   bool
	}{
		{"anonymous", "enable_beta&x=1&session_clear_features", anon, false, []engine.Refusal{
			{Param: "enable_beta", Name: "beta", Reason: engine.RefusedNotPermitted},
			{Param: "session_clear_features", Reason: engine.RefusedNotPermitted}}, false},
		{"unknown", "enable_gradual-rollout&session_disable_nope&enable_gradual-rollout", perm, false, []engine.Refusal{
			{Param: "session_disable_nope", Name: "nope", Reason: engine.RefusedUnknownFlag}}, true},
		{"cross-site", "enable_beta", perm, true, []engine.Refusal{{Param: "enable_beta", Name: "beta", Reason: engine.RefusedCrossSite}}, true},
		{"nothing asked", "q=enable_beta", anon, false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ask(tt.raw, tt.s, tt.crossSite)
			if diff := cmp.Diff(tt.want, got.Refused, cmpopts.EquateEmpty()); diff != "" || got.Allowed != tt.allowed {
				t.Errorf("refused (-want +got):\n%s\nallowed %v", diff, got.Allowed)
			}
			if tt.crossSite && len(got.URL) > 0 {
				t.Errorf("a cross-site request flipped %v", got.URL)
			}
		})
	}
	var many []string
	for i := range 70 {
		many = append(many, fmt.Sprintf("enable_f%02d", i))
	}
	if got := ask(strings.Join(many, "&"), perm, false); len(got.Refused) != 70 || got.Refused[69].Reason != engine.RefusedUnknownFlag ||
		got.Refused[0].Reason != engine.RefusedTooMany {
		t.Errorf("70 names: %d refused, %+v", len(got.Refused), got.Refused)
	}
}

// TestPackagePermission: flagproxy_django's permission allows flipping by
// default, as feature-flipper's does; a configured list replaces both.
func TestPackagePermission(t *testing.T) {
	pkg := engine.Subject{UserID: "9", Authenticated: true, Active: true, Permissions: []string{PackagePermission}}
	if !newOverrider(t, Config{}).MayFlip(&pkg) || !newOverrider(t, Config{}).MayFlip(&perm) {
		t.Error("the default permissions do not allow flipping")
	}
	only := newOverrider(t, Config{Permissions: []string{"site.flip"}})
	if only.MayFlip(&pkg) || only.MayFlip(&perm) || !only.MayFlip(&super) {
		t.Error("a configured permission did not replace the defaults")
	}
}
