package overrides

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Defaults for Config.
const (
	DefaultCookieName = "flagproxy_overrides"
	// DefaultPermission is feature-flipper's flip permission, and
	// PackagePermission the one flagproxy_django's migration creates, for
	// sites without feature-flipper: DefaultPermissions accepts either.
	DefaultPermission = "featureflipper.can_flip_with_url"
	PackagePermission = "flagproxy_django.can_flip_with_url"
	DefaultMaxAge     = 14 * 24 * time.Hour
	DefaultMaxStored  = 64
	// maxCookieLength bounds the encoded cookie (browsers keep 4096 bytes).
	maxCookieLength = 4096
)

// Config configures an Overrider.
type Config struct {
	// Keys sign and encrypt the override cookie: the first writes, every
	// one reads, so a key can be rotated by putting the new one first.
	// Each must be at least 32 bytes; flagproxy derives them from
	// SECRET_KEY and SECRET_KEY_FALLBACKS unless configured.
	Keys [][]byte
	// CookieName names flagproxy's cookie.
	CookieName string
	// Secure sets the cookie's Secure attribute.
	Secure bool
	// MaxAge is the cookie's lifetime; an older cookie is ignored.
	MaxAge time.Duration
	// Permissions are the Django permissions that allow flipping: any one
	// of them does (an active superuser has every permission). Empty
	// means DefaultPermissions().
	Permissions []string
	// AnonymousFlipping is FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING: everyone
	// may flip.
	AnonymousFlipping bool
	// MaxStored bounds the overrides kept in the cookie.
	MaxStored  int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Overrider computes each request's overrides and keeps a visitor's session
// overrides in flagproxy's own cookie, signed and encrypted with
// gorilla/sessions' codecs. A stored cookie is bound to the user who set it
// and applies only while the request's user is that user and still may
// flip; a tampered, expired or foreign cookie changes nothing.
type Overrider struct {
	cfg      Config
	log      *slog.Logger
	codecs   []securecookie.Codec
	options  sessions.Options
	rejected *prometheus.CounterVec
	stored   prometheus.Counter
}

// New checks cfg and returns an Overrider.
func New(cfg Config) (*Overrider, error) {
	var errs []error
	if len(cfg.Keys) == 0 {
		errs = append(errs, errors.New("overrides: no cookie keys"))
	}
	for i, k := range cfg.Keys {
		if len(k) < 32 {
			errs = append(errs, fmt.Errorf("overrides: key %d is %d bytes; at least 32 are needed", i+1, len(k)))
		}
	}
	if cfg.MaxAge < 0 || cfg.MaxStored < 0 {
		errs = append(errs, errors.New("overrides: negative MaxAge or MaxStored"))
	}
	if cfg.CookieName != "" && !validCookieName(cfg.CookieName) {
		errs = append(errs, fmt.Errorf("overrides: cookie name %q is not a valid cookie name", cfg.CookieName))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if len(cfg.Permissions) == 0 {
		cfg.Permissions = DefaultPermissions()
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxStored == 0 {
		cfg.MaxStored = DefaultMaxStored
	}
	o := &Overrider{cfg: cfg, log: cfg.Logger}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	// Each configured key yields an authentication and an AES-256 key.
	var pairs [][]byte
	for _, k := range cfg.Keys {
		hash := sha256.Sum256(append([]byte("flagproxy overrides: authentication\x00"), k...))
		block := sha256.Sum256(append([]byte("flagproxy overrides: encryption\x00"), k...))
		pairs = append(pairs, hash[:], block[:])
	}
	store := sessions.NewCookieStore(pairs...)
	store.MaxAge(int(cfg.MaxAge / time.Second))
	store.Options.HttpOnly = true
	store.Options.SameSite = http.SameSiteLaxMode
	store.Options.Secure = cfg.Secure
	for _, c := range store.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			// Browsers keep name=value up to 4096 bytes.
			sc.MaxLength(maxCookieLength - len(cfg.CookieName) - 1)
		}
	}
	o.codecs, o.options = store.Codecs, *store.Options

	o.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_override_cookies_ignored_total",
		Help: "Override cookies that changed nothing, by reason (invalid: tampered, expired or made with another key; foreign_user; not_allowed).",
	}, []string{"reason"})
	o.stored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_override_cookies_written_total",
		Help: "Override cookies written after a session_enable_, session_disable_ or session_clear_features.",
	})
	for _, r := range []string{"invalid", "foreign_user", "not_allowed"} {
		o.rejected.WithLabelValues(r)
	}
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{o.rejected, o.stored} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return o, nil
}

// stored is what flagproxy's cookie holds.
type stored struct {
	user string
	on   []string // sorted
	off  []string // sorted
}

// Cookie keys inside the encoded values.
const (
	keyUser = "u"
	keyOn   = "on"
	keyOff  = "off"
)

// DefaultPermissions returns the permissions that allow flipping by
// default: feature-flipper's and flagproxy_django's.
func DefaultPermissions() []string { return []string{DefaultPermission, PackagePermission} }

// MayFlip reports whether s may flip: anonymous flipping is on, or s has
// one of the permissions.
func (o *Overrider) MayFlip(s *engine.Subject) bool {
	if o.cfg.AnonymousFlipping {
		return true
	}
	for _, p := range o.cfg.Permissions {
		if s.HasPerm(p) {
			return true
		}
	}
	return false
}

// Overrides returns the overrides of one request (see
// engine.OverrideQuery). The cookie it returns, when not nil, must be set
// on the response: it stores (or deletes) the visitor's session overrides.
// The override parameters it does not apply are listed in Refused: all of
// them for a cross-site request or a visitor who may not flip, and those
// naming no flag of the snapshot.
func (o *Overrider) Overrides(ctx context.Context, in engine.OverrideQuery) (engine.Overrides, *http.Cookie, error) {
	q := FromQuery(in.Keys)
	s := in.Subject
	allowed := o.MayFlip(&s)
	out := engine.Overrides{Allowed: allowed, Refused: q.TooMany}
	switch {
	case len(q.Params) == 0:
	case in.CrossSite:
		out.Refused = append(out.Refused, refuse(q.Params, engine.RefusedCrossSite)...)
		q = Query{}
	case !allowed:
		out.Refused = append(out.Refused, refuse(q.Params, engine.RefusedNotPermitted)...)
		q = Query{}
	default:
		unknown := q.keep(func(name string) bool { return !in.Knows(name) })
		out.Refused = append(out.Refused, refuse(unknown, engine.RefusedUnknownFlag)...)
	}
	cur, present := o.read(ctx, in.Cookies, s, allowed)
	var set *http.Cookie
	if allowed && (q.SessionClear || len(q.SessionEnable)+len(q.SessionDisable) > 0) {
		set, cur = o.store(ctx, q, cur, present, s.UserID)
	}
	// feature-flipper honours the Django session's entries for everyone.
	for name, on := range s.FeatureStatus {
		setOverride(&out.Session, name, on)
	}
	if allowed {
		for _, n := range cur.on {
			setOverride(&out.Session, n, true)
		}
		for _, n := range cur.off {
			setOverride(&out.Session, n, false)
		}
		for _, n := range q.Enable {
			setOverride(&out.URL, n, true)
		}
		for _, n := range q.Disable {
			setOverride(&out.URL, n, false)
		}
	}
	return out, set, nil
}

// refuse marks every parameter of ps refused for reason.
func refuse(ps []engine.Refusal, reason engine.RefusalReason) []engine.Refusal {
	out := make([]engine.Refusal, len(ps))
	for i, p := range ps {
		p.Reason = reason
		out[i] = p
	}
	return out
}

// store applies q's session parameters to the stored overrides cur and
// returns the cookie that keeps them (nil when nothing could be written)
// and what it holds.
func (o *Overrider) store(ctx context.Context, q Query, cur stored, present bool, user string) (*http.Cookie, stored) {
	next := stored{user: user}
	if !q.SessionClear {
		next.on, next.off = cur.on, cur.off
	}
	next.on, next.off = apply(next.on, next.off, q.SessionEnable, q.SessionDisable)
	max := o.cfg.MaxStored
	var set *http.Cookie
	for {
		if n := len(next.on) + len(next.off); n > max {
			o.log.LogAttrs(ctx, slog.LevelWarn, "too many session overrides; keeping the newest",
				slog.String("user_id", user), slog.Int("max", max))
			next.on, next.off = trim(next.on, next.off, q.SessionEnable, q.SessionDisable, max)
		}
		c, err := o.write(next, present)
		if err == nil {
			set, cur = c, next
			break
		}
		if max = len(next.on) + len(next.off) - 1; max < 0 {
			// Nothing fits: keep the other overrides of this request.
			o.log.LogAttrs(ctx, slog.LevelWarn, "session overrides not stored", slog.Any("error", err))
			return nil, cur
		}
		// Too long for a cookie: drop one more (the oldest first).
	}
	o.stored.Inc()
	o.logStored(ctx, q, cur, user)
	return set, cur
}

// logStored logs each session override q stored, and a clear.
func (o *Overrider) logStored(ctx context.Context, q Query, cur stored, user string) {
	for _, n := range cur.on {
		if slices.Contains(q.SessionEnable, n) {
			o.log.LogAttrs(ctx, slog.LevelInfo, "session override stored", slog.String("user_id", user), slog.String("flag", n), slog.String("source", "session"), slog.Bool("on", true))
		}
	}
	for _, n := range cur.off {
		if slices.Contains(q.SessionDisable, n) {
			o.log.LogAttrs(ctx, slog.LevelInfo, "session override stored", slog.String("user_id", user), slog.String("flag", n), slog.String("source", "session"), slog.Bool("on", false))
		}
	}
	if q.SessionClear {
		o.log.LogAttrs(ctx, slog.LevelInfo, "session overrides cleared", slog.String("user_id", user))
	}
}

func setOverride(m *map[string]bool, name string, on bool) {
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[name] = on
}

// read decodes the visitor's override cookie. It returns the overrides
// that apply to s (none unless the cookie is valid, s's, and s may flip),
// and whether a cookie was sent at all.
func (o *Overrider) read(ctx context.Context, cookies engine.Values, s engine.Subject, allowed bool) (stored, bool) {
	if cookies == nil {
		return stored{}, false
	}
	raw, ok := cookies.Get(o.cfg.CookieName)
	if !ok {
		return stored{}, false
	}
	values := map[any]any{}
	if err := securecookie.DecodeMulti(o.cfg.CookieName, raw, &values, o.codecs...); err != nil {
		o.rejected.WithLabelValues("invalid").Inc()
		o.log.LogAttrs(ctx, slog.LevelDebug, "override cookie ignored", slog.String("reason", "invalid"))
		return stored{}, true
	}
	user, _ := values[keyUser].(string)
	on, _ := values[keyOn].([]string)
	off, _ := values[keyOff].([]string)
	if user != s.UserID {
		o.rejected.WithLabelValues("foreign_user").Inc()
		o.log.LogAttrs(ctx, slog.LevelDebug, "override cookie ignored", slog.String("reason", "foreign_user"), slog.String("user_id", s.UserID))
		return stored{}, true
	}
	if !allowed {
		o.rejected.WithLabelValues("not_allowed").Inc()
		o.log.LogAttrs(ctx, slog.LevelDebug, "override cookie ignored", slog.String("reason", "not_allowed"), slog.String("user_id", s.UserID))
		return stored{}, true
	}
	valid := func(names []string) []string {
		out := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !engine.OverrideName(n) })
		slices.Sort(out)
		return slices.Compact(out)
	}
	return stored{user: user, on: valid(on), off: valid(off)}, true
}

// write encodes next as a cookie, or deletes the cookie when next is empty.
func (o *Overrider) write(next stored, present bool) (*http.Cookie, error) {
	opts := o.options
	if len(next.on)+len(next.off) == 0 {
		if !present {
			return nil, nil
		}
		opts.MaxAge = -1
		return sessions.NewCookie(o.cfg.CookieName, "", &opts), nil
	}
	values := map[any]any{keyUser: next.user, keyOn: next.on, keyOff: next.off}
	encoded, err := securecookie.EncodeMulti(o.cfg.CookieName, values, o.codecs...)
	if err != nil {
		return nil, fmt.Errorf("encode override cookie: %w", err)
	}
	return sessions.NewCookie(o.cfg.CookieName, encoded, &opts), nil
}

// apply adds enables and disables to the stored lists; a name is in at
// most one of them, disable winning within one request.
func apply(on, off, enable, disable []string) ([]string, []string) {
	on, off = slices.Clone(on), slices.Clone(off)
	for _, n := range enable {
		off = slices.DeleteFunc(off, func(x string) bool { return x == n })
		if !slices.Contains(on, n) {
			on = append(on, n)
		}
	}
	for _, n := range disable {
		on = slices.DeleteFunc(on, func(x string) bool { return x == n })
		if !slices.Contains(off, n) {
			off = append(off, n)
		}
	}
	slices.Sort(on)
	slices.Sort(off)
	return on, off
}

// trim keeps at most max names, preferring those this request set.
func trim(on, off, enable, disable []string, max int) ([]string, []string) {
	fresh := func(n string) bool { return slices.Contains(enable, n) || slices.Contains(disable, n) }
	var keepOn, keepOff []string
	budget := max
	for _, pass := range []bool{true, false} {
		for _, n := range on {
			if fresh(n) == pass && budget > 0 && !slices.Contains(keepOn, n) {
				keepOn, budget = append(keepOn, n), budget-1
			}
		}
		for _, n := range off {
			if fresh(n) == pass && budget > 0 && !slices.Contains(keepOff, n) {
				keepOff, budget = append(keepOff, n), budget-1
			}
		}
	}
	slices.Sort(keepOn)
	slices.Sort(keepOff)
	return keepOn, keepOff
}

// validCookieName reports whether name is an RFC 6265 token.
func validCookieName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || slices.Contains([]byte(`()<>@,;:\"/[]?={}`), c) {
			return false
		}
	}
	return name != ""
}
