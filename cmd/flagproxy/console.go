package main

import (
	"crypto/sha256"
	"log/slog"
	"net/http"

	"github.com/flagproxy/flagproxy/djangodb"
	"github.com/flagproxy/flagproxy/proxy"
)

// consoleKey derives the key of the console's form tokens from the
// override cookie's newest key (itself from SECRET_KEY unless
// configured), so that every replica behind one load balancer accepts the
// others' forms; nil (a random key) without one.
func consoleKey(c *Config) []byte {
	if len(c.overrides.Keys) == 0 {
		return nil
	}
	k := sha256.Sum256(append([]byte("flagproxy console form key\x00"), c.overrides.Keys[0]...))
	return k[:]
}

// statusHandler builds the admin listener's /flags, /flags.json and
// /explain.
func statusHandler(c *Config, pipe *proxy.Pipeline, poller *djangodb.Poller, history proxy.ChangeHistory, log *slog.Logger) (http.Handler, error) {
	return proxy.NewStatus(proxy.StatusConfig{Pipeline: pipe, SessionCookie: c.django.SessionCookieName, Logger: log, History: history,
		StaleAfter: c.staleAfter(),
		Poller:     func() proxy.PollerState { return pollerState(poller.Status()) }})
}

// pollerState converts the poller's status for the status page.
func pollerState(s djangodb.Status) proxy.PollerState {
	return proxy.PollerState{LastSuccess: s.LastSuccess, LastError: s.LastError, LastErrorAt: s.LastErrorAt,
		FailingSince: s.FailingSince, Version: s.Version}
}
