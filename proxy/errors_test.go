package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// closedURL returns the URL of a port nothing listens on.
func closedURL(t *testing.T) *url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return &url.URL{Scheme: "http", Host: addr}
}

func TestUpstreamDownIs502(t *testing.T) {
	var logs bytes.Buffer
	hs := newHarness(t, Config{
		Upstream: closedURL(t),
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	}, nil)
	res, err := hs.frontend.Client().Get(hs.frontend.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", res.StatusCode)
	}
	if string(body) != "Bad Gateway\n" {
		t.Errorf("body = %q, want only the status text", body)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.upstreamErrors.WithLabelValues(reasonRefused)); got != 1 {
		t.Errorf("refused errors = %v, want 1", got)
	}
	for _, want := range []string{"level=ERROR", "upstream=http://127.0.0.1:", "status=502", "error="} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
}

func TestSlowUpstreamIs504(t *testing.T) {
	release := make(chan struct{})
	hs := newHarness(t, Config{UpstreamTimeout: 50 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	res := hs.get(t, "/slow", nil)
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status = %d, want 504", res.StatusCode)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.upstreamErrors.WithLabelValues(reasonTimeout)); got != 1 {
		t.Errorf("timeout errors = %v, want 1", got)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		err    error
		status int
		reason string
	}{
		{"client gone", canceled, fmt.Errorf("read: %w", context.Canceled), StatusClientClosedRequest, reasonCanceled},
		{"client gone, other error", canceled, errors.New("broken pipe"), StatusClientClosedRequest, reasonCanceled},
		{"deadline", context.Background(), fmt.Errorf("dial: %w", context.DeadlineExceeded), http.StatusGatewayTimeout, reasonTimeout},
		{"net timeout", context.Background(), &net.OpError{Op: "read", Err: timeoutError{}}, http.StatusGatewayTimeout, reasonTimeout},
		{"refused", context.Background(), &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, http.StatusBadGateway, reasonRefused},
		{"canceled upstream only", context.Background(), context.Canceled, http.StatusBadGateway, reasonOther},
		{"other", context.Background(), errors.New("EOF"), http.StatusBadGateway, reasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(tt.ctx, http.MethodGet, "/", nil)
			status, reason := classify(r, tt.err)
			if status != tt.status || reason != tt.reason {
				t.Errorf("classify = %d, %q; want %d, %q", status, reason, tt.status, tt.reason)
			}
		})
	}
}

func TestClientGoneIs499AtDebug(t *testing.T) {
	var logs bytes.Buffer
	hs := newHarness(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	hs.proxy.errorHandler(w, r, fmt.Errorf("copy: %w", context.Canceled))
	if w.Code != StatusClientClosedRequest {
		t.Errorf("status = %d, want 499", w.Code)
	}
	if strings.Contains(w.Body.String(), "copy") {
		t.Errorf("body %q leaks the error", w.Body.String())
	}
	if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "status=499") {
		t.Errorf("log = %q, want a debug line with status=499", logs.String())
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.upstreamErrors.WithLabelValues(reasonCanceled)); got != 1 {
		t.Errorf("canceled errors = %v, want 1", got)
	}
}

// TestUpstreamErrorsAreLoggedSparingly: an upstream that is down fails every
// request, but only a few a second are logged; the next line says how many
// were not.
func TestUpstreamErrorsAreLoggedSparingly(t *testing.T) {
	var logs syncBuffer
	hs := newHarness(t, Config{Upstream: closedURL(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	for range 100 {
		hs.get(t, "/x", nil)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.upstreamErrors.WithLabelValues(reasonRefused)); got != 100 {
		t.Errorf("refused errors = %v, want 100: every failure is counted", got)
	}
	if n := strings.Count(logs.String(), "upstream request failed"); n < 1 || n > 30 {
		t.Errorf("%d log lines for 100 failures, want a few", n)
	}
	time.Sleep(300 * time.Millisecond)
	hs.get(t, "/x", nil)
	if !regexp.MustCompile(`not_logged_before=[1-9]`).MatchString(logs.String()) {
		t.Errorf("no line says how many failures were not logged:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
