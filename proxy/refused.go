package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// maxRefusalLines bounds the log lines of one request's refused override
// parameters; the others are summed up in one more line (all are
// counted).
const maxRefusalLines = 16

// newRefusals returns flagproxy_overrides_refused_total{reason}, every
// reason at zero, registered with reg.
func newRefusals(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_overrides_refused_total",
		Help: "Override parameters (enable_x, session_enable_x, …) not applied, by reason (not_permitted, unknown_flag, cross_site, too_many).",
	}, []string{"reason"})
	for _, r := range engine.RefusalReasons() {
		c.WithLabelValues(string(r))
	}
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

// refused counts each refused override parameter and logs it at info, once
// per request: the user ("anonymous" without one), the flag, the
// parameter and why.
func (p *Pipeline) refused(ctx context.Context, userID string, rs []engine.Refusal) {
	who := userID
	if who == "" {
		who = "anonymous"
	}
	for i, r := range rs {
		if p.refusals != nil {
			p.refusals.WithLabelValues(string(r.Reason)).Inc()
		}
		if i < maxRefusalLines {
			p.logger.LogAttrs(ctx, slog.LevelInfo, "override refused", slog.String("user_id", who),
				slog.String("flag", r.Name), slog.String("param", r.Param), slog.String("reason", string(r.Reason)))
		}
	}
	if n := len(rs) - maxRefusalLines; n > 0 {
		p.logger.LogAttrs(ctx, slog.LevelInfo, "more override parameters refused", slog.String("user_id", who), slog.Int("count", n))
	}
}

// mayAskOverrides reports whether a raw query could hold an override
// parameter, so that a cross-site request's query is parsed only to report
// the ones it holds (a parameter spelled with other percent-escapes than
// %5F is refused all the same, without a log line).
func mayAskOverrides(raw string) bool {
	return strings.Contains(raw, "able") || strings.Contains(raw, "clear") || strings.Contains(raw, "%5") ||
		strings.Contains(raw, "ABLE")
}
