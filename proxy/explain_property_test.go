package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestExplainEqualsTheHeader is the property: for random worlds, users and
// requests, /explain asked for the user (by primary key, or by session
// key) at the request's URL, with its cookies and Accept-Language, decides
// every flag, switch and sample as the header of the proxied request did.
// Both draw from the same fixed Rand, so fresh rolls agree too.
func TestExplainEqualsTheHeader(t *testing.T) {
	rng, seed := propRand("FLAGPROXY_EXPLAIN_SEED", 21, 2)
	worlds, perWorld := 30, 15
	if testing.Short() {
		worlds = 8
	}
	for wi := range worlds {
		w := newPropWorld(rng)
		hs, snap := w.harness(t, rng, fixedRand(rng.Float64()))
		st, err := NewStatus(StatusConfig{Pipeline: hs.proxy.Pipeline()})
		if err != nil {
			t.Fatal(err)
		}
		for ri := range perWorld {
			q := w.request(rng)
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d world %d request %d %+v:\n%s", seed, wi, ri, q, fmt.Sprintf(format, args...))
			}
			cookie := q.cookieLine(false)
			target, header := q.web()
			hs.get(t, target, header)
			web := decode(t, hs.backend.last(t).Header)
			ask := url.Values{"url": {target}, "cookie": {cookie}, "language": {q.language}}
			if q.user != "" {
				if ri%2 == 0 {
					ask.Set("user", q.user)
				} else {
					ask.Set("session", "session-"+q.user)
				}
			}
			check := func(key string, want bool) {
				ask.Set("flag", key)
				rec := httptest.NewRecorder()
				st.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/explain?"+ask.Encode(), nil))
				var a ExplainAnswer
				if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
					fail("explain %s: %d %s", key, rec.Code, rec.Body.String())
				}
				if a.Explanation.Decision.On != want || a.Version != snap.Version() {
					fail("%s: header %v, explain %v (%s)\nsteps %+v", key, want, a.Explanation.Decision.On, a.Because, a.Explanation.Steps)
				}
			}
			for name, on := range web.Flags {
				check(keyOf(kindFlag, name), on)
			}
			for name, on := range web.Switches {
				check(keyOf(kindSwitch, name), on)
			}
			for name, on := range web.Samples {
				check(keyOf(kindSample, name), on)
			}
		}
	}
}
