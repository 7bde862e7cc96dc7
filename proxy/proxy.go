package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Defaults for the Config fields left zero.
const (
	// DefaultStaleAfter is the default Config.StaleAfter.
	DefaultStaleAfter = 30 * time.Second
	// DefaultUpstreamTimeout is the default Config.UpstreamTimeout.
	DefaultUpstreamTimeout = 60 * time.Second
	// DefaultDialTimeout bounds connecting to the upstream with the default
	// transport.
	DefaultDialTimeout = 10 * time.Second
	// DefaultMaxIdleConnsPerHost is the default transport's idle pool for
	// the one upstream host (net/http's default of 2 is meant for clients).
	DefaultMaxIdleConnsPerHost = 64
)

// SnapshotSource gives the current flag snapshot. *engine.Store satisfies it.
type SnapshotSource interface {
	// Load returns the current snapshot, or nil before the first load.
	Load() *engine.Snapshot
	// LoadedAt returns the time of the last successful load, or the zero
	// time.
	LoadedAt() time.Time
}

// SubjectResolver identifies the visitor of a request from its cookies,
// parsed as Django parses them (engine.ParseCookies over the one Cookie
// line that is forwarded). An error makes the visitor anonymous.
type SubjectResolver interface {
	Subject(ctx context.Context, cookies engine.Values) (engine.Subject, error)
}

// Overrider works out a visitor's flag overrides for a request from its
// query string and cookies, parsed as Django parses them, and the visitor.
// A cookie it returns is set on the response; an error means no overrides.
type Overrider interface {
	Overrides(ctx context.Context, query engine.Params, cookies engine.Values, s engine.Subject) (engine.Overrides, *http.Cookie, error)
}

// Config configures a Proxy.
type Config struct {
	// Upstream is the Django site: an absolute http or https URL without a
	// query or fragment. A path is prepended to every request path.
	Upstream *url.URL
	// Snapshots gives the snapshot each request is evaluated on.
	Snapshots SnapshotSource
	// Subjects identifies visitors; nil treats every visitor as anonymous.
	Subjects SubjectResolver
	// Overrider supplies overrides; nil means none.
	Overrider Overrider
	// Locale derives request.LANGUAGE_CODE as Django's LocaleMiddleware
	// would, for waffle's languages column; nil when the site does not use
	// that middleware (the column then never matches, as in Django).
	Locale *engine.Locale
	// TrustedProxies are the peers whose X-Forwarded-For chain, and
	// X-Forwarded-Proto, X-Forwarded-Host and Forwarded headers, are kept
	// (the chain extended with the peer). From any other peer they are
	// replaced.
	TrustedProxies []netip.Prefix
	// StaleAfter is how old the last successful load may be before the
	// header reports "stale"; zero means DefaultStaleAfter.
	StaleAfter time.Duration
	// SigningKey, when set, adds SignatureHeader.
	SigningKey []byte
	// UpstreamTimeout is the default transport's ResponseHeaderTimeout;
	// zero means DefaultUpstreamTimeout. It does not apply to Transport.
	UpstreamTimeout time.Duration
	// Transport reaches the upstream; nil means a clone of
	// http.DefaultTransport with the timeouts above.
	Transport http.RoundTripper
	// Logger receives the proxy's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the proxy's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand draws waffle's random rolls; nil means math/rand/v2.
	Rand engine.Rand
}

// Proxy is the flag-injecting reverse proxy. It is an http.Handler.
type Proxy struct {
	upstream   *url.URL
	snaps      SnapshotSource
	subjects   SubjectResolver
	overrider  Overrider
	locale     *engine.Locale
	trusted    []netip.Prefix
	staleAfter time.Duration
	signingKey []byte
	logger     *slog.Logger
	now        func() time.Time
	rand       engine.Rand
	metrics    *metrics
	handler    http.Handler
	limits     limits
	enc        atomic.Pointer[encoder] // for the snapshot last seen
	gzip       sync.Pool               // *gzip.Writer
}

// New checks cfg and builds a Proxy. The error joins every problem found.
func New(cfg Config) (*Proxy, error) {
	var errs []error
	if err := CheckUpstream(cfg.Upstream); err != nil {
		errs = append(errs, err)
	}
	if cfg.Snapshots == nil {
		errs = append(errs, errors.New("snapshots: missing"))
	}
	for _, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("trusted proxies: invalid prefix %v", p))
		}
	}
	if cfg.StaleAfter < 0 {
		errs = append(errs, fmt.Errorf("stale after: negative duration %v", cfg.StaleAfter))
	}
	if cfg.UpstreamTimeout < 0 {
		errs = append(errs, fmt.Errorf("upstream timeout: negative duration %v", cfg.UpstreamTimeout))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	p := &Proxy{
		upstream:   cfg.Upstream,
		snaps:      cfg.Snapshots,
		subjects:   cfg.Subjects,
		overrider:  cfg.Overrider,
		locale:     cfg.Locale,
		trusted:    slices.Clone(cfg.TrustedProxies),
		staleAfter: cmp.Or(cfg.StaleAfter, DefaultStaleAfter),
		signingKey: slices.Clone(cfg.SigningKey),
		logger:     cfg.Logger,
		now:        cfg.Now,
		rand:       cfg.Rand,
		limits:     defaultLimits(),
	}
	if p.logger == nil {
		p.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = globalRand{}
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, p.snaps, p.now)
	if err != nil {
		return nil, err
	}
	p.metrics = m

	transport := cfg.Transport
	if transport == nil {
		transport = newTransport(cmp.Or(cfg.UpstreamTimeout, DefaultUpstreamTimeout))
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      responseRequest{transport},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(p.logger.Handler(), slog.LevelError),
		BufferPool:     &bufferPool{},
	}
	p.handler = m.instrument(rp)
	return p, nil
}

// CheckUpstream reports whether u can be a Config.Upstream: an absolute
// http or https URL with a host and without a query or fragment.
func CheckUpstream(u *url.URL) error {
	switch {
	case u == nil:
		return errors.New("upstream: missing")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("upstream %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("upstream %q: missing host", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("upstream %q: must not have a query or fragment", u.Redacted())
	}
	return nil
}

// ServeHTTP proxies r to the upstream with the flags header set.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handler.ServeHTTP(w, r)
}

// rewrite prepares the outbound request: it runs after ReverseProxy removed
// the hop-by-hop headers, so a client's Connection header cannot remove
// what is set here.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	stripInbound(out.Header)
	// Request trailers: the transport announces (Trailer:) and sends the
	// keys of this map, and some servers merge trailers into headers.
	stripInbound(out.Trailer)
	p.setForwarded(pr)
	pr.SetURL(p.upstream)
	out.Host = pr.In.Host
	// ReverseProxy re-encodes a query it cannot parse (one with ';', say);
	// Django must see the query exactly as the client sent it.
	out.URL.RawQuery = pr.In.URL.RawQuery
	if cs := out.Header["Cookie"]; len(cs) > 1 {
		out.Header["Cookie"] = []string{strings.Join(cs, "; ")}
	}

	set := p.decide(out)
	if len(p.signingKey) > 0 {
		// Sign what is sent: the pointer object for a large value.
		out.Header[SignatureHeader] = []string{sign(p.signingKey, p.now().Unix(), out.Header[FlagsHeader][0])}
	}
	if len(set.waffle) > 0 || set.override != nil {
		pr.Out = out.WithContext(context.WithValue(out.Context(), cookiesKey{}, set))
	}
}

// responseCookies are the cookies rewrite leaves for modifyResponse.
type responseCookies struct {
	waffle   []engine.Cookie // as waffle's middleware writes them
	override *http.Cookie    // flagproxy's override cookie
}

// decide evaluates the current snapshot for the outbound request r and sets
// the flags header on it. It returns the cookies to set on the response.
func (p *Proxy) decide(r *http.Request) responseCookies {
	snap := p.snaps.Load()
	if snap == nil {
		r.Header[FlagsHeader] = []string{unavailableJSON}
		return responseCookies{}
	}
	state := StateOK
	if at := p.snaps.LoadedAt(); at.IsZero() || p.now().Sub(at) > p.staleAfter {
		state = StateStale
	}
	d, override := p.evaluate(r, snap)
	e := p.encoder(snap)
	value := e.encode(&d, state)
	if err := p.setFlags(r.Header, e, value, state); err != nil {
		p.metrics.headerOversize.Inc()
		p.logger.LogAttrs(r.Context(), slog.LevelError, "flags header too large; sending state unavailable",
			slog.String("snapshot_version", snap.Version()), slog.Int("bytes", len(value)), slog.Any("error", err))
		r.Header[FlagsHeader] = []string{e.unavailable()}
		return responseCookies{override: override}
	}
	return responseCookies{waffle: d.Cookies, override: override}
}

// encoder returns the encoder for snap, building it the first time snap is
// seen.
func (p *Proxy) encoder(snap *engine.Snapshot) *encoder {
	if e := p.enc.Load(); e != nil && e.snap == snap {
		return e
	}
	e := newEncoder(snap)
	p.enc.Store(e)
	return e
}

// evaluate decides every flag of snap for the outbound request r. It
// returns the decisions and the override cookie to set, if any.
func (p *Proxy) evaluate(r *http.Request, snap *engine.Snapshot) (engine.Decisions, *http.Cookie) {
	req := engine.Request{Subject: engine.Anonymous}
	query, cookies, header, language := snap.Inputs()
	var parsed engine.Params
	if cookies || p.subjects != nil || p.overrider != nil || (language && p.locale != nil) {
		parsed = engine.ParseCookies(r.Header.Get("Cookie"))
	}
	var params engine.Params
	if query || p.overrider != nil {
		params = engine.ParseQuery(r.URL.RawQuery)
	}
	if query {
		req.Query = params
	}
	if cookies {
		req.Cookies = parsed
	}
	if p.subjects != nil {
		s, err := p.subjects.Subject(r.Context(), parsed)
		if err != nil {
			p.metrics.identityErrors.Inc()
			p.logger.LogAttrs(r.Context(), slog.LevelDebug, "identity lookup failed; visitor is anonymous", slog.Any("error", err))
		} else {
			req.Subject = s
		}
	}
	var set *http.Cookie
	if p.overrider != nil {
		flips := params
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			// A link on another site must not flip a permitted visitor's
			// flags (their session cookie is sent on top-level navigation).
			flips = nil
		}
		o, c, err := p.overrider.Overrides(r.Context(), flips, parsed, req.Subject)
		if err != nil {
			p.metrics.overrideErrors.Inc()
			p.logger.LogAttrs(r.Context(), slog.LevelError, "override lookup failed; no overrides", slog.Any("error", err))
		} else {
			req.Overrides, set = o, c
		}
	}
	if header {
		req.Header = headerValues(r.Header)
	}
	if language && p.locale != nil {
		accept, _ := headerValues(r.Header).Get("Accept-Language")
		req.Language = p.locale.Language(r.URL.Path, parsed, accept)
		req.HasLanguage = true
	}
	d := snap.Evaluate(&req, p.rand)
	if len(req.Overrides.URL)+len(req.Overrides.Session) > 0 {
		p.recordOverrides(r.Context(), snap, &d, req.Subject.UserID)
	}
	return d, set
}

// recordOverrides counts every override that decided a flag, and logs
// those a URL asked for (the session ones are logged when stored).
func (p *Proxy) recordOverrides(ctx context.Context, snap *engine.Snapshot, d *engine.Decisions, userID string) {
	for i, dec := range d.Flags {
		if dec.Reason != engine.ReasonOverrideURL && dec.Reason != engine.ReasonOverrideSession {
			continue
		}
		origin := dec.Reason.Origin()
		p.metrics.overridesApplied.WithLabelValues(origin, onOff(dec.On)).Inc()
		if dec.Reason == engine.ReasonOverrideURL {
			p.logger.LogAttrs(ctx, slog.LevelInfo, "flag overridden", slog.String("user_id", userID),
				slog.String("flag", snap.FlagName(i)), slog.String("source", origin), slog.Bool("on", dec.On))
		}
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// setForwarded sets X-Forwarded-For, -Proto and -Host on the outbound
// request. From a trusted peer it keeps every forwarding header the peer
// sent spelled without '_' (see isForwarding) and extends its
// X-Forwarded-For chain; from any other peer they were all stripped.
func (p *Proxy) setForwarded(pr *httputil.ProxyRequest) {
	if !p.isTrusted(pr.In.RemoteAddr) {
		pr.SetXForwarded()
		return
	}
	in, out := pr.In.Header, pr.Out.Header
	if prior := in["X-Forwarded-For"]; len(prior) > 0 {
		out["X-Forwarded-For"] = slices.Clone(prior)
	}
	pr.SetXForwarded() // appends the peer to the prior chain
	for k, v := range in {
		if k != "X-Forwarded-For" && isForwarding(k) && !strings.Contains(k, "_") {
			out[k] = slices.Clone(v)
		}
	}
}

func (p *Proxy) isTrusted(remoteAddr string) bool {
	if len(p.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
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
