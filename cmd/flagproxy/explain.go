package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/djangodb"
	"github.com/flagproxy/flagproxy/engine"
	"github.com/flagproxy/flagproxy/overrides"
	"github.com/flagproxy/flagproxy/proxy"
)

// explainOptions are `flagproxy explain`'s own options, beside the serve
// options (which say where the database is). They have no environment
// variables.
type explainOptions struct {
	q      proxy.ExplainQuery
	admin  string
	asJSON bool
}

// define adds the explain options to fs.
func (o *explainOptions) define(fs *flag.FlagSet) {
	fs.StringVar(&o.q.Flag, "flag", "", "the `name` to explain (a flag; switch:NAME or sample:NAME for a switch or a sample)")
	fs.StringVar(&o.q.User, "user", "", "the user's primary `key` (default: an anonymous visitor)")
	fs.StringVar(&o.q.Session, "session", "", "a Django session `key` instead of --user")
	fs.StringVar(&o.q.URL, "url", "/", "the `path` and query of the request, as a browser sends them")
	fs.StringVar(&o.q.Cookie, "cookie", "", "the Cookie `line` the browser would send (waffle's dwf_ and dwft_ cookies, say)")
	fs.StringVar(&o.q.Language, "language", "", "the browser's Accept-Language `header`")
	fs.StringVar(&o.admin, "admin", "", "ask the flagproxy whose admin listener is at this `URL` (http://127.0.0.1:9090) instead of reading the database")
	fs.BoolVar(&o.asJSON, "json", false, "print the answer as JSON, as /explain serves it")
}

// owns reports whether a flag name is an explain option.
func (o *explainOptions) owns(name string) bool {
	switch name {
	case "flag", "user", "session", "url", "cookie", "language", "admin", "json":
		return true
	}
	return false
}

func explainCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, code := commandConfig("explain", args, getenv, stderr, func(c *Config) error {
		var err error
		if c.explain.q.Flag == "" {
			err = errors.New("--flag: name the flag to explain")
		}
		if c.explain.admin == "" {
			err = errors.Join(err, c.Validate())
		}
		return err
	})
	if c == nil {
		return code
	}
	var a proxy.ExplainAnswer
	var err error
	if c.explain.admin != "" {
		a, err = askAdmin(ctx, c.explain.admin, c.explain.q)
	} else {
		a, err = explainLocally(ctx, c, c.newLogger(stderr))
	}
	if err != nil {
		fmt.Fprintf(stderr, "flagproxy explain: %v\n", err)
		return 1
	}
	err = writeReport(stdout, c.explain.asJSON, a, a.WriteText)
	if err != nil {
		return 1
	}
	return 0
}

// askAdmin asks a running flagproxy's /explain.
func askAdmin(ctx context.Context, admin string, q proxy.ExplainQuery) (proxy.ExplainAnswer, error) {
	v := url.Values{"flag": {q.Flag}, "url": {q.URL}}
	for k, x := range map[string]string{"user": q.User, "session": q.Session, "cookie": q.Cookie, "language": q.Language} {
		if x != "" {
			v.Set(k, x)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(admin, "/")+"/explain?"+v.Encode(), nil)
	if err != nil {
		return proxy.ExplainAnswer{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return proxy.ExplainAnswer{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return proxy.ExplainAnswer{}, err
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return proxy.ExplainAnswer{}, fmt.Errorf("%s: %s", res.Status, e.Error)
	}
	var a proxy.ExplainAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return proxy.ExplainAnswer{}, fmt.Errorf("reading the answer: %w", err)
	}
	return a, nil
}

// explainLocally reads the flags and the visitor from the database, as
// serve would, and explains through the same pipeline.
func explainLocally(ctx context.Context, c *Config, log *slog.Logger) (proxy.ExplainAnswer, error) {
	reg := prometheus.NewRegistry()
	src, snap, err := loadOnce(ctx, c, log, reg)
	if err != nil {
		return proxy.ExplainAnswer{}, err
	}
	defer src.Close()
	var store engine.Store
	store.Publish(snap, time.Now())
	cfg := proxy.Config{Upstream: c.upstreamURL, Snapshots: &store, Locale: c.django.Locale(c.session.DjangoVersion),
		StaleAfter: c.StaleAfter, Logger: log, Registerer: reg}
	if err := identities(c, src, log, reg, &cfg); err != nil {
		return proxy.ExplainAnswer{}, err
	}
	p, err := proxy.New(cfg)
	if err != nil {
		return proxy.ExplainAnswer{}, err
	}
	return proxy.ExplainFor(ctx, p.Pipeline(), c.explain.q, c.django.SessionCookieName)
}

// identities sets cfg's resolvers of sessions and users and its overrider,
// as serve does (without a SECRET_KEY, or from a snapshot file, every
// visitor is anonymous).
func identities(c *Config, src *flagSource, log *slog.Logger, reg prometheus.Registerer, cfg *proxy.Config) error {
	if len(c.overrides.Keys) > 0 {
		oc := c.overrides
		oc.Logger, oc.Registerer = log, reg
		o, err := overrides.New(oc)
		if err != nil {
			return err
		}
		cfg.Overrider = o
	}
	if src.db == nil || c.SecretKey == "" {
		log.Warn("no database or no SECRET_KEY: the visitor is anonymous")
		return nil
	}
	ids, err := djangodb.NewIdentities(src.db, c.target.Dialect, c.session)
	if err != nil {
		return err
	}
	sessions, err := djangodb.NewIdentityCache(djangodb.IdentityCacheConfig{Resolver: ids, CookieName: c.django.SessionCookieName,
		TTL: c.IdentityTTL, Entries: c.IdentityEntries, LookupsPerSecond: c.IdentityLookups, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	users, err := djangodb.NewUserCache(djangodb.UserCacheConfig{Lookup: ids, TTL: c.IdentityTTL, Entries: c.IdentityEntries,
		LookupsPerSecond: c.IdentityLookups, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	cfg.Subjects, cfg.Users = sessions, users
	return nil
}
