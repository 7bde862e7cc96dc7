package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// UserResolver looks a Django user up by primary key, for decisions asked
// for a user rather than a web request (explain, OFREP). An unknown or
// inactive user is engine.Anonymous with a nil error.
type UserResolver interface {
	User(ctx context.Context, id string) (engine.Subject, error)
}

// Input is what one decision is made from: the parts of a web request, or,
// for callers that are not one, a user and a URL.
type Input struct {
	// Path is the request target's path as sent (percent-encoded) and
	// RawQuery its query, as the upstream receives them.
	Path     string
	RawQuery string
	// Cookie is the request's one Cookie line.
	Cookie string
	// Header holds the other request headers; nil means none.
	Header http.Header
	// UserID, when set, is the visitor (a Django user's primary key)
	// instead of whoever the session cookie names.
	UserID string
	// NoURLOverrides leaves the URL's override parameters unapplied (a
	// cross-site request must not flip a visitor's flags).
	NoURLOverrides bool
	// Explain, when set, asks for the steps of one decision: Decide
	// fills it (see explain.go), and does not count the decisions.
	Explain *Explain
}

// Result is one decision of every flag, switch and sample.
type Result struct {
	// Snapshot is the snapshot decided on; nil before the first load.
	Snapshot  *engine.Snapshot
	Subject   engine.Subject
	Decisions engine.Decisions
	// State is StateOK, StateStale or StateUnavailable.
	State string
	// Header holds what carries the decisions to the upstream:
	// FlagsHeader, its parts for a large value, and SignatureHeader when
	// a signing key is set.
	Header http.Header
	// Waffle and Override are the cookies to set on the response.
	Waffle   []engine.Cookie
	Override *http.Cookie
	// Overrides are the visitor's overrides: whether the visitor may
	// flip, the overrides applied, and the parameters refused.
	Overrides engine.Overrides
	// rolled is set when a flag was decided by a fresh random roll: a
	// decision set seen once, whose header values are not worth caching.
	rolled bool
	// memo is the memo entry holding the decisions (found, or just
	// made); nil when they are not memoized.
	memo *memoEntry
}

// Pipeline decides flags: it identifies the visitor, works out the
// overrides, evaluates the current snapshot and encodes the header. The
// proxied request, the console, explain and OFREP all decide through it.
type Pipeline struct {
	snaps      SnapshotSource
	subjects   SubjectResolver
	users      UserResolver
	overrider  Overrider
	locale     *engine.Locale
	staleAfter time.Duration
	signingKey []byte
	logger     *slog.Logger
	now        func() time.Time
	rand       engine.Rand
	metrics    *metrics
	limits     limits
	enc        atomic.Pointer[encoder] // for the snapshot last seen
	gzip       sync.Pool               // *gzip.Writer
	flate      sync.Pool               // *flate.Writer, BestSpeed
	seed       maphash.Seed
	values     *lru.Cache[uint64, *encoded] // by fingerprint
	heads      *lru.Cache[uint64, *largeHead]
	tails      *lru.Cache[uint64, *compressedTail]
	prefixes   *lru.Cache[uint64, *prefix]
	fps        sync.Pool // *[]byte for fingerprints
	requests   sync.Pool // *scratch
	memoBudget int64     // bytes; 0 memoizes nothing
	memo       atomic.Pointer[memo]
	// cookieNames are the cookies looked up before parsing (see cookieJar).
	cookieNames atomic.Pointer[[]string]
	maps        sync.Pool // engine.Params, empty
	second      atomic.Pointer[unixText]
	tally       *tally   // decisions counted by name; nil counts nothing
	reads       *readLog // names the app read; nil keeps nothing
	refusals    *prometheus.CounterVec
}

// newPipeline returns a Pipeline with its caches.
func newPipeline() *Pipeline {
	values, _ := lru.New[uint64, *encoded](encodedCache) // only a size <= 0 fails
	heads, _ := lru.New[uint64, *largeHead](largeHeadCache)
	tails, _ := lru.New[uint64, *compressedTail](compressedTails)
	prefixes, _ := lru.New[uint64, *prefix](prefixCache)
	return &Pipeline{seed: maphash.MakeSeed(), values: values, heads: heads, tails: tails, prefixes: prefixes,
		limits: defaultLimits(), rand: globalRand{}}
}

// Decide decides every flag, switch and sample for in.
func (p *Pipeline) Decide(ctx context.Context, in Input) Result {
	return p.decide(ctx, in, make(http.Header, 2))
}

// decide is Decide setting Result.Header's members on h, the proxied
// request's header (which holds none of them: see stripInbound).
func (p *Pipeline) decide(ctx context.Context, in Input, h http.Header) Result {
	snap := p.snaps.Load()
	if snap == nil {
		h[FlagsHeader] = []string{unavailableJSON}
		p.sign(h, p.now())
		return Result{Subject: engine.Anonymous, State: StateUnavailable, Header: h}
	}
	res := Result{Snapshot: snap, State: StateOK, Header: h}
	now := p.now() // one clock read for the whole decision
	if at := p.snaps.LoadedAt(); at.IsZero() || now.Sub(at) > p.staleAfter {
		res.State = StateStale
	}
	p.evaluate(ctx, in, &res, now)
	p.encode(ctx, &res)
	p.sign(res.Header, now)
	return res
}

// sign adds SignatureHeader over what is sent (the pointer object for a
// large value), when a signing key is set.
func (p *Pipeline) sign(h http.Header, now time.Time) {
	if len(p.signingKey) > 0 {
		h[SignatureHeader] = []string{sign(p.signingKey, now.Unix(), h[FlagsHeader][0])}
	}
}

// evaluate fills res.Subject, res.Decisions and the cookies. The visitor
// and the overrides come first, from the few cookies they name; the
// decisions then come from the memo when the same inputs were decided
// recently for the same visitor (see memo), or from evaluating the
// snapshot with the request's language, path and headers.
func (p *Pipeline) evaluate(ctx context.Context, in Input, res *Result, now time.Time) {
	snap := res.Snapshot
	sc := p.scratch(now)
	req, jar := &sc.req, &sc.jar
	jar.raw = in.Cookie
	if in.Explain == nil {
		defer p.release(sc) // an explanation keeps it
	}
	r := p.recall(snap, &in, jar)
	req.Subject = p.subject(ctx, in, jar)
	if p.overrider != nil {
		p.overrides(ctx, in, jar, req, res)
	}
	res.Subject = req.Subject
	quiet := p.decideFlags(&in, sc, res, &r)
	res.Waffle = p.cookiesToWrite(snap, res.Decisions.Cookies, res.cookieCount(), jar, req.Now)
	p.remember(&r, jar, res)
	if !quiet {
		p.record(ctx, snap, &res.Decisions, req.Subject.UserID)
	}
	if in.Explain != nil {
		in.Explain.fill(snap, req, &res.Decisions)
	} else if p.tally != nil {
		p.tally.add(snap, &res.Decisions, res.onBytes())
	}
}

// onBytes is the on state of res's flags then switches, a byte each, when
// a memo entry holds the decisions (its fingerprint head begins with
// them); nil otherwise.
func (res *Result) onBytes() []byte {
	n := len(res.Decisions.Flags) + len(res.Decisions.Switches)
	if res.memo == nil || len(res.memo.fpHead) < n {
		return nil
	}
	return res.memo.fpHead[:n]
}

// recall finds in the memo what was decided for in's inputs, if anything,
// and gives jar the cookies picked then.
func (p *Pipeline) recall(snap *engine.Snapshot, in *Input, jar *cookieJar) recalled {
	m := p.memoFor(snap)
	if m == nil || in.Explain != nil {
		return recalled{}
	}
	r := recalled{m: m, key: m.key(in, p.locale != nil)}
	if e, ok := m.entries.Get(r.key); ok {
		r.e = e
		jar.recall(e)
	}
	return r
}

// recalled is what recall found: the memo, the key of the inputs, and the
// entry of that key (nil for none); then what decideFlags made of it.
type recalled struct {
	m       *memo
	key     memoKey
	e       *memoEntry
	visitor memoKey // the hash of the visitor and the overrides
	hit     bool    // the decisions are e's
	store   bool    // the decisions are to be memoized
}

// remember memoizes the decisions of res, with their JSON start when the
// memo keeps it, or, when they came from the memo, the cookies the jar
// picked anew (the names picked changed since).
func (p *Pipeline) remember(r *recalled, jar *cookieJar, res *Result) {
	switch {
	case r.store:
		res.memo = r.m.put(r.key, r.visitor, res.Subject.UserID, jar, &res.Decisions, p.newStart(res))
	case r.hit && jar.picked && !jar.recalled && jar.params == nil:
		r.m.repick(r.key, r.e, jar)
	}
}

// decideFlags sets res.Decisions for sc's request: from the memo entry
// when it was decided for the same visitor and overrides, else by
// evaluating the snapshot with the cookies and query parsed (and then
// memoized, unless it drew a roll). It reports whether the memo knew the
// decisions to hold nothing for record.
func (p *Pipeline) decideFlags(in *Input, sc *scratch, res *Result, r *recalled) (quiet bool) {
	snap, uses, req := res.Snapshot, res.Snapshot.Inputs(), &sc.req
	if r.m != nil {
		r.visitor = r.m.visitor(req)
		if e := r.e; e != nil && e.visitor == r.visitor && e.user == req.Subject.UserID {
			p.metrics.memoHit.Inc()
			res.Decisions, res.memo, r.hit = e.decisions(snap, p.rand), e, true
			return e.quiet
		}
	}
	p.requestInputs(in, &sc.jar, req, uses)
	if uses.Has(engine.InputCookies) {
		req.Cookies = sc.jar.parse()
	}
	if uses.Has(engine.InputQuery) {
		sc.query = p.parse(engine.ParseQueryInto, in.RawQuery)
		req.Query, req.RawQuery = sc.query, in.RawQuery
	}
	sc.rnd = countingRand{r: p.rand}
	res.Decisions = snap.Evaluate(req, &sc.rnd)
	res.rolled = sc.rnd.n > len(res.Decisions.Samples)
	switch {
	case r.m == nil:
	case res.rolled:
		p.metrics.memoRolled.Inc()
	default:
		p.metrics.memoMiss.Inc()
		res.Decisions.Cookies = slices.Clip(res.Decisions.Cookies) // shared once memoized
		r.store = true
	}
	return false
}

// requestInputs sets the request's headers, path and language on req,
// those of uses that the snapshot's rules read. Only an evaluation needs
// them: a memo entry's key covers their sources (see memo.key).
func (p *Pipeline) requestInputs(in *Input, jar *cookieJar, req *engine.Request, uses engine.Inputs) {
	language := uses.Has(engine.InputLanguage) && p.locale != nil
	if uses.Has(engine.InputHeader) {
		req.Header = headerValues(in.Header)
	}
	if uses.Has(engine.InputPath) || language {
		req.Path = engine.DjangoPath(in.Path)
	}
	if language {
		accept, _ := headerValues(in.Header).Get("Accept-Language")
		req.Language = p.locale.Language(req.Path, jar, accept)
		req.HasLanguage = true
	}
}

// memoFor returns the memo of snap, making it the first time snap is
// seen; nil when decisions are not memoized.
func (p *Pipeline) memoFor(snap *engine.Snapshot) *memo {
	if p.memoBudget <= 0 {
		return nil
	}
	m := p.memo.Load()
	if m == nil || m.snap != snap {
		if p.snaps.Load() != snap {
			return nil // a request begun before a new snapshot came
		}
		m = newMemo(snap, p.memoBudget)
		p.memo.Store(m)
	}
	if m.entries == nil {
		return nil
	}
	return m
}

// memoBytes is the memory the current memo's entries take.
func (p *Pipeline) memoBytes() float64 {
	if m := p.memo.Load(); m != nil {
		return float64(m.used.Load())
	}
	return 0
}

// scratch is what one evaluation works with, pooled: the Request escapes
// to the heap (the rules are interfaces), and a request would allocate it.
type scratch struct {
	req   engine.Request
	jar   cookieJar
	query engine.Params
	rnd   countingRand
}

// scratch returns a scratch from the pool, its Request set for now.
func (p *Pipeline) scratch(now time.Time) *scratch {
	sc, _ := p.requests.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	sc.req = engine.Request{Subject: engine.Anonymous, Now: now}
	sc.jar.p = p
	return sc
}

// release clears sc and the maps parsed for it, which nothing holds any
// more, into their pools.
func (p *Pipeline) release(sc *scratch) {
	for _, m := range [...]engine.Params{sc.jar.params, sc.query} {
		if m != nil {
			clear(m)
			p.maps.Put(m)
		}
	}
	*sc = scratch{}
	p.requests.Put(sc)
}

// parse parses a query string or cookie header s with parseInto, into an
// empty map from the pool (when it has none, parseInto sizes a new one).
func (p *Pipeline) parse(parseInto func(engine.Params, string) engine.Params, s string) engine.Params {
	if s == "" {
		return nil
	}
	m, _ := p.maps.Get().(engine.Params)
	return parseInto(m, s)
}

// RefreshCookie is the cookie in which flagproxy remembers when it last
// renewed a visitor's waffle cookies (Unix seconds).
const RefreshCookie = "flagproxy_waffle_renewed"

// cookiesToWrite bounds the Set-Cookie lines of a response. Waffle writes a
// dwf_ cookie for every percentage flag on every response; flagproxy writes
// those whose value is new (a fresh roll, a changed value) on every
// response, and renews the others (Cookie.Refresh) at most once a day, or
// every half of WAFFLE_MAX_AGE if that is shorter, noting when in
// RefreshCookie. A response that writes every percentage cookie afresh (a
// first visit) notes it too, so the next visit renews nothing. A visitor
// seen within WAFFLE_MAX_AGE keeps every side it rolled, as with waffle.
func (p *Pipeline) cookiesToWrite(snap *engine.Snapshot, all []engine.Cookie, n cookieCount, sent engine.Values, now time.Time) []engine.Cookie {
	if n.refresh == 0 && n.fresh == 0 {
		return all
	}
	ws := snap.WaffleSettings()
	period := min(24*time.Hour, time.Duration(ws.MaxAge)*time.Second/2)
	if renewedWithin(sent, now, period) {
		return withoutRefresh(all, n.refresh)
	}
	marker := engine.Cookie{Name: RefreshCookie, Value: p.unixText(now), MaxAge: ws.MaxAge, Secure: ws.Secure}
	return append(all, marker)
}

// cookieCount is how many of a decision set's cookies are renewals, and
// how many are fresh percentage cookies.
type cookieCount struct{ refresh, fresh int }

func countCookies(all []engine.Cookie) cookieCount {
	var n cookieCount
	for _, c := range all {
		switch {
		case c.Refresh:
			n.refresh++
		case c.MaxAge > 0: // a percentage cookie (testing cookies last a session)
			n.fresh++
		}
	}
	return n
}

// cookieCount counts res's cookies, or takes the count its memo entry
// keeps of them (they are the entry's).
func (res *Result) cookieCount() cookieCount {
	if res.memo != nil {
		return res.memo.counted
	}
	return countCookies(res.Decisions.Cookies)
}

// renewedWithin reports whether the request's RefreshCookie notes a
// renewal within period before now (not after it).
func renewedWithin(sent engine.Values, now time.Time, period time.Duration) bool {
	v, ok := sent.Get(RefreshCookie)
	if !ok {
		return false
	}
	last, err := strconv.ParseInt(v, 10, 64)
	return err == nil && now.Sub(time.Unix(last, 0)) < period && last <= now.Unix()
}

// unixText is now in Unix seconds as text, kept for the second it names:
// the renewal markers written in one second share it.
func (p *Pipeline) unixText(now time.Time) string {
	sec := now.Unix()
	if t := p.second.Load(); t != nil && t.unix == sec {
		return t.text
	}
	t := &unixText{sec, strconv.FormatInt(sec, 10)}
	p.second.Store(t)
	return t.text
}

// unixText is a Unix second and its decimal text.
type unixText struct {
	unix int64
	text string
}

// withoutRefresh returns the cookies of all that are not renewals, of
// which there are n.
func withoutRefresh(all []engine.Cookie, n int) []engine.Cookie {
	switch n {
	case 0:
		return all
	case len(all):
		return nil // a returning visitor's, most often
	}
	out := make([]engine.Cookie, 0, len(all)-n)
	for _, c := range all {
		if !c.Refresh {
			out = append(out, c)
		}
	}
	return out
}

// subject identifies the visitor: the user in.UserID names, else the
// session cookie's. A failed lookup makes the visitor anonymous.
func (p *Pipeline) subject(ctx context.Context, in Input, cookies engine.Values) engine.Subject {
	var s engine.Subject
	var err error
	switch {
	case in.UserID != "" && p.users != nil:
		s, err = p.users.User(ctx, in.UserID)
	case in.UserID == "" && p.subjects != nil:
		s, err = p.subjects.Subject(ctx, cookies)
	default:
		return engine.Anonymous
	}
	if err != nil {
		p.metrics.identityErrors.Inc()
		p.logger.LogAttrs(ctx, slog.LevelDebug, "identity lookup failed; visitor is anonymous", slog.Any("error", err))
		return engine.Anonymous
	}
	return s
}

// overrides asks the Overrider for the visitor's overrides, and reports
// the override parameters it refused.
func (p *Pipeline) overrides(ctx context.Context, in Input, cookies engine.Values, req *engine.Request, res *Result) {
	q := engine.OverrideQuery{Cookies: cookies, Subject: req.Subject, Snapshot: res.Snapshot, CrossSite: in.NoURLOverrides}
	if !in.NoURLOverrides || mayAskOverrides(in.RawQuery) {
		q.Keys = engine.ParseQueryKeys(in.RawQuery)
	}
	o, c, err := p.overrider.Overrides(ctx, q)
	if err != nil {
		p.metrics.overrideErrors.Inc()
		p.logger.LogAttrs(ctx, slog.LevelError, "override lookup failed; no overrides", slog.Any("error", err))
		return
	}
	req.Overrides, res.Override, res.Overrides = o, c, o
	if len(o.Refused) > 0 && in.Explain == nil {
		p.refused(ctx, req.Subject.UserID, o.Refused)
	}
}

// encode sets res.Header from the decisions. A value too large for the
// header limits is sent as unavailable, and no waffle cookie is written; a
// snapshot whose value can never fit is known when its encoder is built,
// and its requests skip the encoding. Visitors come back with the same
// decisions: when a value may be large, the header values of a decision
// set seen recently are reused, found by its fingerprint, without writing
// or compressing the JSON again.
func (p *Pipeline) encode(ctx context.Context, res *Result) {
	e := p.encoder(res.Snapshot)
	if e.tooLarge {
		p.metrics.headerOversize.Inc()
		res.Header[FlagsHeader] = []string{e.unavailable()}
		res.Waffle = nil
		return
	}
	if e.bound <= p.limits.inline {
		// Always inline: writing it is cheaper than looking it up.
		res.Header[FlagsHeader] = []string{p.inline(e, res)}
		return
	}
	if res.rolled {
		// Fresh rolls make a decision set that will not come back:
		// caching its values, or its head, would only evict others.
		p.encodeOnce(ctx, e, res)
		return
	}
	buf, _ := p.fps.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	defer p.fps.Put(buf)
	var fp []byte
	head := len(res.Decisions.Flags) + len(res.Decisions.Switches)
	if res.memo != nil {
		fp = append((*buf)[:0], res.memo.fpHead...)
	} else {
		fp = fingerprintHead((*buf)[:0], &res.Decisions)
	}
	fp = fingerprintRest(fp, &res.Decisions, res.State, res.Subject.Stale)
	*buf = fp
	key := maphash.Bytes(p.seed, fp)
	c, ok := p.values.Get(key)
	if !ok || c.enc != e || c.fp != string(fp) {
		var err error
		if c, err = p.encodeNew(e, res, fp, head); err != nil {
			p.oversize(ctx, e, res, err)
			return
		}
		p.values.Add(key, c)
	}
	c.set(res.Header)
}

// inline returns the flags JSON of res: when the decisions came from the
// memo, its JSON up to the samples (see jsonStart) and the samples; for a
// snapshot without samples, the memo's whole value, allocating nothing.
func (p *Pipeline) inline(e *encoder, res *Result) string {
	if res.memo == nil {
		return e.encode(&res.Decisions, res.State, res.Subject.Stale)
	}
	start := p.jsonStart(e, res)
	if len(e.sampleParts) == 0 {
		return start
	}
	var b strings.Builder
	b.Grow(len(start) + e.samplesBound())
	b.WriteString(start)
	e.writeSamples(&b, &res.Decisions)
	return b.String()
}

// jsonStart returns the flags JSON of res up to the samples, for
// decisions held by the memo: the same for every request of a visitor, it
// is kept with the memo entry, and written anew when the state or the
// identity's staleness changed.
func (p *Pipeline) jsonStart(e *encoder, res *Result) string {
	kept := &res.memo.start
	t := kept.Load()
	if t == nil {
		return writeStart(e, res).text
	}
	if t.enc == e && t.state == res.State && t.stale == res.Subject.Stale {
		return t.text
	}
	t = writeStart(e, res)
	kept.Store(t)
	return t.text
}

// newStart writes the JSON start of res for the memo to keep, when the
// snapshot's values are always inline (see encode); nil otherwise.
func (p *Pipeline) newStart(res *Result) *startText {
	if e := p.encoder(res.Snapshot); !e.tooLarge && e.bound <= p.limits.inline {
		return writeStart(e, res)
	}
	return nil
}

// writeStart writes the flags JSON of res up to the samples, or, for a
// snapshot without samples, the whole of it.
func writeStart(e *encoder, res *Result) *startText {
	var b strings.Builder
	b.Grow(e.bound) // a temporary: the text kept is cloned
	e.writeHead(&b, &res.Decisions)
	e.writeTail(&b, &res.Decisions, res.State, res.Subject.Stale)
	if len(e.sampleParts) == 0 {
		e.writeSamples(&b, &res.Decisions) // the closing braces
	}
	// Cloned: the builder grew to the bound, which may be twice the text.
	return &startText{enc: e, state: res.State, stale: res.Subject.Stale, text: strings.Clone(b.String())}
}

// startText is a JSON start (the whole value for a snapshot without
// samples), for the state and identity staleness it was written for.
type startText struct {
	enc   *encoder
	state string
	stale bool
	text  string
}

// encodeOnce sets res.Header from the decisions, without the caches.
func (p *Pipeline) encodeOnce(ctx context.Context, e *encoder, res *Result) {
	value := e.encode(&res.Decisions, res.State, res.Subject.Stale)
	c, err := p.form(e, value, res.State)
	if err != nil {
		p.oversize(ctx, e, res, fmt.Errorf("%w (%d bytes)", err, len(value)))
		return
	}
	c.set(res.Header)
}

// oversize sends res as unavailable: its value did not fit the limits.
func (p *Pipeline) oversize(ctx context.Context, e *encoder, res *Result, err error) {
	p.metrics.headerOversize.Inc()
	p.logger.LogAttrs(ctx, slog.LevelError, "flags header too large; sending state unavailable",
		slog.String("snapshot_version", res.Snapshot.Version()), slog.Any("error", err))
	res.Header[FlagsHeader] = []string{e.unavailable()}
	res.Waffle = nil
}

// encodeNew makes the header values of res's decisions, whose
// fingerprint is fp; the first head bytes of it are the JSON head's. A
// large value whose head is cached only has the rest of its JSON written.
func (p *Pipeline) encodeNew(e *encoder, res *Result, fp []byte, head int) (*encoded, error) {
	var c *encoded
	var err error
	if h := p.largeHead(e, &res.Decisions, fp[:head]); h != nil {
		c, err = p.fromHead(e, h, res, fp[:len(fp)-len(res.Decisions.Samples)])
	} else {
		value := e.encode(&res.Decisions, res.State, res.Subject.Stale)
		if c, err = p.form(e, value, res.State); err != nil {
			err = fmt.Errorf("%w (%d bytes)", err, len(value))
		}
	}
	if err != nil {
		return nil, err
	}
	c.fp = string(fp)
	return c, nil
}

// fingerprintHead and fingerprintRest append to b what the flags JSON of
// d says besides the snapshot's names: a byte for each flag's and switch's
// state (what the JSON's head, see writeHead, depends on: the first
// len(Flags)+len(Switches) bytes), then a byte for each flag's origin (see
// originCodes) and 0xFF; then the state, whether the identity is stale,
// and last a byte for each sample's state, as the JSON ends with them. The
// head part is the same for every request a memo entry answers, and all
// but the samples for every request of a visitor.
func fingerprintHead(b []byte, d *engine.Decisions) []byte {
	for _, ds := range [...][]engine.Decision{d.Flags, d.Switches} {
		for i := range ds {
			b = append(b, onByte(ds[i].On))
		}
	}
	for i := range d.Flags {
		b = append(b, originCodes[d.Flags[i].Reason])
	}
	return append(b, 0xFF)
}

func fingerprintRest(b []byte, d *engine.Decisions, state string, staleIdentity bool) []byte {
	b = append(append(append(b, state...), 0xFF, onByte(staleIdentity)), 0xFF)
	for i := range d.Samples {
		b = append(b, onByte(d.Samples[i].On))
	}
	return b
}

func onByte(on bool) byte {
	if on {
		return 1
	}
	return 0
}

// originCodes numbers the reasons by their Origin: reasons of one origin
// share a code, and those without one have 0.
var originCodes = func() (codes [256]byte) {
	seen := map[string]byte{"": 0}
	for r := range 256 {
		o := engine.Reason(r).Origin()
		if _, ok := seen[o]; !ok {
			seen[o] = byte(len(seen))
		}
		codes[r] = seen[o]
	}
	return codes
}()

// encoder returns the encoder for snap, building it the first time snap is
// seen.
func (p *Pipeline) encoder(snap *engine.Snapshot) *encoder {
	if e := p.enc.Load(); e != nil && e.snap == snap {
		return e
	}
	e := newEncoder(snap)
	e.tooLarge = p.neverFits(e)
	if e.tooLarge {
		p.logger.Error("the flags header of this snapshot can never fit the header limits; every request carries state unavailable until flags are removed",
			"snapshot_version", snap.Version(), "flags", snap.NumFlags(), "limit_bytes", p.limits.part*p.limits.maxParts)
	}
	p.enc.Store(e)
	return e
}

// neverFits reports whether the smallest value e can produce, every
// decision false and no sources, is too large for the header limits even
// compressed.
func (p *Pipeline) neverFits(e *encoder) bool {
	s := e.snap
	d := engine.Decisions{
		Flags:    make([]engine.Decision, s.NumFlags()),
		Switches: make([]engine.Decision, s.NumSwitches()),
		Samples:  make([]engine.Decision, s.NumSamples()),
	}
	value := e.encode(&d, StateStale, false)
	if len(value) <= p.limits.inline {
		return false
	}
	_, _, err := p.split(value)
	return errors.Is(err, errTooLarge)
}

// HeaderFits reports whether the flags header of snap fits the header
// limits (false: every request carries state unavailable), for /readyz.
func (p *Pipeline) HeaderFits(snap *engine.Snapshot) bool {
	return !p.encoder(snap).tooLarge
}

// record counts every override that decided a flag and every decision the
// library would have raised on, and logs the overrides a URL asked for
// (the session ones are logged when stored).
func (p *Pipeline) record(ctx context.Context, snap *engine.Snapshot, d *engine.Decisions, userID string) {
	for i, dec := range d.Flags {
		switch dec.Reason {
		case engine.ReasonError:
			p.metrics.decisionErrors.WithLabelValues(string(snap.FlagSource(i))).Inc()
		case engine.ReasonOverrideURL:
			p.logger.LogAttrs(ctx, slog.LevelInfo, "flag overridden", slog.String("user_id", userID),
				slog.String("flag", snap.FlagName(i)), slog.String("source", dec.Reason.Origin()), slog.Bool("on", dec.On))
			fallthrough
		case engine.ReasonOverrideSession:
			p.metrics.overridesApplied.WithLabelValues(dec.Reason.Origin(), onOff(dec.On)).Inc()
		}
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// headerValues looks up request headers the way Django's request.headers
// does: case-insensitively, with '_' in the looked-up name meaning '-', and
// repeated lines joined with "," as WSGI servers join them. A header that
// arrived spelled with '_' is never found: Go keeps it under a key with '_'
// (canonicalising only around '-'), and gunicorn 22+ and runserver drop such
// headers, while older gunicorn conflates them with the '-' spelling.
type headerValues http.Header

// Get returns the value of the header name. It builds the canonical key
// (as textproto.CanonicalMIMEHeaderKey would) on the stack.
func (h headerValues) Get(name string) (string, bool) {
	var buf [64]byte
	key := buf[:0]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '-':
			c = '-'
		case 'a' <= c && c <= 'z':
			if upper {
				c -= 'a' - 'A'
			}
		case 'A' <= c && c <= 'Z':
			if !upper {
				c += 'a' - 'A'
			}
		case '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+.^`|~", c) >= 0:
		default:
			return "", false // not a token: no request can carry it
		}
		key = append(key, c)
		upper = c == '-'
	}
	vs := h[string(key)]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// globalRand draws from math/rand/v2's goroutine-safe top-level source.
type globalRand struct{}

func (globalRand) Float64() float64 { return rand.Float64() }
