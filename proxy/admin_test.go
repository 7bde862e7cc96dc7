package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

func TestAdmin(t *testing.T) {
	store := &engine.Store{}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Upstream: closedURL(t), Snapshots: store, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewAdmin(AdminConfig{Snapshots: store, Gatherer: reg, Now: testNow}))
	defer srv.Close()
	call := func(method, path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	check := func(method, path string, wantCode int, wantBody string) {
		t.Helper()
		code, body, _ := call(method, path)
		if code != wantCode || body != wantBody {
			t.Errorf("%s %s = %d %q, want %d %q", method, path, code, body, wantCode, wantBody)
		}
	}

	check("GET", "/healthz", 200, "ok\n")
	check("GET", "/readyz", 503, `{"ready":false}`+"\n")
	check("GET", "/nope", 404, "not found\n")
	check("GET", "/readyz/x", 404, "not found\n")
	check("POST", "/readyz", 405, "method not allowed\n")
	if _, _, h := call("POST", "/healthz"); h.Get("Allow") != "GET, HEAD" {
		t.Errorf("405 Allow = %q", h.Get("Allow"))
	}

	snap := goldenSnapshot(t)
	store.Publish(snap, testNow().Add(-1500*time.Millisecond))
	check("GET", "/readyz", 200, `{"ready":true,"version":"`+snap.Version()+`","age_seconds":1.5,`+
		`"loaded_at":"2026-11-21T07:58:46Z","flags":7,"switches":2,"samples":1,`+
		`"sources":["featureflipper","waffle"],"conflicts":["dup"]}`+"\n")

	code, body, h := call("GET", "/metrics")
	if code != 200 || !strings.Contains(body, `flagproxy_snapshot_flags{source="waffle"} 4`) {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", h.Get("Cache-Control"))
	}
}

func TestAdminWithoutGatherer(t *testing.T) {
	rec := httptest.NewRecorder()
	NewAdmin(AdminConfig{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/metrics without a gatherer = %d, want 404", rec.Code)
	}
	rec = httptest.NewRecorder()
	NewAdmin(AdminConfig{}).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without snapshots = %d, want 503", rec.Code)
	}
}

// TestReadyzPolicy: a restored snapshot is ready by default and says so;
// with MaxStaleness, /readyz fails until a load succeeds, and again when the
// last one is older than it.
func TestReadyzPolicy(t *testing.T) {
	get := func(a http.Handler) (int, string) {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	store := &engine.Store{}
	store.Restore(goldenSnapshot(t))
	lenient := NewAdmin(AdminConfig{Snapshots: store, Now: testNow})
	strict := NewAdmin(AdminConfig{Snapshots: store, Now: testNow, MaxStaleness: 30 * time.Second})
	if code, body := get(lenient); code != 200 || !strings.Contains(body, `"restored":true`) || !strings.Contains(body, `"age_seconds":-1`) {
		t.Errorf("restored, default policy: %d %s", code, body)
	}
	if code, body := get(strict); code != 503 || !strings.Contains(body, `"ready":false`) {
		t.Errorf("restored, max staleness: %d %s", code, body)
	}
	store.Publish(goldenSnapshot(t), testNow().Add(-10*time.Second))
	if code, body := get(strict); code != 200 || strings.Contains(body, "restored") {
		t.Errorf("loaded 10 s ago, max staleness 30 s: %d %s", code, body)
	}
	store.Publish(goldenSnapshot(t), testNow().Add(-31*time.Second))
	if code, _ := get(strict); code != 503 {
		t.Errorf("loaded 31 s ago, max staleness 30 s: %d", code)
	}
	if code, _ := get(lenient); code != 200 {
		t.Errorf("loaded 31 s ago, default policy: %d", code)
	}
}

// TestAdminProfiling: Go's profiles are served only when asked for.
func TestAdminProfiling(t *testing.T) {
	for _, on := range []bool{false, true} {
		a := NewAdmin(AdminConfig{Profiling: on})
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; rec.Code != want {
				t.Errorf("Profiling %v: %s = %d, want %d", on, path, rec.Code, want)
			}
		}
	}
}
