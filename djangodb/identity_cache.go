package djangodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/flagproxy/flagproxy/engine"
)

// IdentityCache answers who a visitor is from their session cookie, keeping
// each answer (keyed by the SHA-256 digest of the cookie value; the value
// itself is kept only with a logged-in session's answer, to re-check it)
// so that requests in steady state make no database query.
//
// Freshness. An answer is dated by the moment the queries that produced it
// began (checked), and is never served at or past checked+TTL, nor at or
// past the session's own expiry (expire_date, or the signed cookie's max
// age). A known (logged-in) session is re-checked in the background from
// checked+TTL-Ahead, while its answer is still served (refresh ahead), and
// the new answer replaces the old one: by a sweep, every RecheckWait, of
// all the sessions used since their last check (a request that waited for
// that check counts), together; or, for a session first used again in
// that last part, by that request, at the latest by the margin before the
// TTL. A session's first re-check after its first lookup comes instead at
// a random moment in the last three quarters of TTL-Ahead, and its answer
// counts as used (so the next re-check is made as planned): sessions first
// seen together, as after a restart, are then re-checked a few at a time
// rather than in one wave each cycle. Ahead = min(TTL/2, RecheckWait +
// margin), where the margin is twice the slowest re-check batch of the last
// 30 to 60 s, between 100 ms and min(LookupTimeout, TTL/4) (recheckMargin):
// 0.6 s of the default 5 s with a database that answers in milliseconds,
// 1.75 s at most. So a visitor active within the last TTL never waits; only
// a session idle for longer waits for its lookup (at most LookupTimeout),
// as does one whose re-check has not answered by the TTL (a database that
// turned slow: for one TTL, until the margin has grown). A logout,
// password change, deactivation or permission change committed at time T
// therefore reaches every request that starts after T+TTL (plus any
// replication lag), except in an outage (below). Refused and anonymous
// sessions are not re-checked in the background: they are looked up again
// once TTL old.
//
// Batching. Lookups are grouped into batches resolved together
// (SessionResolver.ResolveBatch: one query on django_session for the whole
// batch, one on the user table, one on its groups, one on permissions). A
// session not yet known waits at most BatchWait (2 ms) for others to join
// its batch, a re-check started by a request at most RecheckWait (500 ms;
// TTL/8 when that is less), and a sweep's re-checks go at once; at most 4
// batches run at once (the poller keeps its connection), and while they run
// the next batch grows, up to BatchSize sessions of which at most 100 are
// not yet known. A batch holding sessions not yet known spends one token of
// the LookupsPerSecond budget (burst twice that), however many it holds;
// re-checks of known sessions spend none, so a spray of random ids cannot
// log out known users. When the budget is spent, new lookups wait for the
// next token and ride in a bigger batch. At most Entries lookups of unknown
// sessions wait at once; beyond that, and for a request that waited
// LookupTimeout, the visitor is anonymous (uncached). So a spray costs at
// most LookupsPerSecond queries a second of at most 100 random ids each, and
// memory for Entries waiting values, 4 running batches and the
// Entries-bounded refused cache; values that cannot be sessions (Plausible)
// cost nothing.
//
// Outage. Once a re-check fails with a database error (until then the
// answer is served unmarked, as above), a known identity is served with
// Subject.Stale set until its last successful check is StaleMax old (each such session is retried at most once a second); after that, or
// with StaleMax zero, the visitor is anonymous until the database answers. A
// session never seen before is anonymous during an outage. The first
// successful re-check replaces the stale answer (and clears Stale). An
// answer is only ever served for the cookie value it was resolved from.
type IdentityCache struct {
	cfg     IdentityCacheConfig
	log     *slog.Logger
	known   *lru.Cache[[32]byte, *knownEntry]
	refused *lru.Cache[[32]byte, cachedIdentity]
	batch   *batcher
	sweeper sweeper
	now     func() time.Time
	margin  *recheckMargin
	// recheckWait is how long a re-check started by a request waits to
	// join a batch, and the interval between sweeps.
	recheckWait time.Duration
	retry       time.Duration
	lastLog     atomic.Int64 // unix nanoseconds of the last batch failure logged
	keys        keyWatch

	hits        *prometheus.CounterVec
	hitAccepted prometheus.Counter // hits{result="accepted"}, counted on most requests
	hitRefused  prometheus.Counter // hits{result="refused"}
	misses      prometheus.Counter
	lookups     prometheus.Counter
	queries     prometheus.Counter
	stale       prometheus.Counter
	rejected    *prometheus.CounterVec
}

// Defaults for IdentityCacheConfig.
const (
	DefaultIdentityTTL           = 5 * time.Second
	DefaultIdentityEntries       = 10000
	DefaultIdentityLookupsPerSec = 200
	DefaultIdentityLookupTimeout = 2 * time.Second
	DefaultIdentityStaleMax      = 10 * time.Minute
	DefaultIdentityBatchSize     = 2000
	DefaultIdentityBatchWait     = 2 * time.Millisecond
	DefaultIdentityRecheckWait   = 500 * time.Millisecond
)

// maxConcurrentLookups keeps identity batches from taking every database
// connection (Open allows 8) away from the poller.
const maxConcurrentLookups = 4

// maxNewPerBatch bounds the sessions not yet known in one batch, and so
// the database work a spray of random ids can buy with one token.
const maxNewPerBatch = 100

// maxOutageRetry is how often, at most, a known session served stale is
// re-checked while the database fails (less if TTL is shorter).
const maxOutageRetry = time.Second

// ReasonLookupTimeout: the visitor waited LookupTimeout for a lookup that
// had not answered.
const ReasonLookupTimeout Reason = "lookup_timeout"

// errLookupTimeout is returned to a request that waited LookupTimeout.
var errLookupTimeout = errors.New("identity lookup: no answer within the lookup timeout")

// Resolution is the answer for one session cookie value.
type Resolution struct {
	Subject engine.Subject
	Reason  Reason
	// Until is when the answer must be asked again at the latest (the
	// session's expiry); zero when not bounded.
	Until time.Time
	// Err is a database error: nothing is known about the session, and
	// Subject is anonymous.
	Err error
}

// SessionResolver resolves session cookie values; *Identities is one.
type SessionResolver interface {
	// Plausible says, without a database query, whether value could name
	// a session.
	Plausible(value string) bool
	// ResolveBatch resolves distinct values together, in as few queries
	// as it can: out[i] answers values[i], matched by value, never by a
	// row's position. queries is the number of statements it sent.
	ResolveBatch(ctx context.Context, values []string) (out []Resolution, queries int)
}

// IdentityCacheConfig configures an IdentityCache. Zero durations and
// sizes take the defaults above, except StaleMax.
type IdentityCacheConfig struct {
	Resolver SessionResolver
	// CookieName is SESSION_COOKIE_NAME.
	CookieName string
	// TTL is how long an answer is served without a re-check; see
	// IdentityCache for the exact bound on how late a change is seen.
	TTL time.Duration
	// Entries bounds the cache of known sessions, separately the cache of
	// refused cookie values, and the lookups of unknown sessions waiting
	// at once.
	Entries int
	// LookupsPerSecond bounds the batches (queries) per second for
	// sessions not known (burst: twice as many); re-checks of known
	// sessions do not count.
	LookupsPerSecond float64
	// LookupTimeout bounds one batch's queries, and how long a request
	// waits for a lookup; past it the visitor is served as anonymous.
	LookupTimeout time.Duration
	// StaleMax bounds how old (since its last successful check) a known
	// identity may be when it is served, marked Stale, because the
	// database fails. Zero disables serving stale identities.
	StaleMax time.Duration
	// BatchSize bounds the sessions resolved in one batch.
	BatchSize int
	// BatchWait is the longest a lookup of a session not yet known waits
	// for others to join its batch.
	BatchWait time.Duration
	// RecheckWait is the longest a background re-check started by a
	// request waits for others to join its batch, and the interval of the
	// sweeps that re-check the sessions used since their last check.
	RecheckWait time.Duration
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// Now is the clock answers are dated and aged by; nil means time.Now.
	// Batch timing uses package time's timers.
	Now func() time.Time
}

type cachedIdentity struct {
	subject engine.Subject
	reason  Reason
	checked time.Time // when the queries of this answer began
	until   time.Time // the session's expiry; zero: unbounded
	// failed is set when a re-check of this answer failed with a database
	// error; the next one is not started before retryAt.
	failed  bool
	retryAt time.Time
}

// NewIdentityCache checks cfg and returns an IdentityCache.
func NewIdentityCache(cfg IdentityCacheConfig) (*IdentityCache, error) {
	var errs []error
	if cfg.Resolver == nil {
		errs = append(errs, errors.New("identity cache: no resolver"))
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "sessionid"
	}
	if cfg.TTL < 0 || cfg.Entries < 0 || cfg.LookupsPerSecond < 0 || cfg.StaleMax < 0 ||
		cfg.BatchSize < 0 || cfg.BatchWait < 0 || cfg.RecheckWait < 0 {
		errs = append(errs, fmt.Errorf("identity cache: negative TTL, entries, lookups per second, stale max or batch setting"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	setDefault(&cfg.TTL, DefaultIdentityTTL)
	setDefault(&cfg.Entries, DefaultIdentityEntries)
	setDefault(&cfg.LookupsPerSecond, DefaultIdentityLookupsPerSec)
	setDefault(&cfg.LookupTimeout, DefaultIdentityLookupTimeout)
	setDefault(&cfg.BatchSize, DefaultIdentityBatchSize)
	setDefault(&cfg.BatchWait, DefaultIdentityBatchWait)
	setDefault(&cfg.RecheckWait, DefaultIdentityRecheckWait)
	c := &IdentityCache{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	// Re-check ahead of the TTL, early enough for the re-check to wait
	// for its batch (or the next sweep) and, in the usual case, finish
	// before it: an answer is never served past checked+TTL, and a request
	// that comes then waits for the re-check under way.
	c.recheckWait = min(cfg.RecheckWait, cfg.TTL/8)
	c.margin = newRecheckMargin(min(cfg.LookupTimeout, cfg.TTL/4))
	c.retry = min(cfg.TTL, maxOutageRetry)
	c.known, _ = lru.New[[32]byte, *knownEntry](cfg.Entries)
	c.sweeper.max = 4 * cfg.Entries
	c.refused, _ = lru.New[[32]byte, cachedIdentity](cfg.Entries)
	c.batch = newBatcher(c, rate.NewLimiter(rate.Limit(cfg.LookupsPerSecond), int(2*cfg.LookupsPerSecond)+1))
	c.hits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_identity_cache_hits_total",
		Help: "Visitor identifications answered from the cache without waiting, by whether the session was accepted.",
	}, []string{"result"})
	c.misses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_identity_cache_misses_total",
		Help: "Visitor identifications not answered from the cache.",
	})
	c.lookups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_identity_lookups_total",
		Help: "Sessions resolved against the database (new ones and re-checks), batched or not.",
	})
	c.queries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_identity_queries_total",
		Help: "Database statements sent to resolve sessions; a batched statement is one, whatever the sessions in it.",
	})
	c.stale = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_identity_stale_total",
		Help: "Visitor identities served past their TTL, marked stale, because the database could not be read to re-check them.",
	})
	c.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_identity_rejected_total",
		Help: "Session cookies that left the visitor anonymous, by reason.",
	}, []string{"reason"})
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flagproxy_identity_cache_entries",
		Help: "Sessions held in the identity cache, accepted and refused together.",
	}, func() float64 { return float64(c.known.Len() + c.refused.Len()) })
	margin := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flagproxy_identity_recheck_margin_seconds",
		Help: "How long before an answer's TTL its background re-check is due to answer: twice the slowest recent re-check batch, within bounds.",
	}, func() float64 { return c.margin.get().Seconds() })
	c.hitAccepted, c.hitRefused = c.hits.WithLabelValues("accepted"), c.hits.WithLabelValues("refused")
	if r := cfg.Registerer; r != nil {
		for _, col := range []prometheus.Collector{c.hits, c.misses, c.lookups, c.queries, c.stale, c.rejected, entries, margin} {
			if err := r.Register(col); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// ahead is how long before its TTL an answer is re-checked: the margin
// the database needs (recheckMargin), plus the sweeps' interval, which can
// hold a planned re-check back that long.
func (c *IdentityCache) ahead() time.Duration {
	return min(c.cfg.TTL/2, c.recheckWait+c.margin.get())
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// knownState is what may be done with a known session's answer now.
type knownState int

const (
	stateFresh   knownState = iota // serve
	stateRecheck                   // serve, and re-check in the background
	stateStale                     // serve marked Stale (the database fails)
	stateDue                       // do not serve: wait for a re-check
)

func (c *IdentityCache) state(e cachedIdentity, now time.Time) knownState {
	if !e.until.IsZero() && !now.Before(e.until) {
		return stateDue
	}
	age := now.Sub(e.checked)
	switch {
	case age < c.cfg.TTL-c.ahead():
		return stateFresh
	case age < c.cfg.TTL:
		return stateRecheck
	case e.failed && c.staleServable(e, now):
		return stateStale
	}
	return stateDue
}

// recheckDue returns when a re-check of e started by a request at now
// must start: within RecheckWait, for others to join its batch, and by the
// margin before e's TTL, for its answer to come in time.
func (c *IdentityCache) recheckDue(e cachedIdentity, now time.Time) time.Time {
	left := e.checked.Add(c.cfg.TTL - c.margin.get()).Sub(now)
	return time.Now().Add(max(0, min(c.recheckWait, left)))
}

// staleServable says whether e may be served, marked Stale, because the
// database failed to re-check it.
func (c *IdentityCache) staleServable(e cachedIdentity, now time.Time) bool {
	return c.cfg.StaleMax > 0 && now.Sub(e.checked) < c.cfg.StaleMax &&
		(e.until.IsZero() || now.Before(e.until))
}

// Subject returns the visitor the cookies' session stands for. A database
// error or a lookup timeout is returned (the caller serves the visitor as
// anonymous) unless a known identity may be served stale instead.
func (c *IdentityCache) Subject(ctx context.Context, cookies engine.Values) (engine.Subject, error) {
	value, ok := "", false
	if cookies != nil {
		value, ok = cookies.Get(c.cfg.CookieName)
	}
	if !ok || value == "" {
		return engine.Anonymous, nil
	}
	key := digestOf(value)
	now := c.now()
	c.maybeSweep(now)
	e, isKnown := c.known.Get(key)
	if isKnown {
		switch c.state(e.cachedIdentity, now) {
		case stateFresh:
			c.hitAccepted.Inc()
			e.markUsed()
			return e.subject, nil
		case stateRecheck:
			// Re-check, unless a sweep has already queued it (the
			// batcher keeps one lookup per session).
			c.hitAccepted.Inc()
			e.markUsed()
			if !e.failed || !now.Before(e.retryAt) {
				c.batch.recheck(key, value, c.recheckDue(e.cachedIdentity, now))
			}
			return e.subject, nil
		case stateStale:
			c.hitAccepted.Inc()
			c.stale.Inc()
			e.markUsed()
			if !now.Before(e.retryAt) {
				c.batch.recheck(key, value, time.Now().Add(c.recheckWait))
			}
			s := e.subject
			s.Stale = true
			return s, nil
		}
	} else if r, ok := c.refused.Get(key); ok && now.Sub(r.checked) < c.cfg.TTL && (r.until.IsZero() || now.Before(r.until)) {
		c.hitRefused.Inc()
		return r.subject, nil // anonymous, maybe with the session's feature_status entries
	}
	c.misses.Inc()
	if !isKnown && !c.cfg.Resolver.Plausible(value) {
		c.rejected.WithLabelValues(string(ReasonImplausible)).Inc()
		return engine.Anonymous, nil
	}
	l := c.batch.lookup(key, value, isKnown)
	if l == nil {
		c.rejected.WithLabelValues(string(ReasonLookupsLimited)).Inc()
		return engine.Anonymous, nil
	}
	res, err := c.batch.wait(ctx, l, c.cfg.LookupTimeout)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		if isKnown && c.staleServable(e.cachedIdentity, c.now()) {
			c.markFailed(key, e)
			c.stale.Inc()
			s := e.subject
			s.Stale = true
			return s, nil
		}
		reason := ReasonDatabaseError
		if errors.Is(err, errLookupTimeout) {
			reason = ReasonLookupTimeout
		}
		c.rejected.WithLabelValues(string(reason)).Inc()
		return engine.Anonymous, err
	}
	if !res.Subject.Authenticated && res.Reason != ReasonAnonymousSession {
		c.rejected.WithLabelValues(string(res.Reason)).Inc()
	}
	return res.Subject, nil
}

// store records the answer for value (whose digest is key) of a lookup
// that began at checked: accepted sessions in the known cache, with their
// re-check planned (and made if the session is used by then: asked, when
// a request waited for this lookup, counts as a use), others in the
// refused one. A database error marks a known answer as failed, so that
// it is served stale or not at all, with a retry planned, and leaves
// everything else as it was. first says the session was not known before
// the lookup.
func (c *IdentityCache) store(key [32]byte, value string, res Resolution, checked time.Time, asked, first bool) {
	if res.Err != nil {
		if old, ok := c.known.Peek(key); ok && old.checked.Before(checked) {
			c.fail(key, old)
		}
		return
	}
	e := cachedIdentity{subject: res.Subject, reason: res.Reason, checked: checked, until: res.Until}
	if res.Subject.Authenticated {
		c.refused.Remove(key)
		k := &knownEntry{cachedIdentity: e, value: c.keptValue(key, value)}
		k.used.Store(asked)
		c.known.Add(key, k)
		c.sweeper.add(c.plan(key, checked, first))
		return
	}
	c.known.Remove(key)
	c.refused.Add(key, e)
}

// keptValue is the cookie value for a known entry of key to keep: the
// entry's it replaces, or a copy. A value a request looked up points into
// its whole Cookie header (6 KB for a visitor of a 1,000-flag site), which
// the entry would otherwise keep for as long as the session is in use.
func (c *IdentityCache) keptValue(key [32]byte, value string) string {
	if old, ok := c.known.Peek(key); ok && old.value == value {
		return old.value
	}
	return strings.Clone(value)
}

// plan plans the re-check of the answer for key checked at checked:
// TTL-ahead later, or, for a session seen for the first time, at a random
// moment in the last three quarters of that (early, so that the re-check
// that follows it is made as if the session had been used). Sessions that
// a sweep re-checks together stay together, and so do sessions first seen
// together, which after a restart are all of them: spread, the sweeps take
// them a few at a time instead of in one wave every cycle, a wave that
// holds the proxy's CPU for as long as it takes and widens the margin to
// match.
func (c *IdentityCache) plan(key [32]byte, checked time.Time, first bool) planned {
	cycle := c.cfg.TTL - c.ahead()
	if first && cycle >= 4 {
		cycle -= rand.N(cycle * 3 / 4)
	}
	return planned{key: key, checked: checked, at: checked.Add(cycle), early: first}
}

// markFailed marks e, the known answer a request waited on in vain, as
// failed, unless a newer answer replaced it: the requests that follow are
// served stale at once instead of each waiting for the re-check still
// running (a database that accepts connections and never answers holds it
// until its timeout).
func (c *IdentityCache) markFailed(key [32]byte, e *knownEntry) {
	if cur, ok := c.known.Peek(key); ok && cur.checked.Equal(e.checked) && !cur.failed {
		c.fail(key, cur)
	}
}

// fail replaces old, the known answer of key, by one marked failed, to be
// retried after c.retry.
func (c *IdentityCache) fail(key [32]byte, old *knownEntry) {
	e := &knownEntry{cachedIdentity: old.cachedIdentity, value: old.value}
	e.failed, e.retryAt = true, c.now().Add(c.retry)
	c.known.Add(key, e)
	c.sweeper.add(planned{key: key, checked: e.checked, at: e.retryAt})
}

// watchKey logs, rate-limited, that SECRET_KEY is probably wrong when
// session after session fails its signature check.
func (c *IdentityCache) watchKey(reason Reason) {
	if run, warn := c.keys.observe(reason, c.now()); warn {
		c.log.Warn(wrongKeyMessage, "sessions_in_a_row", run)
	}
}

// batchFailed logs a failed batch, at most once a minute.
func (c *IdentityCache) batchFailed(sessions int, err error) {
	now := time.Now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(time.Minute) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn("identity lookup failed: known visitors are served from the cache (marked stale up to the stale limit), others as anonymous",
		"sessions", sessions, "err", err)
}
