package djangodb

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/flagproxy/flagproxy/engine"
)

// TestLoaderContract runs the loader contract against SQLite and, when
// configured, PostgreSQL, both with the schema Django's migrations create.
func TestLoaderContract(t *testing.T) {
	eachDatabase(t, true, runLoaderContract)
}

func runLoaderContract(t *testing.T, db *testDB) {
	ctx := t.Context()
	alice := insertUser(t, db, "alice")
	bob := insertUser(t, db, "bob")
	beta := insertGroup(t, db, "beta")

	everyone := insertWaffleFlag(t, db, "f_everyone", map[string]any{"everyone": true, "note": "on for all"})
	insertWaffleFlag(t, db, "f_default", nil)
	insertWaffleFlag(t, db, "f_pct", map[string]any{
		"percent": "12.5", "rollout": true, "testing": true, "languages": " en , fr", "everyone": false,
	})
	users := insertWaffleFlag(t, db, "f_users", map[string]any{"superusers": false, "staff": true, "authenticated": true})
	db.Exec(t, `INSERT INTO waffle_flag_users (flag_id, user_id) VALUES (?, ?), (?, ?)`, users, bob, users, alice)
	db.Exec(t, `INSERT INTO waffle_flag_groups (flag_id, group_id) VALUES (?, ?)`, users, beta)
	db.Exec(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES
		('s_on', ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), ('s_off', ?, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, true, false)
	db.Exec(t, `INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES ('smp', 50.0, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
	db.Exec(t, `INSERT INTO featureflipper_feature (name, description, enabled) VALUES ('search', '', ?), ('beta-ui', 'x', ?)`, true, false)
	var ff int64
	if err := db.W.Get(&ff, db.W.Rebind(`INSERT INTO flags_featureflag ("key", enabled, rollout_percent) VALUES ('new-checkout', ?, 30) RETURNING id`), true); err != nil {
		t.Fatal(err)
	}
	db.Exec(t, `INSERT INTO flags_featureflag (key, enabled, rollout_percent) VALUES ('off-flag', ?, 150)`, false)
	db.Exec(t, `INSERT INTO flags_featureflag_allowed_users (featureflag_id, user_id) VALUES (?, ?)`, ff, alice)

	l := db.Loader(t, Config{})
	got, problems, err := l.data(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("problems = %q, want none", problems)
	}
	a, b := strconv.FormatInt(alice, 10), strconv.FormatInt(bob, 10)
	want := engine.Data{
		Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag, engine.SourceDjangoFlags},
		WaffleFlags: []engine.WaffleFlag{
			{Name: "f_everyone", Everyone: engine.Yes, Superusers: true, Info: engine.Info{Note: "on for all"}},
			{Name: "f_default", Superusers: true},
			{Name: "f_pct", Everyone: engine.No, Percent: engine.PercentOf(125), Testing: true, Superusers: true, Rollout: true, Languages: " en , fr"},
			{Name: "f_users", Staff: true, Authenticated: true, Users: sortedIDs(a, b), Groups: []int64{beta}},
		},
		Switches:     []engine.Switch{{Name: "s_on", Active: true}, {Name: "s_off"}},
		Samples:      []engine.Sample{{Name: "smp", Percent: engine.PercentOf(500)}},
		Features:     []engine.Feature{{Name: "search", Enabled: true}, {Name: "beta-ui", Description: "x"}},
		FeatureFlags: []engine.FeatureFlag{{Key: "new-checkout", Enabled: true, RolloutPercent: 30, AllowedUsers: []string{a}}, {Key: "off-flag", RolloutPercent: 150}},
		Waffle:       engine.DefaultWaffleSettings(),
		DjangoFlags:  engine.DefaultDjangoFlagsSettings(),
		Groups:       []engine.Group{{ID: beta, Name: "beta"}},
	}
	// The dates are the database's CURRENT_TIMESTAMP: checked apart.
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.Comparer(sameLocation), cmpopts.IgnoreFields(engine.Info{}, "Created", "Modified")); diff != "" {
		t.Errorf("loaded data mismatch (-want +got):\n%s", diff)
	}
	for _, in := range []engine.Info{got.WaffleFlags[0].Info, got.Switches[0].Info, got.Samples[0].Info} {
		if d := time.Since(in.Modified); in.Created.IsZero() || d < -25*time.Hour || d > 25*time.Hour {
			t.Errorf("created %v, modified %v: want the time of the INSERT", in.Created, in.Modified)
		}
	}

	// The snapshot version follows the content: the same rows give the
	// same version, a committed UPDATE a new one.
	s1 := loadSnapshot(t, l)
	s2 := loadSnapshot(t, l)
	if s1.Version() != s2.Version() {
		t.Errorf("unchanged rows: version %s then %s", s1.Version(), s2.Version())
	}
	db.Exec(t, `UPDATE waffle_flag SET everyone = ? WHERE id = ?`, false, everyone)
	s3 := loadSnapshot(t, l)
	if s3.Version() == s1.Version() {
		t.Errorf("after UPDATE the version is still %s", s3.Version())
	}
	i, ok := s3.FlagIndex("f_everyone")
	if !ok {
		t.Fatal("f_everyone missing")
	}
	if d := s3.Evaluate(&engine.Request{}, zeroRand{}).Flags[i]; d.On {
		t.Errorf("f_everyone after setting everyone=false: %+v", d)
	}

	// Removing a user link is seen too.
	db.Exec(t, `DELETE FROM waffle_flag_users WHERE user_id = ?`, bob)
	got, _, err = l.data(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{a}, got.WaffleFlags[3].Users); diff != "" {
		t.Errorf("users after delete (-want +got):\n%s", diff)
	}
}

// loadSnapshot loads through l and builds the snapshot, as the poller does.
func loadSnapshot(t *testing.T, l *Loader) *engine.Snapshot {
	t.Helper()
	data, err := l.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sortedIDs(ids ...string) []string {
	// The loader orders links by the numeric id.
	out := append([]string(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			x, _ := strconv.Atoi(out[i])
			y, _ := strconv.Atoi(out[j])
			if y < x {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

type zeroRand struct{}

func (zeroRand) Float64() float64 { return 0 }

// TestLoaderDetectsSources checks that sources come and go with their
// tables, and that an explicitly configured source must exist.
func TestLoaderDetectsSources(t *testing.T) {
	eachDatabase(t, false, func(t *testing.T, db *testDB) {
		ctx := t.Context()
		l := db.Loader(t, Config{})
		d, _, err := l.data(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Sources) != 0 {
			t.Errorf("sources without tables = %v", d.Sources)
		}
		db.Exec(t, `CREATE TABLE featureflipper_feature (id integer PRIMARY KEY, name varchar(40) NOT NULL UNIQUE, description text NOT NULL, enabled bool NOT NULL)`)
		db.Exec(t, `INSERT INTO featureflipper_feature (id, name, description, enabled) VALUES (1, 'search', '', ?)`, true)
		d, _, err = l.data(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]engine.Source{engine.SourceFeatureFlipper}, d.Sources); diff != "" {
			t.Errorf("sources (-want +got):\n%s", diff)
		}

		explicit := db.Loader(t, Config{Sources: []engine.Source{engine.SourceWaffle}})
		if _, err := explicit.Load(ctx); !errors.Is(err, ErrSchema) {
			t.Errorf("explicit waffle source without tables: err = %v, want ErrSchema", err)
		}
	})
}

// TestLoaderSwappedFlagModel reads a WAFFLE_FLAG_MODEL in its own table,
// with the M2M columns Django derives from the model and user model names.
func TestLoaderSwappedFlagModel(t *testing.T) {
	eachDatabase(t, false, func(t *testing.T, db *testDB) {
		db.Exec(t, `CREATE TABLE myapp_flag (id integer PRIMARY KEY, name varchar(100) NOT NULL UNIQUE, everyone bool NULL,
			percent decimal NULL, testing bool NOT NULL, superusers bool NOT NULL, staff bool NOT NULL,
			authenticated bool NOT NULL, languages text NOT NULL, rollout bool NOT NULL)`)
		db.Exec(t, `CREATE TABLE myapp_flag_users (id integer PRIMARY KEY, flag_id integer NOT NULL, member_id varchar(32) NOT NULL)`)
		db.Exec(t, `INSERT INTO myapp_flag VALUES (1, 'custom', NULL, NULL, ?, ?, ?, ?, '', ?)`, false, false, false, false, false)
		db.Exec(t, `INSERT INTO myapp_flag_users VALUES (1, 1, '6F1E2D3C4B5A49788A695B4C3D2E1F00')`)
		l := db.Loader(t, Config{WaffleFlagModel: "myapp.Flag"})
		d, _, err := l.data(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := []engine.WaffleFlag{{Name: "custom", Users: []string{"6f1e2d3c-4b5a-4978-8a69-5b4c3d2e1f00"}}}
		if diff := cmp.Diff(want, d.WaffleFlags, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("custom flag model (-want +got):\n%s", diff)
		}
	})
}

// TestLoaderSkipsRowsDjangoCannotLoad stores values only a foreign writer
// can put into SQLite (PostgreSQL's types refuse them) and checks that the
// loader reads them the way Django would, or skips the row as Django fails
// on it, without losing the other rows.
func TestLoaderSkipsRowsDjangoCannotLoad(t *testing.T) {
	db := newSQLite(t, true)
	insertWaffleFlag(t, db, "rounded", map[string]any{"percent": 33.35})
	insertWaffleFlag(t, db, "hundred", map[string]any{"percent": 100})
	insertWaffleFlag(t, db, "garbage", map[string]any{"percent": "lots"})
	insertWaffleFlag(t, db, "text-bool", map[string]any{"staff": "false", "superusers": 2})
	insertWaffleFlag(t, db, "ok", nil)
	db.Exec(t, `INSERT INTO waffle_sample (name, percent, note, created, modified) VALUES ('big', 1000, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
	db.Exec(t, `INSERT INTO flags_featureflag (key, enabled, rollout_percent) VALUES ('half', 1, 'x')`)

	l := db.Loader(t, Config{})
	d, problems, err := l.data(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range d.WaffleFlags {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"rounded", "text-bool", "ok"}, names); diff != "" {
		t.Errorf("flags kept (-want +got):\n%s", diff)
	}
	// 33.35 is read as the float 33.35 (33.3499…), printed with 15 digits
	// as 33.35 and rounded half to even: 33.4.
	if got := d.WaffleFlags[0].Percent; got != engine.PercentOf(334) {
		t.Errorf("rounded percent = %v, want 33.4", got)
	}
	// Python truthiness: the text "false" is true, and so is 2.
	if f := d.WaffleFlags[1]; !f.Staff || !f.Superusers {
		t.Errorf("text-bool = %+v, want staff and superusers true", f)
	}
	if len(d.Samples) != 0 || len(d.FeatureFlags) != 0 {
		t.Errorf("samples %v, feature flags %v: want the bad rows skipped", d.Samples, d.FeatureFlags)
	}
	if len(problems) != 4 {
		t.Errorf("problems = %q, want 4 (hundred, garbage, big, half)", problems)
	}
}

// TestLoaderSkipsBadLinksAndLongNames: a link row whose keys no row could
// have, and a name longer than its Django column, are left out and
// reported; everything else still loads, and so do later changes.
func TestLoaderSkipsBadLinksAndLongNames(t *testing.T) {
	db := newSQLite(t, true)
	ctx := t.Context()
	alice := insertUser(t, db, "alice")
	f := insertWaffleFlag(t, db, "listed", map[string]any{"superusers": false})
	db.Exec(t, `INSERT INTO waffle_flag_users (flag_id, user_id) VALUES (?, ?), ('abc', 1), (?, 2.5)`, f, alice, f)
	db.Exec(t, `INSERT INTO waffle_flag_groups (flag_id, group_id) VALUES (X'FF', 1)`)
	insertWaffleFlag(t, db, strings.Repeat("n", 300_000), nil)
	insertWaffleFlag(t, db, strings.Repeat("é", 100), nil) // 100 characters: fits
	db.Exec(t, `INSERT INTO featureflipper_feature (name, description, enabled) VALUES (?, '', 1)`, strings.Repeat("f", 41))
	db.Exec(t, `INSERT INTO flags_featureflag (key, enabled, rollout_percent) VALUES (?, 1, 0)`, strings.Repeat("k", 51))
	db.Exec(t, `INSERT INTO flags_flagstate (name, condition, value, required) VALUES ('ok', 'boolean', ?, 0)`, strings.Repeat("v", 128))

	l := db.Loader(t, Config{})
	d, problems, err := l.data(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range d.WaffleFlags {
		names = append(names, w.Name)
	}
	if diff := cmp.Diff([]string{"listed", strings.Repeat("é", 100)}, names); diff != "" {
		t.Errorf("flags kept (-want +got):\n%s", diff)
	}
	if got := d.WaffleFlags[0].Users; !slices.Equal(got, []string{strconv.FormatInt(alice, 10)}) {
		t.Errorf("users of listed = %q, want only alice", got)
	}
	if len(d.Features)+len(d.FeatureFlags)+len(d.FlagStates) != 0 {
		t.Errorf("long names kept: %+v %+v %+v", d.Features, d.FeatureFlags, d.FlagStates)
	}
	if len(problems) != 7 {
		t.Errorf("problems = %q, want 7 (2 user links, 1 group link, 4 long names)", problems)
	}
	// The rest keeps updating.
	db.Exec(t, `UPDATE waffle_flag SET everyone = 1 WHERE id = ?`, f)
	if s := loadSnapshot(t, l); s.Evaluate(&engine.Request{}, zeroRand{}).Flags[0] != (engine.Decision{On: true, Reason: engine.ReasonEveryone}) {
		t.Error("a later change did not load")
	}
}

// TestLoaderKeepsSourceWhoseTableDisappears: under automatic detection a
// source seen once whose table then goes missing is a load error (the
// poller keeps the last snapshot), until the table is back.
func TestLoaderKeepsSourceWhoseTableDisappears(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		db.Exec(t, `INSERT INTO featureflipper_feature (name, description, enabled) VALUES ('search', '', ?)`, true)
		l := db.Loader(t, Config{})
		before := loadSnapshot(t, l)
		db.Exec(t, `ALTER TABLE featureflipper_feature RENAME TO featureflipper_feature_old`)
		if _, err := l.Load(t.Context()); !errors.Is(err, ErrSourceGone) {
			t.Fatalf("load with the table gone: err = %v, want ErrSourceGone", err)
		}
		fresh := db.Loader(t, Config{})
		if d, err := fresh.Load(t.Context()); err != nil || slices.Contains(d.Sources, engine.SourceFeatureFlipper) {
			t.Errorf("a new loader (a restart) = %v, %v: want the source simply absent", d.Sources, err)
		}
		db.Exec(t, `ALTER TABLE featureflipper_feature_old RENAME TO featureflipper_feature`)
		if after := loadSnapshot(t, l); after.Version() != before.Version() {
			t.Errorf("after the table came back: version %s, want %s", after.Version(), before.Version())
		}
	})
}

// TestLoaderIsReadOnly checks that a load cannot write: the SQLite handle
// is opened read-only, and PostgreSQL loads run in a READ ONLY transaction.
func TestLoaderIsReadOnly(t *testing.T) {
	eachDatabase(t, true, func(t *testing.T, db *testDB) {
		l := db.Loader(t, Config{})
		tx, err := l.begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec(`INSERT INTO auth_group (name) VALUES ('x')`); err == nil {
			t.Fatal("insert inside the loader's transaction succeeded; want it refused")
		}
	})
}

func sameLocation(a, b *time.Location) bool { return a.String() == b.String() }
