package djangodb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// WatchConfig configures a Watch.
type WatchConfig struct {
	// DB is the database the Loader reads, as Open returns it, and
	// Dialect its kind.
	DB      *sqlx.DB
	Dialect Dialect
	// Tables is the Loader's configuration: it says which tables hold
	// flags. Its QueryTimeout bounds each check.
	Tables Config
	// Notify makes a Watch on PostgreSQL LISTEN on NotifyChannel, where
	// flagproxy_django's triggers announce every committed change of a
	// flag table. Ignored on SQLite.
	Notify bool
	// NotifyDSN is the connection string of the listening connection
	// (a lib/pq DSN, such as Target.DSN); required with Notify on
	// PostgreSQL. It may differ from DB's, to bypass a pooler that cannot
	// carry LISTEN.
	NotifyDSN string
	// PingInterval is how often the listening connection is checked
	// (default DefaultInterval); use the poll interval.
	PingInterval time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// Watch tells a Poller cheaply whether the flag tables changed since its
// last load. On SQLite it asks PRAGMA data_version on one connection it
// keeps (the number changes whenever another connection commits). On
// PostgreSQL it reads one fingerprint of the flag tables (see
// fingerprintQuery) or, while notifications are active (see Run), only the
// tables' catalog entries: a notification, not a poll, then says that rows
// changed.
type Watch struct {
	db      *sqlx.DB
	dialect Dialect
	tables  []string // every table the Loader may read
	// catalogQuery is catalogQuery(tables), on PostgreSQL.
	catalogQuery string
	timeout      time.Duration
	notify       bool
	notifyDSN    string
	ping         time.Duration
	log          *slog.Logger

	active        prometheus.Gauge
	notifications prometheus.Counter

	// mu guards what the listener (Run) and the poller (Changed) share.
	mu         sync.Mutex
	lis        listenState
	untrigger  []string // flag tables without the trigger, at the last check
	triggersOK bool     // untrigger is known and empty
	isActive   bool     // the last state logged
	reason     string   // why notifications are inactive, as logged

	// Owned by the poller's goroutine (Changed, Loaded, Close).
	connMu    sync.Mutex
	conn      *sql.Conn // SQLite: the connection PRAGMA data_version is read on
	connGen   int
	present   []pgTable // PostgreSQL: flag tables found at the last check
	pending   string    // token of the last Changed
	committed string    // token of the last load reported to Loaded
}

// NewWatch checks cfg and returns a Watch.
func NewWatch(cfg WatchConfig) (*Watch, error) {
	var errs []error
	if cfg.DB == nil {
		errs = append(errs, errors.New("watch: no database"))
	}
	if cfg.Dialect != SQLite && cfg.Dialect != Postgres {
		errs = append(errs, fmt.Errorf("watch: unsupported dialect %q", cfg.Dialect))
	}
	notify := cfg.Notify && cfg.Dialect == Postgres
	if notify && cfg.NotifyDSN == "" {
		errs = append(errs, errors.New("watch: notifications need a DSN"))
	}
	if cfg.PingInterval < 0 {
		errs = append(errs, fmt.Errorf("watch: negative ping interval %v", cfg.PingInterval))
	}
	tables, err := cfg.Tables.flagTables()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	w := &Watch{
		db:        cfg.DB,
		dialect:   cfg.Dialect,
		tables:    tables,
		timeout:   cmp.Or(cfg.Tables.QueryTimeout, DefaultQueryTimeout),
		notify:    notify,
		notifyDSN: cfg.NotifyDSN,
		ping:      cmp.Or(cfg.PingInterval, DefaultInterval),
		log:       cfg.Logger,
	}
	if w.dialect == Postgres {
		w.catalogQuery = catalogQuery(tables)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.active = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flagproxy_snapshot_notify_active",
		Help: "1 while PostgreSQL change notifications (LISTEN " + NotifyChannel + ", flagproxy_django's triggers) cover every flag table, so that changes load at once; 0 while changes are found by polling.",
	})
	w.notifications = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_snapshot_notifications_total",
		Help: "Change notifications received from PostgreSQL.",
	})
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{w.active, w.notifications} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return w, nil
}

// flagTables lists every table a Loader with this configuration may read,
// whether or not it exists.
func (c Config) flagTables() ([]string, error) {
	t, err := c.resolve()
	if err != nil {
		return nil, err
	}
	want := func(s engine.Source) bool { return c.Sources == nil || slices.Contains(c.Sources, s) }
	var out []string
	if want(engine.SourceWaffle) {
		out = append(out, t.flag, t.flag+"_users", t.flag+"_groups", t.switches, t.samples)
	}
	if want(engine.SourceFeatureFlipper) {
		out = append(out, "featureflipper_feature")
	}
	if want(engine.SourceFeatureFlag) {
		out = append(out, t.model, t.model+"_allowed_users")
	}
	if want(engine.SourceDjangoFlags) {
		out = append(out, flagStateTable)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Changed implements ChangeDetector.
func (w *Watch) Changed(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	w.connMu.Lock()
	defer w.connMu.Unlock()
	var token string
	var err error
	if w.dialect == SQLite {
		token, err = w.dataVersion(ctx)
	} else {
		token, err = w.postgresToken(ctx)
	}
	w.pending = token
	if err != nil {
		return true, err
	}
	return token != w.committed, nil
}

// Loaded implements ChangeDetector.
func (w *Watch) Loaded() {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	w.committed = w.pending
}

// Close releases the connection a Watch keeps on SQLite.
func (w *Watch) Close() error {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// dataVersion returns a token of SQLite's PRAGMA data_version, read on the
// connection the Watch keeps: the value is only comparable on one
// connection, so the token names the connection too.
func (w *Watch) dataVersion(ctx context.Context) (string, error) {
	if w.conn == nil {
		c, err := w.db.Conn(ctx)
		if err != nil {
			return "", fmt.Errorf("data_version: %w", err)
		}
		w.conn = c
		w.connGen++
	}
	var v int64
	if err := w.conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		w.conn.Close()
		w.conn = nil
		return "", fmt.Errorf("data_version: %w", err)
	}
	return "dv:" + strconv.Itoa(w.connGen) + ":" + strconv.FormatInt(v, 10), nil
}

// Run implements Notifier: on PostgreSQL with Notify it keeps a LISTEN
// connection (see listen.go); otherwise it returns at once.
func (w *Watch) Run(ctx context.Context, wake func()) error {
	if !w.notify {
		return nil
	}
	return w.listen(ctx, wake)
}

// setTriggers records which existing flag tables lack the trigger, as the
// last check found, and re-evaluates the notification state.
func (w *Watch) setTriggers(missing []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.untrigger, w.triggersOK = missing, len(missing) == 0
	w.evaluateLocked()
}

// notifying reports whether notifications are active, and the listener
// epoch and notification count a token in that mode is made of.
func (w *Watch) notifying() (ok bool, epoch, gen uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evaluateLocked()
	return w.isActive, w.lis.epoch, w.lis.gen
}

// evaluateLocked works out whether notifications are active, sets the
// gauge, and logs every change of state or reason once.
func (w *Watch) evaluateLocked() {
	if !w.notify {
		return
	}
	listening, problem := w.lis.healthy(w.ping)
	active := listening && w.triggersOK
	reason := problem
	if reason == "" && len(w.untrigger) > 0 {
		reason = "notification triggers missing on " + strings.Join(w.untrigger, ", ") +
			": add flagproxy_django to INSTALLED_APPS and run manage.py migrate, or run manage.py flagproxy_triggers"
	}
	if active {
		reason = ""
	}
	if active != w.isActive || reason != w.reason {
		switch {
		case active:
			w.log.Info("change notifications active: a committed change of a flag table loads at once",
				"channel", NotifyChannel)
		case reason != "":
			w.log.Warn("change notifications unavailable; polling the flag tables' fingerprint instead",
				"reason", reason, "interval", w.ping)
		}
	}
	w.isActive, w.reason = active, reason
	if active {
		w.active.Set(1)
	} else {
		w.active.Set(0)
	}
}
