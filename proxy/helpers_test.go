package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Interface guard: the engine's store is a snapshot source.
var _ SnapshotSource = (*engine.Store)(nil)

// testNow is the fixed clock of the tests; 30 days later is the
// "Mon, 21 Dec 2026 07:58:48 GMT" of spec/waffle.md §2.4.
func testNow() time.Time { return time.Date(2026, 11, 21, 7, 58, 48, 0, time.UTC) }

// seen is what the backend recorded of one request.
type seen struct {
	Header     http.Header
	URL        *url.URL
	RequestURI string
	Host       string
	Trailer    http.Header
}

// backend is an upstream that records every request it serves.
type backend struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

// newBackend starts an upstream; h (optional) answers after recording.
func newBackend(t *testing.T, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := *r.URL
		// Trailers arrive after the body; h gets the body again.
		if r.ContentLength != 0 {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		b.mu.Lock()
		b.reqs = append(b.reqs, seen{Header: r.Header.Clone(), URL: &u, RequestURI: r.RequestURI, Host: r.Host, Trailer: r.Trailer.Clone()})
		b.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "hello from django")
	}))
	t.Cleanup(b.Close)
	return b
}

// last returns the last request the backend saw.
func (b *backend) last(t *testing.T) seen {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) == 0 {
		t.Fatal("backend saw no request")
	}
	return b.reqs[len(b.reqs)-1]
}

// harness is a proxy in front of a backend.
type harness struct {
	backend  *backend
	proxy    *Proxy
	frontend *httptest.Server
	store    *engine.Store
	reg      *prometheus.Registry
}

// newHarness starts a backend and a proxy in front of it. cfg.Upstream and
// cfg.Snapshots are filled in when nil; the clock defaults to testNow and
// the registry is a fresh one. Each tweak runs on the proxy before it
// serves.
func newHarness(t *testing.T, cfg Config, h http.HandlerFunc, tweaks ...func(*Proxy)) *harness {
	t.Helper()
	hs := &harness{backend: newBackend(t, h), store: &engine.Store{}, reg: prometheus.NewRegistry()}
	if cfg.Upstream == nil {
		u, err := url.Parse(hs.backend.URL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Upstream = u
	}
	if cfg.Snapshots == nil {
		cfg.Snapshots = hs.store
	}
	if cfg.Now == nil {
		cfg.Now = testNow
	}
	if cfg.Registerer == nil {
		cfg.Registerer = hs.reg
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, tw := range tweaks {
		tw(p)
	}
	hs.proxy = p
	hs.frontend = httptest.NewServer(p)
	t.Cleanup(hs.frontend.Close)
	return hs
}

// get sends a GET for target (path and query) through the proxy.
func (hs *harness) get(t *testing.T, target string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.frontend.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := hs.frontend.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res
}

// raw writes a request byte for byte on a new connection to the proxy, so
// that header names reach it exactly as written, and reads the response.
func (hs *harness) raw(t *testing.T, request string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", hs.frontend.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res
}

// rawRequest builds an HTTP/1.1 request text with the given header lines.
func rawRequest(target string, lines ...string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: django.test\r\n")
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// fixedRand is a Rand that always returns its value.
type fixedRand float64

func (r fixedRand) Float64() float64 { return float64(r) }

// fakeOverrider returns fixed overrides, cookie or error.
type fakeOverrider struct {
	o        engine.Overrides
	cookie   *http.Cookie
	err      error
	sawQuery *[]string // the query's names the overrider was given
}

func (f fakeOverrider) Overrides(_ context.Context, q engine.OverrideQuery) (engine.Overrides, *http.Cookie, error) {
	if f.sawQuery != nil {
		*f.sawQuery = q.Keys
		if q.CrossSite {
			*f.sawQuery = nil // what a cross-site request may ask for
		}
	}
	return f.o, f.cookie, f.err
}

// fakeResolver returns a fixed subject or an error.
type fakeResolver struct {
	s   engine.Subject
	err error
}

func (f fakeResolver) Subject(context.Context, engine.Values) (engine.Subject, error) {
	return f.s, f.err
}

// mustSnapshot builds a snapshot or fails the test.
func mustSnapshot(t testing.TB, d engine.Data) *engine.Snapshot {
	t.Helper()
	if d.Waffle == (engine.WaffleSettings{}) {
		d.Waffle = engine.DefaultWaffleSettings()
	}
	s, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

// decode decodes the flags header a backend saw.
func decode(t *testing.T, h http.Header) Payload {
	t.Helper()
	p, err := Decode(h)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return p
}
