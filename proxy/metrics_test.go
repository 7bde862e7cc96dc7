package proxy

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/flagproxy/flagproxy/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/metrics")

// compareGolden compares the named metrics of reg with
// testdata/metrics/<file>, or rewrites the file with -update.
func compareGolden(t *testing.T, reg prometheus.Gatherer, file string, names ...string) {
	t.Helper()
	path := filepath.Join("testdata", "metrics", file)
	if *update {
		// Gather in the text format and keep only the named families.
		got, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, names...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, bytes.NewReader(want), names...); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

func TestMetricsLint(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	hs.store.Publish(goldenSnapshot(t), testNow())
	hs.get(t, "/", nil)
	problems, err := testutil.GatherAndLint(hs.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestSnapshotMetrics(t *testing.T) {
	snapshotMetrics := []string{
		"flagproxy_snapshot_age_seconds",
		"flagproxy_snapshot_conflicts",
		"flagproxy_snapshot_flags",
		"flagproxy_snapshot_last_success_timestamp_seconds",
	}
	hs := newHarness(t, Config{}, nil)
	compareGolden(t, hs.reg, "snapshot-none.prom", snapshotMetrics...)
	hs.store.Publish(goldenSnapshot(t), testNow().Add(-2500*time.Millisecond))
	compareGolden(t, hs.reg, "snapshot.prom", snapshotMetrics...)
}

func TestRequestMetrics(t *testing.T) {
	hs := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
	})
	hs.get(t, "/", nil)
	hs.get(t, "/", nil)
	res, err := hs.frontend.Client().Post(hs.frontend.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	req, _ := http.NewRequest("BREW", hs.frontend.URL+"/", nil)
	if res, err = hs.frontend.Client().Do(req); err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	compareGolden(t, hs.reg, "requests.prom",
		"flagproxy_requests_total",
		"flagproxy_requests_in_flight",
		"flagproxy_upstream_errors_total",
		"flagproxy_identity_errors_total",
		"flagproxy_override_errors_total",
		"flagproxy_cookies_skipped_total",
		"flagproxy_header_oversize_total",
	)
	if n, err := testutil.GatherAndCount(hs.reg, "flagproxy_request_duration_seconds"); err != nil || n != 3 {
		t.Errorf("duration series = %d, %v; want 3 (get/200, post/201, unknown/200)", n, err)
	}
}

// TestServedSeries checks the labels the cached request series carry, as
// promhttp would label them, and that a series is looked up once.
func TestServedSeries(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry(), &engine.Store{}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code         int
		method       string
		status, verb string
	}{
		{0, "GET", "200", "get"},
		{404, "get", "404", "get"},
		{99, "Get", "unknown", "unknown"},
		{600, "PATCH", "unknown", "patch"},
		{599, "BREW", "599", "unknown"},
		{101, "options", "101", "options"},
		{codeAborted, "GET", "aborted", "get"},
	} {
		s := m.series(c.code, c.method)
		s.requests.Inc()
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.status, c.verb)); got != 1 {
			t.Errorf("%d %s: requests{code=%q,method=%q} = %v, want 1", c.code, c.method, c.status, c.verb, got)
		}
		if again := m.series(c.code, c.method); again != s {
			t.Errorf("%d %s: a second lookup made new series", c.code, c.method)
		}
	}
}

func TestTwoProxiesOnOneRegistry(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	_, err := New(Config{Upstream: hs.proxy.upstream, Snapshots: hs.store, Registerer: hs.reg})
	if err == nil {
		t.Fatal("second proxy registered its metrics on the same registry")
	}
}

// TestAbortedResponseMetrics: a response the upstream broke off after its
// status went out (ReverseProxy then panics with http.ErrAbortHandler, and
// net/http cuts the connection) is counted as "aborted", not as the status
// the client may never have seen.
func TestAbortedResponseMetrics(t *testing.T) {
	hs := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("short"))
		w.(http.Flusher).Flush()    // the status and the start of the body go out
		panic(http.ErrAbortHandler) // then the body breaks off: the proxy sees an unexpected EOF
	})
	res, err := hs.frontend.Client().Get(hs.frontend.URL + "/")
	if err == nil {
		_, err = io.ReadAll(res.Body)
		_ = res.Body.Close()
	}
	if err == nil {
		t.Fatalf("the client read a whole response: %d", res.StatusCode)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.requests.WithLabelValues("aborted", "get")); got != 1 {
		t.Errorf(`requests{code="aborted"} = %v, want 1`, got)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.requests.WithLabelValues("200", "get")); got != 0 {
		t.Errorf(`requests{code="200"} = %v, want 0`, got)
	}
}
