package proxy

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// TestMemoEqualsEvaluation is the property: for random worlds, a proxy
// that memoizes decisions answers every request of a random sequence (with
// repeats, as visitors come back) exactly as one that evaluates every
// request: the same header and the same Set-Cookie lines. Between
// requests, visitors change (staff, superuser, groups: a permission change
// seen by the identity lookup) and new snapshots are published, which the
// memo must not paper over.
func TestMemoEqualsEvaluation(t *testing.T) {
	rng, seed := propRand("FLAGPROXY_MEMO_SEED", 33, 3)
	worlds, steps := 30, 60
	if testing.Short() {
		worlds = 8
	}
	var hits float64
	for wi := range worlds {
		w := newPropWorld(rng)
		if wi%3 == 0 {
			w.bulk(rng, 400) // a large value: the encoding caches come in
		}
		sessions := sessionResolver{}
		for pk, s := range w.users {
			sessions["session-"+pk] = s
		}
		locale := engine.NewLocale(engine.LocaleSettings{I18N: true, LanguageCode: "en", Languages: []string{"en", "fr", "de"},
			CookieName: "django_language", Patterns: rng.IntN(2) == 0})
		roll := fixedRand(rng.Float64())
		proxies := [2]*harness{}
		for i, budget := range [2]int64{0, -1} { // memoized, then not
			proxies[i] = newHarness(t, Config{Users: fakeUsers(w.users), Subjects: sessions, Overrider: propOverrider{},
				Rand: roll, Locale: locale, DecisionCache: budget}, nil)
		}
		publish := func(at time.Time) {
			snap := mustSnapshot(t, w.data)
			for _, hs := range proxies {
				hs.store.Publish(snap, at)
			}
		}
		publish(testNow())
		// Visitors (their cookies) and the rest of a request are drawn
		// apart, so that one visitor's requests differ in one input at a
		// time: the path, the query, the language, a testing header.
		visitors, rests := make([]memoRequest, 3), make([]memoRequest, 4)
		for i := range visitors {
			visitors[i] = w.memoRequest(rng)
		}
		for i := range rests {
			rests[i] = w.memoRequest(rng)
		}
		for step := range steps {
			switch rng.IntN(12) {
			case 0:
				w.changeUser(rng, sessions)
			case 1:
				w.changeFlag(rng)
				publish(testNow())
			case 3: // the same flags, loaded long ago: the state is "stale"
				publish(testNow().Add(-time.Hour))
			case 2:
				visitors[rng.IntN(len(visitors))] = w.memoRequest(rng)
			}
			q := rests[rng.IntN(len(rests))]
			q.header = q.header.Clone()
			q.header["Cookie"] = visitors[rng.IntN(len(visitors))].header["Cookie"]
			var got [2]memoAnswer
			for i, hs := range proxies {
				res := hs.get(t, q.target, q.header.Clone())
				got[i] = memoAnswer{Payload: decode(t, hs.backend.last(t).Header), SetCookie: res.Header["Set-Cookie"]}
			}
			if diff := cmp.Diff(got[1], got[0]); diff != "" {
				t.Fatalf("seed %d world %d step %d %s %v: memoized answer differs (-evaluated +memoized):\n%s\nworld %+v",
					seed, wi, step, q.target, q.header, diff, w.data)
			}
		}
		hits += testutil.ToFloat64(proxies[0].proxy.metrics.memoHit)
		if n := testutil.ToFloat64(proxies[1].proxy.metrics.memoHit) + testutil.ToFloat64(proxies[1].proxy.metrics.memoMiss); n != 0 {
			t.Fatalf("DecisionCache -1 memoized %v evaluations", n)
		}
	}
	if hits < float64(worlds*steps/20) {
		t.Fatalf("only %v memo hits in %d requests: the property was hardly tested", hits, worlds*steps)
	}
}

// memoRequest is a request of TestMemoEqualsEvaluation.
type memoRequest struct {
	target string
	header http.Header
}

// memoAnswer is what a visitor and the app see of one request.
type memoAnswer struct {
	Payload
	SetCookie []string
}

// memoRequest makes a random request, sometimes with waffle's testing
// header for a flag.
func (w *propWorld) memoRequest(rng *rand.Rand) memoRequest {
	target, header := w.request(rng).web()
	if rng.IntN(4) == 0 {
		header.Set("Dwft-"+w.names[rng.IntN(len(w.names))], strconv.Itoa(rng.IntN(2)))
	}
	return memoRequest{target: target, header: header}
}

// bulk adds n waffle flags of mixed rules, enough to make the header
// value large.
func (w *propWorld) bulk(rng *rand.Rand, n int) {
	for i := range n {
		// No percentages: a visitor holds none of their cookies, and
		// rolled decisions are neither memoized nor cached.
		f := engine.WaffleFlag{Name: fmt.Sprintf("bulk_%03d", i), Everyone: engine.Tristate(rng.IntN(3)),
			Staff: rng.IntN(2) == 0, Superusers: rng.IntN(2) == 0}
		w.data.WaffleFlags = append(w.data.WaffleFlags, f)
	}
}

// changeUser changes one user's standing, as a permission change in the
// database would.
func (w *propWorld) changeUser(rng *rand.Rand, sessions sessionResolver) {
	pk := strconv.Itoa(rng.IntN(4) + 1)
	s := sessions["session-"+pk]
	switch rng.IntN(3) {
	case 0:
		s.Staff = !s.Staff
	case 1:
		s.Superuser = !s.Superuser
	default:
		s.Groups = []int64{int64(rng.IntN(3) + 1)}
	}
	sessions["session-"+pk] = s
}

// changeFlag changes one waffle flag's rule.
func (w *propWorld) changeFlag(rng *rand.Rand) {
	f := &w.data.WaffleFlags[rng.IntN(len(w.data.WaffleFlags))]
	f.Everyone = engine.Tristate(rng.IntN(3))
	f.Staff = !f.Staff
}

// TestMemoNeverRepeatsARoll: a visitor without the dwf_ cookie of a
// percentage flag gets a fresh roll on every request, and a sample is
// drawn on every request, memo or not.
func TestMemoNeverRepeatsARoll(t *testing.T) {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.WaffleFlags = []engine.WaffleFlag{{Name: "half", Percent: engine.PercentOf(500)}, {Name: "all", Everyone: engine.Yes}}
	d.Samples = []engine.Sample{{Name: "coin", Percent: engine.PercentOf(500)}}
	draws := &cycleRand{values: []float64{0.2, 0.2, 0.8, 0.8}} // the flag's roll, then the sample
	hs := newHarness(t, Config{Rand: draws}, nil)
	hs.store.Publish(mustSnapshot(t, d), testNow())
	var flags, samples []bool
	for range 4 {
		hs.get(t, "/", nil)
		p := decode(t, hs.backend.last(t).Header)
		flags, samples = append(flags, p.Flags["half"]), append(samples, p.Samples["coin"])
	}
	if want := []bool{true, false, true, false}; !slices.Equal(flags, want) || !slices.Equal(samples, want) {
		t.Errorf("rolls %v, samples %v; want %v for both", flags, samples, want)
	}
	if n := testutil.ToFloat64(hs.proxy.metrics.memoRolled); n != 4 {
		t.Errorf("rolled evaluations counted %v, want 4", n)
	}
	// With the cookie, the flag is decided without a roll: memoized, and
	// the sample is still drawn anew.
	c := http.Header{"Cookie": {"dwf_half=True"}}
	samples = samples[:0]
	for range 4 {
		hs.get(t, "/", c)
		p := decode(t, hs.backend.last(t).Header)
		if !p.Flags["half"] {
			t.Fatal("dwf_half=True decided off")
		}
		samples = append(samples, p.Samples["coin"])
	}
	if want := []bool{true, true, false, false}; !slices.Equal(samples, want) { // one draw a request now
		t.Errorf("samples with the memo %v, want %v", samples, want)
	}
	if n := testutil.ToFloat64(hs.proxy.metrics.memoHit); n != 3 {
		t.Errorf("memo hits %v, want 3", n)
	}
}

// cycleRand returns its values in turn, forever.
type cycleRand struct {
	values []float64
	i      int
}

func (c *cycleRand) Float64() float64 {
	v := c.values[c.i%len(c.values)]
	c.i++
	return v
}

// TestMemoBounded: the memo's entries never take more bytes than its
// budget, it counts exactly the bytes of the entries it holds through
// replacements, repicks and evictions, and it keeps none for a snapshot
// whose rules read the time.
func TestMemoBounded(t *testing.T) {
	snap := benchSnapshotN(t, 2)
	p := newPipeline()
	e := p.encoder(snap)
	d0 := snap.Evaluate(&engine.Request{Subject: engine.Anonymous}, fixedRand(0.5))
	start := writeStart(e, &Result{Snapshot: snap, State: StateOK, Decisions: d0})
	per := newMemo(snap, 1<<30).put(memoKey{}, memoKey{}, "", &cookieJar{}, &d0, start).size
	m := newMemo(snap, 10*per)
	if m.entries == nil {
		t.Fatal("no entries for a budget of 10")
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		d := snap.Evaluate(&engine.Request{Subject: engine.Anonymous}, fixedRand(0.5))
		key := memoKey{uint64(rnd.IntN(30))}
		var s *startText
		if i%2 == 0 {
			s = start
		}
		switch entry, ok := m.entries.Peek(key); {
		case ok && i%3 == 0:
			m.repick(key, entry, &cookieJar{picked: true, names: []string{"sessionid"}, values: [maxPicked]string{strings.Repeat("x", i%40)}})
		default:
			m.put(key, memoKey{}, "", &cookieJar{}, &d, s)
		}
		var held int64
		for _, k := range m.entries.Keys() {
			entry, _ := m.entries.Peek(k)
			held += entry.size
		}
		if used := m.used.Load(); used != held || used > m.budget {
			t.Fatalf("after %d puts: %d bytes counted, %d held, budget %d", i+1, used, held, m.budget)
		}
	}
	if n := m.entries.Len(); n < 8 || n > 20 {
		t.Errorf("%d entries for a budget of about 10", n)
	}
	if m := newMemo(snap, m.base-1); m.entries != nil {
		t.Error("entries for a budget below one")
	}
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceDjangoFlags}
	d.FlagStates = []engine.FlagState{{Name: "LATER", Condition: "after date", Value: "2030-01-01T00:00:00Z"}}
	if m := newMemo(mustSnapshot(t, d), 1<<20); m.entries != nil {
		t.Error("entries for a snapshot whose rules read the time")
	}
}

// TestMemoKeyCoversRequest fails when engine.Request or engine.Subject
// gains a field: memo.key and memo.visitor must then cover it (or say
// why not), before it is added here.
func TestMemoKeyCoversRequest(t *testing.T) {
	covered := map[reflect.Type][]string{
		// Query, Cookies, Header, Path, RawQuery: key (the raw inputs);
		// Language, HasLanguage: key (their sources); Subject, Overrides:
		// visitor; Now: not memoized when rules read the time.
		reflect.TypeFor[engine.Request](): {"Subject", "Query", "Cookies", "Header", "Language", "HasLanguage", "Path", "RawQuery", "Now", "Overrides"},
		// Stale: only the header's "identity" member, which is not memoized.
		reflect.TypeFor[engine.Subject](): {"UserID", "Username", "Authenticated", "Active", "Staff", "Superuser", "Groups", "Permissions", "Stale", "FeatureStatus"},
		// Refused: Evaluate does not read it.
		reflect.TypeFor[engine.Overrides](): {"URL", "Session", "Allowed", "Refused"},
	}
	for typ, want := range covered {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%v has fields %v; the memo covers %v", typ, got, want)
		}
	}
}

// BenchmarkMemoKey measures the memo's per-request hashing for a
// returning visitor of a 1,000-flag site (a 4 KB Cookie header).
func BenchmarkMemoKey(b *testing.B) {
	snap := benchSnapshotN(b, 20)
	m := newMemo(snap, DefaultDecisionCache)
	cookie := "sessionid=abcdefgh12345678"
	for i := 0; i < 600; i += 3 {
		cookie += fmt.Sprintf("; dwf_waffle_flag_%02d=True", i)
	}
	in := Input{Path: "/page", RawQuery: "q=x", Cookie: cookie, Header: http.Header{"Accept-Language": {"fr"}}}
	req := engine.Request{Subject: engine.Subject{UserID: "7", Authenticated: true, Active: true, Groups: []int64{1, 2}}}
	b.ReportAllocs()
	for b.Loop() {
		m.key(&in, true)
		m.visitor(&req)
	}
}

// TestRolledValuesNotCached: the header values of a decision set made by
// fresh rolls are encoded without the caches (it will not come back), and
// still decode to the decisions.
func TestRolledValuesNotCached(t *testing.T) {
	hs := newHarness(t, Config{Rand: &cycleRand{values: []float64{0.1, 0.9, 0.5}}}, nil)
	snap := benchSnapshotN(t, 20)
	hs.store.Publish(snap, testNow())
	for range 3 {
		hs.get(t, "/", nil)
		p := decode(t, hs.backend.last(t).Header)
		if len(p.Flags) != snap.NumFlags() {
			t.Fatalf("%d flags decoded, want %d", len(p.Flags), snap.NumFlags())
		}
	}
	pl := hs.proxy.Pipeline()
	if pl.values.Len() != 0 || pl.heads.Len() != 0 {
		t.Errorf("rolled decision sets cached: %d values, %d heads", pl.values.Len(), pl.heads.Len())
	}
	hs.get(t, "/", http.Header{"Cookie": {"flagproxy_waffle_renewed=1"}}) // still rolls
	if pl.values.Len() != 0 {
		t.Errorf("%d values cached", pl.values.Len())
	}
}

// TestMemoEntryKeepsNoHeader: the cookies an entry keeps are copies, not
// pieces of the request's whole Cookie header, which would stay in memory
// as long as the entry.
func TestMemoEntryKeepsNoHeader(t *testing.T) {
	snap := benchSnapshotN(t, 1)
	m := newMemo(snap, DefaultDecisionCache)
	header := "sessionid=abc; " + strings.Repeat("x=1; ", 1000)
	jar := &cookieJar{raw: header, picked: true, names: []string{"sessionid"}}
	jar.values[0], jar.found[0] = header[10:13], true
	d := snap.Evaluate(&engine.Request{Subject: engine.Anonymous}, fixedRand(0.5))
	m.put(memoKey{1}, memoKey{}, "", jar, &d, nil)
	e, _ := m.entries.Get(memoKey{1})
	start := uintptr(unsafe.Pointer(unsafe.StringData(header)))
	if p := uintptr(unsafe.Pointer(unsafe.StringData(e.values[0]))); e.values[0] != "abc" || start <= p && p < start+uintptr(len(header)) {
		t.Errorf("entry keeps %q inside the Cookie header", e.values[0])
	}
}

// TestMemoConcurrent: visitors' requests decided at once, from the memo
// and not, large values and small, each give the app the same decisions as
// the visitor's first request (run with -race: entries, picks, JSON starts
// and prefixes are shared between requests).
func TestMemoConcurrent(t *testing.T) {
	for _, scale := range []int{1, 20} {
		hs := newHarness(t, Config{Rand: fixedRand(0.5)}, nil)
		hs.store.Publish(benchSnapshotN(t, scale), testNow())
		visitors := []string{returningCookie(30 * scale), "csrftoken=y; " + returningCookie(15*scale), "sessionid=z"}
		want := map[string]Payload{}
		for _, c := range visitors {
			hs.get(t, "/", http.Header{"Cookie": {c}})
			want[c] = decode(t, hs.backend.last(t).Header)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for n := range 15 {
					req, _ := http.NewRequest(http.MethodGet, hs.frontend.URL+"/", nil)
					req.Header.Set("Cookie", visitors[(g+n)%len(visitors)])
					if res, err := http.DefaultClient.Do(req); err == nil {
						res.Body.Close()
					}
				}
			})
		}
		wg.Wait()
		hs.backend.mu.Lock()
		seen := slices.Clone(hs.backend.reqs)
		hs.backend.mu.Unlock()
		if len(seen) != len(visitors)+8*15 {
			t.Fatalf("scale %d: the app saw %d requests, want %d", scale, len(seen), len(visitors)+8*15)
		}
		for _, r := range seen {
			c := r.Header.Get("Cookie")
			got, err := Decode(r.Header)
			if err != nil {
				t.Fatalf("scale %d: %v", scale, err)
			}
			if diff := cmp.Diff(want[c], got); diff != "" {
				t.Fatalf("scale %d visitor %q: decisions differ from its first request's (-first +now):\n%s", scale, c, diff)
			}
		}
	}
}

// TestMemoWholeValueWithoutSamples: for a snapshot without samples, a
// memoized visitor's flags value is the memo entry's, not a copy made for
// each request, and the same as one encoded afresh.
func TestMemoWholeValueWithoutSamples(t *testing.T) {
	hs := newHarness(t, Config{Rand: fixedRand(0.5)}, nil)
	d := engine.Data{Sources: []engine.Source{engine.SourceWaffle}}
	for i := range 20 {
		d.WaffleFlags = append(d.WaffleFlags, engine.WaffleFlag{Name: fmt.Sprintf("flag_%02d", i), Everyone: engine.Yes})
	}
	d.Switches = []engine.Switch{{Name: "switch", Active: true}}
	snap := mustSnapshot(t, d)
	hs.store.Publish(snap, testNow())
	pl := hs.proxy.Pipeline()
	in := Input{Path: "/", Cookie: "sessionid=abcdefgh12345678"}
	var values []string
	for range 3 {
		res := pl.Decide(t.Context(), in)
		values = append(values, res.Header.Get(FlagsHeader))
		if want := pl.encoder(snap).encode(&res.Decisions, res.State, res.Subject.Stale); values[len(values)-1] != want {
			t.Fatalf("memoized value\n%s\nwant\n%s", values[len(values)-1], want)
		}
	}
	if unsafe.StringData(values[1]) != unsafe.StringData(values[2]) {
		t.Error("each memoized request made its own copy of the value")
	}
}
