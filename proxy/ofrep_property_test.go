package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

// propOverrider is a deterministic Overrider: a staff visitor's
// "enable_<name>" query keys turn flags on, and anyone's "ovr" cookie
// turns the flag it names off for the session.
type propOverrider struct{}

func (propOverrider) Overrides(_ context.Context, q engine.OverrideQuery) (engine.Overrides, *http.Cookie, error) {
	keys, cookies, s := q.Keys, q.Cookies, q.Subject
	if q.CrossSite {
		keys = nil
	}
	o := engine.Overrides{Allowed: s.Staff}
	if s.Staff {
		for _, k := range keys {
			if name, ok := strings.CutPrefix(k, "enable_"); ok {
				if o.URL == nil {
					o.URL = map[string]bool{}
				}
				o.URL[name] = true
			}
		}
	}
	if cookies != nil {
		if v, ok := cookies.Get("ovr"); ok {
			o.Session = map[string]bool{v: false}
		}
	}
	return o, nil, nil
}

// propWorld is a random world of every source, and its users.
type propWorld struct {
	data  engine.Data
	users map[string]engine.Subject // by primary key
	names []string                  // flag names, for requests
}

// propRand is the property tests' random source and its seed: seed,
// unless the environment variable env names another.
func propRand(env string, seed, stream uint64) (*rand.Rand, uint64) {
	if s, err := strconv.ParseUint(os.Getenv(env), 10, 64); err == nil {
		seed = s
	}
	return rand.New(rand.NewPCG(seed, stream)), seed
}

// harness serves w: its users by primary key and by session key
// ("session-<pk>"), a random locale setup, and its snapshot published.
// r is the proxy's Rand (nil: the default).
func (w propWorld) harness(t *testing.T, rng *rand.Rand, r engine.Rand) (*harness, *engine.Snapshot) {
	t.Helper()
	sessions := sessionResolver{}
	for pk, s := range w.users {
		sessions["session-"+pk] = s
	}
	hs := newHarness(t, Config{Users: fakeUsers(w.users), Subjects: sessions, Overrider: propOverrider{}, Rand: r,
		Locale: engine.NewLocale(engine.LocaleSettings{I18N: true, LanguageCode: "en", Languages: []string{"en", "fr", "de"},
			CookieName: "django_language", Patterns: rng.IntN(2) == 0}),
	}, nil)
	snap := mustSnapshot(t, w.data)
	hs.store.Publish(snap, testNow())
	return hs, snap
}

func newPropWorld(rng *rand.Rand) propWorld {
	w := propWorld{data: engine.DefaultData(), users: map[string]engine.Subject{}}
	d := &w.data
	d.Sources = []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag, engine.SourceDjangoFlags}
	d.Waffle.Override = rng.IntN(2) == 0
	for pk := 1; pk <= 4; pk++ {
		s := engine.Subject{UserID: strconv.Itoa(pk), Username: fmt.Sprintf("u%d", pk), Authenticated: true, Active: true,
			Staff: rng.IntN(2) == 0, Superuser: rng.IntN(4) == 0}
		if rng.IntN(2) == 0 {
			s.Groups = []int64{int64(rng.IntN(3) + 1)}
		}
		w.users[s.UserID] = s
	}
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	for i := range 3 + rng.IntN(10) {
		f := engine.WaffleFlag{Name: fmt.Sprintf("w%d", i), Everyone: engine.Tristate(rng.IntN(3)),
			Testing: rng.IntN(3) == 0, Superusers: rng.IntN(3) == 0, Staff: rng.IntN(3) == 0,
			Authenticated: rng.IntN(4) == 0, Rollout: rng.IntN(3) == 0}
		if rng.IntN(4) != 0 {
			f.Everyone = engine.Unset
		}
		if rng.IntN(2) == 0 {
			f.Percent = engine.PercentOf(int32(rng.IntN(1001)))
		}
		if rng.IntN(3) == 0 {
			f.Languages = pick("fr", "de,fr", "en")
		}
		if rng.IntN(3) == 0 {
			f.Users = []string{strconv.Itoa(rng.IntN(5) + 1)}
		}
		if rng.IntN(3) == 0 {
			f.Groups = []int64{int64(rng.IntN(3) + 1)}
		}
		d.WaffleFlags = append(d.WaffleFlags, f)
		w.names = append(w.names, f.Name)
	}
	for i := range rng.IntN(3) {
		d.Features = append(d.Features, engine.Feature{Name: fmt.Sprintf("ff%d", i), Enabled: rng.IntN(2) == 0})
	}
	for i := range rng.IntN(3) {
		d.FeatureFlags = append(d.FeatureFlags, engine.FeatureFlag{Key: fmt.Sprintf("model%d", i), Enabled: rng.IntN(4) != 0,
			RolloutPercent: int64(rng.IntN(101)), AllowedUsers: []string{strconv.Itoa(rng.IntN(5) + 1)}})
	}
	for i := range rng.IntN(3) {
		st := engine.FlagState{Name: fmt.Sprintf("DJ%d", i)}
		switch rng.IntN(4) {
		case 0:
			st.Condition, st.Value = "path matches", "^/beta"
		case 1:
			st.Condition, st.Value = "parameter", "beta"
		case 2:
			st.Condition, st.Value = "user", fmt.Sprintf("u%d", rng.IntN(4)+1)
		default:
			st.Condition, st.Value = "anonymous", "False"
		}
		d.FlagStates = append(d.FlagStates, st)
	}
	if rng.IntN(3) == 0 && len(d.Features) > 0 {
		d.Features = append(d.Features, engine.Feature{Name: "w0", Enabled: true}) // a conflict
	}
	for i := range rng.IntN(3) {
		d.Switches = append(d.Switches, engine.Switch{Name: fmt.Sprintf("sw%d", i), Active: rng.IntN(2) == 0})
	}
	for i := range rng.IntN(3) {
		d.Samples = append(d.Samples, engine.Sample{Name: fmt.Sprintf("sm%d", i), Percent: engine.PercentOf(int32(rng.IntN(3) * 500))})
	}
	return w
}

// propRequest is one random web request: who, where, and what it carries.
type propRequest struct {
	user     string // primary key; "" anonymous
	path     string
	query    string
	language string
	cookies  map[string]string
}

func (w *propWorld) request(rng *rand.Rand) propRequest {
	q := propRequest{path: []string{"/", "/beta/x", "/fr/beta", "/de/", "/page"}[rng.IntN(5)], cookies: map[string]string{}}
	if rng.IntN(5) != 0 {
		q.user = strconv.Itoa(rng.IntN(5) + 1) // 5 is no user
	}
	var params []string
	for range rng.IntN(4) {
		name := w.names[rng.IntN(len(w.names))]
		params = append(params, []string{"enable_" + name, "dwft_" + name + "=" + strconv.Itoa(rng.IntN(2)),
			name + "=" + strconv.Itoa(rng.IntN(2)), "beta=1"}[rng.IntN(4)])
	}
	q.query = strings.Join(params, "&")
	q.language = []string{"", "fr", "de-CH, de;q=0.9", "en"}[rng.IntN(4)]
	for _, name := range w.names {
		switch rng.IntN(8) {
		case 0:
			q.cookies["dwf_"+name] = []string{"True", "False"}[rng.IntN(2)]
		case 1:
			q.cookies["dwft_"+name] = []string{"True", "False"}[rng.IntN(2)]
		}
	}
	if rng.IntN(4) == 0 {
		q.cookies["django_language"] = []string{"fr", "de", "xx"}[rng.IntN(3)]
	}
	if rng.IntN(5) == 0 {
		q.cookies["ovr"] = w.names[rng.IntN(len(w.names))]
	}
	return q
}

// cookieLine is the request's Cookie line, with the session cookie of its
// user when withSession is set; "" for none.
func (q propRequest) cookieLine(withSession bool) string {
	var lines []string
	for k, v := range q.cookies {
		lines = append(lines, k+"="+v)
	}
	if withSession && q.user != "" {
		lines = append(lines, "sessionid=session-"+q.user)
	}
	return strings.Join(lines, "; ")
}

// web returns the request's target (path and query) and its header, as a
// browser sends them.
func (q propRequest) web() (string, http.Header) {
	header := http.Header{}
	if c := q.cookieLine(true); c != "" {
		header.Set("Cookie", c)
	}
	if q.language != "" {
		header.Set("Accept-Language", q.language)
	}
	target := q.path
	if q.query != "" {
		target += "?" + q.query
	}
	return target, header
}

// TestOFREPEqualsTheHeader is the property: for random worlds, users and
// requests, OFREP asked for the user's primary key with the request's path,
// query, Accept-Language and cookies (plus the dwf_ cookies the web
// response set, as the browser would send them next) answers, for every
// flag and switch, what the header of the web request said; and for every
// sample whose answer is not a matter of chance (0 % and 100 %). The
// header's fresh rolls are random; the dwf_ cookies carry them over.
func TestOFREPEqualsTheHeader(t *testing.T) {
	rng, seed := propRand("FLAGPROXY_OFREP_SEED", 15, 1)
	worlds, perWorld := 40, 25
	if testing.Short() {
		worlds = 10
	}
	for wi := range worlds {
		w := newPropWorld(rng)
		hs, snap := w.harness(t, rng, nil)
		o, err := NewOFREP(OFREPConfig{Pipeline: hs.proxy.Pipeline()})
		if err != nil {
			t.Fatal(err)
		}
		for ri := range perWorld {
			q := w.request(rng)
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d world %d request %d %+v:\n%s\nworld: %+v", seed, wi, ri, q, fmt.Sprintf(format, args...), w.data)
			}
			target, header := q.web()
			res := hs.get(t, target, header)
			web := decode(t, hs.backend.last(t).Header)
			// The browser's next cookies: the request's and the response's dwf_.
			next := map[string]string{}
			for k, v := range q.cookies {
				next[k] = v
			}
			for _, line := range res.Header.Values("Set-Cookie") {
				nv, _, _ := strings.Cut(line, ";")
				if k, v, ok := strings.Cut(nv, "="); ok && strings.HasPrefix(k, "dwf_") {
					next[k] = v
				}
			}
			// OFREP, bulk.
			ctxJSON, _ := json.Marshal(map[string]any{"targetingKey": q.user, "path": q.path, "query": q.query, "language": q.language, "cookies": next})
			rec := httptest.NewRecorder()
			req := ofrepRequest(t, "/ofrep/v1/evaluate/flags", `{"context":`+string(ctxJSON)+`}`)
			o.ServeHTTP(rec, req)
			if rec.Code != 200 {
				fail("OFREP answered %d: %s", rec.Code, rec.Body.String())
			}
			var bulk struct {
				Flags []ofrepSuccess `json:"flags"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &bulk); err != nil {
				fail("%v", err)
			}
			got := map[string]bool{}
			for _, f := range bulk.Flags {
				got[f.Key] = f.Value
			}
			for name, on := range web.Flags {
				if g, ok := got[keyOf(kindFlag, name)]; !ok || g != on {
					fail("flag %s: header %v, OFREP %v (present %v)", name, on, g, ok)
				}
			}
			for name, on := range web.Switches {
				if g := got[keyOf(kindSwitch, name)]; g != on {
					fail("switch %s: header %v, OFREP %v", name, on, g)
				}
			}
			for i := range snap.NumSamples() {
				name := snap.SampleName(i)
				if p := snap.SamplePercent(i); (p == 0 || p == 100) && got[keyOf(kindSample, name)] != web.Samples[name] {
					fail("sample %s at %v %%: header %v, OFREP %v", name, p, web.Samples[name], got[keyOf(kindSample, name)])
				}
			}
			if n := len(web.Flags) + len(web.Switches) + len(web.Samples); n != len(bulk.Flags) {
				fail("the header has %d names, OFREP %d", n, len(bulk.Flags))
			}
		}
	}
}

// ofrepRequest is a POST from a loopback peer.
func ofrepRequest(t *testing.T, path, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://admin.test"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.RemoteAddr = "127.0.0.1:40000"
	req.URL, _ = url.Parse(path)
	return req
}
