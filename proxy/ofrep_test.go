package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// sessionResolver identifies a visitor from the sessionid cookie.
type sessionResolver map[string]engine.Subject

func (s sessionResolver) Subject(_ context.Context, c engine.Values) (engine.Subject, error) {
	if c == nil {
		return engine.Anonymous, nil
	}
	if v, ok := c.Get("sessionid"); ok {
		return s[v], nil
	}
	return engine.Anonymous, nil
}

var (
	ofrepJane = engine.Subject{UserID: "7", Username: "jane", Authenticated: true, Active: true, Staff: true}
	ofrepRoot = engine.Subject{UserID: "1", Username: "root", Authenticated: true, Active: true, Superuser: true, Staff: true}
)

// ofrepData is the world of the OFREP tests: one flag, switch or sample
// for every OFREP reason, a flag whose name looks like a switch key, and
// a conflict.
func ofrepData() engine.Data {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag}
	d.WaffleFlags = []engine.WaffleFlag{
		{Name: "on", Everyone: engine.Yes},
		{Name: "off", Everyone: engine.No},
		{Name: "staff", Staff: true},
		{Name: "jane", Users: []string{"7"}},
		{Name: "half", Percent: engine.PercentOf(500)},
		{Name: "fr", Languages: "fr"},
		{Name: "switch:x", Everyone: engine.Yes},
		{Name: "dup", Everyone: engine.Yes},
	}
	d.Features = []engine.Feature{{Name: "feature", Enabled: true}, {Name: "dup", Enabled: true}}
	d.FeatureFlags = []engine.FeatureFlag{{Key: "model-off", Enabled: false}, {Key: "model-all", Enabled: true, RolloutPercent: 100}}
	d.Switches = []engine.Switch{{Name: "maint", Active: true}, {Name: "idle"}}
	d.Samples = []engine.Sample{{Name: "all", Percent: engine.PercentOf(1000)}, {Name: "none", Percent: engine.PercentOf(0)}, {Name: "third", Percent: engine.PercentOf(333)}}
	return d
}

// ofrepServer is a proxy's pipeline behind the OFREP handler, on a
// loopback test server.
type ofrepServer struct {
	hs      *harness
	handler http.Handler
	srv     *httptest.Server
	reg     *prometheus.Registry
}

func newOFREPServer(t *testing.T, keys []string, publish bool) *ofrepServer {
	t.Helper()
	hs := newHarness(t, Config{
		Users:    fakeUsers{"7": ofrepJane, "1": ofrepRoot},
		Subjects: sessionResolver{"rootsession": ofrepRoot},
		Locale:   engine.NewLocale(engine.LocaleSettings{I18N: true, LanguageCode: "en", Languages: []string{"en", "fr"}, CookieName: "django_language"}),
		Rand:     fixedRand(0.999), // the web's fresh rolls: off for "half"
	}, nil)
	if publish {
		hs.store.Publish(mustSnapshot(t, ofrepData()), testNow())
	}
	reg := prometheus.NewRegistry()
	h, err := NewOFREP(OFREPConfig{Pipeline: hs.proxy.Pipeline(), Keys: keys, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewAdmin(AdminConfig{Snapshots: hs.store, OFREP: h}))
	t.Cleanup(srv.Close)
	return &ofrepServer{hs: hs, handler: h, srv: srv, reg: reg}
}

// post sends body to path with header lines "Name: value".
func (o *ofrepServer) post(t *testing.T, method, path, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, o.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := o.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, raw, err)
		}
	}
	return res, out
}

// TestOFREPSingle is the conformance table of the single-flag endpoint:
// every status, error code and reason it produces, and the context
// attributes.
func TestOFREPSingle(t *testing.T) {
	o := newOFREPServer(t, nil, true)
	const p = "/ofrep/v1/evaluate/flags/"
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     map[string]any // members of the answer (metadata members under "metadata.")
	}{
		{"static on", "POST", p + "on", `{"context":{}}`, 200,
			map[string]any{"key": "on", "value": true, "reason": "STATIC", "variant": "on", "metadata.kind": "flag", "metadata.source": "waffle", "metadata.identity": "anonymous", "metadata.flagproxyReason": "everyone"}},
		{"disabled", "POST", p + "off", `{}`, 200, map[string]any{"value": false, "reason": "DISABLED", "variant": "off"}},
		{"an empty body is an empty context", "POST", p + "off", ``, 200, map[string]any{"value": false, "reason": "DISABLED"}},
		{"default: no rule matched", "POST", p + "staff", `{"context":{"targetingKey":""}}`, 200, map[string]any{"value": false, "reason": "DEFAULT", "metadata.identity": "anonymous"}},
		{"targeting match by the user's pk", "POST", p + "staff", `{"context":{"targetingKey":"7"}}`, 200,
			map[string]any{"value": true, "reason": "TARGETING_MATCH", "metadata.identity": "user", "metadata.flagproxyReason": "staff"}},
		{"listed user", "POST", p + "jane", `{"context":{"targetingKey":"7"}}`, 200, map[string]any{"value": true, "reason": "TARGETING_MATCH"}},
		{"unknown user: anonymous, and said so", "POST", p + "staff", `{"context":{"targetingKey":"999"}}`, 200,
			map[string]any{"value": false, "reason": "DEFAULT", "metadata.identity": "unknown-user"}},
		{"the session cookie does not identify", "POST", p + "staff", `{"context":{"cookies":{"sessionid":"rootsession"}}}`, 200,
			map[string]any{"value": false, "metadata.identity": "anonymous"}},
		{"language", "POST", p + "fr", `{"context":{"language":"fr-CH, fr;q=0.9"}}`, 200, map[string]any{"value": true, "reason": "TARGETING_MATCH", "metadata.flagproxyReason": "language"}},
		{"language from the path prefix is not there without i18n_patterns", "POST", p + "fr", `{"context":{"path":"/fr/","language":"en"}}`, 200, map[string]any{"value": false}},
		{"language cookie", "POST", p + "fr", `{"context":{"cookies":{"django_language":"fr"}}}`, 200, map[string]any{"value": true}},
		{"percentage from the dwf_ cookie", "POST", p + "half", `{"context":{"targetingKey":"7","cookies":{"dwf_half":"True"}}}`, 200,
			map[string]any{"value": true, "reason": "SPLIT", "metadata.flagproxyReason": "percent-cookie", "metadata.percent": 50.0}},
		{"percentage without a cookie: deterministic split", "POST", p + "half", `{"context":{"targetingKey":"7"}}`, 200,
			map[string]any{"value": splitDraw("7")("half", false)*100 <= 50, "reason": "SPLIT", "metadata.flagproxyReason": "percent-roll"}},
		{"feature-flipper", "POST", p + "feature", `{}`, 200, map[string]any{"value": true, "reason": "STATIC", "metadata.source": "featureflipper"}},
		{"FeatureFlag disabled", "POST", p + "model-off", `{}`, 200, map[string]any{"value": false, "reason": "DISABLED", "metadata.source": "featureflag"}},
		{"FeatureFlag rollout 100", "POST", p + "model-all", `{}`, 200, map[string]any{"value": true, "reason": "STATIC"}},
		{"conflict: off, reason ERROR", "POST", p + "dup", `{}`, 200, map[string]any{"value": false, "reason": "ERROR", "metadata.flagproxyReason": "conflict"}},
		{"switch", "POST", p + "switch:maint", `{}`, 200, map[string]any{"key": "switch:maint", "value": true, "reason": "STATIC", "metadata.kind": "switch"}},
		{"inactive switch", "POST", p + "switch:idle", `{}`, 200, map[string]any{"value": false, "reason": "DISABLED"}},
		{"sample at 100", "POST", p + "sample:all", `{}`, 200, map[string]any{"value": true, "reason": "SPLIT", "metadata.kind": "sample", "metadata.percent": 100.0}},
		{"sample at 0", "POST", p + "sample:none", `{}`, 200, map[string]any{"value": false, "reason": "SPLIT"}},
		{"a flag whose name looks like a switch key", "POST", p + "flag:switch:x", `{}`, 200, map[string]any{"key": "flag:switch:x", "value": true}},
		{"an escaped key", "POST", p + "flag%3Aswitch%3Ax", `{}`, 200, map[string]any{"key": "flag:switch:x", "value": true}},
		{"the switch namespace is separate", "POST", p + "switch:x", `{}`, 404, map[string]any{"key": "switch:x", "errorCode": "FLAG_NOT_FOUND"}},
		{"unknown flag", "POST", p + "nope", `{}`, 404, map[string]any{"key": "nope", "errorCode": "FLAG_NOT_FOUND"}},
		{"empty key", "POST", p, `{}`, 404, map[string]any{"key": "", "errorCode": "FLAG_NOT_FOUND"}},
		{"not JSON", "POST", p + "on", `{"context":`, 400, map[string]any{"key": "on", "errorCode": "PARSE_ERROR"}},
		{"not an object", "POST", p + "on", `[1]`, 400, map[string]any{"errorCode": "PARSE_ERROR"}},
		{"context not an object", "POST", p + "on", `{"context":"x"}`, 400, map[string]any{"key": "on", "errorCode": "INVALID_CONTEXT"}},
		{"targetingKey not a string", "POST", p + "on", `{"context":{"targetingKey":7}}`, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"path not absolute", "POST", p + "on", `{"context":{"path":"beta"}}`, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"path with a query", "POST", p + "on", `{"context":{"path":"/a?b"}}`, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"cookies not an object of strings", "POST", p + "on", `{"context":{"cookies":{"a":1}}}`, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"a cookie name that cannot be sent", "POST", p + "on", `{"context":{"cookies":{"a;b":"1"}}}`, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"a cookie value that needs quoting", "POST", p + "on", `{"context":{"cookies":{"a":" x;y "}}}`, 200, map[string]any{"value": true}},
		{"unknown attributes are ignored", "POST", p + "on", `{"context":{"plan":"gold","n":3}}`, 200, map[string]any{"value": true}},
		{"GET", "GET", p + "on", ``, 405, map[string]any{"errorDetails": "method not allowed: use POST"}},
		{"other path", "POST", "/ofrep/v2/evaluate/flags", `{}`, 404, map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := o.post(t, tc.method, tc.path, tc.body)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d; body %v", res.StatusCode, tc.code, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			for k, want := range tc.want {
				got := any(nil)
				if m, ok := strings.CutPrefix(k, "metadata."); ok {
					md, _ := body["metadata"].(map[string]any)
					got = md[m]
				} else {
					got = body[k]
				}
				if !cmp.Equal(got, want) {
					t.Errorf("%s = %#v, want %#v (body %v)", k, got, want, body)
				}
			}
		})
	}
	if problems, err := testutil.GatherAndLint(o.reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
	if n := testutil.ToFloat64(o.handler.(*ofrep).requests.WithLabelValues("single", "404")); n != 3 {
		t.Errorf("flagproxy_ofrep_requests_total{endpoint=single,code=404} = %v, want 3", n)
	}
}

// TestOFREPSplitIsStable: without the dwf_ cookie OFREP answers the same for
// the same user every time, whatever the pipeline's Rand draws, and the
// share of users switched on follows the percentage.
func TestOFREPSplitIsStable(t *testing.T) {
	o := newOFREPServer(t, nil, true)
	on := 0
	const users = 400
	for u := range users {
		body := `{"context":{"targetingKey":"` + string(rune('a'+u%26)) + strings.Repeat("x", u/26) + `"}}`
		_, first := o.post(t, "POST", "/ofrep/v1/evaluate/flags/half", body)
		_, again := o.post(t, "POST", "/ofrep/v1/evaluate/flags/half", body)
		if first["value"] != again["value"] {
			t.Fatalf("user %d: %v then %v", u, first["value"], again["value"])
		}
		if first["value"] == true {
			on++
		}
	}
	// Unknown users are anonymous: every one of them shares the draw of "".
	if on != 0 && on != users {
		t.Errorf("%d of %d unknown users on; unknown users are one anonymous visitor", on, users)
	}
	hits := 0
	for u := range 2000 {
		if splitDraw(strings.Repeat("7", u%5+1)+string(rune('0'+u%10))+strings.Repeat("1", u/50))("half", false)*100 <= 50 {
			hits++
		}
	}
	if hits < 900 || hits > 1100 {
		t.Errorf("splitDraw switched on %d of 2000 keys at 50%%", hits)
	}
}

// TestOFREPBulk: every flag, switch and sample under its key, an ETag that
// changes with the snapshot and with the context's answer, and 304.
func TestOFREPBulk(t *testing.T) {
	o := newOFREPServer(t, nil, true)
	const path = "/ofrep/v1/evaluate/flags"
	res, body := o.post(t, "POST", path, `{"context":{"targetingKey":"7"}}`)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %v", res.StatusCode, body)
	}
	got := map[string]bool{}
	for _, f := range body["flags"].([]any) {
		m := f.(map[string]any)
		got[m["key"].(string)] = m["value"].(bool)
	}
	want := map[string]bool{"on": true, "off": false, "staff": true, "jane": true, "half": splitDraw("7")("half", false)*100 <= 50,
		"fr": false, "flag:switch:x": true, "dup": false, "feature": true, "model-off": false, "model-all": true,
		"switch:maint": true, "switch:idle": false, "sample:all": true, "sample:none": false, "sample:third": splitDraw("7")("third", true)*100 <= 33.3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bulk answer (-want +got):\n%s", diff)
	}
	etag := res.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q", etag)
	}
	for _, tc := range []struct {
		name, body, inm string
		code            int
	}{
		{"same context, same ETag", `{"context":{"targetingKey":"7"}}`, etag, 304},
		{"weak comparison and lists", `{"context":{"targetingKey":"7"}}`, `"x", W/` + etag, 304},
		{"star", `{"context":{"targetingKey":"7"}}`, `*`, 304},
		{"another answer", `{"context":{}}`, etag, 200},
		{"no If-None-Match", `{"context":{"targetingKey":"7"}}`, ``, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.inm != "" {
				hdr = append(hdr, "If-None-Match: "+tc.inm)
			}
			res, _ := o.post(t, "POST", path, tc.body, hdr...)
			if res.StatusCode != tc.code {
				t.Errorf("status %d, want %d", res.StatusCode, tc.code)
			}
			if res.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}
	// A new snapshot with the same answers for the user changes the ETag
	// too: the answer carries the version.
	d := ofrepData()
	d.Switches = append(d.Switches, engine.Switch{Name: "new"})
	o.hs.store.Publish(mustSnapshot(t, d), testNow())
	if res, _ := o.post(t, "POST", path, `{"context":{"targetingKey":"7"}}`, "If-None-Match: "+etag); res.StatusCode != 200 || res.Header.Get("ETag") == etag {
		t.Errorf("after a new snapshot: %d with ETag %q, want 200 with a new one", res.StatusCode, res.Header.Get("ETag"))
	}
	if res, body := o.post(t, "POST", path, `{"context":7}`); res.StatusCode != 400 || body["errorCode"] != "INVALID_CONTEXT" || body["key"] != nil {
		t.Errorf("bulk with a bad context: %d %v", res.StatusCode, body)
	}
	if res, body := o.post(t, "POST", path, `nope`); res.StatusCode != 400 || body["errorCode"] != "PARSE_ERROR" {
		t.Errorf("bulk with a bad body: %d %v", res.StatusCode, body)
	}
}

// TestOFREPBeforeTheFirstSnapshot: GENERAL, 500, on both endpoints.
func TestOFREPBeforeTheFirstSnapshot(t *testing.T) {
	o := newOFREPServer(t, nil, false)
	for _, path := range []string{"/ofrep/v1/evaluate/flags/on", "/ofrep/v1/evaluate/flags"} {
		res, body := o.post(t, "POST", path, `{}`)
		if res.StatusCode != 500 || body["errorCode"] != "GENERAL" || body["errorDetails"] == "" {
			t.Errorf("%s: %d %v, want 500 GENERAL", path, res.StatusCode, body)
		}
	}
}

// TestOFREPKeys: with keys, a request without one of them is 401 on every
// path, whichever header carries it; without keys, only loopback peers are
// served.
func TestOFREPKeys(t *testing.T) {
	o := newOFREPServer(t, []string{"first-key-0123456789", "second-key-0123456789"}, true)
	for _, tc := range []struct {
		name   string
		header []string
		path   string
		code   int
	}{
		{"no key", nil, "/ofrep/v1/evaluate/flags/on", 401},
		{"no key, bulk", nil, "/ofrep/v1/evaluate/flags", 401},
		{"no key, unknown path", nil, "/ofrep/v1/nothing", 401},
		{"wrong bearer", []string{"Authorization: Bearer first-key-012345678"}, "/ofrep/v1/evaluate/flags/on", 401},
		{"basic auth is not a key", []string{"Authorization: Basic first-key-0123456789"}, "/ofrep/v1/evaluate/flags/on", 401},
		{"bearer", []string{"Authorization: Bearer first-key-0123456789"}, "/ofrep/v1/evaluate/flags/on", 200},
		{"bearer, any case", []string{"Authorization: bearer second-key-0123456789"}, "/ofrep/v1/evaluate/flags", 200},
		{"X-API-Key", []string{"X-API-Key: second-key-0123456789"}, "/ofrep/v1/evaluate/flags/on", 200},
		{"a wrong bearer and a right X-API-Key", []string{"Authorization: Bearer nope", "X-API-Key: first-key-0123456789"}, "/ofrep/v1/evaluate/flags/on", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := o.post(t, "POST", tc.path, `{}`, tc.header...)
			if res.StatusCode != tc.code {
				t.Errorf("status %d, want %d (%v)", res.StatusCode, tc.code, body)
			}
			if tc.code == 401 && (res.Header.Get("WWW-Authenticate") == "" || body["errorDetails"] == nil) {
				t.Errorf("401 without WWW-Authenticate or details: %v %v", res.Header, body)
			}
		})
	}

	open := newOFREPServer(t, nil, true)
	for _, tc := range []struct {
		remote string
		code   int
	}{{"127.0.0.1:5000", 200}, {"[::1]:5000", 200}, {"192.0.2.7:5000", 401}, {"[::ffff:10.0.0.1]:5000", 401}} {
		req := httptest.NewRequest("POST", "/ofrep/v1/evaluate/flags/on", strings.NewReader(`{}`))
		req.RemoteAddr = tc.remote
		rec := httptest.NewRecorder()
		open.handler.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("without keys, from %s: %d, want %d", tc.remote, rec.Code, tc.code)
		}
	}
	if _, err := NewOFREP(OFREPConfig{Pipeline: open.hs.proxy.Pipeline(), Keys: []string{""}}); err == nil {
		t.Error("an empty key was accepted")
	}
}

func TestIsLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9090": true, "[::1]:9090": true, "localhost:9090": true, "127.8.0.1:1": true,
		"0.0.0.0:9090": false, ":9090": false, "10.0.0.1:9090": false, "example.com:9090": false, "nonsense": false,
	} {
		if got := IsLoopbackListen(addr); got != want {
			t.Errorf("IsLoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestCookieLine: cookies are written so that Django parses them back.
func TestCookieLine(t *testing.T) {
	in := map[string]string{"dwf_a": "True", "q": `"quoted"`, "sp": " x ", "semi": "a;b", "sessionid": "secret", "uni": "é"}
	line, err := cookieLine(in, "sessionid")
	if err != nil {
		t.Fatal(err)
	}
	got := engine.ParseCookies(line)
	delete(in, "sessionid")
	if diff := cmp.Diff(engine.Params(in), got); diff != "" {
		t.Errorf("%q parses back differently (-want +got):\n%s", line, diff)
	}
	for _, bad := range []map[string]string{{"a=b": "x"}, {" a": "x"}, {"a;": "x"}} {
		if line, err := cookieLine(bad, "sessionid"); err == nil {
			t.Errorf("%v was written as %q", bad, line)
		}
	}
}
