package djangodb

import (
	"context"
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

// UserLookup looks a Django user up by primary key; *Identities is one. An
// unknown user, or an inactive one the backends refuse, is engine.Anonymous
// with a nil error; an error is a database error.
type UserLookup interface {
	User(ctx context.Context, pk string) (engine.Subject, error)
}

// UserCache answers who a user is by primary key, for callers that name a
// user instead of sending a session cookie (OFREP, explain), bounded the way
// IdentityCache bounds sessions:
//
//   - an answer is reused for TTL from the moment its lookup began, never
//     longer: a deactivation, group or permission change made in Django
//     reaches every call that starts more than TTL later;
//   - at most Entries users are kept, and separately at most Entries keys
//     that named no usable user (unknown, inactive, not a key at all), so
//     a caller trying random keys cannot evict known users;
//   - lookups of keys not cached spend LookupsPerSecond (burst twice that);
//     when it is spent a call waits for a token at most LookupTimeout, then
//     the user is anonymous; re-checks of known users spend none;
//   - concurrent calls for one key share one lookup, which takes at most
//     LookupTimeout;
//   - while the database fails, a known user is served with Subject.Stale
//     set until their last good check is StaleMax old (zero disables).
//
// A key longer than maxUserKey bytes names no user and costs no query.
type UserCache struct {
	cfg     UserCacheConfig
	log     *slog.Logger
	now     func() time.Time
	known   *lru.Cache[string, cachedUser]
	refused *lru.Cache[string, cachedUser]
	limiter *rate.Limiter
	group   singleflight.Group

	hits     *prometheus.CounterVec
	misses   prometheus.Counter
	lookups  prometheus.Counter
	failures *prometheus.CounterVec
	stale    prometheus.Counter
}

// maxUserKey bounds a primary key looked up: a bigint has at most 20
// digits, a UUID 45 characters in its longest form Python accepts.
const maxUserKey = 128

// UserCacheConfig configures a UserCache. Zero durations and sizes take the
// IdentityCache defaults (DefaultIdentityTTL, …), except StaleMax.
type UserCacheConfig struct {
	Lookup           UserLookup
	TTL              time.Duration
	Entries          int
	LookupsPerSecond float64
	LookupTimeout    time.Duration
	StaleMax         time.Duration
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	// Now is the clock answers are dated by; nil means time.Now.
	Now func() time.Time
}

type cachedUser struct {
	subject engine.Subject
	checked time.Time // when the lookup of this answer began
}

// errUserLookupsLimited is returned when a call waited LookupTimeout for
// the lookup budget.
var errUserLookupsLimited = errors.New("user lookup: the lookups-per-second budget is spent")

// NewUserCache checks cfg and returns a UserCache.
func NewUserCache(cfg UserCacheConfig) (*UserCache, error) {
	var errs []error
	if cfg.Lookup == nil {
		errs = append(errs, errors.New("user cache: no lookup"))
	}
	if cfg.TTL < 0 || cfg.Entries < 0 || cfg.LookupsPerSecond < 0 || cfg.LookupTimeout < 0 || cfg.StaleMax < 0 {
		errs = append(errs, errors.New("user cache: negative TTL, entries, lookups per second, lookup timeout or stale max"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	setDefault(&cfg.TTL, DefaultIdentityTTL)
	setDefault(&cfg.Entries, DefaultIdentityEntries)
	setDefault(&cfg.LookupsPerSecond, DefaultIdentityLookupsPerSec)
	setDefault(&cfg.LookupTimeout, DefaultIdentityLookupTimeout)
	c := &UserCache{cfg: cfg, log: cfg.Logger, now: cfg.Now,
		limiter: rate.NewLimiter(rate.Limit(cfg.LookupsPerSecond), int(2*cfg.LookupsPerSecond)+1)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.known, _ = lru.New[string, cachedUser](cfg.Entries)
	c.refused, _ = lru.New[string, cachedUser](cfg.Entries)
	c.hits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_user_cache_hits_total",
		Help: "Users asked for by primary key (OFREP) answered from the cache, by whether the key named an active user (found) or not (unknown).",
	}, []string{"result"})
	c.misses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_user_cache_misses_total",
		Help: "Users asked for by primary key not answered from the cache.",
	})
	c.lookups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_user_lookups_total",
		Help: "Database lookups of a user by primary key.",
	})
	c.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_user_lookup_failures_total",
		Help: "Users asked for by primary key served as anonymous because the lookup failed (database_error) or its budget was spent (limited).",
	}, []string{"reason"})
	c.stale = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_user_cache_stale_total",
		Help: "Users served from the cache past their TTL, marked stale, because the database could not be read.",
	})
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flagproxy_user_cache_entries",
		Help: "Primary keys held in the user cache, found and unknown together.",
	}, func() float64 { return float64(c.known.Len() + c.refused.Len()) })
	for _, l := range []string{"found", "unknown"} {
		c.hits.WithLabelValues(l)
	}
	for _, l := range []string{"database_error", "limited"} {
		c.failures.WithLabelValues(l)
	}
	if r := cfg.Registerer; r != nil {
		for _, col := range []prometheus.Collector{c.hits, c.misses, c.lookups, c.failures, c.stale, entries} {
			if err := r.Register(col); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// User returns the subject of the user whose primary key is key (as text,
// as Django's session would hold it). An unknown or inactive user is
// anonymous with a nil error. A database error, or a call that waited
// LookupTimeout for the lookup budget, returns an error (the caller serves
// the user as anonymous) unless the user is known and may be served stale.
func (c *UserCache) User(ctx context.Context, key string) (engine.Subject, error) {
	if key == "" || len(key) > maxUserKey {
		return engine.Anonymous, nil
	}
	now := c.now()
	e, known := c.known.Get(key)
	if known && now.Sub(e.checked) < c.cfg.TTL {
		c.hits.WithLabelValues("found").Inc()
		return e.subject, nil
	}
	if r, ok := c.refused.Get(key); !known && ok && now.Sub(r.checked) < c.cfg.TTL {
		c.hits.WithLabelValues("unknown").Inc()
		return engine.Anonymous, nil
	}
	c.misses.Inc()
	v, err, _ := c.group.Do(key, func() (any, error) { return c.lookup(ctx, key, known) })
	if err == nil {
		return v.(engine.Subject), nil
	}
	if known && c.cfg.StaleMax > 0 && c.now().Sub(e.checked) < c.cfg.StaleMax && !errors.Is(err, errUserLookupsLimited) {
		c.stale.Inc()
		s := e.subject
		s.Stale = true
		return s, nil
	}
	reason := "database_error"
	if errors.Is(err, errUserLookupsLimited) {
		reason = "limited"
	}
	c.failures.WithLabelValues(reason).Inc()
	return engine.Anonymous, err
}

// lookup asks the database for key, spending the budget unless the user is
// known, and stores the answer. It outlives a canceled caller, within
// LookupTimeout, so that the answer is kept for the next one.
func (c *UserCache) lookup(ctx context.Context, key string, known bool) (engine.Subject, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LookupTimeout)
	defer cancel()
	if !known {
		if err := c.limiter.Wait(ctx); err != nil {
			return engine.Anonymous, errUserLookupsLimited
		}
	}
	checked := c.now()
	c.lookups.Inc()
	s, err := c.cfg.Lookup.User(ctx, key)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelDebug, "user lookup failed", slog.Any("error", err))
		return engine.Anonymous, err
	}
	e := cachedUser{subject: s, checked: checked}
	if s.Authenticated {
		c.refused.Remove(key)
		c.known.Add(key, e)
	} else {
		c.known.Remove(key)
		c.refused.Add(key, e)
	}
	return s, nil
}
