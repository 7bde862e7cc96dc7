package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// goldenSnapshot exercises every member of the header: an escaped name, a
// conflict, a percentage roll, waffle's testing query, a URL override and
// non-ASCII names.
func goldenSnapshot(t *testing.T) *engine.Snapshot {
	return mustSnapshot(t, engine.Data{
		Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper},
		WaffleFlags: []engine.WaffleFlag{
			{Name: "beta", Everyone: engine.Yes},
			{Name: "dup", Everyone: engine.Yes},
			{Name: "pct", Percent: engine.PercentOf(500)},
			{Name: "tested", Testing: true},
		},
		Features: []engine.Feature{
			{Name: "new_ui"},
			{Name: "dup"},
			{Name: "ünï <&>", Enabled: true},
			{Name: "a\"b\\c\n", Enabled: true},
		},
		Switches: []engine.Switch{{Name: "maint"}, {Name: "sw😀", Active: true}},
		Samples:  []engine.Sample{{Name: "smp", Percent: engine.PercentOf(500)}},
	})
}

func TestFlagsHeaderGolden(t *testing.T) {
	snap := goldenSnapshot(t)
	hs := newHarness(t, Config{
		Rand:      fixedRand(0.3),
		Overrider: fakeOverrider{o: engine.Overrides{URL: map[string]bool{"new_ui": true}}},
	}, nil)
	hs.store.Publish(snap, testNow())
	hs.get(t, "/?dwft_tested=1", nil)
	want := `{"flags":{"a\"b\\c\n":true,"beta":true,"dup":false,"new_ui":true,"pct":true,"tested":true,` +
		`"\u00fcn\u00ef \u003c\u0026\u003e":true},"switches":{"maint":false,"sw\ud83d\ude00":true},` +
		`"sources":{"new_ui":"url","pct":"roll","tested":"query"},` +
		`"conflicts":{"dup":["featureflipper","waffle"]},"version":"` + snap.Version() + `","state":"ok","samples":{"smp":true}}`
	if got := hs.backend.last(t).Header.Get(FlagsHeader); got != want {
		t.Errorf("flags header\n got %s\nwant %s", got, want)
	}
	p := decode(t, hs.backend.last(t).Header)
	if diff := cmp.Diff(map[string][]string{"dup": {"featureflipper", "waffle"}}, p.Conflicts); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
	if !p.Flags["ünï <&>"] || !p.Switches["sw😀"] || !p.Flags["a\"b\\c\n"] {
		t.Errorf("escaped names did not round-trip: %v %v", p.Flags, p.Switches)
	}
}

// TestFlagsHeaderRollSource checks that a waffle percentage decided by a
// fresh roll is reported with the source "roll", and one decided by the
// dwf_ cookie the roll set with "cookie".
func TestFlagsHeaderRollSource(t *testing.T) {
	snap := goldenSnapshot(t)
	hs := newHarness(t, Config{Rand: fixedRand(0.3)}, nil)
	hs.store.Publish(snap, testNow())
	for cookie, want := range map[string]string{"": "roll", "dwf_pct=False": "cookie"} {
		h := http.Header{}
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		hs.get(t, "/", h)
		if got := decode(t, hs.backend.last(t).Header).Sources["pct"]; got != want {
			t.Errorf("cookie %q: source of pct = %q, want %q", cookie, got, want)
		}
	}
}

func TestFlagsHeaderStates(t *testing.T) {
	snap := simpleSnapshot(t)
	okValue := `{"flags":{"beta":true},"switches":{},"sources":{},"version":"` + snap.Version() + `","state":"ok","samples":{}}`
	tests := []struct {
		name       string
		publish    bool
		loadedAt   time.Time
		staleAfter time.Duration
		want       string
	}{
		{"no snapshot", false, time.Time{}, 0, unavailableJSON},
		{"fresh", true, testNow().Add(-30 * time.Second), 0, okValue},
		{"stale", true, testNow().Add(-31 * time.Second), 0, strings.Replace(okValue, `"ok"`, `"stale"`, 1)},
		{"custom stale after", true, testNow().Add(-31 * time.Second), time.Minute, okValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, Config{StaleAfter: tt.staleAfter}, nil)
			if tt.publish {
				hs.store.Publish(snap, tt.loadedAt)
			}
			res := hs.get(t, "/", nil)
			if res.StatusCode != http.StatusOK {
				t.Errorf("status = %d, want 200 (requests pass whatever the state)", res.StatusCode)
			}
			if got := hs.backend.last(t).Header.Get(FlagsHeader); got != tt.want {
				t.Errorf("flags header\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// bigSnapshot has n switches with incompressible names, so its header needs
// the large form; it also returns the switches' states.
func bigSnapshot(t testing.TB, n int) (*engine.Snapshot, map[string]bool) {
	r := rand.New(rand.NewPCG(1, 2))
	d := engine.Data{Sources: []engine.Source{engine.SourceWaffle}}
	want := map[string]bool{}
	for i := range n {
		sw := engine.Switch{Name: fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64()), Active: i%3 == 0}
		d.Switches = append(d.Switches, sw)
		want[sw.Name] = sw.Active
	}
	return mustSnapshot(t, d), want
}

func TestLargeValueRoundTrips(t *testing.T) {
	snap, switches := bigSnapshot(t, 2000)
	hs := newHarness(t, Config{SigningKey: []byte("key")}, nil)
	hs.store.Publish(snap, testNow())
	hs.get(t, "/", nil)
	h := hs.backend.last(t).Header
	var ptr struct {
		Encoding string
		Parts    int
	}
	if err := json.Unmarshal([]byte(h.Get(FlagsHeader)), &ptr); err != nil {
		t.Fatal(err)
	}
	if ptr.Encoding != Encoding || ptr.Parts < 2 || ptr.Parts > MaxParts {
		t.Fatalf("pointer %s: want the large form in 2..%d parts", h.Get(FlagsHeader), MaxParts)
	}
	for k, vs := range h {
		for _, v := range vs {
			if inNamespace(k) && len(k)+2+len(v) > 8190 {
				t.Errorf("%s line is %d bytes, over gunicorn's limit", k, len(k)+2+len(v))
			}
			if k != FlagsHeader && k != SignatureHeader && len(v) > PartSize {
				t.Errorf("%s is %d bytes, over PartSize", k, len(v))
			}
		}
	}
	if _, ok := h[partHeader(ptr.Parts+1)]; ok {
		t.Errorf("extra part %d", ptr.Parts+1)
	}
	p := decode(t, h)
	if p.State != StateOK || p.Version != snap.Version() {
		t.Errorf("decoded state %q, version %q", p.State, p.Version)
	}
	if diff := cmp.Diff(switches, p.Switches); diff != "" {
		t.Errorf("switches (-want +got):\n%s", diff)
	}
	// The tampered digest must be caught.
	bad := h.Clone()
	bad.Set(partHeader(1), "A"+bad.Get(partHeader(1))[1:])
	if _, err := Decode(bad); !errors.Is(err, ErrMalformedFlagsHeader) {
		t.Errorf("Decode of a tampered part: %v, want ErrMalformedFlagsHeader", err)
	}
}

func TestOversizeValueIsRefused(t *testing.T) {
	snap, _ := bigSnapshot(t, 50)
	hs := newHarness(t, Config{}, nil, func(p *Proxy) { p.pipe.limits = limits{inline: 100, part: 10, maxParts: 2} })
	hs.store.Publish(snap, testNow())
	hs.get(t, "/", nil)
	h := hs.backend.last(t).Header
	want := `{"flags":{},"switches":{},"samples":{},"sources":{},"version":"` + snap.Version() + `","state":"unavailable"}`
	if got := h.Get(FlagsHeader); got != want {
		t.Errorf("flags header\n got %s\nwant %s", got, want)
	}
	if _, ok := h[partHeader(1)]; ok {
		t.Errorf("parts sent for a refused value")
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.headerOversize); got != 1 {
		t.Errorf("oversize counter = %v, want 1", got)
	}
	if !hs.proxy.pipe.enc.Load().tooLarge {
		t.Error("the snapshot's encoder does not know its header can never fit")
	}
	rec := httptest.NewRecorder()
	NewAdmin(AdminConfig{Snapshots: hs.store, Header: hs.proxy.Pipeline(), Now: testNow}).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if !strings.Contains(rec.Body.String(), `"header_too_large":true`) {
		t.Errorf("/readyz = %s, want header_too_large", rec.Body)
	}
}

func TestSignature(t *testing.T) {
	key := []byte("django-insecure-key")
	for _, n := range []int{1, 2000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			hs := newHarness(t, Config{SigningKey: key}, nil)
			snap, _ := bigSnapshot(t, n)
			hs.store.Publish(snap, testNow())
			hs.get(t, "/", nil)
			h := hs.backend.last(t).Header
			ts := testNow().Unix()
			m := hmac.New(sha256.New, key)
			fmt.Fprintf(m, "%d.%s", ts, h.Get(FlagsHeader))
			want := fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(m.Sum(nil)))
			if got := h.Get(SignatureHeader); got != want {
				t.Errorf("signature = %q, want %q", got, want)
			}
		})
	}
}

func TestStripInbound(t *testing.T) {
	h := map[string][]string{
		"X-Flagproxy-Flags": {"a"}, "x-flagproxy-flags": {"a"}, "X_Flagproxy_Flags": {"a"},
		"X-FLAGPROXY-FLAGS-1": {"a"}, "X-Flagproxy-": {"a"}, "X_Forwarded_For": {"a"},
		"x-forwarded-proto": {"a"}, "X-Flagproxy": {"keep"}, "X-Flagproxyflags": {"keep"},
		"X-Forwarded-Port": {"a"}, "X-Real-Ip": {"a"}, "X_Real_IP": {"a"}, "Forwarded": {"a"},
		"X-Forwarded-": {"keep"}, "X-Forwardedfor": {"keep"}, "X-Real-Ipv6": {"keep"}, "Cookie": {"keep"},
	}
	stripInbound(h)
	want := map[string][]string{"X-Flagproxy": {"keep"}, "X-Flagproxyflags": {"keep"},
		"X-Forwarded-": {"keep"}, "X-Forwardedfor": {"keep"}, "X-Real-Ipv6": {"keep"}, "Cookie": {"keep"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("after stripInbound (-want +got):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want error
	}{
		{"missing", http.Header{}, ErrNoFlagsHeader},
		{"two lines", http.Header{FlagsHeader: {unavailableJSON, unavailableJSON}}, ErrMalformedFlagsHeader},
		{"not json", http.Header{FlagsHeader: {"{"}}, ErrMalformedFlagsHeader},
		{"missing member", http.Header{FlagsHeader: {`{"flags":{},"version":"","state":"ok"}`}}, ErrMalformedFlagsHeader},
		{"bad state", http.Header{FlagsHeader: {`{"flags":{},"switches":{},"samples":{},"sources":{},"version":"","state":"fine"}`}}, ErrMalformedFlagsHeader},
		{"unknown encoding", http.Header{FlagsHeader: {`{"encoding":"zstd","parts":1}`}}, ErrMalformedFlagsHeader},
		{"missing part", http.Header{FlagsHeader: {`{"encoding":"gzip+base64url","parts":1,"sha256":"` + strings.Repeat("0", 64) + `"}`}}, ErrMalformedFlagsHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.h); !errors.Is(err, tt.want) {
				t.Errorf("Decode: %v, want %v", err, tt.want)
			}
		})
	}
}

// validName is what the header makes of a name: each invalid UTF-8 byte
// becomes U+FFFD.
func validName(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // range yields U+FFFD for each invalid byte
	}
	return b.String()
}

func FuzzHeaderEncoding(f *testing.F) {
	f.Add([]byte("\x04beta\x06new_ui\x03\xff\xfe\x00"), uint64(5), false)
	f.Add([]byte("\x05a\"\\\n\x08\x0a\xf0\x9f\x98\x80<&>\xe2\x80\xa8"), uint64(0xFFFF), true)
	f.Add([]byte("\x01\x00\x02\r\n\x03\xed\xa0\x80"), uint64(0), true)
	f.Fuzz(func(t *testing.T, data []byte, bits uint64, large bool) {
		var names []string
		for len(data) > 0 && len(names) < 64 {
			n := min(int(data[0])%24, len(data)-1)
			names = append(names, string(data[1:1+n]))
			data = data[1+n:]
		}
		bit := func(i int) bool { return bits>>(uint(i)%64)&1 == 1 }
		d := engine.Data{Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper}}
		want := Payload{Flags: map[string]bool{}, Switches: map[string]bool{}, Samples: map[string]bool{}, Sources: map[string]string{}, State: StateOK}
		urlOverrides := map[string]bool{}
		seen := map[string]bool{}
		for i, name := range names {
			if seen[validName(name)] {
				continue // names that collide once made valid, or repeat
			}
			seen[validName(name)] = true
			switch i % 3 {
			case 0:
				d.Features = append(d.Features, engine.Feature{Name: name, Enabled: bit(i)})
				want.Flags[validName(name)] = bit(i)
				if bit(i + 17) {
					urlOverrides[name] = !bit(i)
					want.Flags[validName(name)] = !bit(i)
					want.Sources[validName(name)] = "url"
				}
			case 1:
				d.Switches = append(d.Switches, engine.Switch{Name: name, Active: bit(i)})
				want.Switches[validName(name)] = bit(i)
			case 2:
				pct := engine.PercentOf(0)
				if bit(i) {
					pct = engine.PercentOf(1000)
				}
				d.Samples = append(d.Samples, engine.Sample{Name: name, Percent: pct})
				want.Samples[validName(name)] = bit(i)
			}
		}
		d.Waffle = engine.DefaultWaffleSettings()
		snap, err := engine.NewSnapshot(d)
		if err != nil {
			t.Skip(err)
		}
		want.Version = snap.Version()
		dec := snap.Evaluate(&engine.Request{Overrides: engine.Overrides{URL: urlOverrides}}, fixedRand(0.5))
		e := newEncoder(snap)
		value := e.encode(&dec, StateOK, false)
		if len(value) > e.bound {
			t.Fatalf("value of %d bytes, bound %d", len(value), e.bound)
		}
		p := &Proxy{pipe: newPipeline()}
		if large {
			p.pipe.limits = limits{inline: 32, part: 16, maxParts: MaxParts}
		}
		h := http.Header{}
		c, err := p.pipe.form(e, value, StateOK)
		if errors.Is(err, errTooLarge) && large {
			return
		} else if err != nil {
			t.Fatalf("form: %v", err)
		}
		c.set(h)
		for k, vs := range h {
			if k != FlagsHeader && !strings.HasPrefix(k, FlagsHeader+"-") {
				t.Fatalf("unexpected header name %q", k)
			}
			for _, v := range vs {
				for i := 0; i < len(v); i++ {
					if c := v[i]; c < 0x20 || c > 0x7E {
						t.Fatalf("%s holds byte %#x: %q", k, c, v)
					}
				}
			}
		}
		got, err := Decode(h)
		if err != nil {
			t.Fatalf("Decode(%q): %v", h, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		if !utf8.ValidString(value) {
			t.Fatalf("value is not UTF-8")
		}
	})
}

func BenchmarkEncodeHeader(b *testing.B) {
	snap := benchSnapshot(b)
	d := snap.Evaluate(&engine.Request{Overrides: engine.Overrides{URL: map[string]bool{"feature_03": true}}}, fixedRand(0.3))
	e := newEncoder(snap)
	b.SetBytes(int64(len(e.encode(&d, StateOK, false))))
	b.ReportAllocs()
	for b.Loop() {
		e.encode(&d, StateOK, false)
	}
}

// TestEncodedValuesAreReusedOnlyForTheSameDecisions: the header values a
// Pipeline reuses for a decision set seen before are those a fresh
// Pipeline writes for it, for every change that shows in the JSON (a
// decision, a source, a switch, a sample, the state, a stale identity),
// inline and in the large form; and the JSON sent is the whole JSON.
func TestEncodedValuesAreReusedOnlyForTheSameDecisions(t *testing.T) {
	snap := benchSnapshot(t)
	base := snap.Evaluate(&engine.Request{}, fixedRand(0.5))
	variant := func(change func(d *engine.Decisions, res *Result)) Result {
		d := engine.Decisions{Flags: slices.Clone(base.Flags), Switches: slices.Clone(base.Switches), Samples: slices.Clone(base.Samples)}
		res := Result{Snapshot: snap, State: StateOK, Decisions: d}
		change(&res.Decisions, &res)
		return res
	}
	results := []Result{
		variant(func(*engine.Decisions, *Result) {}),
		variant(func(d *engine.Decisions, _ *Result) { d.Flags[3].On = !d.Flags[3].On }),
		variant(func(d *engine.Decisions, _ *Result) { d.Flags[3].Reason = engine.ReasonOverrideURL }),
		variant(func(d *engine.Decisions, _ *Result) { d.Flags[3].Reason = engine.ReasonOverrideSession }),
		variant(func(d *engine.Decisions, _ *Result) { d.Switches[0].On = !d.Switches[0].On }),
		variant(func(d *engine.Decisions, _ *Result) { d.Samples[4].On = !d.Samples[4].On }),
		variant(func(_ *engine.Decisions, res *Result) { res.State = StateStale }),
		variant(func(_ *engine.Decisions, res *Result) { res.Subject.Stale = true }),
	}
	for _, lim := range []limits{defaultLimits(), {inline: 64, part: 200, maxParts: MaxParts}} {
		cached := newPipeline()
		cached.limits = lim
		for round := range 2 {
			for i, r := range results {
				fresh := newPipeline()
				fresh.limits = lim
				got, want := r, r
				got.Header, want.Header = http.Header{}, http.Header{}
				cached.encode(context.Background(), &got)
				fresh.encode(context.Background(), &want)
				if !reflect.DeepEqual(got.Header, want.Header) {
					t.Fatalf("limits %+v, round %d, variant %d: header %q, want %q", lim, round, i, got.Header, want.Header)
				}
				if sent, json := sentJSON(t, got.Header), newEncoder(snap).encode(&r.Decisions, r.State, r.Subject.Stale); sent != json {
					t.Fatalf("limits %+v, round %d, variant %d: sent\n%s\nwant\n%s", lim, round, i, sent, json)
				}
			}
		}
		want := len(results)
		if newEncoder(snap).bound <= lim.inline {
			want = 0 // always inline: never cached
		}
		if n := cached.values.Len(); n != want {
			t.Errorf("limits %+v: %d values cached, want %d", lim, n, want)
		}
	}
}

// sentJSON is the flags JSON h carries, joined from its parts when large.
func sentJSON(t *testing.T, h http.Header) string {
	t.Helper()
	var ptr pointer
	if err := json.Unmarshal([]byte(h.Get(FlagsHeader)), &ptr); err != nil || ptr.Encoding == "" {
		return h.Get(FlagsHeader)
	}
	raw, err := joinParts(h, ptr)
	if err != nil {
		t.Fatalf("joinParts: %v", err)
	}
	return string(raw)
}

// stepRand steps through 0.05, 0.15, … 0.95 and again: every call draws
// another number, so samples differ from one request to the next.
type stepRand struct{ n atomic.Int64 }

func (r *stepRand) Float64() float64 { return float64(r.n.Add(1)%10)/10 + 0.05 }

// TestLargeValueTailCompressedOnce: a returning visitor's large value,
// whose samples change from one request to the next, sends the sources
// stored the first time and compressed the second (shorter), and every
// value decodes to the same flags and sources.
func TestLargeValueTailCompressedOnce(t *testing.T) {
	cookie := "sessionid=x; flagproxy_waffle_renewed=" + strconv.FormatInt(testNow().Unix()-3600, 10)
	for i := 0; i < 600; i += 3 {
		cookie += fmt.Sprintf("; dwf_waffle_flag_%02d=%s", i, []string{"True", "False"}[i%2])
	}
	p := newPipeline()
	p.now, p.rand, p.staleAfter = testNow, &stepRand{}, time.Hour
	store := &engine.Store{}
	store.Publish(benchSnapshotN(t, 20), testNow())
	p.snaps = store
	var sizes []int
	var first Payload
	for i := range 4 {
		res := p.Decide(t.Context(), Input{Cookie: cookie, Path: "/"})
		size := 0
		for _, vs := range res.Header {
			size += len(vs[0])
		}
		sizes = append(sizes, size)
		got, err := Decode(res.Header)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if len(got.Sources) != 200 {
			t.Fatalf("request %d: %d sources, want 200 (one a dwf_ cookie)", i, len(got.Sources))
		}
		if i == 0 {
			first = got
			continue
		}
		if diff := cmp.Diff(first.Flags, got.Flags); diff != "" {
			t.Errorf("request %d: flags (-first +got):\n%s", i, diff)
		}
		if diff := cmp.Diff(first.Sources, got.Sources); diff != "" {
			t.Errorf("request %d: sources (-first +got):\n%s", i, diff)
		}
	}
	// Requests 2 and 3 draw the samples of 0 and 1 again: their values
	// come from the value cache.
	if sizes[1] >= sizes[0]*3/4 || sizes[2] != sizes[0] || sizes[3] != sizes[1] {
		t.Errorf("header bytes by request %v: want the second well under the first, then both again", sizes)
	}
}
