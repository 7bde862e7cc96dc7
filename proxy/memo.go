package proxy

import (
	"encoding/binary"
	"hash/maphash"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/flagproxy/flagproxy/engine"
)

// DefaultDecisionCache is the memory the decision memo may hold (see
// memo): enough for every visitor of a 50-flag site with 10,000 active
// users (about 3 KB each, with their JSON start), or about two thousand
// of a 1,000-flag site.
const DefaultDecisionCache = 32 << 20

// memo remembers, for one snapshot, the flags and switches decided for
// recent request inputs, so that a visitor whose next request brings the
// same inputs (the next page, its assets and API calls) is not evaluated
// again.
//
// An entry is found by the request inputs the evaluation reads (the Cookie
// header, which names the visitor; the query string, the path, the
// language's sources and the headers rules name, when the snapshot's rules
// read them), and used only when the visitor as identified now and the
// overrides worked out now are those it was decided for: identity and
// overrides are resolved on every request, so a logout or a permission
// change is seen as it was without the memo. A snapshot whose rules read
// the time is not memoized. Only evaluations that drew no random roll are
// kept: a fresh waffle roll is not repeated, and samples are drawn anew
// on every request. An entry also keeps the cookies the identity, the
// overrides and the language looked up (see cookieJar), so that a recalled
// header is not searched again.
type memo struct {
	snap    *engine.Snapshot
	seeds   [2]maphash.Seed
	entries *lru.Cache[memoKey, *memoEntry] // nil: nothing is memoized
	base    int64                           // the bytes of an entry without cookies or JSON start
	budget  int64                           // the bytes the entries may take
	used    atomic.Int64                    // the bytes they take
}

// memoKey is a 128-bit hash: two keyed hashes with independent random
// seeds, so that two different inputs sharing a key is not a practical
// event.
type memoKey [2]uint64

// memoEntry is a memoized evaluation.
type memoEntry struct {
	memoData
	// start is the flags JSON up to the samples (see Pipeline.jsonStart),
	// when the snapshot's values are inline; nil otherwise. It is held in
	// the entry, not through a pointer of its own: one object less for the
	// collector to mark an entry (the memo holds thousands).
	start atomic.Pointer[startText]
}

// memoData is what a memoEntry holds besides its JSON start.
type memoData struct {
	visitor  memoKey // the visitor and overrides it was decided for
	user     string  // the visitor's user id, compared as well
	flags    []engine.Decision
	switches []engine.Decision
	cookies  []engine.Cookie // capacity == length: appends copy
	counted  cookieCount     // of cookies
	// quiet is set when no decision is one record reports (an error, an
	// override).
	quiet bool
	// fpHead is the decisions' fingerprint up to the samples.
	fpHead []byte
	// The cookies picked from the header (see cookieJar), when picked.
	picked bool
	names  []string
	values [maxPicked]string
	found  [maxPicked]bool
	size   int64 // the bytes it takes, as the memo counts them
}

// startSlack is what a JSON start may grow by when it is rewritten for
// another state or a stale identity.
const startSlack = len(identityStale) + len(StateUnavailable)

// newMemo returns the memo of snap, whose entries take at most budget
// bytes together; it memoizes nothing when budget leaves room for no
// entry or snap's rules read the time.
func newMemo(snap *engine.Snapshot, budget int64) *memo {
	m := &memo{snap: snap, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, budget: budget}
	m.base = int64(unsafe.Sizeof(memoEntry{})) + 128 // the LRU's element and map slot
	nf, ns := int64(snap.NumFlags()), int64(snap.NumSwitches())
	m.base += (nf+ns)*int64(unsafe.Sizeof(engine.Decision{})) + 2*nf + ns + 1 // decisions and fpHead
	if n := budget / m.base; n >= 1 && !snap.Inputs().Has(engine.InputTime) {
		m.entries, _ = lru.NewWithEvict(int(min(n, 1<<20)), func(_ memoKey, e *memoEntry) { m.used.Add(-e.size) })
	}
	return m
}

// sizeOf is the bytes e takes: the base, its cookies, the values picked
// and its JSON start.
func (m *memo) sizeOf(e *memoEntry) int64 {
	n := m.base + int64(len(e.cookies))*int64(unsafe.Sizeof(engine.Cookie{}))
	for _, v := range e.values {
		n += int64(len(v))
	}
	if t := e.start.Load(); t != nil {
		n += int64(unsafe.Sizeof(startText{}))
		n += int64(len(t.text) + startSlack)
	}
	return n
}

// put keeps d, decided without a roll for the inputs of key and the
// visitor of hash visitor, with the cookies jar picked and the JSON start
// start (nil: none), and returns the entry.
func (m *memo) put(key, visitor memoKey, user string, jar *cookieJar, d *engine.Decisions, start *startText) *memoEntry {
	var cookies []engine.Cookie
	if len(d.Cookies) > 0 {
		// Copied: the evaluation's list has room for every cookie rule.
		cookies = make([]engine.Cookie, len(d.Cookies))
		copy(cookies, d.Cookies)
	}
	e := &memoEntry{memoData: memoData{visitor: visitor, user: user, flags: slices.Clip(d.Flags),
		switches: slices.Clip(d.Switches), cookies: cookies, quiet: true, fpHead: fingerprintHead(nil, d),
		picked: jar.picked, names: jar.names, values: cloned(jar.values), found: jar.found}}
	e.start.Store(start)
	for _, dec := range d.Flags {
		if recorded(dec.Reason) {
			e.quiet = false
			break
		}
	}
	e.counted = countCookies(e.cookies)
	d.Cookies = e.cookies
	m.add(key, e)
	return e
}

// repick replaces the entry e of key by one with the cookies jar picked:
// the names to pick grew since e was made.
func (m *memo) repick(key memoKey, e *memoEntry, jar *cookieJar) {
	fresh := &memoEntry{memoData: e.memoData}
	fresh.picked, fresh.names, fresh.values, fresh.found = true, jar.names, cloned(jar.values), jar.found
	fresh.start.Store(e.start.Load())
	m.add(key, fresh)
}

// add keeps e under key, replacing the entry there, then drops the least
// recently used entries until the entries fit the budget. Every entry
// comes in here and leaves through the eviction callback, so used counts
// exactly what is held.
func (m *memo) add(key memoKey, e *memoEntry) {
	e.size = m.sizeOf(e)
	m.used.Add(e.size)
	for {
		if held, _ := m.entries.ContainsOrAdd(key, e); !held {
			break
		}
		m.entries.Remove(key)
	}
	for m.used.Load() > m.budget {
		if _, _, ok := m.entries.RemoveOldest(); !ok {
			break
		}
	}
}

// cloned copies picked cookie values, which point into the request's whole
// Cookie header: an entry must not keep every header it was made from. The
// copies share one string, one object for the collector to mark instead
// of one a value (the memo holds thousands of entries).
func cloned(values [maxPicked]string) [maxPicked]string {
	n := 0
	for _, v := range values {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for _, v := range values {
		b.WriteString(v)
	}
	all := b.String()
	for i, v := range values {
		values[i], all = all[:len(v)], all[len(v):]
	}
	return values
}

// decisions returns the entry's decisions with samples drawn from rnd. The
// flags, switches and cookies are shared: read-only.
func (e *memoEntry) decisions(snap *engine.Snapshot, rnd engine.Rand) engine.Decisions {
	d := engine.Decisions{Flags: e.flags, Switches: e.switches, Cookies: e.cookies}
	if n := snap.NumSamples(); n > 0 {
		d.Samples = make([]engine.Decision, n)
		snap.DrawSamples(d.Samples, rnd)
	}
	return d
}

// key hashes the request inputs of in that an evaluation reads, besides
// the visitor and the overrides: the Cookie header always (it names the
// visitor), the others when the snapshot's rules read them (withLocale:
// the site has LocaleMiddleware, whose language comes from the path, a
// cookie and Accept-Language).
func (m *memo) key(in *Input, withLocale bool) memoKey {
	uses := m.snap.Inputs()
	language := uses.Has(engine.InputLanguage) && withLocale
	var parts [keyParts]byte
	k := keyHash{seeds: &m.seeds, buf: parts[:0]}
	k = k.str(in.UserID).str(in.Cookie)
	if uses.Has(engine.InputQuery) {
		k = k.str(in.RawQuery)
	}
	if uses.Has(engine.InputPath) || language {
		k = k.str(in.Path)
	}
	if language {
		k = k.strs(in.Header["Accept-Language"])
	}
	if uses.Has(engine.InputHeader) {
		k = k.headers(m.snap, in.Header)
	}
	return k.sum()
}

// visitor hashes what an evaluation of req reads besides the request
// inputs key covers: the visitor and the overrides.
func (m *memo) visitor(req *engine.Request) memoKey {
	var parts [keyParts]byte
	k := keyHash{seeds: &m.seeds, buf: parts[:0]}
	k = k.subject(&req.Subject).flag(req.Overrides.Allowed)
	return k.overrides(req.Overrides.Session).overrides(req.Overrides.URL).sum()
}

// keyParts is the room on the stack for a key's parts; a request with
// more (many headers a rule reads, many permissions) takes the heap.
const keyParts = 512

// keyHash gathers every part of a key, each part framed by its length so
// that no two sequences of parts give the same bytes, for sum to hash at
// once with both seeds. A string longer than shortPart is gathered as its
// two hashes: the Cookie header of a 1,000-flag site's visitor is 6 KB.
// Its methods return it with the part added, so that its buffer can stay
// on the caller's stack. (Writing each part to two maphash.Hash as it
// came took about 7,200 instructions a request of BenchmarkServeHTTP's
// returning visitor, counted with callgrind, headers aside; gathering
// first, about 2,500.)
type keyHash struct {
	seeds *[2]maphash.Seed
	buf   []byte
}

// shortPart is the longest string a key gathers as it is.
const shortPart = 32

func (k keyHash) str(s string) keyHash {
	k = k.num(uint64(len(s)))
	if len(s) > shortPart {
		return k.num(maphash.String(k.seeds[0], s)).num(maphash.String(k.seeds[1], s))
	}
	k.buf = append(k.buf, s...)
	return k
}

// sum hashes the parts gathered with both seeds.
func (k keyHash) sum() memoKey {
	return memoKey{maphash.Bytes(k.seeds[0], k.buf), maphash.Bytes(k.seeds[1], k.buf)}
}

func (k keyHash) num(n uint64) keyHash {
	k.buf = binary.LittleEndian.AppendUint64(k.buf, n)
	return k
}

func (k keyHash) strs(vs []string) keyHash {
	k = k.num(uint64(len(vs)))
	for _, v := range vs {
		k = k.str(v)
	}
	return k
}

func (k keyHash) flag(b bool) keyHash { return k.num(uint64(onByte(b))) }

// subject adds every field of s a rule can read (all but Stale).
func (k keyHash) subject(s *engine.Subject) keyHash {
	k = k.str(s.UserID).str(s.Username)
	for _, b := range [...]bool{s.Authenticated, s.Active, s.Staff, s.Superuser} {
		k = k.flag(b)
	}
	k = k.num(uint64(len(s.Groups)))
	for _, g := range s.Groups {
		k = k.num(uint64(g))
	}
	k = k.num(uint64(len(s.Permissions)))
	for _, p := range s.Permissions {
		k = k.str(p)
	}
	return k.overrides(s.FeatureStatus)
}

// overrides adds a name → on map in name order.
func (k keyHash) overrides(m map[string]bool) keyHash {
	k = k.num(uint64(len(m)))
	if len(m) == 0 {
		return k
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k = k.str(n).flag(m[n])
	}
	return k
}

// headers adds the request headers the snapshot's rules read, in name
// order.
func (k keyHash) headers(snap *engine.Snapshot, h http.Header) keyHash {
	var read []string
	for name := range h {
		if snap.ReadsHeader(name) {
			read = append(read, name)
		}
	}
	k = k.num(uint64(len(read)))
	sort.Strings(read)
	for _, name := range read {
		k = k.str(name).strs(h[name])
	}
	return k
}

// countingRand is a Rand that counts its draws, to tell an evaluation
// that rolled.
type countingRand struct {
	r engine.Rand
	n int
}

func (c *countingRand) Float64() float64 {
	c.n++
	return c.r.Float64()
}

// recorded reports whether record has something to do for a decision of
// reason r.
func recorded(r engine.Reason) bool {
	return r == engine.ReasonError || r == engine.ReasonOverrideURL || r == engine.ReasonOverrideSession
}
