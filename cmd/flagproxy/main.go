// Command flagproxy is a reverse proxy for a Django site: it reads the site's
// feature-flag tables from its database, decides every flag for each
// request as the Django libraries would, and passes the result to the site
// in the X-Flagproxy-Flags request header.
//
// Usage:
//
//	flagproxy [serve] [options]   run in front of a Django site (the default)
//	flagproxy demo [options]      a self-contained demo with its own database and page
//	flagproxy snapshot -o FILE    write the site's flags to a snapshot file
//	flagproxy explain --flag NAME why a flag is on or off for a visitor
//	flagproxy stale [--json]      stale flags and names read but defined nowhere
//
// Run `flagproxy serve -h` for the options. It needs cgo (the SQLite driver).
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // TIME_ZONE names must resolve without the system's zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/flagproxy/flagproxy/djangodb"
	"github.com/flagproxy/flagproxy/engine"
	"github.com/flagproxy/flagproxy/overrides"
	"github.com/flagproxy/flagproxy/proxy"
)

// Interface guards: the concrete types wired together below.
var (
	_ proxy.SnapshotSource     = (*engine.Store)(nil)
	_ djangodb.Sink            = (*engine.Store)(nil)
	_ djangodb.Sink            = (*proxy.History)(nil)
	_ proxy.Publisher          = (*engine.Store)(nil)
	_ proxy.ChangeHistory      = (*proxy.History)(nil)
	_ djangodb.DataLoader      = (*djangodb.Loader)(nil)
	_ djangodb.Notifier        = (*djangodb.Watch)(nil)
	_ proxy.SubjectResolver    = (*djangodb.IdentityCache)(nil)
	_ djangodb.SessionResolver = (*djangodb.Identities)(nil)
	_ proxy.Overrider          = (*overrides.Overrider)(nil)
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `Usage: flagproxy [command] [options]

Commands:
  serve   run in front of a Django site (the default when no command is given)
  demo    run a self-contained demo: an embedded database with Django's schema
          and sample flags, and a built-in page that shows what the app receives
  snapshot -o FILE [options]
          read the flags once and write them to FILE, in the format of
          --snapshot-file and --database file:///FILE
  explain --flag NAME [--user ID | --session KEY] [--url /path?query] [options]
          why a flag is on or off for that visitor at that URL: the steps
          its library took; reads the database with the serve options, or
          asks a running flagproxy with --admin http://127.0.0.1:9090
  stale [--admin-url http://127.0.0.1:9090] [--json] [--fail-on-stale] [--fail-on-missing]
          flags decided the same way for everyone, or not read by the app,
          for more than --stale-after-days (30), and names the app reads
          that no source defines; exit status 3 when --fail-on-* finds any

Run "flagproxy serve -h" or "flagproxy demo -h" for the options.
`

// run is main without the process: it returns the exit status (0 ok, 1
// runtime failure, 2 usage or configuration error).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serveCommand(ctx, args, getenv, stdout, stderr)
	case "demo":
		return demoCommand(ctx, args, getenv, stdout, stderr)
	case "snapshot":
		return snapshotCommand(ctx, args, getenv, stdout, stderr)
	case "explain":
		return explainCommand(ctx, args, getenv, stdout, stderr)
	case "stale":
		return staleCommand(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "flagproxy: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func serveCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, code := commandConfig("serve", args, getenv, stderr, (*Config).Validate)
	if c == nil {
		return code
	}
	if c.CheckConfig {
		checkFlipPermissions(ctx, c, stderr)
		fmt.Fprintln(stdout, "flagproxy: configuration ok")
		return 0
	}
	log := c.newLogger(stderr)
	if err := serve(ctx, c, log, nil); err != nil {
		log.Error("flagproxy failed", "error", err)
		return 1
	}
	return 0
}

// reportConfigError prints every configuration problem, one per line.
func reportConfigError(w io.Writer, err error) {
	fmt.Fprintln(w, "flagproxy: invalid configuration:")
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "  - %s\n", line)
	}
}

// serve runs the proxy, the admin listener and the poller until ctx ends or
// one of them fails. ready, if not nil, is called with the bound addresses
// once both listeners accept connections.
func serve(ctx context.Context, c *Config, log *slog.Logger, ready func(proxyAddr, adminAddr net.Addr)) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	src, err := openSource(c, log, reg)
	if err != nil {
		return err
	}
	defer src.Close()
	db := src.db
	var store engine.Store
	history, err := proxy.NewHistory(proxy.HistoryConfig{Next: &store, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	var sink djangodb.Sink = history
	if c.SnapshotFile != "" {
		restoreSnapshot(c.SnapshotFile, &store, log)
		history.Restore(store.Load())
		sink = &persistingSink{next: history, path: c.SnapshotFile, log: log}
	}
	var changes djangodb.ChangeDetector
	if db != nil {
		w, err := djangodb.NewWatch(djangodb.WatchConfig{DB: db, Dialect: c.target.Dialect, Tables: c.loader,
			Notify: c.Notify, NotifyDSN: c.notifyDSN, PingInterval: c.PollInterval, Logger: log, Registerer: reg})
		if err != nil {
			return err
		}
		defer w.Close()
		changes = w
	}
	poller, err := djangodb.NewPoller(djangodb.PollerConfig{
		Loader:             src.loader,
		Sink:               sink,
		Interval:           c.PollInterval,
		Changes:            changes,
		FullReloadInterval: c.FullReloadInterval,
		JitterKey:          hostname() + c.Listen,
		Logger:             log,
		Registerer:         reg,
	})
	if err != nil {
		return err
	}
	var signingKey []byte
	if c.SigningKey != "" {
		signingKey = []byte(c.SigningKey)
	}
	var subjects proxy.SubjectResolver
	var users proxy.UserResolver
	if db == nil {
		// A snapshot file: no session or user tables.
	} else if c.SecretKey == "" {
		log.Warn("no SECRET_KEY (--secret-key, FLAGPROXY_SECRET_KEY or --django-settings): sessions cannot be verified, every visitor is anonymous")
	} else {
		sc := c.session
		ids, err := djangodb.NewIdentities(db, c.target.Dialect, sc)
		if err != nil {
			return err
		}
		cache, err := djangodb.NewIdentityCache(djangodb.IdentityCacheConfig{
			Resolver:         ids,
			CookieName:       c.django.SessionCookieName,
			TTL:              c.IdentityTTL,
			Entries:          c.IdentityEntries,
			LookupsPerSecond: c.IdentityLookups,
			StaleMax:         c.IdentityStaleMax,
			Logger:           log,
			Registerer:       reg,
		})
		if err != nil {
			return err
		}
		// OFREP names users by primary key: cached and bounded as sessions are.
		userCache, err := djangodb.NewUserCache(djangodb.UserCacheConfig{
			Lookup:           ids,
			TTL:              c.IdentityTTL,
			Entries:          c.IdentityEntries,
			LookupsPerSecond: c.IdentityLookups,
			StaleMax:         c.IdentityStaleMax,
			Logger:           log,
			Registerer:       reg,
		})
		if err != nil {
			return err
		}
		subjects, users = cache, userCache
	}
	var overrider proxy.Overrider
	if len(c.overrides.Keys) == 0 {
		log.Warn("no SECRET_KEY and no --override-keys: URL and session overrides are off")
	} else {
		oc := c.overrides
		oc.Logger, oc.Registerer = log, reg
		o, err := overrides.New(oc)
		if err != nil {
			return err
		}
		overrider = o
	}
	exposure, err := newExposure(c, log, reg)
	if err != nil {
		return err
	}
	p, err := proxy.New(proxy.Config{
		Upstream:            c.upstreamURL,
		Snapshots:           &store,
		Users:               users,
		Subjects:            subjects,
		Overrider:           overrider,
		Locale:              c.django.Locale(cmp.Or(c.DjangoVersion, c.django.DjangoVersion)),
		TrustedProxies:      c.trusted,
		StaleAfter:          c.StaleAfter,
		SigningKey:          signingKey,
		EagerWaffleCookies:  !c.LazyWaffleCookies,
		UpstreamTimeout:     c.UpstreamTimeout,
		UpstreamIdleTimeout: c.UpstreamIdle,
		MaxBodySize:         int64(c.MaxBodySize),
		BodyReadTimeout:     c.BodyReadTimeout,
		SendTimeout:         c.SendTimeout,
		BufferMemory:        int64(c.BufferMemory),
		DecisionCache:       cmp.Or(int64(c.DecisionCache), -1), // 0 disables
		BufferDir:           c.BufferDir,
		ConsolePath:         c.ConsolePath,
		BrowserFlags:        splitList(c.BrowserFlags),
		ConsolePublic:       c.ConsolePublic,
		ConsoleKey:          consoleKey(c),
		SecureCookies:       c.OverrideSecure,
		Exposure:            exposure,
		Logger:              log,
		Registerer:          reg,
	})
	if err != nil {
		return err
	}
	ofrep, err := ofrepHandler(c, p.Pipeline(), log, reg)
	if err != nil {
		return err
	}
	adminOFREP := ofrep
	if c.OFREPListen != "" {
		adminOFREP = nil
	}
	status, err := statusHandler(c, p.Pipeline(), poller, history, log)
	if err != nil {
		return err
	}
	admin := proxy.NewAdmin(proxy.AdminConfig{Snapshots: &store, Header: p.Pipeline(), Gatherer: reg, Logger: log,
		MaxStaleness: c.ReadyMaxStaleness, OFREP: adminOFREP, Status: status, Profiling: c.Profiling})

	pln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	aln, err := net.Listen("tcp", c.AdminListen)
	if err != nil {
		pln.Close()
		return fmt.Errorf("--admin-listen: %w", err)
	}
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelError)
	proxySrv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Django's servers refuse far less (gunicorn: 8190 bytes a line,
		// 100 lines); this bounds what one request can make us parse.
		MaxHeaderBytes: maxHeaderBytes,
		// No WriteTimeout: streamed responses (server-sent events,
		// WebSockets) may last as long as the site wants.
		ErrorLog: errorLog,
	}
	adminSrv := &http.Server{
		Handler:           admin,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          errorLog,
	}
	servers := []*http.Server{proxySrv, adminSrv}
	var ofrepSrv *http.Server
	var oln net.Listener
	if c.OFREPListen != "" && ofrep != nil {
		if oln, err = net.Listen("tcp", c.OFREPListen); err != nil {
			pln.Close()
			aln.Close()
			return fmt.Errorf("--ofrep-listen: %w", err)
		}
		ofrepSrv = &http.Server{Handler: ofrep, ReadHeaderTimeout: adminSrv.ReadHeaderTimeout, ReadTimeout: adminSrv.ReadTimeout,
			WriteTimeout: adminSrv.WriteTimeout, IdleTimeout: adminSrv.IdleTimeout, ErrorLog: errorLog}
		servers = append(servers, ofrepSrv)
	}
	log.Info("flagproxy serving", "listen", pln.Addr().String(), "admin", aln.Addr().String(),
		"upstream", c.upstreamURL.Redacted(), "database", c.target.Redacted)

	g, gctx := errgroup.WithContext(ctx)
	// The exposure log is written until the servers have shut down, so
	// that the events of the last requests are in it.
	exposureCtx, stopExposure := context.WithCancel(context.WithoutCancel(ctx))
	defer stopExposure()
	if exposure != nil {
		reopenOnHangup(exposureCtx, exposure)
		g.Go(func() error { return exposure.Run(exposureCtx) })
	}
	g.Go(func() error { return poller.Run(gctx) })
	g.Go(func() error { return serveUntilClosed(proxySrv, pln) })
	g.Go(func() error { return serveUntilClosed(adminSrv, aln) })
	if ofrepSrv != nil {
		g.Go(func() error { return serveUntilClosed(ofrepSrv, oln) })
	}
	g.Go(func() error {
		<-gctx.Done()
		shutdown(log, c.shutdownGrace, servers...)
		stopExposure()
		return nil
	})
	if ready != nil {
		ready(pln.Addr(), aln.Addr())
	}
	err = g.Wait()
	log.Info("flagproxy stopped")
	return err
}

// shutdown stops the servers together: no new connections, requests in
// flight get up to grace to finish, then whatever is left (long streams)
// is closed. Hijacked connections (WebSockets) end with the process.
func shutdown(log *slog.Logger, grace time.Duration, servers ...*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(grace, DefaultShutdownGrace))
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				log.Warn("requests still running after the shutdown grace period; closing their connections",
					"grace", cmp.Or(grace, DefaultShutdownGrace))
				srv.Close()
			}
		})
	}
	wg.Wait()
}

func serveUntilClosed(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// ofrepHandler builds the OFREP handler for the listener it will be served
// on (--ofrep-listen, else the admin listener), or nil: without
// --ofrep-keys OFREP is served only on a loopback listener, and the log
// says which.
func ofrepHandler(c *Config, pipe *proxy.Pipeline, log *slog.Logger, reg prometheus.Registerer) (http.Handler, error) {
	addr, flagName := c.AdminListen, "--admin-listen"
	if c.OFREPListen != "" {
		addr, flagName = c.OFREPListen, "--ofrep-listen"
	}
	keys := splitList(c.OFREPKeys)
	switch {
	case len(keys) > 0:
		log.Info("OFREP served with API keys", "listen", addr, "keys", len(keys))
	case proxy.IsLoopbackListen(addr):
		log.Info("OFREP served without API keys, to loopback callers only; set --ofrep-keys to serve it to others", "listen", addr)
	default:
		log.Warn("OFREP is off: no --ofrep-keys, and "+flagName+" is not a loopback address", "listen", addr)
		return nil, nil
	}
	return proxy.NewOFREP(proxy.OFREPConfig{Pipeline: pipe, Keys: keys, SessionCookie: c.django.SessionCookieName,
		Logger: log, Registerer: reg})
}
