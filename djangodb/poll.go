package djangodb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Defaults for PollerConfig.
const (
	DefaultInterval = time.Second
	// DefaultSQLiteInterval is the poll interval flagproxy uses on SQLite,
	// where a poll of an unchanged database is one PRAGMA data_version.
	DefaultSQLiteInterval = 250 * time.Millisecond
	// DefaultFullReloadInterval bounds how long a Poller with a
	// ChangeDetector goes without reading the tables.
	DefaultFullReloadInterval = 30 * time.Second
	// failureLogEvery bounds how often a persisting load failure is logged.
	failureLogEvery = time.Minute
	// wakeGap is the least time between the start of a load and a poll a
	// notification asks for: a burst of commits costs a few loads, not
	// one each.
	wakeGap = 20 * time.Millisecond
)

// Sink receives every successfully loaded snapshot; *engine.Store is one.
type Sink interface {
	Publish(s *engine.Snapshot, at time.Time)
}

// DataLoader reads the rows and settings of one snapshot; *Loader is one.
type DataLoader interface {
	Load(ctx context.Context) (engine.Data, error)
}

// Status is what a Poller has seen, for the status page.
type Status struct {
	// LastSuccess is when the last load succeeded; zero before the first.
	LastSuccess time.Time
	// LastError is the last failed load's error, and LastErrorAt its time;
	// they stay set after a recovery.
	LastError   string
	LastErrorAt time.Time
	// FailingSince is when the current run of failures began; zero while
	// loads succeed.
	FailingSince time.Time
	// Version is the version of the last snapshot published.
	Version string
}

// ChangeDetector tells a Poller whether the flag tables may have changed
// since its last load, so that polling an unchanged database costs one
// small query instead of a load. *Watch is one.
type ChangeDetector interface {
	// Changed reports whether the flag tables may have changed since the
	// last load reported to Loaded. The Poller calls it before every load;
	// false with a nil error confirms that the last snapshot loaded is
	// still current. A missed change is a bug; a false "changed" only
	// costs a load.
	Changed(ctx context.Context) (bool, error)
	// Loaded reports that a load which began after the last call of
	// Changed succeeded.
	Loaded()
}

// Notifier is a ChangeDetector that is also told of changes as they
// commit. A Poller runs it for as long as it runs itself.
type Notifier interface {
	ChangeDetector
	// Run calls wake soon after a change commits, until ctx is done. Its
	// error is logged; polling goes on without it.
	Run(ctx context.Context, wake func()) error
}

// PollerConfig configures a Poller.
type PollerConfig struct {
	Loader   DataLoader
	Sink     Sink
	Interval time.Duration
	// Changes, if not nil, is asked before each scheduled load whether
	// anything changed; the load is skipped when nothing did. A Notifier
	// also triggers a load as soon as a change is notified.
	Changes ChangeDetector
	// FullReloadInterval is the safety net of Changes: the tables are
	// read at least this often even when no change was detected (default
	// DefaultFullReloadInterval). It is unused without Changes.
	FullReloadInterval time.Duration
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
	problems prometheus.Gauge
	checks   *prometheus.CounterVec

	// Owned by Run's goroutine.
	current  *engine.Snapshot // the last snapshot loaded
	lastLoad time.Time        // when the last load began

	mu     sync.Mutex
	status Status
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
	if cfg.FullReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("poller: negative full reload interval %v", cfg.FullReloadInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.FullReloadInterval == 0 {
		cfg.FullReloadInterval = DefaultFullReloadInterval
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
	p.problems = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flagproxy_snapshot_flag_problems",
		Help: "Flags of the current snapshot whose library would raise when they are checked (they are decided off).",
	})
	p.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_snapshot_change_checks_total",
		Help: "Checks whether the flag tables changed, by result (unchanged: no load; changed, error: a load follows).",
	}, []string{"result"})
	if cfg.Changes != nil {
		for _, r := range []string{checkUnchanged, checkChanged, checkError} {
			p.checks.WithLabelValues(r)
		}
	}
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{p.loads, p.failures, p.duration, p.problems, p.checks} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Status returns what the poller has seen so far.
func (p *Poller) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// The results counted by flagproxy_snapshot_change_checks_total.
const (
	checkUnchanged = "unchanged"
	checkChanged   = "changed"
	checkError     = "error"
)

// Run loads a snapshot at once, then polls once per interval, until ctx is
// done. Without Changes every poll is a load. With Changes a poll loads
// only when Changes says something changed, when the last load failed, or
// when the last load is FullReloadInterval old; a Notifier's wake-up polls
// at once, or wakeGap after the last load began. Wake-ups that arrive
// meanwhile are coalesced into that one poll. Run returns nil when ctx is
// canceled; load errors never stop it.
func (p *Poller) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	if n, ok := p.cfg.Changes.(Notifier); ok {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			err := n.Run(ctx, func() {
				select {
				case wake <- struct{}{}:
				default:
				}
			})
			if err != nil && ctx.Err() == nil {
				p.log.Error("change notifications stopped; polling goes on", "error", err)
			}
		})
	}
	var lastLogged time.Time
	p.poll(ctx, &lastLogged)
	timer := time.NewTimer(p.offset + p.cfg.Interval)
	defer timer.Stop()
	var soon <-chan time.Time // a wake-up waiting for wakeGap
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			p.poll(ctx, &lastLogged)
			timer.Reset(p.cfg.Interval)
		case <-wake:
			if wait := wakeGap - time.Since(p.lastLoad); wait > 0 {
				if soon == nil {
					soon = time.After(wait)
				}
				continue
			}
			p.poll(ctx, &lastLogged)
		case <-soon:
			soon = nil
			p.poll(ctx, &lastLogged)
		}
	}
}

// poll asks Changes whether anything changed and loads when it did (or
// must); otherwise it confirms the current snapshot.
func (p *Poller) poll(ctx context.Context, lastLogged *time.Time) {
	d := p.cfg.Changes
	if d == nil {
		p.reload(ctx, lastLogged)
		return
	}
	changed, err := d.Changed(ctx)
	switch {
	case err != nil:
		p.checks.WithLabelValues(checkError).Inc()
		if ctx.Err() != nil {
			return
		}
		p.log.Debug("change check failed; loading", "error", err)
	case changed:
		p.checks.WithLabelValues(checkChanged).Inc()
	default:
		p.checks.WithLabelValues(checkUnchanged).Inc()
	}
	p.mu.Lock()
	failing := !p.status.FailingSince.IsZero()
	p.mu.Unlock()
	if err == nil && !changed && !failing && p.current != nil && time.Since(p.lastLoad) < p.cfg.FullReloadInterval {
		p.confirm()
		return
	}
	if p.reload(ctx, lastLogged) {
		d.Loaded()
	}
}

// confirm republishes the current snapshot, which Changes has just found
// current, as freshly loaded.
func (p *Poller) confirm() {
	now := time.Now()
	p.mu.Lock()
	p.status.LastSuccess = now
	p.mu.Unlock()
	p.cfg.Sink.Publish(p.current, now)
}

// reload loads and builds one snapshot and publishes it. It reports
// whether the load succeeded.
func (p *Poller) reload(ctx context.Context, lastLogged *time.Time) bool {
	start := time.Now()
	p.lastLoad = start
	snap, err := p.load(ctx)
	p.loads.Inc()
	p.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			p.failed(err, lastLogged)
		}
		return false
	}
	p.current = snap
	now := time.Now()
	p.mu.Lock()
	failingSince, prev := p.status.FailingSince, p.status.Version
	p.status.LastSuccess, p.status.FailingSince, p.status.Version = now, time.Time{}, snap.Version()
	p.mu.Unlock()
	if !failingSince.IsZero() {
		p.log.Info("snapshot loads recovered", "failed_for", now.Sub(failingSince).Round(time.Millisecond))
		*lastLogged = time.Time{}
	}
	p.cfg.Sink.Publish(snap, now)
	if snap.Version() != prev {
		p.announce(snap)
	}
	return true
}

// load reads the data and builds the snapshot from it.
func (p *Poller) load(ctx context.Context) (*engine.Snapshot, error) {
	data, err := p.cfg.Loader.Load(ctx)
	if err != nil {
		return nil, err
	}
	return engine.NewSnapshot(data)
}

// failed records a failed load and logs it at most once per
// failureLogEvery.
func (p *Poller) failed(err error, lastLogged *time.Time) {
	p.failures.Inc()
	now := time.Now()
	p.mu.Lock()
	if p.status.FailingSince.IsZero() {
		p.status.FailingSince = now
	}
	p.status.LastError, p.status.LastErrorAt = err.Error(), now
	since := p.status.FailingSince
	p.mu.Unlock()
	if lastLogged.IsZero() || now.Sub(*lastLogged) >= failureLogEvery {
		*lastLogged = now
		p.log.Error("snapshot load failed; keeping the last good snapshot",
			"error", err, "failing_for", now.Sub(since).Round(time.Millisecond))
	}
}

// announce logs a snapshot with a new version, its conflicts and the
// problems of its rows, once.
func (p *Poller) announce(snap *engine.Snapshot) {
	p.log.Info("snapshot loaded", "snapshot_version", snap.Version(),
		"flags", snap.NumFlags(), "switches", snap.NumSwitches(), "samples", snap.NumSamples(),
		"conflicts", len(snap.Conflicts()))
	if len(snap.Sources()) == 0 {
		p.log.Warn("no flag tables found (waffle_flag, featureflipper_feature, <app>_featureflag, flags_flagstate): is --database the site's database, and are the apps migrated?")
	}
	for _, c := range snap.Conflicts() {
		p.log.Warn("flag defined by more than one source; it is off until one is removed",
			"flag", c.Name, "sources", c.Sources)
	}
	raising := 0
	for _, pr := range snap.Problems() {
		if pr.Raises {
			raising++
			p.log.Warn("the library would raise when this flag is checked; it is decided off",
				"flag", pr.Flag, "source", pr.Source, "error", pr.Error)
		} else {
			p.log.Warn("flag rule flagproxy cannot reproduce", "flag", pr.Flag, "source", pr.Source, "problem", pr.Error)
		}
	}
	p.problems.Set(float64(raising))
}
