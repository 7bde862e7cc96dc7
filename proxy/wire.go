package proxy

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// addConsole adds what explains decisions to p: the decision counts
// (flagproxy_flag_decisions_total), the refused-override counter, and the
// flags console under c's prefix.
func (p *Proxy) addConsole(cfg Config, reg prometheus.Registerer, c *console) error {
	p.pipe.tally = newTally(p.now)
	if err := reg.Register(newTallyCollector(p.pipe.tally)); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	refusals, err := newRefusals(reg)
	if err != nil {
		return err
	}
	p.pipe.refusals = refusals
	key := slices.Clone(cfg.ConsoleKey)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	prefix := cmp.Or(cfg.ConsolePath, DefaultConsolePath)
	fc := &flagConsole{pipe: p.pipe, prefix: prefix, public: cfg.ConsolePublic, logger: p.logger,
		csrf:    &csrf{key: key, path: prefix, secure: cfg.SecureCookies, now: p.now},
		browser: &browser{pipe: p.pipe, metrics: p.metrics, logger: p.logger, now: p.now}}
	fc.register(c)
	return nil
}
