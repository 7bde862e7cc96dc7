package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/djangodb"
	"github.com/flagproxy/flagproxy/engine"
	"github.com/flagproxy/flagproxy/overrides"
	"github.com/flagproxy/flagproxy/proxy"
)

// Defaults of the serve options (DESIGN.md §5).
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultUpstream       = "http://127.0.0.1:8000"
	DefaultDatabase       = "sqlite:///db.sqlite3"
	DefaultAdminListen    = "127.0.0.1:9090"
	DefaultPollInterval   = time.Second // PostgreSQL; djangodb.DefaultSQLiteInterval on SQLite
	DefaultStaleAfter     = 30 * time.Second
	DefaultUpstreamTimout = 60 * time.Second
	DefaultShutdownGrace  = 10 * time.Second
	envPrefix             = "FLAGPROXY_"
	maxHeaderBytes        = 128 << 10
)

// Config is everything `flagproxy serve` needs, after flags, environment
// and the Django settings file have been merged.
type Config struct {
	Listen             string
	Upstream           string
	Database           string
	AdminListen        string
	SecretKey          string
	SecretKeyFallbacks string
	DjangoSettingsFile string
	PollInterval       time.Duration
	FullReloadInterval time.Duration
	Notify             bool
	NotifyDatabase     string
	StaleAfter         time.Duration
	UpstreamTimeout    time.Duration
	UpstreamIdle       time.Duration
	MaxBodySize        byteSize
	BodyReadTimeout    time.Duration
	SendTimeout        time.Duration
	BufferMemory       byteSize
	DecisionCache      byteSize
	BufferDir          string
	SnapshotFile       string
	Output             string // flagproxy snapshot -o
	ReadyMaxStaleness  time.Duration
	FeatureFlagApp     string
	Sources            string
	TrustedProxies     string
	SigningKey         string
	DjangoVersion      string
	IdentityTTL        time.Duration
	IdentityEntries    int
	IdentityLookups    float64
	IdentityStaleMax   time.Duration
	FlipPermission     string
	ConsolePublic      bool
	OverrideKeys       string
	OverrideCookie     string
	OverrideSecure     bool
	ConsolePath        string
	BrowserFlags       string
	OFREPKeys          string
	OFREPListen        string
	LogLevel           string
	LogFormat          string
	CheckConfig        bool
	Profiling          bool
	LazyWaffleCookies  bool
	StaleAfterDays     float64

	// Derived by Validate.
	upstreamURL *url.URL
	target      djangodb.Target
	django      DjangoSettings
	sources     []engine.Source
	loader      djangodb.Config
	session     djangodb.SessionConfig
	overrides   overrides.Config
	trusted     []netip.Prefix
	level       slog.Level
	// shutdownGrace is how long requests in flight may take to finish at
	// shutdown; zero means DefaultShutdownGrace.
	shutdownGrace time.Duration
	// pollIntervalSet is whether --poll-interval was given; notifyDSN is
	// the connection string of the LISTEN connection.
	pollIntervalSet bool
	notifyDSN       string
	// explain holds `flagproxy explain`'s own options (explain.go).
	explain explainOptions
	// exposure holds the --exposure-* options (exposure.go).
	exposure exposureOptions
	// stale holds `flagproxy stale`'s own options (stale.go).
	stale staleOptions
}

// newFlagSet defines the serve options on a FlagSet bound to c.
func newFlagSet(name string, c *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Listen, "listen", DefaultListen, "`address` to serve proxied requests on")
	fs.StringVar(&c.Upstream, "upstream", DefaultUpstream, "`URL` of the Django site")
	fs.StringVar(&c.Database, "database", DefaultDatabase, "Django's database `URL`: sqlite:///relative.db, sqlite:////absolute.db or postgres://user:pass@host:port/name")
	fs.StringVar(&c.AdminListen, "admin-listen", DefaultAdminListen, "`address` for /healthz, /readyz and /metrics")
	fs.StringVar(&c.SecretKey, "secret-key", "", "Django's SECRET_KEY (prefer the environment variable; default: SECRET_KEY from --django-settings)")
	fs.StringVar(&c.SecretKeyFallbacks, "secret-key-fallbacks", "", "comma-separated SECRET_KEY_FALLBACKS (default: from --django-settings)")
	fs.StringVar(&c.DjangoSettingsFile, "django-settings", "", "JSON `file` of the site's Django settings, keyed by setting name (default: Django's defaults)")
	fs.Var(optionalDuration{&c.PollInterval, &c.pollIntervalSet}, "poll-interval", "how often to check the flag tables for changes (default 250ms on SQLite, 1s on PostgreSQL)")
	fs.DurationVar(&c.FullReloadInterval, "full-reload-interval", djangodb.DefaultFullReloadInterval, "read the flag tables at least this often, even when no change was detected")
	fs.BoolVar(&c.Notify, "notify", true, "on PostgreSQL, LISTEN for the change notifications of flagproxy_django's triggers and reload at once (polling stays the fallback)")
	fs.StringVar(&c.NotifyDatabase, "notify-database", "", "PostgreSQL `URL` for the LISTEN connection, for when --database goes through a pooler in transaction mode (default: --database)")
	fs.DurationVar(&c.StaleAfter, "stale-after", DefaultStaleAfter, "report the flags as \"stale\" when the last successful load is older than this")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", DefaultUpstreamTimout, "how long to wait for the Django site's response headers (then 504)")
	fs.DurationVar(&c.UpstreamIdle, "upstream-idle-timeout", proxy.DefaultUpstreamIdleTimeout, "close idle connections to the Django site after this (keep it below gunicorn's --keep-alive, 2s by default)")
	c.MaxBodySize = proxy.DefaultMaxBodySize
	fs.Var(&c.MaxBodySize, "max-body-size", "largest request body accepted, in bytes or with a k, M or G suffix (larger: 413, Django never sees it)")
	fs.DurationVar(&c.BodyReadTimeout, "body-read-timeout", proxy.DefaultBodyReadTimeout, "how long a client may leave its request body idle before 408")
	fs.DurationVar(&c.SendTimeout, "send-timeout", proxy.DefaultSendTimeout, "how long one write of a buffered response to a client may take before the connection is closed")
	c.BufferMemory = proxy.DefaultBufferMemory
	fs.Var(&c.BufferMemory, "buffer-memory", "how much of one request or response body is buffered in memory before the rest goes to a temporary file")
	c.DecisionCache = proxy.DefaultDecisionCache
	fs.Var(&c.DecisionCache, "decision-cache", "memory for reusing a visitor's decisions when their next request brings the same cookies and other inputs the flags read (identity and overrides are still checked on every request); 0 disables")
	if name == "snapshot" {
		fs.StringVar(&c.Output, "o", "", "`file` to write the snapshot to (required)")
	}
	if name == "explain" {
		c.explain.define(fs)
	}
	if name == "stale" {
		c.stale.define(fs)
	}
	fs.BoolVar(&c.LazyWaffleCookies, "lazy-waffle-cookies", true, "when a response reports the names the app read (X-Flagproxy-Reads, from flagproxy_django), write waffle's dwf_ cookies only for the flags read, as waffle does; false writes them for every percentage flag")
	fs.Float64Var(&c.StaleAfterDays, "stale-after-days", proxy.DefaultStaleAfterDays, "call a flag stale once it has been decided the same way for everyone (by its modified date), or not read by the app, for more than this many `days` (status page, flagproxy stale)")
	fs.StringVar(&c.SnapshotFile, "snapshot-file", "", "`file` to persist each new snapshot in, and to serve from (as stale) when flagproxy starts while the database is unreachable")
	fs.DurationVar(&c.ReadyMaxStaleness, "ready-max-staleness", 0, "if set, /readyz fails when the last successful load is older than this (default: stay ready and serve stale flags)")
	fs.StringVar(&c.BufferDir, "buffer-dir", "", "`directory` for the temporary files of large bodies (default: the system's temporary directory)")
	fs.StringVar(&c.FeatureFlagApp, "featureflag-app", djangodb.DefaultFeatureFlagApp, "app label of the FeatureFlag model (its table is <label>_featureflag)")
	fs.StringVar(&c.Sources, "sources", "auto", "flag sources to read: auto (every source whose tables exist) or a comma-separated list of "+sourceNames())
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated `CIDRs` of proxies in front of flagproxy whose X-Forwarded-* headers are kept")
	fs.StringVar(&c.SigningKey, "signing-key", "", "if set, sign the flags header with HMAC-SHA256 (X-Flagproxy-Signature) (default: FLAGPROXY_SIGNING_KEY from --django-settings)")
	fs.StringVar(&c.DjangoVersion, "django-version", "", "the site's Django `version` (3.2 to 6.x), which decides the session formats accepted and, from 4.1, three-part language prefixes in URLs (default: DJANGO_VERSION from --django-settings, else the newest rules)")
	fs.DurationVar(&c.IdentityTTL, "identity-cache-ttl", djangodb.DefaultIdentityTTL, "how long a visitor's identity is reused (re-checked in the background before it runs out); a logout, password change, deactivation or permission change shows within this time")
	fs.IntVar(&c.IdentityEntries, "identity-cache-entries", djangodb.DefaultIdentityEntries, "sessions kept in the identity cache (and, separately, rejected session values)")
	fs.DurationVar(&c.IdentityStaleMax, "identity-stale-max", djangodb.DefaultIdentityStaleMax, "while the database cannot be read, keep serving a known visitor's identity (marked stale) until it is this old; 0 disables")
	fs.Float64Var(&c.IdentityLookups, "identity-lookups-per-second", djangodb.DefaultIdentityLookupsPerSec, "batched queries a second for sessions not in the cache (burst twice that; each holds up to 100 new sessions); beyond it new visitors wait for the next, and are anonymous after 2s")
	fs.StringVar(&c.FlipPermission, "flip-permission", defaultFlipPermissions(), "comma-separated Django `permissions` (app_label.codename), any of which allows ?enable_x, ?session_enable_x and the console")
	fs.BoolVar(&c.ConsolePublic, "console-public", false, "show the flags console (<console-path>) to every visitor, read-only for those who may not flip (default: 404 for them)")
	fs.StringVar(&c.OverrideKeys, "override-keys", "", "comma-separated secrets (32 bytes or more) that sign and encrypt the override cookie, newest first (default: derived from SECRET_KEY and SECRET_KEY_FALLBACKS)")
	fs.StringVar(&c.OverrideCookie, "override-cookie", overrides.DefaultCookieName, "`name` of flagproxy's override cookie")
	fs.BoolVar(&c.OverrideSecure, "override-cookie-secure", true, "send the override cookie only over HTTPS (browsers accept it on http://localhost too)")
	fs.StringVar(&c.ConsolePath, "console-path", proxy.DefaultConsolePath, "`path` prefix flagproxy answers itself on the proxied site (never forwarded to Django)")
	fs.StringVar(&c.BrowserFlags, "browser-flags", "", "comma-separated `patterns` (globs; switch:, sample:, flag: limit one kind; * for all) of the flags served to the page at <console-path>flags.json and waffle.js (default: none, those paths answer 404)")
	fs.StringVar(&c.OFREPKeys, "ofrep-keys", "", "comma-separated API `keys` an OFREP caller must send (Authorization: Bearer or X-API-Key); without keys OFREP is served only on a loopback listener")
	if name == "serve" {
		c.exposure.define(fs)
	}
	fs.StringVar(&c.OFREPListen, "ofrep-listen", "", "`address` to serve OFREP on instead of the admin listener")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&c.CheckConfig, "check-config", false, "validate the configuration and exit")
	if name == "serve" {
		fs.BoolVar(&c.Profiling, "pprof", false, "serve Go's CPU, heap and other profiles at /debug/pprof/ on the admin listener (keep that listener private)")
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: flagproxy %s [options]\n\n", name)
		if name == "serve" {
			fmt.Fprint(out, "Runs the proxy in front of a Django site. Every option can also be set\n"+
				"with an environment variable FLAGPROXY_<NAME> (for example FLAGPROXY_DATABASE,\n"+
				"FLAGPROXY_SECRET_KEY); a command-line flag wins over the environment, which\n"+
				"wins over --django-settings.\n\nOptions:\n")
		} else {
			fmt.Fprint(out, "Options:\n")
		}
		fs.PrintDefaults()
	}
	return fs
}

// defaultFlipPermissions is --flip-permission's default.
func defaultFlipPermissions() string { return strings.Join(overrides.DefaultPermissions(), ",") }

// envName returns the environment variable of a flag: FLAGPROXY_ADMIN_LISTEN.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// commandConfig parses a command's options (parseConfig) and checks them
// with check, the command's own requirements. It returns nil and the exit
// code when the command is to stop there: 0 after -h, 2 after a
// configuration error, which it reports.
func commandConfig(name string, args []string, getenv func(string) string, stderr io.Writer, check func(*Config) error) (*Config, int) {
	c, err := parseConfig(name, args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil, 0
	}
	if c != nil {
		err = errors.Join(err, check(c))
	}
	if err != nil {
		reportConfigError(stderr, err)
		return nil, 2
	}
	return c, 0
}

// writeReport writes v to w as indented JSON when asJSON is set, else as
// text does.
func writeReport(w io.Writer, asJSON bool, v any, text func(io.Writer) error) error {
	if !asJSON {
		return text(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseConfig parses args and the environment into a Config. It returns
// flag.ErrHelp for -h.
func parseConfig(name string, args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := &Config{}
	fs := newFlagSet(name, c, out)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || c.explain.owns(f.Name) || c.stale.owns(f.Name) {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	return c, errors.Join(errs...)
}

// Validate checks every option and fills the derived fields. It reports
// every problem at once and has no side effects beyond reading files.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	for _, l := range []struct{ flag, v string }{{"--listen", c.Listen}, {"--admin-listen", c.AdminListen}} {
		if err := checkListen(l.v); err != nil {
			add("%s %q: %v", l.flag, l.v, err)
		}
	}
	if !(c.StaleAfterDays > 0) || c.StaleAfterDays > 100*365 {
		add("--stale-after-days %v: want a number of days above 0", c.StaleAfterDays)
	}
	if _, port, _ := net.SplitHostPort(c.Listen); c.Listen == c.AdminListen && port != "0" {
		add("--listen and --admin-listen are both %q", c.Listen)
	}
	u, err := url.Parse(c.Upstream)
	switch {
	case err != nil:
		add("--upstream: %v", err)
	case proxy.CheckUpstream(u) != nil:
		add("--upstream %q: want an absolute http:// or https:// URL without query or fragment", c.Upstream)
	default:
		c.upstreamURL = u
	}
	if c.target, err = djangodb.ParseURL(c.Database); err != nil {
		add("--database: %v", err)
	}
	if c.PollInterval == 0 && !c.pollIntervalSet {
		c.PollInterval = DefaultPollInterval
		if c.target.Dialect == djangodb.SQLite {
			c.PollInterval = djangodb.DefaultSQLiteInterval
		}
	}
	c.notifyDSN = c.target.DSN
	if c.NotifyDatabase != "" {
		if t, err := djangodb.ParseURL(c.NotifyDatabase); err != nil || t.Dialect != djangodb.Postgres {
			add("--notify-database: want a postgres:// URL")
		} else {
			c.notifyDSN = t.DSN
		}
	}
	c.django = defaultDjangoSettings()
	if c.DjangoSettingsFile != "" {
		if c.django, err = loadDjangoSettings(c.DjangoSettingsFile); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SecretKey == "" {
		c.SecretKey = c.django.SecretKey
	}
	if c.SigningKey == "" {
		c.SigningKey = c.django.SigningKey
	}
	errs = append(errs, c.validateSession()...)
	errs = append(errs, c.validateOverrides()...)
	c.loader = djangodb.Config{
		WaffleFlagModel:   c.django.WaffleFlagModel,
		WaffleFlagTable:   c.django.WaffleFlagTable,
		WaffleSwitchModel: c.django.WaffleSwitchModel,
		WaffleSampleModel: c.django.WaffleSampleModel,
		FeatureFlagApp:    c.FeatureFlagApp,
		Waffle:            c.django.Waffle,
		AuthUserModel:     c.session.AuthUserModel,
		UsernameField:     c.session.UsernameField,
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--poll-interval", c.PollInterval}, {"--stale-after", c.StaleAfter}, {"--upstream-timeout", c.UpstreamTimeout},
		{"--upstream-idle-timeout", c.UpstreamIdle}, {"--body-read-timeout", c.BodyReadTimeout}, {"--send-timeout", c.SendTimeout},
		{"--full-reload-interval", c.FullReloadInterval}} {
		if d.v <= 0 {
			add("%s %v: must be positive", d.flag, d.v)
		}
	}
	if c.BufferDir != "" {
		if st, err := os.Stat(c.BufferDir); err != nil || !st.IsDir() {
			add("--buffer-dir %q: not a directory", c.BufferDir)
		}
	}
	if c.StaleAfter > 0 && c.StaleAfter < c.PollInterval {
		add("--stale-after %v is shorter than --poll-interval %v", c.StaleAfter, c.PollInterval)
	}
	c.loader.DjangoFlags = c.django.DjangoFlags
	c.loader.DjangoFlags.UseTZ, c.loader.DjangoFlags.TimeZone = c.session.UseTZ, c.django.TimeZone
	c.loader.DjangoFlags.Location = c.session.TimeZone
	c.loader.DjangoFlags.DjangoVersion = c.session.DjangoVersion
	c.sources = nil
	if c.Sources != "auto" {
		for _, s := range splitList(c.Sources) {
			if src := engine.Source(s); engine.IsKnownSource(src) {
				c.sources = append(c.sources, src)
			} else {
				add("--sources: unknown source %q (want auto, or a list of %s)", s, sourceNames())
			}
		}
		if len(c.sources) == 0 {
			add("--sources: empty (use auto)")
		}
	}
	c.loader.Sources = c.sources
	if err := c.loader.Validate(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			add("flag tables: %s", e)
		}
	}
	errs = append(errs, c.validateOFREP()...)
	errs = append(errs, c.exposure.validate()...)
	c.trusted = nil
	for _, s := range splitList(c.TrustedProxies) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, err2 := netip.ParseAddr(s); err2 == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				add("--trusted-proxies: %q is not a CIDR or an IP address", s)
				continue
			}
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	if err := c.level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		add("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("--log-format %q: want text or json", c.LogFormat)
	}
	return errors.Join(errs...)
}

// checkListen accepts host:port with a port from 0 to 65535 and a host
// that is empty, an IP address or a plausible host name.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("host %q is neither an IP address nor a host name", host)
		}
	}
	if strings.Trim(host, "0123456789.") == "" {
		return fmt.Errorf("host %q is not a valid IP address", host)
	}
	return nil
}

// validateOverrides builds the override configuration: explicit keys must
// be 32 bytes or more; without them the keys are derived from SECRET_KEY
// and its fallbacks (none at all disables stored overrides).
func (c *Config) validateOverrides() []error {
	var errs []error
	c.overrides = overrides.Config{
		CookieName:        c.OverrideCookie,
		Secure:            c.OverrideSecure,
		Permissions:       splitList(c.FlipPermission),
		AnonymousFlipping: c.django.AnonymousURLFlipping,
		MaxAge:            time.Duration(c.django.SessionCookieAge) * time.Second,
	}
	if c.OverrideKeys != "" {
		for i, k := range splitList(c.OverrideKeys) {
			if len(k) < 32 {
				errs = append(errs, fmt.Errorf("--override-keys: key %d is %d bytes; at least 32 are needed", i+1, len(k)))
			}
			c.overrides.Keys = append(c.overrides.Keys, []byte(k))
		}
	} else if c.SecretKey != "" {
		for _, secret := range append([]string{c.SecretKey}, c.fallbacks()...) {
			k := sha256.Sum256([]byte("flagproxy override cookie key\x00" + secret))
			c.overrides.Keys = append(c.overrides.Keys, k[:])
		}
	}
	for _, p := range c.overrides.Permissions {
		if app, code, ok := strings.Cut(p, "."); !ok || app == "" || code == "" {
			errs = append(errs, fmt.Errorf("--flip-permission %q: want app_label.codename", p))
		}
	}
	if len(c.overrides.Permissions) == 0 {
		errs = append(errs, errors.New("--flip-permission: empty"))
	}
	if c.overrides.MaxAge <= 0 {
		c.overrides.MaxAge = overrides.DefaultMaxAge
	}
	if len(c.overrides.Keys) > 0 {
		if _, err := overrides.New(c.overrides); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// fallbacks returns SECRET_KEY_FALLBACKS: the flag's comma-separated list
// when given, else the settings file's list exactly as written (a key may
// contain commas or spaces).
func (c *Config) fallbacks() []string {
	if c.SecretKeyFallbacks != "" {
		return splitList(c.SecretKeyFallbacks)
	}
	return c.django.SecretKeyFallbacks
}

// validateSession builds the session configuration from the flags and the
// Django settings (flag first), with Django's defaults.
func (c *Config) validateSession() []error {
	var errs []error
	d := c.django
	version := cmp.Or(c.DjangoVersion, d.DjangoVersion)
	useTZ := d.UseTZ
	if !d.useTZSet {
		// global_settings: USE_TZ is False up to 4.2 and True from 5.0.
		useTZ = version == "" || !(strings.HasPrefix(version, "3.") || strings.HasPrefix(version, "4."))
	}
	loc, err := time.LoadLocation(d.TimeZone)
	if err != nil {
		errs = append(errs, fmt.Errorf("TIME_ZONE %q: %v", d.TimeZone, err))
		loc = time.UTC
	}
	qualname := d.SessionStoreQualname
	c.session = djangodb.SessionConfig{
		DjangoVersion:           version,
		SecretKey:               c.SecretKey,
		SecretKeyFallbacks:      c.fallbacks(),
		DefaultHashingAlgorithm: d.DefaultHashing,
		Engine:                  d.SessionEngine,
		StoreQualname:           qualname,
		CookieAge:               time.Duration(d.SessionCookieAge) * time.Second,
		UseTZ:                   useTZ,
		TimeZone:                loc,
		AuthUserModel:           d.AuthUserModel,
		UsernameField:           d.UsernameField,
		AuthenticationBackends:  d.AuthenticationBackends,
	}
	if err := c.session.Validate(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			errs = append(errs, fmt.Errorf("sessions: %s", e))
		}
	}
	if d.SessionCookieName == "" {
		errs = append(errs, errors.New("SESSION_COOKIE_NAME is empty"))
	}
	if c.IdentityTTL <= 0 || c.IdentityEntries <= 0 || c.IdentityLookups <= 0 {
		errs = append(errs, fmt.Errorf("--identity-cache-ttl, --identity-cache-entries and --identity-lookups-per-second must be positive"))
	}
	if c.IdentityStaleMax < 0 {
		errs = append(errs, fmt.Errorf("--identity-stale-max must not be negative"))
	}
	return errs
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newLogger builds the process's one logger.
func (c *Config) newLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// sourceNames lists the flag sources --sources accepts.
func sourceNames() string {
	var names []string
	for _, s := range engine.KnownSources() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// byteSize is a size flag: a number of bytes, or one with a k, M or G
// suffix (powers of 1024).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a positive number of bytes, optionally with a k, M or G suffix")
	}
	*b = byteSize(n * mult)
	return nil
}

// optionalDuration is a duration flag that records whether it was set, so
// that its default can depend on other options.
type optionalDuration struct {
	d   *time.Duration
	set *bool
}

func (o optionalDuration) String() string {
	if o.set == nil || !*o.set {
		return ""
	}
	return o.d.String()
}

func (o optionalDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("parse error")
	}
	*o.d, *o.set = d, true
	return nil
}

// validateOFREP checks the console path, the browser patterns and the OFREP
// options.
func (c *Config) validateOFREP() []error {
	var errs []error
	if err := proxy.CheckConsolePath(c.ConsolePath); err != nil {
		errs = append(errs, fmt.Errorf("--console-path: %v", err))
	}
	if err := proxy.CheckBrowserFlags(splitList(c.BrowserFlags)); err != nil {
		errs = append(errs, fmt.Errorf("--browser-flags: %v", err))
	}
	for i, k := range splitList(c.OFREPKeys) {
		if len(k) < 16 {
			errs = append(errs, fmt.Errorf("--ofrep-keys: key %d is %d bytes; at least 16 are needed", i+1, len(k)))
		}
	}
	if c.OFREPListen != "" {
		if err := checkListen(c.OFREPListen); err != nil {
			errs = append(errs, fmt.Errorf("--ofrep-listen %q: %v", c.OFREPListen, err))
		}
		if _, port, _ := net.SplitHostPort(c.OFREPListen); port != "0" && (c.OFREPListen == c.Listen || c.OFREPListen == c.AdminListen) {
			errs = append(errs, fmt.Errorf("--ofrep-listen %q is also --listen or --admin-listen", c.OFREPListen))
		}
	}
	return errs
}
