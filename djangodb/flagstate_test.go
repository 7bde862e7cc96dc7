package djangodb

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/flagproxy/flagproxy/engine"
)

// The django-flags part of the loader contract: flags_flagstate as the
// test site's FlagState model creates it (testdata/schema; the model
// reproduces django-flags 5.2's migrations, spec/django-flags.md §1),
// read into engine.Data.FlagStates and merged with the FLAGS setting by
// engine.NewSnapshot (spec §2.2).

// idState is a flags_flagstate row with its id.
type idState struct {
	id    int64
	state engine.FlagState
}

// insertFlagState adds a flags_flagstate row. A zero id lets the database
// number it; the id is returned either way.
func insertFlagState(t testing.TB, db *testDB, id int64, s engine.FlagState) int64 {
	t.Helper()
	var got int64
	var err error
	if id == 0 {
		err = db.W.Get(&got, db.W.Rebind(`INSERT INTO flags_flagstate (name, "condition", "value", required) VALUES (?, ?, ?, ?) RETURNING id`),
			s.Name, s.Condition, s.Value, s.Required)
	} else {
		err = db.W.Get(&got, db.W.Rebind(`INSERT INTO flags_flagstate (id, name, "condition", "value", required) VALUES (?, ?, ?, ?, ?) RETURNING id`),
			id, s.Name, s.Condition, s.Value, s.Required)
	}
	if err != nil {
		t.Fatalf("%s: insert flag state %+v: %v", db.Name, s, err)
	}
	return got
}

// loadData runs one load as the poller does and returns its data and the
// problems it reported.
func loadData(t *testing.T, l *Loader) (engine.Data, []string) {
	t.Helper()
	d, problems, err := l.data(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return d, problems
}

// TestLoaderFlagStates checks that every row of flags_flagstate comes back
// in id order with every field as stored: rows inserted out of id order,
// required true and false, names that differ only in case, several values
// of one condition, non-ASCII text at the columns' full lengths; and that a
// committed UPDATE or DELETE is seen by the next load.
func TestLoaderFlagStates(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		long := strings.Repeat("é", 64)
		rows := []idState{
			{30, engine.FlagState{Name: "beta", Condition: "boolean", Value: "True"}},
			{10, engine.FlagState{Name: "beta", Condition: "parameter", Value: "enable_beta", Required: true}},
			{20, engine.FlagState{Name: "Beta", Condition: "user", Value: "jane.doe"}},
			{40, engine.FlagState{Name: "beta", Condition: "boolean", Value: "False"}},
			{5, engine.FlagState{Name: "café ☕", Condition: "path matches", Value: `^/über/\d+$`, Required: true}},
			{50, engine.FlagState{Name: long, Condition: "after date", Value: strings.Repeat("日", 127)}},
			{45, engine.FlagState{Name: "odd", Condition: "no such condition", Value: ""}},
		}
		for _, r := range rows {
			insertFlagState(t, db, r.id, r.state)
		}
		byID := slices.Clone(rows)
		slices.SortFunc(byID, func(a, b idState) int { return int(a.id - b.id) })
		var want []engine.FlagState
		for _, r := range byID {
			want = append(want, r.state)
		}

		l := db.Loader(t, Config{})
		d, problems := loadData(t, l)
		if len(problems) != 0 {
			t.Errorf("problems = %q, want none", problems)
		}
		if !slices.Contains(d.Sources, engine.SourceDjangoFlags) {
			t.Errorf("sources = %v, want %s among them", d.Sources, engine.SourceDjangoFlags)
		}
		if diff := cmp.Diff(want, d.FlagStates); diff != "" {
			t.Errorf("flag states in id order (-want +got):\n%s", diff)
		}

		// Changes are seen by the next load.
		db.Exec(t, `UPDATE flags_flagstate SET required = ?, "value" = ? WHERE id = ?`, true, "0", 30)
		db.Exec(t, `DELETE FROM flags_flagstate WHERE id = ?`, 5)
		d, _ = loadData(t, l)
		want = slices.DeleteFunc(want, func(s engine.FlagState) bool { return s.Name == "café ☕" })
		for i := range want {
			if want[i].Name == "beta" && want[i].Value == "True" {
				want[i].Required, want[i].Value = true, "0"
			}
		}
		if diff := cmp.Diff(want, d.FlagStates); diff != "" {
			t.Errorf("flag states after UPDATE and DELETE (-want +got):\n%s", diff)
		}

		// An empty table is a source without rows.
		db.Exec(t, `DELETE FROM flags_flagstate`)
		d, _ = loadData(t, l)
		if len(d.FlagStates) != 0 || !slices.Contains(d.Sources, engine.SourceDjangoFlags) {
			t.Errorf("empty table: flag states %v, sources %v; want none, with %s", d.FlagStates, d.Sources, engine.SourceDjangoFlags)
		}
	})
}

// TestFlagStateSchema checks the fixture's table against spec §1: the
// unique constraint on (name, condition, value), which required is not
// part of, and no database default for any column.
func TestFlagStateSchema(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		insertFlagState(t, db, 0, engine.FlagState{Name: "f", Condition: "boolean", Value: "True"})
		insertFlagState(t, db, 0, engine.FlagState{Name: "f", Condition: "boolean", Value: "False"})
		insertFlagState(t, db, 0, engine.FlagState{Name: "F", Condition: "boolean", Value: "True"})
		for _, c := range []struct {
			name, query string
			args        []any
		}{
			{"same name, condition and value, other required",
				`INSERT INTO flags_flagstate (name, "condition", "value", required) VALUES ('f', 'boolean', 'True', ?)`, []any{true}},
			{"no required (no database default)",
				`INSERT INTO flags_flagstate (name, "condition", "value") VALUES ('g', 'boolean', 'True')`, nil},
			{"no condition (no database default)",
				`INSERT INTO flags_flagstate (name, "value", required) VALUES ('g', 'True', ?)`, []any{false}},
		} {
			if _, err := db.W.Exec(db.W.Rebind(c.query), c.args...); err == nil {
				t.Errorf("%s: insert accepted, want it refused", c.name)
			}
		}
	})
}

// TestLoaderFlagStateSources checks that the django-flags source follows its
// table and the Sources setting: detected when flags_flagstate exists,
// absent when it was dropped, an ErrSchema error when named explicitly
// without the table, and left unread when other sources are named.
func TestLoaderFlagStateSources(t *testing.T) {
	for _, c := range []struct {
		name        string
		drop        bool
		sources     []engine.Source
		wantErr     error
		wantSources []engine.Source
		wantStates  int
	}{
		{name: "auto, table present", wantSources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag, engine.SourceDjangoFlags}, wantStates: 1},
		{name: "auto, table dropped", drop: true, wantSources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag}},
		{name: "django-flags only", sources: []engine.Source{engine.SourceDjangoFlags}, wantSources: []engine.Source{engine.SourceDjangoFlags}, wantStates: 1},
		{name: "django-flags only, table dropped", drop: true, sources: []engine.Source{engine.SourceDjangoFlags}, wantErr: ErrSchema},
		{name: "waffle only", sources: []engine.Source{engine.SourceWaffle}, wantSources: []engine.Source{engine.SourceWaffle}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachDatabase(t, true, func(t *testing.T, db *testDB) {
				insertWaffleFlag(t, db, "w", nil)
				insertFlagState(t, db, 0, engine.FlagState{Name: "s", Condition: "boolean", Value: "True"})
				if c.drop {
					db.Exec(t, `DROP TABLE flags_flagstate`)
				}
				l := db.Loader(t, Config{Sources: c.sources})
				d, err := l.Load(t.Context())
				if c.wantErr != nil {
					if !errors.Is(err, c.wantErr) {
						t.Fatalf("Load: err = %v, want %v", err, c.wantErr)
					}
					if !strings.Contains(err.Error(), "flags_flagstate") {
						t.Errorf("error %q does not name the missing table", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(c.wantSources, d.Sources); diff != "" {
					t.Errorf("sources (-want +got):\n%s", diff)
				}
				if len(d.FlagStates) != c.wantStates {
					t.Errorf("flag states = %v, want %d", d.FlagStates, c.wantStates)
				}
				s, err := engine.NewSnapshot(d)
				if err != nil {
					t.Fatal(err)
				}
				_, ok := s.FlagIndex("s")
				if want := slices.Contains(c.wantSources, engine.SourceDjangoFlags); ok != want {
					t.Errorf("snapshot has flag s: %v, want %v", ok, want)
				}
			})
		})
	}
}

// TestLoaderSkipsFlagStatesDjangoCannotLoad stores rows Django could not
// load (text that is not UTF-8, NULLs) and rows SQLite's types let through,
// and checks that the bad rows are skipped and reported by id while the
// others load. (Django itself fails harder: Python's sqlite3 raises for the
// whole SELECT on text that is not UTF-8, so every django-flags check would
// raise; the loader keeps the other rows, as it does for every source.)
func TestLoaderSkipsFlagStatesDjangoCannotLoad(t *testing.T) {
	// What the fixture schema lets a foreign writer store in SQLite
	// (PostgreSQL's types and UTF8 encoding refuse all of it).
	t.Run("sqlite-values", func(t *testing.T) {
		db := newSQLite(t, true)
		db.Exec(t, `INSERT INTO flags_flagstate (id, name, "condition", "value", required) VALUES
			(1, 'ok', 'boolean', 'True', 0),
			(2, CAST(X'6261ff' AS TEXT), 'boolean', 'True', 0),
			(3, 'bad-condition', CAST(X'c0af' AS TEXT), 'True', 0),
			(4, 'bad-value', 'boolean', CAST(X'54727565eda080' AS TEXT), 1),
			(5, 'text-required', 'boolean', 'True', 'false'),
			(6, 'number-required', 'boolean', 'True', 2),
			(7, 'zero-required', 'boolean', 'True', 0.0),
			(8, 12, 'boolean', 'True', 1)`)
		l := db.Loader(t, Config{})
		d, problems := loadData(t, l)
		want := []engine.FlagState{
			{Name: "ok", Condition: "boolean", Value: "True"},
			// Django's SQLite converter passes anything but 0 and 1
			// through, and django-flags tests required for truthiness:
			// the text "false" is required, and so is 2.
			{Name: "text-required", Condition: "boolean", Value: "True", Required: true},
			{Name: "number-required", Condition: "boolean", Value: "True", Required: true},
			{Name: "zero-required", Condition: "boolean", Value: "True"},
			// The varchar column's text affinity stores the number as "12".
			{Name: "12", Condition: "boolean", Value: "True", Required: true},
		}
		if diff := cmp.Diff(want, d.FlagStates); diff != "" {
			t.Errorf("flag states kept (-want +got):\n%s", diff)
		}
		checkProblems(t, problems, "flags_flagstate id 2", "flags_flagstate id 3", "flags_flagstate id 4")
	})

	// NULLs: the fixture's NOT NULL columns refuse them on both databases,
	// so the table is rebuilt without them, as a hand-altered schema might be.
	t.Run("nulls", func(t *testing.T) { eachDatabase(t, true, checkNullFlagStates) })
}

// checkNullFlagStates stores NULL in each column of a flags_flagstate
// rebuilt without NOT NULL.
func checkNullFlagStates(t *testing.T, db *testDB) {
	db.Exec(t, `DROP TABLE flags_flagstate`)
	db.Exec(t, `CREATE TABLE flags_flagstate (id integer PRIMARY KEY, name varchar(64) NULL,
		"condition" varchar(64) NULL, "value" varchar(127) NULL, required boolean NULL)`)
	db.Exec(t, `INSERT INTO flags_flagstate (id, name, "condition", "value", required) VALUES
		(1, NULL, 'boolean', 'True', ?), (2, 'a', NULL, 'True', ?), (3, 'a', 'boolean', NULL, ?),
		(4, 'a', 'boolean', 'True', NULL), (5, 'a', 'boolean', 'True', ?)`, false, false, false, true)
	l := db.Loader(t, Config{})
	d, problems := loadData(t, l)
	if diff := cmp.Diff([]engine.FlagState{{Name: "a", Condition: "boolean", Value: "True", Required: true}}, d.FlagStates); diff != "" {
		t.Errorf("flag states kept (-want +got):\n%s", diff)
	}
	checkProblems(t, problems, "flags_flagstate id 1", "flags_flagstate id 2", "flags_flagstate id 3", "flags_flagstate id 4: NULL required")

	// The snapshot built from what was kept decides the good row.
	s, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := decide(t, s, "a", &engine.Request{}); !got.On {
		t.Errorf("flag a = %+v, want on", got)
	}
}

// checkProblems wants exactly one problem starting with each prefix, in order.
func checkProblems(t *testing.T, problems []string, prefixes ...string) {
	t.Helper()
	if len(problems) != len(prefixes) {
		t.Errorf("problems = %q, want %d (%q)", problems, len(prefixes), prefixes)
		return
	}
	for i, p := range prefixes {
		if !strings.HasPrefix(problems[i], p) {
			t.Errorf("problem %d = %q, want it to start with %q", i, problems[i], p)
		}
	}
}

// decide evaluates the flag called name for r; the flag must exist.
func decide(t *testing.T, s *engine.Snapshot, name string, r *engine.Request) engine.Decision {
	t.Helper()
	i, ok := s.FlagIndex(name)
	if !ok {
		t.Fatalf("flag %q is not in the snapshot", name)
	}
	return s.Evaluate(r, zeroRand{}).Flags[i]
}

// settingConds builds a FLAGS entry from (condition, JSON value, required)
// triples.
func settingConds(t *testing.T, triples ...any) []engine.SettingCondition {
	t.Helper()
	if len(triples)%3 != 0 {
		t.Fatalf("settingConds: %d arguments, want triples", len(triples))
	}
	out := []engine.SettingCondition{}
	for i := 0; i < len(triples); i += 3 {
		name := triples[i].(string)
		value, err := json.Marshal(triples[i+1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, engine.SettingCondition{Condition: &name, Value: value, Required: triples[i+2].(bool)})
	}
	return out
}

// TestFlagStateMergedWithSettings loads flags_flagstate with
// Config.DjangoFlags holding a FLAGS setting that defines some of the same
// flags, and checks the snapshot's decisions against spec §2.2: every
// source's conditions are pooled (no overriding), settings first unless
// FLAG_SOURCES says otherwise, and a flag exists when any source names it.
func TestFlagStateMergedWithSettings(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	anon := func(path, query string) *engine.Request {
		return &engine.Request{Path: path, Query: engine.ParseQuery(query), RawQuery: query, Now: now}
	}
	user := func(name string) *engine.Request {
		r := anon("/", "")
		r.Subject = engine.Subject{UserID: "7", Username: name, Authenticated: true, Active: true}
		return r
	}
	type check struct {
		flag   string
		req    *engine.Request
		on     bool
		reason engine.Reason
	}
	for _, c := range []struct {
		name    string
		rows    []engine.FlagState
		flags   map[string][]engine.SettingCondition
		sources []string // FLAG_SOURCES; nil: the default
		checks  []check
		unknown []string // names the snapshot must not have
		// problem is the start of the problem reported for flag "S"; empty:
		// none for it.
		problem string
	}{
		{
			name:   "settings True, row False: pooled, still on (disable_flag vector)",
			rows:   []engine.FlagState{{Name: "S", Condition: "boolean", Value: "False"}},
			flags:  map[string][]engine.SettingCondition{"S": settingConds(t, "boolean", "True", false)},
			checks: []check{{"S", anon("/", ""), true, engine.ReasonConditions}},
		},
		{
			name:   "settings False, row True: on",
			rows:   []engine.FlagState{{Name: "S", Condition: "boolean", Value: "True"}},
			flags:  map[string][]engine.SettingCondition{"S": settingConds(t, "boolean", false, false)},
			checks: []check{{"S", anon("/", ""), true, engine.ReasonConditions}},
		},
		{
			name:  "required parameter in settings gates the row's boolean",
			rows:  []engine.FlagState{{Name: "S", Condition: "boolean", Value: "True"}},
			flags: map[string][]engine.SettingCondition{"S": settingConds(t, "parameter", "enable_beta", true)},
			checks: []check{
				{"S", anon("/", ""), false, engine.ReasonNoMatch},
				{"S", anon("/", "enable_beta=True"), true, engine.ReasonParameter},
				{"S", anon("/", "enable_beta=true"), false, engine.ReasonNoMatch},
			},
		},
		{
			name:  "required row gates the settings conditions",
			rows:  []engine.FlagState{{Name: "S", Condition: "path matches", Value: "^/beta/", Required: true}},
			flags: map[string][]engine.SettingCondition{"S": settingConds(t, "user", "jane", false, "anonymous", "True", false)},
			checks: []check{
				{"S", anon("/beta/x", ""), true, engine.ReasonConditions},
				{"S", anon("/other", ""), false, engine.ReasonNoMatch},
				{"S", user("jane"), false, engine.ReasonNoMatch}, // path "/"
				{"S", user("bob"), false, engine.ReasonNoMatch},
			},
		},
		{
			name:  "settings-only, DB-only and empty-list flags",
			rows:  []engine.FlagState{{Name: "DBONLY", Condition: "user", Value: "jane"}},
			flags: map[string][]engine.SettingCondition{"SONLY": settingConds(t, "after date", "2017-06-01T12:00Z", false), "EMPTY": {}},
			checks: []check{
				{"SONLY", anon("/", ""), true, engine.ReasonConditions},
				{"DBONLY", user("jane"), true, engine.ReasonConditions},
				{"DBONLY", user("Jane"), false, engine.ReasonNoMatch},
				{"DBONLY", anon("/", ""), false, engine.ReasonNoMatch},
				{"EMPTY", anon("/", ""), false, engine.ReasonNoMatch},
			},
			unknown: []string{"S", "sonly"},
		},
		{
			name:    "FLAG_SOURCES without the settings source ignores FLAGS",
			rows:    []engine.FlagState{{Name: "S", Condition: "boolean", Value: "False"}},
			flags:   map[string][]engine.SettingCondition{"S": settingConds(t, "boolean", "True", false), "SONLY": settingConds(t, "boolean", "True", false)},
			sources: []string{engine.FlagsDatabaseSource},
			checks:  []check{{"S", anon("/", ""), false, engine.ReasonNoMatch}},
			unknown: []string{"SONLY"},
		},
		{
			name:    "settings conditions come first: the settings' exception is raised",
			rows:    []engine.FlagState{{Name: "S", Condition: "path matches", Value: "["}},
			flags:   map[string][]engine.SettingCondition{"S": settingConds(t, "boolean", "maybe", false)},
			checks:  []check{{"S", anon("/", ""), false, engine.ReasonError}},
			problem: "ValueError",
		},
		{
			name:    "FLAG_SOURCES database first: the row's exception is raised",
			rows:    []engine.FlagState{{Name: "S", Condition: "path matches", Value: "["}},
			flags:   map[string][]engine.SettingCondition{"S": settingConds(t, "boolean", "maybe", false)},
			sources: []string{engine.FlagsDatabaseSource, engine.FlagsSettingsSource},
			checks:  []check{{"S", anon("/", ""), false, engine.ReasonError}},
			problem: "re.error",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachDatabase(t, true, func(t *testing.T, db *testDB) {
				for _, r := range c.rows {
					insertFlagState(t, db, 0, r)
				}
				fs := engine.DefaultDjangoFlagsSettings()
				fs.Flags, fs.FlagSources = c.flags, c.sources
				l := db.Loader(t, Config{DjangoFlags: fs})
				data, err := l.Load(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(c.rows, data.FlagStates, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("flag states (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(c.flags, data.DjangoFlags.Flags); diff != "" {
					t.Errorf("FLAGS in the data (-want +got):\n%s", diff)
				}
				s, err := engine.NewSnapshot(data)
				if err != nil {
					t.Fatal(err)
				}
				for _, ch := range c.checks {
					got := decide(t, s, ch.flag, ch.req)
					if got.On != ch.on || got.Reason != ch.reason {
						t.Errorf("%s for path %q query %q user %q: %+v, want on=%v reason %s",
							ch.flag, ch.req.Path, ch.req.RawQuery, ch.req.Subject.Username, got, ch.on, ch.reason)
					}
					if i, _ := s.FlagIndex(ch.flag); s.FlagSource(i) != engine.SourceDjangoFlags {
						t.Errorf("%s: source %s, want %s", ch.flag, s.FlagSource(i), engine.SourceDjangoFlags)
					}
				}
				for _, name := range c.unknown {
					if _, ok := s.FlagIndex(name); ok {
						t.Errorf("flag %q is in the snapshot; no source defines it", name)
					}
				}
				var problem string
				for _, p := range s.Problems() {
					if p.Source == engine.SourceDjangoFlags && p.Flag == "S" {
						problem = p.Error
					}
				}
				if c.problem == "" && problem != "" || !strings.HasPrefix(problem, c.problem) {
					t.Errorf("problem of S = %q, want one starting with %q", problem, c.problem)
				}
			})
		})
	}
}
