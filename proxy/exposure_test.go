package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// testClock is a clock a test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// runningExposure is an Exposure whose writer runs until stop.
type runningExposure struct {
	*Exposure
	reg  *prometheus.Registry
	stop func() // ends Run and waits for it: every queued event is written
}

// startExposure builds an Exposure (a fresh registry, testNow unless
// cfg.Now is set) and runs its writer.
func startExposure(t *testing.T, cfg ExposureConfig) *runningExposure {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.Now == nil {
		cfg.Now = testNow
	}
	e, err := NewExposure(cfg)
	if err != nil {
		t.Fatalf("NewExposure: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &runningExposure{Exposure: e, reg: reg, stop: stop}
}

// readEvents reads the JSON lines of an exposure log file.
func readEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// exposureData has a matching percentage flag exp_a, a matching switch
// exp_sw, a matching sample exp_s and a flag that does not match.
func exposureData() engine.Data {
	return engine.Data{
		Sources: []engine.Source{engine.SourceWaffle},
		WaffleFlags: []engine.WaffleFlag{
			{Name: "exp_a", Percent: engine.PercentOf(500)},
			{Name: "other", Percent: engine.PercentOf(500)},
		},
		Switches: []engine.Switch{{Name: "exp_sw", Active: true}},
		Samples:  []engine.Sample{{Name: "exp_s", Percent: engine.PercentOf(1000)}},
	}
}

// summary is the part of an event the dedup tests compare.
func summary(ev map[string]any) string {
	who := "-"
	if u, ok := ev["user_id"].(string); ok {
		who = "u" + u
	} else if v, ok := ev["visitor_id"].(string); ok {
		who = "s" + v[:4]
	}
	return who + " " + ev["kind"].(string) + ":" + ev["flag"].(string) + "=" + map[bool]string{true: "on", false: "off"}[ev["value"].(bool)] +
		" " + ev["reason"].(string)
}

func TestExposureDedup(t *testing.T) {
	log := filepath.Join(t.TempDir(), "exposure.log")
	clock := &testClock{t: testNow()}
	x := startExposure(t, ExposureConfig{Patterns: []string{"exp_*"}, Sink: log, Now: clock.now, VisitorKey: []byte("k")})
	hs := newHarness(t, Config{Rand: fixedRand(0.3), Exposure: x.Exposure}, nil)
	hs.store.Publish(mustSnapshot(t, exposureData()), testNow())
	get := func(cookie string) {
		h := http.Header{}
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		hs.get(t, "/page/", h)
	}
	for range 3 {
		get("sessionid=A; dwf_exp_a=True")
	}
	get("sessionid=B; dwf_exp_a=False")
	get("sessionid=B; dwf_exp_a=False")
	get("sessionid=B; dwf_exp_a=True") // a new value: a new event
	get("")                            // two new browsers: two fresh rolls
	get("")
	get("dwf_exp_a=True") // no session: one entry for all of them
	get("dwf_exp_a=True")
	clock.add(24 * time.Hour) // the next UTC day: a new window
	get("sessionid=A; dwf_exp_a=True")
	x.stop()

	var got []string
	for _, ev := range readEvents(t, log) {
		got = append(got, summary(ev))
	}
	a, b := visitorIDOf(x.Exposure, "A")[:4], visitorIDOf(x.Exposure, "B")[:4]
	want := []string{
		"s" + a + " flag:exp_a=on percent-cookie", "s" + a + " switch:exp_sw=on active", "s" + a + " sample:exp_s=on sample",
		"s" + b + " flag:exp_a=off percent-cookie", "s" + b + " switch:exp_sw=on active", "s" + b + " sample:exp_s=on sample",
		"s" + b + " flag:exp_a=on percent-cookie",
		"- flag:exp_a=on percent-roll", "- switch:exp_sw=on active", "- sample:exp_s=on sample",
		"- flag:exp_a=on percent-roll",
		"- flag:exp_a=on percent-cookie",
		"s" + a + " flag:exp_a=on percent-cookie", "s" + a + " switch:exp_sw=on active", "s" + a + " sample:exp_s=on sample",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if n := testutil.ToFloat64(x.out.events); n != float64(len(want)) {
		t.Errorf("flagproxy_exposure_events_total = %v, want %d", n, len(want))
	}
	if n := testutil.ToFloat64(x.dupes); n == 0 {
		t.Error("no duplicate counted")
	}
}

// visitorIDOf is the visitor id of a session cookie value under e's key.
func visitorIDOf(e *Exposure, session string) string {
	var v visitor
	v.fill(e, &exposed{cookie: e.session + "=" + session})
	return v.id
}

func TestExposureEventSchema(t *testing.T) {
	log := filepath.Join(t.TempDir(), "exposure.log")
	const session = "abcdefghijklmnopqrstuvwxyz012345"
	x := startExposure(t, ExposureConfig{Patterns: []string{"flag:exp_*"}, Sink: log, SessionCookie: "sid"})
	hs := newHarness(t, Config{Rand: fixedRand(0.9), Exposure: x.Exposure}, nil)
	snap := mustSnapshot(t, exposureData())
	hs.store.Publish(snap, testNow())
	hs.get(t, "/a%20b/c?token=s3cret&session_enable_x=1", http.Header{"Cookie": {"sid=" + session}})
	x.stop()
	events := readEvents(t, log)
	if len(events) != 1 {
		t.Fatalf("got %d events, want 1: %v", len(events), events)
	}
	ev := events[0]
	id, _ := ev["visitor_id"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("visitor_id %q: want 32 hex digits", id)
	}
	want := map[string]any{
		"schema_version": float64(1), "time": "2026-11-21T07:58:48.000Z", "kind": "flag", "flag": "exp_a",
		"value": false, "reason": "percent-roll", "user_id": nil, "visitor_id": id,
		"snapshot_version": snap.Version(), "path": "/a%20b/c", "status": float64(200),
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	raw, _ := os.ReadFile(log)
	for _, secret := range []string{session, session[:16], "s3cret", "token"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the log holds %q: %s", secret, raw)
		}
	}
}

func TestExposureVisitorID(t *testing.T) {
	newExp := func(key string) *Exposure {
		e, err := NewExposure(ExposureConfig{Patterns: []string{"*"}, Sink: "-", VisitorKey: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	k1, k1again, k2, random := newExp("one"), newExp("one"), newExp("two"), newExp("")
	if visitorIDOf(k1, "s") != visitorIDOf(k1again, "s") {
		t.Error("the same key gives different ids for one session")
	}
	for _, e := range []*Exposure{k2, random} {
		if visitorIDOf(k1, "s") == visitorIDOf(e, "s") {
			t.Error("different keys give the same id")
		}
	}
	if visitorIDOf(k1, "s") == visitorIDOf(k1, "t") {
		t.Error("two sessions share an id")
	}
	var v visitor
	v.fill(k1, &exposed{userID: "42", cookie: "sessionid=s"})
	if v != (visitor{userID: "42"}) {
		t.Errorf("authenticated visitor = %+v, want the user id alone", v)
	}
	for _, cookie := range []string{"", "sessionid=", "other=1", "sessionid", ";;=;"} {
		v = visitor{}
		v.fill(k1, &exposed{cookie: cookie})
		if v != (visitor{}) {
			t.Errorf("cookie %q: visitor %+v, want none", cookie, v)
		}
	}
}

func TestExposureReadFilter(t *testing.T) {
	log := filepath.Join(t.TempDir(), "exposure.log")
	x := startExposure(t, ExposureConfig{Patterns: []string{"*"}, Sink: log})
	snap := mustSnapshot(t, exposureData())
	d := snap.Evaluate(&engine.Request{Now: testNow()}, fixedRand(0.3))
	res := &Result{Snapshot: snap, Decisions: d, Subject: engine.Subject{UserID: "7"}}
	read := func(k engine.Kind, name string) bool { return k == engine.KindFlag && name == "other" }
	x.record(x.pending(res, "/", ""), 200, read)
	x.stop()
	var got []string
	for _, ev := range readEvents(t, log) {
		got = append(got, summary(ev))
	}
	if diff := cmp.Diff([]string{"u7 flag:other=on percent-roll"}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestExposureNotPendingWithoutMatch(t *testing.T) {
	e, err := NewExposure(ExposureConfig{Patterns: []string{"nothing_*"}, Sink: "-"})
	if err != nil {
		t.Fatal(err)
	}
	snap := mustSnapshot(t, exposureData())
	if x := e.pending(&Result{Snapshot: snap}, "/", ""); x != nil {
		t.Errorf("pending = %+v for a snapshot with no matching name, want nil", x)
	}
	if x := e.pending(&Result{}, "/", ""); x != nil {
		t.Error("pending before the first snapshot")
	}
	var none *Exposure
	if none.pending(&Result{Snapshot: snap}, "/", "") != nil {
		t.Error("a nil Exposure keeps something")
	}
	none.record(nil, 200, nil) // must not panic
}

func TestExposureLongPathIsCut(t *testing.T) {
	e, err := NewExposure(ExposureConfig{Patterns: []string{"*"}, Sink: "-"})
	if err != nil {
		t.Fatal(err)
	}
	x := e.pending(&Result{Snapshot: mustSnapshot(t, exposureData())}, "/"+strings.Repeat("a", 5000), "")
	if len(x.path) != maxExposurePath {
		t.Errorf("path of %d bytes kept, want %d", len(x.path), maxExposurePath)
	}
}

func TestExposureDedupBound(t *testing.T) {
	x := startExposure(t, ExposureConfig{Patterns: []string{"flag:exp_a"}, Sink: filepath.Join(t.TempDir(), "log"), Entries: 32})
	snap := mustSnapshot(t, exposureData())
	d := snap.Evaluate(&engine.Request{Now: testNow()}, fixedRand(0.3))
	const visitors = 500
	for i := range visitors {
		for range 2 {
			x.record(x.pending(&Result{Snapshot: snap, Decisions: d}, "/", "sessionid=v"+string(rune('a'+i%26))+strings.Repeat("x", i/26)), 200, nil)
		}
	}
	x.stop()
	held := 0
	for i := range x.seen.shards {
		held += x.seen.shards[i].lru.Len()
	}
	if held > 32 {
		t.Errorf("the dedup set holds %d entries, bound 32", held)
	}
	if n := testutil.ToFloat64(x.seen.evicted); n < visitors-32 {
		t.Errorf("evictions = %v, want at least %d", n, visitors-32)
	}
	events, dupes := testutil.ToFloat64(x.out.events), testutil.ToFloat64(x.dupes)
	if events+dupes != 2*visitors || events < visitors {
		t.Errorf("events %v + duplicates %v, want %d in all and at least %d events", events, dupes, 2*visitors, visitors)
	}
}

func TestExposureNoDedup(t *testing.T) {
	x := startExposure(t, ExposureConfig{Patterns: []string{"flag:exp_a"}, Sink: filepath.Join(t.TempDir(), "log"), Dedup: -1})
	snap := mustSnapshot(t, exposureData())
	d := snap.Evaluate(&engine.Request{Now: testNow()}, fixedRand(0.3))
	for range 5 {
		x.record(x.pending(&Result{Snapshot: snap, Decisions: d, Subject: engine.Subject{UserID: "1"}}, "/", ""), 200, nil)
	}
	x.stop()
	if n := testutil.ToFloat64(x.out.events); n != 5 {
		t.Errorf("events = %v, want 5 with dedup off", n)
	}
}

func TestNewExposureErrors(t *testing.T) {
	for _, cfg := range []ExposureConfig{
		{Sink: "-"},
		{Patterns: []string{""}, Sink: "-"},
		{Patterns: []string{`a\`}, Sink: "-"},
		{Patterns: []string{"x"}},
		{Patterns: []string{"x"}, Sink: "unix://relative.sock"},
		{Patterns: []string{"x"}, Sink: "tcp://127.0.0.1:1"},
		{Patterns: []string{"x"}, Sink: "-", Entries: -1},
	} {
		if _, err := NewExposure(cfg); err == nil {
			t.Errorf("NewExposure(%+v): no error", cfg)
		}
	}
}

// BenchmarkExposure is one proxied request (as BenchmarkServeHTTP's
// "flagproxy" variant, without a page) without exposure events ("off"),
// and with 10 flags of the snapshot logged for one returning visitor
// ("on"): every event after the first request is a duplicate, the common
// case.
func BenchmarkExposure(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			reg := prometheus.NewRegistry()
			var e *Exposure
			if on {
				var err error
				e, err = NewExposure(ExposureConfig{Patterns: []string{"waffle_flag_0?"}, Sink: filepath.Join(b.TempDir(), "log"), Registerer: reg})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { _ = e.Run(ctx) }()
			}
			benchExposure(b, reg, e)
		})
	}
}

func benchExposure(b *testing.B, reg *prometheus.Registry, e *Exposure) {
	store := &engine.Store{}
	upstream, _ := url.Parse("http://django.test")
	p, err := New(Config{Upstream: upstream, Snapshots: store, Transport: stubTransport{}, Registerer: reg,
		Rand: fixedRand(0.5), Now: testNow, Exposure: e})
	if err != nil {
		b.Fatal(err)
	}
	store.Publish(benchSnapshot(b), testNow())
	req := httptest.NewRequest(http.MethodGet, "http://django.test/page?q=x", nil)
	req.Header.Set("Cookie", "sessionid=abcdefgh12345678; dwf_waffle_flag_00=True; csrftoken=x")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.ServeHTTP(w, req)
	}
}

// TestExposureFollowsReadsReport: when the upstream's response reports the
// names the app read, only those of the matching names are logged; without
// a report, every matching decision is.
func TestExposureFollowsReadsReport(t *testing.T) {
	for _, tt := range []struct {
		name   string
		report string
		want   []string
	}{
		{"no report", "", []string{"u- flag:exp_a=on percent-roll", "u- switch:exp_sw=on active", "u- sample:exp_s=on sample"}},
		{"the app read exp_sw", `{"flags":["other"],"switches":["exp_sw"],"samples":[],"missing":{"flags":[],"switches":[],"samples":[]}}`,
			[]string{"u- switch:exp_sw=on active"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "exposure.log")
			x := startExposure(t, ExposureConfig{Patterns: []string{"exp_*"}, Sink: log})
			hs := newHarness(t, Config{Rand: fixedRand(0.3), Exposure: x.Exposure}, func(w http.ResponseWriter, r *http.Request) {
				if tt.report != "" {
					w.Header().Set(ReadsHeader, tt.report)
				}
				_, _ = w.Write([]byte("ok"))
			})
			hs.store.Publish(mustSnapshot(t, exposureData()), testNow())
			hs.get(t, "/page/", nil)
			x.stop()
			var got []string
			for _, ev := range readEvents(t, log) {
				got = append(got, strings.Replace(summary(ev), "- ", "u- ", 1))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
