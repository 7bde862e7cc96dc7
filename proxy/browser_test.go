package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// browserData: flags, switches and samples, a percentage flag (whose
// cookie the endpoint must write) and names a page must not see.
func browserData() engine.Data {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.Waffle.FlagDefault = true
	d.WaffleFlags = []engine.WaffleFlag{
		{Name: "new_checkout", Everyone: engine.Yes},
		{Name: "new_staff", Staff: true},
		{Name: "new_half", Percent: engine.PercentOf(500)},
		{Name: "secret_beta", Everyone: engine.Yes},
		{Name: "</script>", Everyone: engine.Yes},
	}
	d.Switches = []engine.Switch{{Name: "maint", Active: true}, {Name: "new_switch", Active: true}}
	d.Samples = []engine.Sample{{Name: "survey", Percent: engine.PercentOf(1000)}}
	return d
}

// browserGet sends a GET through the proxy and returns the response and
// its body.
func browserGet(t *testing.T, hs *harness, target string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.frontend.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	res, err := hs.frontend.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func newBrowserHarness(t *testing.T, patterns []string) *harness {
	t.Helper()
	hs := newHarness(t, Config{
		BrowserFlags: patterns,
		Subjects:     sessionResolver{"janesession": ofrepJane},
		Rand:         fixedRand(0.1), // fresh rolls are on at 50 %
	}, nil)
	hs.store.Publish(mustSnapshot(t, browserData()), testNow())
	return hs
}

// TestBrowserFlagsJSON: the visitor's decisions of the configured names
// only, in waffle_status's shape, with the decision's waffle cookies, an
// ETag and 304, never cached, and never forwarded to Django.
func TestBrowserFlagsJSON(t *testing.T) {
	hs := newBrowserHarness(t, []string{"new_*", "switch:maint", "sample:*"})
	res, body := browserGet(t, hs, "/_flagproxy/flags.json", "Cookie: sessionid=janesession")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var got map[string]map[string]waffleStatus
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	want := map[string]map[string]waffleStatus{
		"flags":    {"new_checkout": {IsActive: true}, "new_staff": {IsActive: true}, "new_half": {IsActive: true}},
		"switches": {"maint": {IsActive: true}, "new_switch": {IsActive: true}},
		"samples":  {"survey": {IsActive: true}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flags.json (-want +got):\n%s", diff)
	}
	if !strings.Contains(body, `"last_modified":null`) {
		t.Errorf("waffle_status entries carry last_modified: %s", body)
	}
	for k, v := range map[string]string{"Cache-Control": "private, no-store", "Content-Type": "application/json", "X-Content-Type-Options": "nosniff"} {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	cookies := strings.Join(res.Header.Values("Set-Cookie"), "\n")
	if !strings.Contains(cookies, "dwf_new_half=True; expires=") {
		t.Errorf("the rolled flag's cookie is not written: %q", cookies)
	}
	hs.backend.mu.Lock()
	forwarded := len(hs.backend.reqs)
	hs.backend.mu.Unlock()
	if forwarded != 0 {
		t.Errorf("%d requests reached Django", forwarded)
	}

	// Anonymous: no staff flag; the cookie keeps the rolled side.
	_, anon := browserGet(t, hs, "/_flagproxy/flags.json", "Cookie: dwf_new_half=False")
	if !strings.Contains(anon, `"new_staff":{"is_active":false`) || !strings.Contains(anon, `"new_half":{"is_active":false`) {
		t.Errorf("anonymous with dwf_new_half=False: %s", anon)
	}

	etag := res.Header.Get("ETag")
	res304, body304 := browserGet(t, hs, "/_flagproxy/flags.json", "Cookie: sessionid=janesession", "If-None-Match: "+etag)
	if res304.StatusCode != 304 || body304 != "" || res304.Header.Get("ETag") != etag || res304.Header.Get("Cache-Control") != "private, no-store" {
		t.Errorf("If-None-Match: %d %q %v", res304.StatusCode, body304, res304.Header)
	}
	if res, _ := browserGet(t, hs, "/_flagproxy/flags.json", "If-None-Match: "+etag); res.StatusCode != 200 {
		t.Errorf("another visitor's answer with the first one's ETag: %d, want 200", res.StatusCode)
	}
}

// TestBrowserWaffleJS runs the served script in Node (when installed) and
// checks window.waffle: the configured names, the WAFFLE_*_DEFAULT of
// others, names that cannot end the script.
func TestBrowserWaffleJS(t *testing.T) {
	hs := newBrowserHarness(t, []string{"*"})
	res, body := browserGet(t, hs, "/_flagproxy/waffle.js", "Cookie: sessionid=janesession")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
	if strings.Contains(body, "</script>") || !strings.Contains(body, `\u003c/script\u003e`) {
		t.Errorf("a name can end the script: %s", body)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed: .ci/run installs it (nodejs)")
		}
		t.Skip("node not installed: the script is not run")
	}
	script := filepath.Join(t.TempDir(), "check.js")
	check := "var window = {};\n" + body + `
var w = window.waffle;
console.log(JSON.stringify([w.flag_is_active("new_staff"), w.flag_is_active("secret_beta"), w.flag_is_active("</script>"),
  w.flag_is_active("undefined_flag"), w.switch_is_active("maint"), w.switch_is_active("nope"),
  w.sample_is_active("survey"), w.sample_is_active("nope"), Object.keys(w.FLAGS).length]));
`
	if err := os.WriteFile(script, []byte(check), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, script).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	// WAFFLE_FLAG_DEFAULT is True in browserData.
	if got, want := strings.TrimSpace(string(out)), `[true,true,true,true,true,false,true,false,5]`; got != want {
		t.Errorf("window.waffle answered %s, want %s", got, want)
	}
}

// TestConsolePaths: the prefix never reaches Django; unknown paths and a
// missing configuration answer 404; only GET and HEAD.
func TestConsolePaths(t *testing.T) {
	none := newBrowserHarness(t, nil)
	some := newBrowserHarness(t, []string{"maint"})
	for _, tc := range []struct {
		name   string
		hs     *harness
		method string
		target string
		code   int
		body   string
	}{
		{"not configured: flags.json", none, "GET", "/_flagproxy/flags.json", 404, "not found\n"},
		{"not configured: waffle.js", none, "GET", "/_flagproxy/waffle.js", 404, "not found\n"},
		{"unknown path under the prefix", some, "GET", "/_flagproxy/nothing", 404, "not found\n"},
		{"the console, to a visitor who may not flip", some, "GET", "/_flagproxy/", 404, "not found\n"},
		{"the prefix without its slash", some, "GET", "/_flagproxy", 404, "not found\n"},
		{"escaped path", some, "GET", "/%5Fflagproxy/flags%2Ejson", 200, `{"flags":{},"samples":{},"switches":{"maint":{"is_active":true,"last_modified":null}}}` + "\n"},
		{"POST", some, "POST", "/_flagproxy/flags.json", 405, "method not allowed\n"},
		{"HEAD", some, "HEAD", "/_flagproxy/flags.json", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, tc.hs.frontend.URL+tc.target, nil)
			res, err := tc.hs.frontend.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.code || string(body) != tc.body {
				t.Errorf("%d %q, want %d %q", res.StatusCode, body, tc.code, tc.body)
			}
		})
	}
	for _, hs := range []*harness{none, some} {
		hs.backend.mu.Lock()
		if n := len(hs.backend.reqs); n != 0 {
			t.Errorf("%d requests under the console prefix reached Django", n)
		}
		hs.backend.mu.Unlock()
	}
	// Paths beside the prefix still go to Django.
	some.get(t, "/_flagproxyx/flags.json", nil)
	if got := some.backend.last(t).URL.Path; got != "/_flagproxyx/flags.json" {
		t.Errorf("Django got %q", got)
	}
	if err := testutil.GatherAndCompare(some.reg, strings.NewReader(`
# HELP flagproxy_console_requests_total Requests answered by flagproxy itself under the console path, by the path served (other: no such path) and status code.
# TYPE flagproxy_console_requests_total counter
flagproxy_console_requests_total{code="200",path="flags.json"} 2
flagproxy_console_requests_total{code="404",path="other"} 3
flagproxy_console_requests_total{code="405",path="flags.json"} 1
`), "flagproxy_console_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestConsolePathCheck(t *testing.T) {
	for p, ok := range map[string]bool{"/_flagproxy/": true, "/x/y/": true, "/": false, "_flagproxy/": false, "/_flagproxy": false,
		"/a%20/": false, "/a?/": false, "//": false, "/a b/": false} {
		if err := CheckConsolePath(p); (err == nil) != ok {
			t.Errorf("CheckConsolePath(%q) = %v", p, err)
		}
	}
	if _, err := New(Config{Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, Snapshots: &engine.Store{}, ConsolePath: "/"}); err == nil {
		t.Error("New accepted the console path /")
	}
}

// TestNameMatcher: globs, kind prefixes, escapes.
func TestNameMatcher(t *testing.T) {
	m, err := newNameMatcher([]string{"new_*", "switch:ma?nt", `flag:a\*b`, "sample:*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		k    kind
		name string
		want bool
	}{
		{kindFlag, "new_x", true}, {kindSwitch, "new_x", true}, {kindSample, "new_", true}, {kindFlag, "old_x", false},
		{kindSwitch, "maint", true}, {kindSwitch, "maiint", false}, {kindFlag, "maint", false},
		{kindFlag, "a*b", true}, {kindFlag, "axb", false}, {kindSwitch, "a*b", false},
		{kindSample, "anything", true}, {kindFlag, "é_new_", false},
	} {
		if got := m.match(tc.k, tc.name); got != tc.want {
			t.Errorf("match(%v, %q) = %v, want %v", tc.k, tc.name, got, tc.want)
		}
	}
	for _, g := range []struct {
		glob, name string
		want       bool
	}{{"*", "", true}, {"a*b*c", "aXbYbc", true}, {"a*b*c", "aXbY", false}, {"?é", "xé", true}, {"?", "é", true}, {"**", "x", true}} {
		if got := globMatch(g.glob, g.name); got != g.want {
			t.Errorf("globMatch(%q, %q) = %v", g.glob, g.name, got)
		}
	}
	for _, bad := range [][]string{{""}, {"switch:"}, {`a\`}} {
		if err := CheckBrowserFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if m, _ := newNameMatcher(nil); m != nil || m.match(kindFlag, "x") {
		t.Error("no patterns match something")
	}
}
