package djangodb

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/flagproxy/flagproxy/engine"
)

// Defaults for IdentityCacheConfig.
const (
	DefaultIdentityTTL           = 5 * time.Second
	DefaultIdentityEntries       = 10000
	DefaultIdentityLookupsPerSec = 200
	DefaultIdentityLookupTimeout = 2 * time.Second
)

// SessionResolver resolves one session cookie value; *Identities is one.
type SessionResolver interface {
	// Plausible says, without a database query, whether value could name
	// a session.
	Plausible(value string) bool
	Resolve(ctx context.Context, value string) (engine.Subject, Reason, time.Time, error)
}

// maxConcurrentLookups keeps identity lookups from taking every database
// connection (Open allows 8) away from the poller.
const maxConcurrentLookups = 4

// IdentityCacheConfig configures an IdentityCache.
type IdentityCacheConfig struct {
	Resolver SessionResolver
	// CookieName is SESSION_COOKIE_NAME.
	CookieName string
	// TTL bounds how long an answer is reused: a logout, password change,
	// deactivation or permission change in Django is seen within TTL.
	TTL time.Duration
	// Entries bounds the cache of known sessions and, separately, the
	// cache of rejected cookie values.
	Entries int
	// LookupsPerSecond bounds the database lookups for session values that
	// are not cached (burst: twice as many). Beyond it a visitor whose
	// session is not cached is served as anonymous, uncached, until the
	// budget refills, so a client spraying random session ids cannot turn
	// its requests into database queries.
	LookupsPerSecond float64
	// LookupTimeout bounds one resolution; past it the visitor is served
	// as anonymous.
	LookupTimeout time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// IdentityCache answers who a visitor is from their cookies, reusing each
// answer for a short, bounded time so that requests in steady state make
// no database query. Cookie values are kept only as SHA-256 digests.
type IdentityCache struct {
	cfg     IdentityCacheConfig
	log     *slog.Logger
	known   *lru.Cache[[32]byte, cachedIdentity]
	refused *lru.Cache[[32]byte, cachedIdentity]
	limiter *rate.Limiter
	slots   chan struct{} // bounds concurrent lookups
	flight  singleflight.Group
	now     func() time.Time

	hits     *prometheus.CounterVec
	misses   prometheus.Counter
	lookups  prometheus.Counter
	rejected *prometheus.CounterVec
}

type cachedIdentity struct {
	subject engine.Subject
	reason  Reason
	until   time.Time
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
	if cfg.TTL < 0 || cfg.Entries < 0 || cfg.LookupsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("identity cache: negative TTL, entries or lookups per second"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultIdentityTTL
	}
	if cfg.Entries == 0 {
		cfg.Entries = DefaultIdentityEntries
	}
	if cfg.LookupsPerSecond == 0 {
		cfg.LookupsPerSecond = DefaultIdentityLookupsPerSec
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultIdentityLookupTimeout
	}
	c := &IdentityCache{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.known, _ = lru.New[[32]byte, cachedIdentity](cfg.Entries)
	c.refused, _ = lru.New[[32]byte, cachedIdentity](cfg.Entries)
	c.slots = make(chan struct{}, maxConcurrentLookups)
	c.limiter = rate.NewLimiter(rate.Limit(cfg.LookupsPerSecond), int(2*cfg.LookupsPerSecond)+1)
	c.hits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_identity_cache_hits_total",
		Help: "Visitor identifications answered from the cache, by whether the session was accepted.",
	}, []string{"result"})
	c.misses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_identity_cache_misses_total",
		Help: "Visitor identifications not in the cache.",
	})
	c.lookups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_identity_lookups_total",
		Help: "Session resolutions performed (database reads for db-backed sessions).",
	})
	c.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_identity_rejected_total",
		Help: "Session cookies that left the visitor anonymous, by reason.",
	}, []string{"reason"})
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flagproxy_identity_cache_entries",
		Help: "Sessions held in the identity cache, accepted and refused together.",
	}, func() float64 { return float64(c.known.Len() + c.refused.Len()) })
	c.hits.WithLabelValues("accepted")
	c.hits.WithLabelValues("refused")
	if r := cfg.Registerer; r != nil {
		for _, col := range []prometheus.Collector{c.hits, c.misses, c.lookups, c.rejected, entries} {
			if err := r.Register(col); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Subject returns the visitor the cookies' session stands for. Database
// errors are returned (the caller serves the visitor as anonymous) and not
// cached.
func (c *IdentityCache) Subject(ctx context.Context, cookies engine.Values) (engine.Subject, error) {
	value, ok := "", false
	if cookies != nil {
		value, ok = cookies.Get(c.cfg.CookieName)
	}
	if !ok || value == "" {
		return engine.Anonymous, nil
	}
	key := sha256.Sum256([]byte(value))
	now := c.now()
	// A value that was a valid login is looked up again when its answer
	// is due, outside the budget: a spray of random ids must not log
	// known users out.
	revalidate := false
	if e, ok := c.known.Get(key); ok {
		if now.Before(e.until) {
			c.hits.WithLabelValues("accepted").Inc()
			return e.subject, nil
		}
		revalidate = true
	}
	if e, ok := c.refused.Get(key); ok && now.Before(e.until) {
		c.hits.WithLabelValues("refused").Inc()
		return e.subject, nil // anonymous, maybe with the session's feature_status entries
	}
	c.misses.Inc()
	if !revalidate && !c.cfg.Resolver.Plausible(value) {
		c.rejected.WithLabelValues(string(ReasonImplausible)).Inc()
		return engine.Anonymous, nil
	}
	v, err, _ := c.flight.Do(string(key[:]), func() (any, error) {
		if !revalidate && !c.limiter.AllowN(now, 1) {
			return cachedIdentity{subject: engine.Anonymous, reason: ReasonLookupsLimited}, nil
		}
		// The lookup is shared by every request waiting for this value: it
		// must not end with the first of them.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LookupTimeout)
		defer cancel()
		select {
		case c.slots <- struct{}{}:
			defer func() { <-c.slots }()
		case <-lctx.Done():
			return nil, fmt.Errorf("identity lookup: waiting for a free slot: %w", lctx.Err())
		}
		c.lookups.Inc()
		s, reason, until, err := c.cfg.Resolver.Resolve(lctx, value)
		if err != nil {
			return nil, err
		}
		e := cachedIdentity{subject: s, reason: reason, until: now.Add(c.cfg.TTL)}
		if !until.IsZero() && until.Before(e.until) {
			e.until = until
		}
		if s.Authenticated {
			c.known.Add(key, e)
		} else {
			c.refused.Add(key, e)
		}
		return e, nil
	})
	if err != nil {
		c.rejected.WithLabelValues(string(ReasonDatabaseError)).Inc()
		return engine.Anonymous, err
	}
	e := v.(cachedIdentity)
	if !e.subject.Authenticated && e.reason != ReasonAnonymousSession {
		c.rejected.WithLabelValues(string(e.reason)).Inc()
	}
	return e.subject, nil
}
