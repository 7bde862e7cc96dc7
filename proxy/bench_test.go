package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// benchSnapshot has 50 flags of every source (waffle percentages, some
// with languages, testing flags and plain ones, feature-flipper features,
// FeatureFlag keys), 10 switches and 5 samples.
func benchSnapshot(tb testing.TB) *engine.Snapshot { return benchSnapshotN(tb, 1) }

// benchSnapshotN has scale times as many waffle flags, features and keys.
func benchSnapshotN(tb testing.TB, scale int) *engine.Snapshot {
	return mustSnapshot(tb, benchData(scale))
}

// benchData is benchSnapshotN's data.
func benchData(scale int) engine.Data {
	d := engine.Data{Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag}}
	for i := range 30 * scale {
		f := engine.WaffleFlag{Name: fmt.Sprintf("waffle_flag_%02d", i)}
		switch i % 3 {
		case 0:
			f.Percent = engine.PercentOf(int32(100 + 10*i))
			if i%9 == 0 {
				f.Languages = "fr, de"
			}
		case 1:
			f.Testing = true
		case 2:
			f.Everyone = engine.Yes
		}
		d.WaffleFlags = append(d.WaffleFlags, f)
	}
	for i := range 10 * scale {
		d.Features = append(d.Features, engine.Feature{Name: fmt.Sprintf("feature_%02d", i), Enabled: i%2 == 0})
		d.FeatureFlags = append(d.FeatureFlags, engine.FeatureFlag{Key: fmt.Sprintf("model_flag_%02d", i), Enabled: true, RolloutPercent: int64(10 * (i % 10))})
	}
	for i := range 10 {
		d.Switches = append(d.Switches, engine.Switch{Name: fmt.Sprintf("switch_%02d", i), Active: i%2 == 1})
	}
	for i := range 5 {
		d.Samples = append(d.Samples, engine.Sample{Name: fmt.Sprintf("sample_%02d", i), Percent: engine.PercentOf(int32(200 * i))})
	}
	return d
}

// stubTransport answers every request at once, without sockets, with a
// page of body bytes (none when nil).
type stubTransport struct{ body []byte }

func (t stubTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res := &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		Body:   http.NoBody, ContentLength: 0, Request: r,
	}
	if t.body != nil {
		res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(t.body)), int64(len(t.body))
	}
	return res, nil
}

// discardWriter is a ResponseWriter that keeps nothing but a header map.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkServeHTTP measures one proxied request against an in-process
// upstream: "reverseproxy" is a bare httputil.ReverseProxy (with the same
// buffer pool), "flagproxy" the whole Proxy with metrics, so the difference
// is flagproxy's overhead. The request sets a waffle testing parameter, a
// dwf_ cookie and Accept-Language (the site has LocaleMiddleware); the
// response gets 11 Set-Cookie lines. The "page" variants answer with a
// 32 KiB page, which flagproxy buffers (see bufferResponse); the
// "returning" ones come from a visitor who sends back every dwf_ cookie,
// so that the decisions come from the memo; "returning-nosamples" is that
// visitor on a site without waffle samples.
func BenchmarkServeHTTP(b *testing.B) {
	for _, page := range []struct {
		name string
		body []byte
	}{{"", nil}, {"-page", bytes.Repeat([]byte("<p>flagproxy</p>"), 2048)}} {
		benchServeHTTP(b, page.name, stubTransport{page.body}, benchSnapshot(b),
			"sessionid=abcdefgh12345678; dwf_waffle_flag_00=True; csrftoken=x")
	}
	benchServeHTTP(b, "-returning", stubTransport{}, benchSnapshot(b), returningCookie(30))
	noSamples := benchData(1)
	noSamples.Samples = nil
	benchServeHTTP(b, "-returning-nosamples", stubTransport{}, mustSnapshot(b, noSamples), returningCookie(30))
}

// returningCookie is the Cookie header of a returning visitor of a site
// with n waffle flags (benchSnapshotN's): a dwf_ cookie for every
// percentage flag, renewed an hour ago.
func returningCookie(n int) string {
	cookie := "sessionid=abcdefgh12345678; csrftoken=x; flagproxy_waffle_renewed=" + strconv.FormatInt(testNow().Unix()-3600, 10)
	for i := 0; i < n; i += 3 {
		cookie += fmt.Sprintf("; dwf_waffle_flag_%02d=%s", i, []string{"True", "False"}[i%2])
	}
	return cookie
}

// BenchmarkServeHTTP1000 is BenchmarkServeHTTP with 1,000 flags (600 of them
// waffle flags, 200 of those percentages) for a returning visitor, whose
// request carries a dwf_ cookie for every percentage flag, renewed an
// hour ago.
func BenchmarkServeHTTP1000(b *testing.B) {
	benchServeHTTP(b, "", stubTransport{}, benchSnapshotN(b, 20), returningCookie(600))
}

func benchServeHTTP(b *testing.B, suffix string, transport http.RoundTripper, snap *engine.Snapshot, cookie string) {
	upstream, _ := url.Parse("http://django.test")
	req := httptest.NewRequest(http.MethodGet, "http://django.test/page?dwft_waffle_flag_01=1&q=x", nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Accept-Language", "fr-CA,fr;q=0.9,en-US;q=0.8,en;q=0.7")
	run := func(b *testing.B, h http.Handler) {
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	}
	b.Run("reverseproxy"+suffix, func(b *testing.B) {
		run(b, &httputil.ReverseProxy{
			Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(upstream); pr.SetXForwarded() },
			Transport:  transport,
			BufferPool: &bufferPool{},
		})
	})
	b.Run("flagproxy"+suffix, func(b *testing.B) {
		store := &engine.Store{}
		p, err := New(Config{
			Upstream: upstream, Snapshots: store, Transport: transport,
			Registerer: prometheus.NewRegistry(), Rand: fixedRand(0.5), Now: testNow,
			Locale: engine.NewLocale(engine.LocaleSettings{I18N: true, LanguageCode: "en-us",
				Languages: []string{"en", "en-us", "fr", "de"}, CookieName: "django_language"}),
		})
		if err != nil {
			b.Fatal(err)
		}
		store.Publish(snap, testNow())
		run(b, p)
	})
}
