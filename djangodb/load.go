package djangodb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// ErrSchema is wrapped by load errors caused by the database's schema: a
// source named explicitly whose tables are missing, or a table that lacks a
// column Django's migrations create.
var ErrSchema = errors.New("unexpected schema")

// ErrSourceGone is wrapped by the load error of a source whose table was
// there in an earlier load and is missing now (under automatic detection):
// the last snapshot stays in use rather than losing the source's flags.
var ErrSourceGone = errors.New("flag table disappeared")

// Defaults for Config.
const (
	DefaultFeatureFlagApp  = "flags"
	DefaultWaffleFlagModel = "waffle.Flag"
	DefaultQueryTimeout    = 5 * time.Second
)

// Config says where a Django site keeps its flags.
type Config struct {
	// Sources limits loading to these sources, which must then exist. Nil
	// means: every source whose main table is present.
	Sources []engine.Source
	// WaffleFlagModel, WaffleSwitchModel and WaffleSampleModel are
	// WAFFLE_FLAG_MODEL and friends ("app_label.ModelName"; default
	// waffle.Flag, waffle.Switch, waffle.Sample). A model's table is
	// <app_label>_<modelname>, unless WaffleFlagTable (Meta.db_table) names
	// the flag model's.
	WaffleFlagModel   string
	WaffleFlagTable   string
	WaffleSwitchModel string
	WaffleSampleModel string
	// FeatureFlagApp is the app label of the FeatureFlag model.
	FeatureFlagApp string
	// Waffle holds the WAFFLE_* settings that go into every snapshot.
	Waffle engine.WaffleSettings
	// DjangoFlags holds django-flags' FLAGS and the settings its
	// conditions depend on; the zero value means
	// engine.DefaultDjangoFlagsSettings.
	DjangoFlags engine.DjangoFlagsSettings
	// AuthUserModel and UsernameField name the user model's table and
	// USERNAME_FIELD column, for the usernames of admin log entries
	// (default auth.User and username).
	AuthUserModel string
	UsernameField string
	// QueryTimeout bounds one whole load.
	QueryTimeout time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// tables is where a Config says the flags are.
type tables struct {
	flag, flagCol, switches, samples, model, modelCol string
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// resolve applies the defaults and works out the table names, reporting
// every problem at once.
func (c *Config) resolve() (tables, error) {
	c.WaffleFlagModel = cmp.Or(c.WaffleFlagModel, DefaultWaffleFlagModel)
	c.WaffleSwitchModel = cmp.Or(c.WaffleSwitchModel, "waffle.Switch")
	c.WaffleSampleModel = cmp.Or(c.WaffleSampleModel, "waffle.Sample")
	c.FeatureFlagApp = cmp.Or(c.FeatureFlagApp, DefaultFeatureFlagApp)
	c.AuthUserModel = cmp.Or(c.AuthUserModel, "auth.User")
	c.UsernameField = cmp.Or(c.UsernameField, "username")
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.Waffle == (engine.WaffleSettings{}) {
		c.Waffle = engine.DefaultWaffleSettings()
	}
	if c.DjangoFlags.IsZero() {
		c.DjangoFlags = engine.DefaultDjangoFlagsSettings()
	}
	var errs []error
	model := func(setting, v string) (table, name string) {
		app, name, ok := strings.Cut(v, ".")
		if !ok || app == "" || name == "" || strings.Contains(name, ".") {
			errs = append(errs, fmt.Errorf("%s %q: want \"app_label.ModelName\"", setting, v))
		}
		return strings.ToLower(app + "_" + name), strings.ToLower(name)
	}
	var t tables
	var flagModel string
	t.flag, flagModel = model("WAFFLE_FLAG_MODEL", c.WaffleFlagModel)
	t.flag = cmp.Or(c.WaffleFlagTable, t.flag)
	t.flagCol = flagModel + "_id"
	t.switches, _ = model("WAFFLE_SWITCH_MODEL", c.WaffleSwitchModel)
	t.samples, _ = model("WAFFLE_SAMPLE_MODEL", c.WaffleSampleModel)
	t.model = strings.ToLower(c.FeatureFlagApp) + "_featureflag"
	t.modelCol = "featureflag_id"
	for _, name := range []string{t.flag, t.switches, t.samples, t.model} {
		if !identifier.MatchString(name) {
			errs = append(errs, fmt.Errorf("table name %q is not a plain SQL identifier", name))
		}
	}
	if _, err := userTablesFor(c.AuthUserModel); err != nil {
		errs = append(errs, err)
	}
	if !identifier.MatchString(c.UsernameField) {
		errs = append(errs, fmt.Errorf("username field %q is not a plain column name", c.UsernameField))
	}
	for _, s := range c.Sources {
		if !engine.IsKnownSource(s) {
			errs = append(errs, fmt.Errorf("unknown source %q (known: %s)", s, knownSources()))
		}
	}
	if _, err := engine.NewSnapshot(engine.Data{Sources: engine.KnownSources(), Waffle: c.Waffle, DjangoFlags: c.DjangoFlags}); err != nil {
		errs = append(errs, err)
	}
	return t, errors.Join(errs...)
}

// Validate reports every problem of c at once, without touching a database.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// Loader reads snapshots from one database.
type Loader struct {
	db      *sqlx.DB
	dialect Dialect
	cfg     Config
	log     *slog.Logger
	t       tables

	skipped prometheus.Gauge

	mu           sync.Mutex
	lastProblems string
	// seen holds the sources an earlier load found.
	seen map[engine.Source]bool
	// adminSeen is the last django_admin_log id read, once adminStarted;
	// adminErr is the last error reading it, logged once.
	adminSeen    int64
	adminStarted bool
	adminErr     string
}

// NewLoader checks cfg and returns a Loader for db.
func NewLoader(db *sqlx.DB, dialect Dialect, cfg Config) (*Loader, error) {
	t, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	l := &Loader{db: db, dialect: dialect, cfg: cfg, log: cfg.Logger, t: t}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer != nil {
		l.skipped = prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flagproxy_snapshot_rows_skipped",
			Help: "Rows left out of the last snapshot because Django could not load them either.",
		})
		if err := cfg.Registerer.Register(l.skipped); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return l, nil
}

// tx is the part of *sqlx.Tx a load uses.
type tx interface {
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}

// Load reads every source in one read-only transaction and returns its
// rows with the configured settings. Rows that Django itself could not load
// are left out and logged (once per distinct set of problems).
func (l *Loader) Load(ctx context.Context) (engine.Data, error) {
	data, problems, err := l.data(ctx)
	if err != nil {
		return engine.Data{}, err
	}
	l.report(problems)
	l.mu.Lock()
	if l.seen == nil {
		l.seen = make(map[engine.Source]bool)
	}
	for _, s := range data.Sources {
		l.seen[s] = true
	}
	l.mu.Unlock()
	return data, nil
}

func (l *Loader) wasSeen(s engine.Source) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[s]
}

// data reads the rows of every source in one read-only transaction.
func (l *Loader) data(ctx context.Context) (engine.Data, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.QueryTimeout)
	defer cancel()
	t, err := l.begin(ctx)
	if err != nil {
		return engine.Data{}, nil, fmt.Errorf("begin: %w", err)
	}
	defer t.Rollback() //nolint:errcheck // read-only: nothing to keep
	data, problems, err := l.read(ctx, t)
	data.Waffle, data.DjangoFlags = l.cfg.Waffle, l.cfg.DjangoFlags
	return data, problems, err
}

// begin starts the read-only transaction of one load: on PostgreSQL
// READ ONLY with REPEATABLE READ, so every table is read at one moment. On
// SQLite the connection itself is read-only (mode=ro) and go-sqlite3
// ignores both options; a deferred transaction reads one consistent state.
func (l *Loader) begin(ctx context.Context) (*sqlx.Tx, error) {
	if l.dialect == SQLite {
		return l.db.BeginTxx(ctx, nil)
	}
	return l.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
}

func (l *Loader) read(ctx context.Context, t tx) (engine.Data, []string, error) {
	var d engine.Data
	var problems []string
	tables, err := l.tables(ctx, t)
	if err != nil {
		return d, nil, fmt.Errorf("list tables: %w", err)
	}
	want := func(s engine.Source, main string) (bool, error) {
		explicit := l.cfg.Sources != nil
		if explicit && !slices.Contains(l.cfg.Sources, s) {
			return false, nil
		}
		if _, ok := tables[main]; ok {
			d.Sources = append(d.Sources, s)
			return true, nil
		}
		if explicit {
			return false, fmt.Errorf("%w: source %s is configured but table %s does not exist", ErrSchema, s, main)
		}
		if l.wasSeen(s) {
			return false, fmt.Errorf("%w: table %s of source %s is missing; keeping the last snapshot until it returns or flagproxy restarts (name the sources with --sources to drop it)", ErrSourceGone, main, s)
		}
		return false, nil
	}

	if ok, err := want(engine.SourceWaffle, l.t.flag); err != nil {
		return d, nil, err
	} else if ok {
		p, err := l.readWaffle(ctx, t, tables, &d)
		if err != nil {
			return d, nil, err
		}
		problems = append(problems, p...)
	}
	if ok, err := want(engine.SourceFeatureFlipper, "featureflipper_feature"); err != nil {
		return d, nil, err
	} else if ok {
		var rows []featureRow
		desc, err := l.infoColumns(ctx, t, "featureflipper_feature", "description")
		if err != nil {
			return d, nil, err
		}
		if err := t.SelectContext(ctx, &rows, `SELECT name, enabled, `+desc+` FROM featureflipper_feature ORDER BY id`); err != nil {
			return d, nil, readErr("featureflipper_feature", err)
		}
		for _, r := range rows {
			if bad := cmp.Or(r.Name.Invalid, tooLong(r.Name, maxFeatureName)); bad != "" {
				problems = append(problems, "featureflipper_feature: "+bad)
				continue
			}
			d.Features = append(d.Features, engine.Feature{Name: r.Name.String, Enabled: r.Enabled.Bool, Description: r.Description.String})
		}
	}
	if ok, err := want(engine.SourceFeatureFlag, l.t.model); err != nil {
		return d, nil, err
	} else if ok {
		p, err := l.readFeatureFlags(ctx, t, tables, &d)
		if err != nil {
			return d, nil, err
		}
		problems = append(problems, p...)
	}
	if ok, err := want(engine.SourceDjangoFlags, flagStateTable); err != nil {
		return d, nil, err
	} else if ok {
		p, err := readFlagStates(ctx, t, &d)
		if err != nil {
			return d, nil, err
		}
		problems = append(problems, p...)
	}
	l.readAdminLog(ctx, t, tables, &d)
	return d, problems, nil
}

// flagStateTable is django-flags' FlagState table.
const flagStateTable = "flags_flagstate"

// The max_length of the name columns: a longer value is a row Django's
// own forms could never have written, and is skipped so that one huge
// name cannot make every header too large.
const (
	maxWaffleName     = 100 // waffle's flags, switches and samples
	maxFeatureName    = 40  // featureflipper_feature.name
	maxFeatureFlagKey = 50  // FeatureFlag.key (SlugField)
	maxFlagStateName  = 64  // flags_flagstate.name and .condition
	maxFlagStateValue = 127 // flags_flagstate.value
)

// readFlagStates reads flags_flagstate whole, as django-flags does on every
// check. The library does not order the rows; ordering by id keeps the
// snapshot version steady, and no decision depends on the order.
func readFlagStates(ctx context.Context, t tx, d *engine.Data) ([]string, error) {
	var rows []flagStateRow
	q := `SELECT id, name, "condition", "value", required FROM ` + flagStateTable + ` ORDER BY id`
	if err := t.SelectContext(ctx, &rows, q); err != nil {
		return nil, readErr(flagStateTable, err)
	}
	var problems []string
	for _, r := range rows {
		bad := cmp.Or(r.Name.Invalid, tooLong(r.Name, maxFlagStateName), r.Condition.Invalid,
			tooLong(r.Condition, maxFlagStateName), r.Value.Invalid, tooLong(r.Value, maxFlagStateValue))
		if bad == "" && !r.Required.Valid {
			bad = "NULL required"
		}
		if bad != "" {
			problems = append(problems, fmt.Sprintf("%s id %d: %s", flagStateTable, r.ID, bad))
			continue
		}
		d.FlagStates = append(d.FlagStates, engine.FlagState{
			Name: r.Name.String, Condition: r.Condition.String, Value: r.Value.String, Required: r.Required.Bool,
		})
	}
	return problems, nil
}

// knownSources lists the sources a Config may name.
func knownSources() string {
	var names []string
	for _, s := range engine.KnownSources() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

func (l *Loader) readWaffle(ctx context.Context, t tx, tables map[string]struct{}, d *engine.Data) ([]string, error) {
	var rows []waffleFlagRow
	flagInfo, err := l.infoColumns(ctx, t, l.t.flag, waffleInfo...)
	if err != nil {
		return nil, err
	}
	q := `SELECT id, name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, ` + flagInfo + ` FROM ` + quote(l.t.flag) + ` ORDER BY id`
	if err := t.SelectContext(ctx, &rows, q); err != nil {
		return nil, readErr(l.t.flag, err)
	}
	users, problems, err := l.links(ctx, t, tables, l.t.flag+"_users", l.t.flagCol)
	if err != nil {
		return nil, err
	}
	groups, p, err := l.links(ctx, t, tables, l.t.flag+"_groups", l.t.flagCol)
	if err != nil {
		return nil, err
	}
	problems = append(problems, p...)
	for _, r := range rows {
		bad := cmp.Or(r.Name.Invalid, tooLong(r.Name, maxWaffleName), r.Languages.Invalid,
			r.Percent.inRange(3)) // numeric(3,1)
		if bad != "" {
			problems = append(problems, fmt.Sprintf("%s id %d: %s", l.t.flag, r.ID, bad))
			continue
		}
		f := engine.WaffleFlag{
			Name:          r.Name.String,
			Testing:       r.Testing.Bool,
			Superusers:    r.Superusers.Bool,
			Staff:         r.Staff.Bool,
			Authenticated: r.Authenticated.Bool,
			Rollout:       r.Rollout.Bool,
			Languages:     r.Languages.String,
			Users:         users[r.ID],
			Info:          info(r.Note, r.Created, r.Modified),
		}
		if r.Everyone.Valid {
			f.Everyone = engine.TristateOf(r.Everyone.Bool)
		}
		if r.Percent.Valid {
			f.Percent = engine.PercentOf(int32(r.Percent.Tenths))
		}
		for _, g := range groups[r.ID] {
			// group ids are integers: auth_group's primary key is an AutoField.
			if id, err := strconv.ParseInt(g, 10, 64); err == nil {
				f.Groups = append(f.Groups, id)
			}
		}
		d.WaffleFlags = append(d.WaffleFlags, f)
	}
	if err := readGroupNames(ctx, t, tables, d); err != nil {
		return nil, err
	}

	if _, ok := tables[l.t.switches]; ok {
		var rows []switchRow
		cols, err := l.infoColumns(ctx, t, l.t.switches, waffleInfo...)
		if err != nil {
			return nil, err
		}
		if err := t.SelectContext(ctx, &rows, `SELECT name, active, `+cols+` FROM `+quote(l.t.switches)+` ORDER BY id`); err != nil {
			return nil, readErr(l.t.switches, err)
		}
		for _, r := range rows {
			if bad := cmp.Or(r.Name.Invalid, tooLong(r.Name, maxWaffleName)); bad != "" {
				problems = append(problems, l.t.switches+": "+bad)
				continue
			}
			d.Switches = append(d.Switches, engine.Switch{Name: r.Name.String, Active: r.Active.Bool, Info: info(r.Note, r.Created, r.Modified)})
		}
	}
	if _, ok := tables[l.t.samples]; ok {
		var rows []sampleRow
		cols, err := l.infoColumns(ctx, t, l.t.samples, waffleInfo...)
		if err != nil {
			return nil, err
		}
		if err := t.SelectContext(ctx, &rows, `SELECT name, percent, `+cols+` FROM `+quote(l.t.samples)+` ORDER BY id`); err != nil {
			return nil, readErr(l.t.samples, err)
		}
		for _, r := range rows {
			bad := cmp.Or(r.Name.Invalid, tooLong(r.Name, maxWaffleName), r.Percent.inRange(4)) // numeric(4,1)
			if bad == "" && !r.Percent.Valid {
				bad = "NULL percent"
			}
			if bad != "" {
				problems = append(problems, fmt.Sprintf("%s %q: %s", l.t.samples, r.Name.String, bad))
				continue
			}
			d.Samples = append(d.Samples, engine.Sample{Name: r.Name.String, Percent: engine.PercentOf(int32(r.Percent.Tenths)), Info: info(r.Note, r.Created, r.Modified)})
		}
	}
	return problems, nil
}

func (l *Loader) readFeatureFlags(ctx context.Context, t tx, tables map[string]struct{}, d *engine.Data) ([]string, error) {
	var rows []featureFlagRow
	if err := t.SelectContext(ctx, &rows, `SELECT id, "key", enabled, rollout_percent FROM `+quote(l.t.model)+` ORDER BY id`); err != nil {
		return nil, readErr(l.t.model, err)
	}
	allowed, problems, err := l.links(ctx, t, tables, l.t.model+"_allowed_users", l.t.modelCol)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		bad := cmp.Or(r.Key.Invalid, tooLong(r.Key, maxFeatureFlagKey), r.RolloutPercent.Invalid)
		if bad != "" {
			problems = append(problems, fmt.Sprintf("%s id %d: %s", l.t.model, r.ID, bad))
			continue
		}
		d.FeatureFlags = append(d.FeatureFlags, engine.FeatureFlag{
			Key:            r.Key.String,
			Enabled:        r.Enabled.Bool,
			RolloutPercent: r.RolloutPercent.Int,
			AllowedUsers:   allowed[r.ID],
		})
	}
	return problems, nil
}

// links reads an M2M table: owner id → target keys. The target column is
// the one that is neither id nor the owner column, so custom user models
// (whose column is <model>_id) work. A missing table means no links.
// A row whose keys no row of either table could have is left out and
// reported, as Django's join would never find it.
func (l *Loader) links(ctx context.Context, t tx, tables map[string]struct{}, table, ownerCol string) (map[int64][]string, []string, error) {
	if _, ok := tables[table]; !ok {
		return nil, nil, nil
	}
	cols, err := l.columns(ctx, t, table)
	if err != nil {
		return nil, nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	var target string
	for _, c := range cols {
		if c != "id" && c != ownerCol {
			if target != "" {
				return nil, nil, fmt.Errorf("%w: %s has more than one link column besides %s", ErrSchema, table, ownerCol)
			}
			target = c
		}
	}
	if !slices.Contains(cols, ownerCol) || target == "" || !identifier.MatchString(target) {
		return nil, nil, fmt.Errorf("%w: %s lacks the columns %s and <target>_id (has %s)", ErrSchema, table, ownerCol, strings.Join(cols, ", "))
	}
	var rows []linkRow
	q := fmt.Sprintf(`SELECT %s AS owner, %s AS target FROM %s ORDER BY 1, 2`, quote(ownerCol), quote(target), quote(table))
	if err := t.SelectContext(ctx, &rows, q); err != nil {
		return nil, nil, readErr(table, err)
	}
	out := make(map[int64][]string)
	var problems []string
	for _, r := range rows {
		if bad := cmp.Or(r.Owner.Invalid, r.Target.Invalid); bad != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", table, bad))
			continue
		}
		out[r.Owner.Int] = append(out[r.Owner.Int], r.Target.Key)
	}
	return out, problems, nil
}

func (l *Loader) tables(ctx context.Context, t tx) (map[string]struct{}, error) {
	q := `SELECT name FROM sqlite_master WHERE type IN ('table', 'view')`
	if l.dialect == Postgres {
		q = `SELECT c.relname FROM pg_catalog.pg_class c
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY (current_schemas(false))`
	}
	var names []string
	if err := t.SelectContext(ctx, &names, q); err != nil {
		return nil, err
	}
	out := make(map[string]struct{}, len(names))
	for _, n := range names {
		out[n] = struct{}{}
	}
	return out, nil
}

func (l *Loader) columns(ctx context.Context, t tx, table string) ([]string, error) {
	return tableColumns(ctx, t, l.dialect, table)
}

// report logs the rows a load skipped, once per distinct set, and sets the
// gauge.
func (l *Loader) report(problems []string) {
	if l.skipped != nil {
		l.skipped.Set(float64(len(problems)))
	}
	joined := strings.Join(problems, "\n")
	l.mu.Lock()
	changed := joined != l.lastProblems
	l.lastProblems = joined
	l.mu.Unlock()
	if changed {
		for _, p := range problems {
			l.log.Warn("row skipped: Django cannot load it either", "problem", p)
		}
	}
}

func quote(ident string) string { return `"` + ident + `"` }

func readErr(table string, err error) error {
	return fmt.Errorf("read %s: %w", table, err)
}
