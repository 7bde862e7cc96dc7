package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

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
// query string's field names in order and its cookies, parsed as Django
// parses them, the visitor, and the snapshot whose flags may be flipped
// (engine.OverrideQuery). A cookie it returns is set on the response; an
// error means no overrides. It says whether the visitor may flip
// (Overrides.Allowed) and which override parameters it refused.
type Overrider interface {
	Overrides(ctx context.Context, q engine.OverrideQuery) (engine.Overrides, *http.Cookie, error)
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
	// Users looks users up by primary key for Pipeline callers that name
	// a user (explain, OFREP); nil makes such a visitor anonymous.
	Users UserResolver
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
	// UpstreamIdleTimeout closes an idle upstream connection; zero means
	// DefaultUpstreamIdleTimeout, below gunicorn's keep-alive of 2 s. It
	// does not apply to Transport.
	UpstreamIdleTimeout time.Duration
	// Transport reaches the upstream; nil means a clone of
	// http.DefaultTransport with the timeouts above.
	Transport http.RoundTripper
	// MaxBodySize bounds a request body (413 beyond); zero means
	// DefaultMaxBodySize.
	MaxBodySize int64
	// BodyReadTimeout bounds the time a client may leave its request body
	// idle (408); zero means DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// BufferMemory is how much of one body is buffered in memory before
	// the rest goes to a file in BufferDir (default os.TempDir()); zero
	// means DefaultBufferMemory.
	BufferMemory int64
	BufferDir    string
	// MaxResponseFile bounds the file one response is buffered in; zero
	// means DefaultMaxResponseFile.
	MaxResponseFile int64
	// SendTimeout bounds one write of a buffered response to the client;
	// zero means DefaultSendTimeout. Streamed responses have none.
	SendTimeout time.Duration
	// Logger receives the proxy's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the proxy's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand draws waffle's random rolls; nil means math/rand/v2.
	Rand engine.Rand
	// ConsolePath is the prefix of the paths flagproxy answers itself on
	// the proxied site (DESIGN.md §7): requests under it never reach the
	// upstream. Empty means DefaultConsolePath.
	ConsolePath string
	// BrowserFlags are the patterns (see nameMatcher) of the flags,
	// switches and samples that ConsolePath's flags.json and waffle.js
	// serve; with none, those paths answer 404.
	BrowserFlags []string
	// ConsolePublic shows the flags console (ConsolePath itself and
	// me.json) to every visitor, read-only for those who may not flip;
	// otherwise they get 404 there (see flagconsole.go).
	ConsolePublic bool
	// ConsoleKey signs the console's form tokens; nil means a random key
	// (tokens then do not survive a restart, nor pass between replicas).
	ConsoleKey []byte
	// SecureCookies sets Secure on the console's own cookie.
	SecureCookies bool
	// Exposure logs exposure events of proxied requests; nil logs none.
	Exposure *Exposure
	// EagerWaffleCookies writes every waffle cookie the decisions call
	// for even when the response reports the names the app read
	// (ReadsHeader); by default only the cookies of the flags read are
	// written then, as waffle does.
	EagerWaffleCookies bool
	// DecisionCache is the memory, in bytes, that decisions are memoized
	// in for visitors whose next request brings the same inputs (see
	// memo.go); zero means DefaultDecisionCache, negative memoizes none.
	DecisionCache int64
}

// Proxy is the flag-injecting reverse proxy. It is an http.Handler.
type Proxy struct {
	upstream *url.URL
	buf      *buffering
	trusted  []netip.Prefix
	logger   *slog.Logger
	now      func() time.Time
	metrics  *metrics
	pipe     *Pipeline
	exposure *Exposure
	// errLog limits the log lines of failed upstream requests; errSkipped
	// counts those left out since the last one.
	errLog     *rate.Limiter
	errSkipped atomic.Int64
	reads      *readTracker
	handler    http.Handler
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
	if cfg.UpstreamTimeout < 0 || cfg.UpstreamIdleTimeout < 0 || cfg.BodyReadTimeout < 0 || cfg.SendTimeout < 0 {
		errs = append(errs, fmt.Errorf("upstream timeout %v, idle timeout %v, body read timeout %v, send timeout %v: no timeout may be negative",
			cfg.UpstreamTimeout, cfg.UpstreamIdleTimeout, cfg.BodyReadTimeout, cfg.SendTimeout))
	}
	if cfg.MaxBodySize < 0 || cfg.BufferMemory < 0 || cfg.MaxResponseFile < 0 {
		errs = append(errs, fmt.Errorf("max body size %d, buffer memory %d, max response file %d: no size may be negative",
			cfg.MaxBodySize, cfg.BufferMemory, cfg.MaxResponseFile))
	}
	if err := CheckConsolePath(cmp.Or(cfg.ConsolePath, DefaultConsolePath)); err != nil {
		errs = append(errs, err)
	}
	names, err := newNameMatcher(cfg.BrowserFlags)
	if err != nil {
		errs = append(errs, fmt.Errorf("browser flags: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	p := &Proxy{
		upstream: cfg.Upstream,
		buf: &buffering{
			maxBody:         cmp.Or(cfg.MaxBodySize, DefaultMaxBodySize),
			bodyReadTimeout: cmp.Or(cfg.BodyReadTimeout, DefaultBodyReadTimeout),
			memory:          cmp.Or(cfg.BufferMemory, DefaultBufferMemory),
			maxFile:         cmp.Or(cfg.MaxResponseFile, DefaultMaxResponseFile),
			sendTimeout:     cmp.Or(cfg.SendTimeout, DefaultSendTimeout),
			dir:             cfg.BufferDir,
		},
		trusted: slices.Clone(cfg.TrustedProxies),
		errLog:  rate.NewLimiter(rate.Limit(5), 10),
		logger:  cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		now:     cfg.Now,
	}
	if p.now == nil {
		p.now = time.Now
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, cfg.Snapshots, p.now)
	if err != nil {
		return nil, err
	}
	p.metrics, p.exposure = m, cfg.Exposure
	p.pipe = newPipeline()
	p.pipe.snaps, p.pipe.subjects, p.pipe.users = cfg.Snapshots, cfg.Subjects, cfg.Users
	p.pipe.overrider, p.pipe.locale = cfg.Overrider, cfg.Locale
	p.pipe.staleAfter = cmp.Or(cfg.StaleAfter, DefaultStaleAfter)
	p.pipe.memoBudget = max(cmp.Or(cfg.DecisionCache, DefaultDecisionCache), 0)
	p.pipe.signingKey = slices.Clone(cfg.SigningKey)
	p.pipe.logger, p.pipe.now, p.pipe.metrics = p.logger, p.now, m
	if cfg.Rand != nil {
		p.pipe.rand = cfg.Rand
	}
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flagproxy_decision_memo_bytes",
		Help: "Memory the decision memo's entries take (at most --decision-cache).",
	}, p.pipe.memoBytes)); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}

	transport := cfg.Transport
	if transport == nil {
		transport = newTransport(cmp.Or(cfg.UpstreamTimeout, DefaultUpstreamTimeout),
			cmp.Or(cfg.UpstreamIdleTimeout, DefaultUpstreamIdleTimeout))
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      responseRequest{transport},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(p.logger.Handler(), slog.LevelError),
		BufferPool:     &bufferPool{},
	}
	// Requests under the console prefix are answered here and never
	// reach the upstream; each console feature registers its paths.
	c, err := newConsole(cfg.ConsolePath, reg)
	if err != nil {
		return nil, err
	}
	(&browser{pipe: p.pipe, names: names, metrics: m, logger: p.logger, now: p.now}).register(c)
	if err := p.addConsole(cfg, reg, c); err != nil {
		return nil, err
	}
	p.pipe.reads = newReadLog()
	if p.reads, err = newReadTracker(reg, p.pipe.reads, p.pipe.signingKey, cfg.EagerWaffleCookies, p.now, p.logger); err != nil {
		return nil, err
	}
	p.handler = m.instrument(c.intercept(p.bufferRequest(rp)))
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

// Pipeline returns the proxy's decision pipeline, for the other callers
// that decide flags (the console, explain, OFREP).
func (p *Proxy) Pipeline() *Pipeline { return p.pipe }

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
	onlyWebSocketUpgrades(out.Header)
	// The body has been read already (bufferRequest): the client got its
	// 100 Continue, and the upstream must not wait for one.
	delete(out.Header, "Expect")

	in := Input{
		Path:           out.URL.EscapedPath(),
		RawQuery:       out.URL.RawQuery,
		Cookie:         firstValue(out.Header, "Cookie"),
		Header:         out.Header,
		NoURLOverrides: crossSite(pr.In),
	}
	res := p.pipe.decide(out.Context(), in, out.Header)
	if ex := exchangeOf(out.Context()); ex != nil {
		ex.snap = res.Snapshot
		ex.cookies = responseCookies{waffle: res.Waffle, override: res.Override}
		if p.exposure != nil {
			ex.exposed = p.exposure.pending(&res, in.Path, in.Cookie)
		}
	}
}

// responseCookies are the cookies rewrite leaves for modifyResponse.
type responseCookies struct {
	waffle   []engine.Cookie // as waffle's middleware writes them
	override *http.Cookie    // flagproxy's override cookie
}

// crossSite reports whether r came from another site, whose links must not
// flip a visitor's flags (the visitor's session cookie goes along on a
// top-level navigation): Sec-Fetch-Site says so where the browser sends it;
// otherwise an Origin or, failing that, a Referer whose host is not the
// request's. A request with none of them (typed, bookmarked) is not.
func crossSite(r *http.Request) bool {
	if v := firstValue(r.Header, "Sec-Fetch-Site"); v != "" {
		return v == "cross-site"
	}
	from := firstValue(r.Header, "Origin")
	if from == "" {
		from = firstValue(r.Header, "Referer")
	}
	if from == "" {
		return false
	}
	u, err := url.Parse(from)
	return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
}

// firstValue is h.Get(key) for a key written in canonical form, which
// net/http keeps every parsed header under: Get canonicalises the key
// again on every call (about 400 instructions a call, counted with
// callgrind on BenchmarkServeHTTP).
func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// onlyWebSocketUpgrades removes a protocol upgrade other than WebSocket
// (ReverseProxy has put the client's Upgrade back by now): an h2c tunnel
// would carry requests flagproxy never inspects. HTTP2-Settings goes too.
func onlyWebSocketUpgrades(h http.Header) {
	delete(h, "Http2-Settings")
	if up, ok := h["Upgrade"]; ok && (len(up) != 1 || !strings.EqualFold(strings.TrimSpace(up[0]), "websocket")) {
		delete(h, "Upgrade")
		delete(h, "Connection")
	}
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
