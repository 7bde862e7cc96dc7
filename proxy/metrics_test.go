package proxy

import (
	"bytes"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
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

func TestTwoProxiesOnOneRegistry(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	_, err := New(Config{Upstream: hs.proxy.upstream, Snapshots: hs.store, Registerer: hs.reg})
	if err == nil {
		t.Fatal("second proxy registered its metrics on the same registry")
	}
}
