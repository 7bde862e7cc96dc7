package proxy

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Defaults of the ExposureConfig fields left zero.
const (
	// DefaultExposureDedup is the default ExposureConfig.Dedup: one event
	// per visitor, name and value each UTC day.
	DefaultExposureDedup = 24 * time.Hour
	// DefaultExposureEntries is the default ExposureConfig.Entries.
	DefaultExposureEntries = 1 << 20
	// DefaultExposureQueue is the default ExposureConfig.Queue.
	DefaultExposureQueue = 10_000
	// ExposureSchemaVersion is the schema_version of every event; it
	// changes only when a field changes meaning or goes away.
	ExposureSchemaVersion = 1
	// maxExposurePath bounds the path of an event, in bytes.
	maxExposurePath = 1024
)

// ExposureConfig configures exposure events: which decisions are logged,
// how often, and where to.
type ExposureConfig struct {
	// Patterns choose the names logged, as Config.BrowserFlags does (see
	// nameMatcher): "exp_*" matches flags, switches and samples whose
	// name begins with exp_; "flag:exp_*" flags only.
	Patterns []string
	// Sink is where events go: "-" (standard output), "unix:///path"
	// (a stream socket), "unixgram:///path" (a datagram socket) or a file
	// path (opened for appending, reopened by Reopen).
	Sink string
	// Dedup is the window in which a visitor's decision of a name is
	// logged once; windows are aligned to the Unix epoch (24h: one per
	// UTC day). Zero means DefaultExposureDedup; negative logs every
	// decision.
	Dedup time.Duration
	// Entries bounds the visitor-name-value entries remembered for
	// deduplication (least recently seen go first); zero means
	// DefaultExposureEntries.
	Entries int
	// Queue bounds the events waiting for the sink; beyond it they are
	// dropped and counted. Zero means DefaultExposureQueue.
	Queue int
	// VisitorKey keys the hash that turns a session cookie into a
	// visitor id; nil means a random key (ids then change at restart and
	// differ between replicas).
	VisitorKey []byte
	// SessionCookie is Django's SESSION_COOKIE_NAME; empty means
	// "sessionid".
	SessionCookie string
	Logger        *slog.Logger
	// Registerer receives the exposure metrics; nil registers them
	// nowhere.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Exposure records exposure events: for the names its patterns match,
// one event per visitor, name and value within the dedup window, written
// as one JSON line (see exposureEvent) by a goroutine of its own (Run), so
// that a slow or absent sink never holds up a request.
type Exposure struct {
	names   *nameMatcher
	window  time.Duration
	key     []byte
	session string
	now     func() time.Time
	index   atomic.Pointer[exposureIndex] // for the snapshot last seen
	seen    *seenSet                      // nil logs every decision
	out     *exposureWriter
	dupes   prometheus.Counter
}

// NewExposure checks cfg and builds an Exposure; Run must then be running
// for events to be written.
func NewExposure(cfg ExposureConfig) (*Exposure, error) {
	names, err := newNameMatcher(cfg.Patterns)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("exposure flags: %w", err))
	} else if names == nil {
		errs = append(errs, errors.New("exposure flags: no patterns"))
	}
	target, err := parseSink(cfg.Sink)
	if err != nil {
		errs = append(errs, fmt.Errorf("exposure log: %w", err))
	}
	if cfg.Entries < 0 || cfg.Queue < 0 {
		errs = append(errs, fmt.Errorf("exposure entries %d, queue %d: must not be negative", cfg.Entries, cfg.Queue))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := &Exposure{names: names, window: cmp.Or(cfg.Dedup, DefaultExposureDedup), key: cfg.VisitorKey,
		session: cmp.Or(cfg.SessionCookie, defaultSessionCookie), now: cfg.Now}
	if e.now == nil {
		e.now = time.Now
	}
	if len(e.key) == 0 {
		e.key = make([]byte, 32)
		_, _ = rand.Read(e.key)
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	e.dupes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_exposure_duplicates_total",
		Help: "Exposures not logged because the visitor's decision of that name was logged in the current dedup window.",
	})
	if err := reg.Register(e.dupes); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if e.window > 0 {
		if e.seen, err = newSeenSet(cmp.Or(cfg.Entries, DefaultExposureEntries), reg); err != nil {
			return nil, err
		}
	}
	logger := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if e.out, err = newExposureWriter(target, cmp.Or(cfg.Queue, DefaultExposureQueue), logger, reg); err != nil {
		return nil, err
	}
	return e, nil
}

// Run writes the events to the sink until ctx ends, then writes those
// still queued (for up to exposureDrainTimeout) and closes the sink. Cancel
// ctx after the proxy has shut down, so that the events of the last
// requests are written.
func (e *Exposure) Run(ctx context.Context) error { return e.out.run(ctx) }

// Reopen closes the sink; the next event opens it again (a file: by its
// path, so that a rotated file is left to its shipper). Call it on SIGHUP.
func (e *Exposure) Reopen() { e.out.reopen() }

// exposureIndex lists the names of one snapshot that the patterns match,
// by their index in the snapshot.
type exposureIndex struct {
	snap                     *engine.Snapshot
	flags, switches, samples []int
}

// indexOf returns the matching names of snap, working them out the first
// time snap is seen.
func (e *Exposure) indexOf(snap *engine.Snapshot) *exposureIndex {
	if x := e.index.Load(); x != nil && x.snap == snap {
		return x
	}
	x := &exposureIndex{snap: snap}
	pick := func(k kind, n int, name func(int) string) []int {
		var out []int
		for i := range n {
			if e.names.match(k, name(i)) {
				out = append(out, i)
			}
		}
		return out
	}
	x.flags = pick(kindFlag, snap.NumFlags(), snap.FlagName)
	x.switches = pick(kindSwitch, snap.NumSwitches(), snap.SwitchName)
	x.samples = pick(kindSample, snap.NumSamples(), snap.SampleName)
	e.index.Store(x)
	return x
}

// exposed is what a proxied request's decisions leave for the response
// (see Exposure.record).
type exposed struct {
	snap      *engine.Snapshot
	decisions engine.Decisions
	userID    string // the authenticated visitor's, else ""
	cookie    string // the request's Cookie line, for the session cookie
	path      string // as sent, without the query
}

// pending returns what record needs of res, decided for a request to
// path (as sent, without the query) with the Cookie line cookie; nil when
// no name of its snapshot is logged (then nothing is kept).
func (e *Exposure) pending(res *Result, path, cookie string) *exposed {
	if e == nil || res.Snapshot == nil {
		return nil
	}
	x := e.indexOf(res.Snapshot)
	if len(x.flags)+len(x.switches)+len(x.samples) == 0 {
		return nil
	}
	if len(path) > maxExposurePath {
		path = path[:maxExposurePath]
	}
	return &exposed{snap: res.Snapshot, decisions: res.Decisions, userID: res.Subject.UserID, cookie: cookie, path: path}
}

// recordExposure logs the exposures of the request res answers (see
// Exposure.record).
func (p *Proxy) recordExposure(res *http.Response, rep *readsReport) {
	if p.exposure == nil || res.Request == nil {
		return
	}
	if ex := exchangeOf(res.Request.Context()); ex != nil && ex.exposed != nil {
		var read func(engine.Kind, string) bool
		if rep != nil {
			read = rep.has
		}
		p.exposure.record(ex.exposed, res.StatusCode, read)
	}
}

// record logs the exposures of one proxied request, once its response
// has arrived from the upstream (status is its code). It is called on the
// response path, never for a request the upstream did not answer.
//
// read says which names the app read while handling the request: when the
// response reports them (the X-Flagproxy-Reads header, parsed on the
// response), pass a function answering for a kind and name, and only the
// decisions of names read are logged; nil means the response reported
// nothing, and every decision of a matching name is logged. read is called
// only for names the patterns match, during the call.
func (e *Exposure) record(x *exposed, status int, read func(k engine.Kind, name string) bool) {
	if e == nil || x == nil {
		return
	}
	idx := e.indexOf(x.snap)
	v := visitor{}
	v.fill(e, x)
	now := e.now()
	window := e.windowOf(now)
	for _, list := range [...]struct {
		k    engine.Kind
		at   []int
		dec  []engine.Decision
		name func(int) string
	}{
		{engine.KindFlag, idx.flags, x.decisions.Flags, x.snap.FlagName},
		{engine.KindSwitch, idx.switches, x.decisions.Switches, x.snap.SwitchName},
		{engine.KindSample, idx.samples, x.decisions.Samples, x.snap.SampleName},
	} {
		for _, i := range list.at {
			if i >= len(list.dec) {
				return // not decided on x.snap
			}
			name, d := list.name(i), list.dec[i]
			if read != nil && !read(list.k, name) {
				continue
			}
			if !e.first(&v, list.k, name, d, window) {
				e.dupes.Inc()
				continue
			}
			e.out.enqueue(exposureEvent{time: now, kind: list.k, name: name, decision: d, userID: v.userID,
				visitorID: v.id, snapshot: x.snap.Version(), path: x.path, status: status})
		}
	}
}

// windowOf numbers the dedup window of t.
func (e *Exposure) windowOf(t time.Time) int64 {
	if e.window <= 0 {
		return 0
	}
	return t.UnixNano() / int64(e.window)
}

// first reports whether the event of v's decision d of a name is the
// first of its window, and remembers it. A visitor with neither user nor
// session shares one entry with all such visitors, except for a fresh
// percentage roll: that assigns a new browser (which keeps its side in
// the dwf_ cookie written on this response), so it is always logged.
func (e *Exposure) first(v *visitor, k engine.Kind, name string, d engine.Decision, window int64) bool {
	if e.seen == nil || (v.userID == "" && v.id == "" && d.Reason == engine.ReasonPercentRoll) {
		return true
	}
	return e.seen.add(seenKey(e.seen, v, k, name, d.On), window)
}

// visitor is who an event is about: an authenticated user, or an
// anonymous visitor known by a hash of the session cookie, or neither.
type visitor struct {
	userID string
	id     string // hex HMAC-SHA256(key, session cookie), 32 digits
}

func (v *visitor) fill(e *Exposure, x *exposed) {
	if x.userID != "" {
		v.userID = x.userID
		return
	}
	if x.cookie == "" {
		return
	}
	if s, _ := engine.CookieValue(x.cookie, e.session); s != "" {
		mac := hmac.New(sha256.New, e.key)
		mac.Write([]byte(s))
		v.id = hex.EncodeToString(mac.Sum(nil)[:16])
	}
}

// exposureEvent is one line of the exposure log; see exposureLine for
// its JSON form.
type exposureEvent struct {
	time      time.Time
	kind      engine.Kind
	name      string
	decision  engine.Decision
	userID    string
	visitorID string
	snapshot  string
	path      string
	status    int
}
