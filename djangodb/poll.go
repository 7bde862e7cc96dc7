package djangodb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Defaults for PollerConfig.
const (
	DefaultInterval = time.Second
	// failureLogEvery bounds how often a persisting load failure is logged.
	failureLogEvery = time.Minute
)

// Sink receives every successfully loaded snapshot; *engine.Store is one.
type Sink interface {
	Publish(s *engine.Snapshot, at time.Time)
}

// SnapshotLoader loads one snapshot; *Loader is one.
type SnapshotLoader interface {
	Load(ctx context.Context) (*engine.Snapshot, error)
}

// PollerConfig configures a Poller.
type PollerConfig struct {
	Loader   SnapshotLoader
	Sink     Sink
	Interval time.Duration
	// JitterKey (for example the host name and listen address) sets a
	// deterministic offset of up to a tenth of the interval, so that many
	// proxies polling one database spread their queries.
	JitterKey  string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Poller reloads snapshots on an interval and publishes them. A failed
// load keeps the last good snapshot published, is counted and is logged.
type Poller struct {
	cfg      PollerConfig
	log      *slog.Logger
	offset   time.Duration
	loads    prometheus.Counter
	failures prometheus.Counter
	duration prometheus.Histogram
}

// NewPoller checks cfg and returns a Poller.
func NewPoller(cfg PollerConfig) (*Poller, error) {
	var errs []error
	if cfg.Loader == nil {
		errs = append(errs, errors.New("poller: no loader"))
	}
	if cfg.Sink == nil {
		errs = append(errs, errors.New("poller: no sink"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("poller: negative interval %v", cfg.Interval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	p := &Poller{cfg: cfg, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.JitterKey))
	if span := int64(cfg.Interval / 10); span > 0 {
		p.offset = time.Duration(h.Sum64() % uint64(span))
	}
	p.loads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_snapshot_loads_total",
		Help: "Snapshot loads attempted.",
	})
	p.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_snapshot_load_errors_total",
		Help: "Snapshot loads that failed; the last good snapshot stayed in use.",
	})
	p.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flagproxy_snapshot_load_duration_seconds",
		Help:    "Time taken by one snapshot load.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{p.loads, p.failures, p.duration} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Run loads a snapshot at once, then once per interval, until ctx is done.
// It returns nil when ctx is canceled; load errors never stop it.
func (p *Poller) Run(ctx context.Context) error {
	var failingSince, lastLogged time.Time
	var version string
	poll := func() {
		start := time.Now()
		snap, err := p.cfg.Loader.Load(ctx)
		p.loads.Inc()
		p.duration.Observe(time.Since(start).Seconds())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.failures.Inc()
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
			}
			if lastLogged.IsZero() || now.Sub(lastLogged) >= failureLogEvery {
				lastLogged = now
				p.log.Error("snapshot load failed; keeping the last good snapshot",
					"error", err, "failing_for", now.Sub(failingSince).Round(time.Millisecond))
			}
			return
		}
		if !failingSince.IsZero() {
			p.log.Info("snapshot loads recovered", "failed_for", time.Since(failingSince).Round(time.Millisecond))
			failingSince, lastLogged = time.Time{}, time.Time{}
		}
		p.cfg.Sink.Publish(snap, time.Now())
		if snap.Version() != version {
			version = snap.Version()
			p.log.Info("snapshot loaded", "snapshot_version", version,
				"flags", snap.NumFlags(), "switches", snap.NumSwitches(), "samples", snap.NumSamples(),
				"conflicts", len(snap.Conflicts()))
			if len(snap.Sources()) == 0 {
				p.log.Warn("no flag tables found (waffle_flag, featureflipper_feature, <app>_featureflag): is --database the site's database, and are the apps migrated?")
			}
			for _, c := range snap.Conflicts() {
				p.log.Warn("flag defined by more than one source; it is off until one is removed",
					"flag", c.Name, "sources", c.Sources)
			}
		}
	}

	poll()
	timer := time.NewTimer(p.offset + p.cfg.Interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			poll()
			timer.Reset(p.cfg.Interval)
		}
	}
}
