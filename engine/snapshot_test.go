package engine_test

import (
	"errors"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flagproxy/flagproxy/engine"
)

// snapshotData returns one row of every kind, with every column set to
// something other than its zero value where that is possible.
func snapshotData() engine.Data {
	return engine.Data{
		Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag},
		Waffle:  engine.DefaultWaffleSettings(),
		WaffleFlags: []engine.WaffleFlag{
			{
				Name: "w_full", Everyone: engine.Unset, Percent: engine.PercentOf(125),
				Testing: true, Superusers: true, Staff: true, Authenticated: true, Rollout: true,
				Languages: "en,fr", Users: []string{"3", "1", "2"}, Groups: []int64{30, 10, 20},
			},
			{Name: "w_on", Everyone: engine.Yes},
		},
		Switches:     []engine.Switch{{Name: "s_a", Active: true}, {Name: "s_b"}},
		Samples:      []engine.Sample{{Name: "sm_a", Percent: engine.PercentOf(500)}, {Name: "sm_b", Percent: engine.PercentOf(1)}},
		Features:     []engine.Feature{{Name: "feat_a", Enabled: true}, {Name: "feat_b"}},
		FeatureFlags: []engine.FeatureFlag{{Key: "key_a", Enabled: true, RolloutPercent: 40, AllowedUsers: []string{"9", "8"}}, {Key: "key_b"}},
	}
}

func mustSnapshot(t testing.TB, d engine.Data) *engine.Snapshot {
	t.Helper()
	s, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

func TestNewSnapshotDuplicateNames(t *testing.T) {
	tests := []struct {
		name string
		edit func(*engine.Data)
	}{
		{"waffle flag", func(d *engine.Data) { d.WaffleFlags = append(d.WaffleFlags, engine.WaffleFlag{Name: "w_on"}) }},
		{"feature", func(d *engine.Data) { d.Features = append(d.Features, engine.Feature{Name: "feat_b", Enabled: true}) }},
		{"feature flag", func(d *engine.Data) { d.FeatureFlags = append(d.FeatureFlags, engine.FeatureFlag{Key: "key_a"}) }},
		{"switch", func(d *engine.Data) { d.Switches = append(d.Switches, engine.Switch{Name: "s_a"}) }},
		{"sample", func(d *engine.Data) { d.Samples = append(d.Samples, engine.Sample{Name: "sm_b"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := snapshotData()
			tt.edit(&d)
			s, err := engine.NewSnapshot(d)
			if !errors.Is(err, engine.ErrInvalidSnapshot) {
				t.Fatalf("NewSnapshot = %v, %v; want an error wrapping ErrInvalidSnapshot", s, err)
			}
			if s != nil {
				t.Error("NewSnapshot returned a snapshot with its error")
			}
		})
	}
}

// Names are unique per kind only: the same name in two flag sources is a
// conflict, and switches, samples and flags are separate namespaces.
func TestNewSnapshotSameNameAcrossKinds(t *testing.T) {
	d := snapshotData()
	d.Switches = append(d.Switches, engine.Switch{Name: "w_on"})
	d.Samples = append(d.Samples, engine.Sample{Name: "w_on"}, engine.Sample{Name: "s_a"})
	d.Features = append(d.Features, engine.Feature{Name: "Feat_a"}) // case differs: another name
	s := mustSnapshot(t, d)
	if c := s.Conflicts(); len(c) != 0 {
		t.Errorf("Conflicts() = %v, want none", c)
	}
}

func TestNewSnapshotCookiePatterns(t *testing.T) {
	bad := []string{"", "dwf_", "dwf_%s_%s", "dwf_%d", "dwf_%", "%s%", "dwf_%(name)s"}
	for _, p := range bad {
		for _, setting := range []string{"WAFFLE_COOKIE", "WAFFLE_TEST_COOKIE"} {
			t.Run(setting+"="+p, func(t *testing.T) {
				d := snapshotData()
				if setting == "WAFFLE_COOKIE" {
					d.Waffle.Cookie = p
				} else {
					d.Waffle.TestCookie = p
				}
				if _, err := engine.NewSnapshot(d); !errors.Is(err, engine.ErrInvalidSnapshot) {
					t.Errorf("NewSnapshot with %s = %q: err = %v, want ErrInvalidSnapshot", setting, p, err)
				}
			})
		}
	}
	t.Run("zero Data", func(t *testing.T) {
		// The zero WaffleSettings has empty patterns: callers must start
		// from DefaultWaffleSettings.
		if _, err := engine.NewSnapshot(engine.Data{}); !errors.Is(err, engine.ErrInvalidSnapshot) {
			t.Errorf("NewSnapshot(Data{}): err = %v, want ErrInvalidSnapshot", err)
		}
	})
}

// "%%" is Python's literal percent sign: 'dwf_%%_%s' % 'f' == 'dwf_%_f'.
func TestNewSnapshotLiteralPercentInPatterns(t *testing.T) {
	d := engine.Data{
		Sources: []engine.Source{engine.SourceWaffle},
		Waffle:  engine.DefaultWaffleSettings(),
		WaffleFlags: []engine.WaffleFlag{
			{Name: "f", Percent: engine.PercentOf(500)},
			{Name: "t_x", Testing: true},
			{Name: "t_y", Testing: true},
		},
	}
	d.Waffle.Cookie = "dwf_%%_%s"
	d.Waffle.TestCookie = "%%%s%%"
	s := mustSnapshot(t, d)

	req := &engine.Request{
		Subject: engine.Anonymous,
		Query:   engine.Params{"%t_x%": "1"},
		Header:  foldedHeader{"%T-Y%": "0"}, // '_' becomes '-' in the header name
	}
	got := s.Evaluate(req, &goldenRand{t: t, rolls: []float64{0.1}})
	want := []engine.Cookie{
		{Flag: "f", Name: "dwf_%_f", Value: "True", MaxAge: 2592000, Secure: true},
		{Flag: "t_x", Name: "%t_x%", Value: "True"},
		{Flag: "t_y", Name: "%t_y%", Value: "False"},
	}
	if diff := cmp.Diff(want, got.Cookies); diff != "" {
		t.Errorf("cookies (-want +got):\n%s", diff)
	}
	for name, want := range map[string]engine.Decision{
		"f":   {On: true, Reason: engine.ReasonPercentRoll},
		"t_x": {On: true, Reason: engine.ReasonTestingQuery},
		"t_y": {On: false, Reason: engine.ReasonTestingHeader},
	} {
		i, _ := s.FlagIndex(name)
		if got.Flags[i] != want {
			t.Errorf("%s = %+v, want %+v", name, got.Flags[i], want)
		}
	}
}

func TestSnapshotVersionIgnoresOrder(t *testing.T) {
	a := mustSnapshot(t, snapshotData())
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a.Version()) {
		t.Errorf("Version() = %q, want 16 lower-case hex digits", a.Version())
	}
	d := snapshotData()
	slices.Reverse(d.Sources)
	slices.Reverse(d.WaffleFlags)
	slices.Reverse(d.WaffleFlags[1].Users)
	slices.Reverse(d.WaffleFlags[1].Groups)
	slices.Reverse(d.Switches)
	slices.Reverse(d.Samples)
	slices.Reverse(d.Features)
	slices.Reverse(d.FeatureFlags)
	slices.Reverse(d.FeatureFlags[1].AllowedUsers)
	if d.WaffleFlags[1].Name != "w_full" || d.FeatureFlags[1].Key != "key_a" {
		t.Fatal("test data changed: the reversed lists no longer hold w_full/key_a where expected")
	}
	b := mustSnapshot(t, d)
	if a.Version() != b.Version() {
		t.Errorf("the same rows in another order: Version %s != %s", b.Version(), a.Version())
	}
	if c := mustSnapshot(t, snapshotData()); c.Version() != a.Version() {
		t.Errorf("Version is not deterministic: %s != %s", c.Version(), a.Version())
	}
}

func TestSnapshotVersionChangesWithEveryColumn(t *testing.T) {
	wf := func(d *engine.Data) *engine.WaffleFlag { return &d.WaffleFlags[0] }
	tests := []struct {
		name string
		edit func(*engine.Data)
	}{
		{"WAFFLE_FLAG_DEFAULT", func(d *engine.Data) { d.Waffle.FlagDefault = true }},
		{"WAFFLE_SWITCH_DEFAULT", func(d *engine.Data) { d.Waffle.SwitchDefault = true }},
		{"WAFFLE_SAMPLE_DEFAULT", func(d *engine.Data) { d.Waffle.SampleDefault = true }},
		{"WAFFLE_OVERRIDE", func(d *engine.Data) { d.Waffle.Override = true }},
		{"WAFFLE_COOKIE", func(d *engine.Data) { d.Waffle.Cookie = "ab_%s" }},
		{"WAFFLE_TEST_COOKIE", func(d *engine.Data) { d.Waffle.TestCookie = "qa_%s" }},
		{"WAFFLE_SECURE", func(d *engine.Data) { d.Waffle.Secure = false }},
		{"WAFFLE_MAX_AGE", func(d *engine.Data) { d.Waffle.MaxAge = 60 }},
		{"sources", func(d *engine.Data) { d.Sources = d.Sources[:2] }},
		{"waffle name", func(d *engine.Data) { wf(d).Name = "w_full2" }},
		{"waffle everyone NULL to TRUE", func(d *engine.Data) { wf(d).Everyone = engine.Yes }},
		{"waffle everyone TRUE to FALSE", func(d *engine.Data) { d.WaffleFlags[1].Everyone = engine.No }},
		{"waffle percent", func(d *engine.Data) { wf(d).Percent = engine.PercentOf(126) }},
		{"waffle percent NULL vs 0", func(d *engine.Data) { d.WaffleFlags[1].Percent = engine.PercentOf(0) }},
		{"waffle testing", func(d *engine.Data) { wf(d).Testing = false }},
		{"waffle superusers", func(d *engine.Data) { wf(d).Superusers = false }},
		{"waffle staff", func(d *engine.Data) { wf(d).Staff = false }},
		{"waffle authenticated", func(d *engine.Data) { wf(d).Authenticated = false }},
		{"waffle rollout", func(d *engine.Data) { wf(d).Rollout = false }},
		{"waffle languages", func(d *engine.Data) { wf(d).Languages = "en, fr" }},
		{"waffle users changed", func(d *engine.Data) { wf(d).Users = []string{"3", "1", "4"} }},
		{"waffle users removed", func(d *engine.Data) { wf(d).Users = wf(d).Users[:2] }},
		{"waffle groups", func(d *engine.Data) { wf(d).Groups = []int64{30, 10, 21} }},
		{"switch name", func(d *engine.Data) { d.Switches[0].Name = "s_c" }},
		{"switch active", func(d *engine.Data) { d.Switches[1].Active = true }},
		{"switch added", func(d *engine.Data) { d.Switches = append(d.Switches, engine.Switch{Name: "s_c"}) }},
		{"sample name", func(d *engine.Data) { d.Samples[0].Name = "sm_c" }},
		{"sample percent", func(d *engine.Data) { d.Samples[1].Percent = engine.PercentOf(2) }},
		{"feature name", func(d *engine.Data) { d.Features[0].Name = "feat_c" }},
		{"feature enabled", func(d *engine.Data) { d.Features[1].Enabled = true }},
		{"feature flag key", func(d *engine.Data) { d.FeatureFlags[0].Key = "key_c" }},
		{"feature flag enabled", func(d *engine.Data) { d.FeatureFlags[1].Enabled = true }},
		{"feature flag rollout", func(d *engine.Data) { d.FeatureFlags[0].RolloutPercent = 41 }},
		{"feature flag allowed users", func(d *engine.Data) { d.FeatureFlags[0].AllowedUsers = []string{"9"} }},
		{"feature added", func(d *engine.Data) { d.Features = append(d.Features, engine.Feature{Name: "feat_c"}) }},
	}
	base := mustSnapshot(t, snapshotData()).Version()
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := snapshotData()
			tt.edit(&d)
			v := mustSnapshot(t, d).Version()
			if v == base {
				t.Errorf("Version unchanged (%s) after changing %s", v, tt.name)
			}
			if prev, ok := seen[v]; ok && prev != "base" {
				t.Errorf("Version %s is the same as after %q", v, prev)
			}
			seen[v] = tt.name
		})
	}
	// A row that moves between sources with everything else equal.
	t.Run("same name, other source", func(t *testing.T) {
		d1 := engine.Data{Sources: []engine.Source{engine.SourceFeatureFlipper, engine.SourceFeatureFlag}, Waffle: engine.DefaultWaffleSettings(),
			Features: []engine.Feature{{Name: "x", Enabled: true}}}
		d2 := engine.Data{Sources: d1.Sources, Waffle: d1.Waffle,
			FeatureFlags: []engine.FeatureFlag{{Key: "x", Enabled: true}}}
		if mustSnapshot(t, d1).Version() == mustSnapshot(t, d2).Version() {
			t.Error("a feature and a FeatureFlag of the same name give the same Version")
		}
	})
}

func TestSnapshotConflictsAndCounts(t *testing.T) {
	d := snapshotData()
	d.WaffleFlags = append(d.WaffleFlags, engine.WaffleFlag{Name: "dup", Everyone: engine.Yes}, engine.WaffleFlag{Name: "pair"})
	d.Features = append(d.Features, engine.Feature{Name: "dup", Enabled: true})
	d.FeatureFlags = append(d.FeatureFlags, engine.FeatureFlag{Key: "dup", Enabled: true, RolloutPercent: 100}, engine.FeatureFlag{Key: "pair"})
	s := mustSnapshot(t, d)

	want := []engine.Conflict{
		{Name: "dup", Sources: []engine.Source{engine.SourceFeatureFlag, engine.SourceFeatureFlipper, engine.SourceWaffle}},
		{Name: "pair", Sources: []engine.Source{engine.SourceFeatureFlag, engine.SourceWaffle}},
	}
	if diff := cmp.Diff(want, s.Conflicts()); diff != "" {
		t.Errorf("Conflicts() (-want +got):\n%s", diff)
	}
	// The returned slices are copies.
	s.Conflicts()[0].Sources[0] = "mutated"
	if got := s.Conflicts()[0].Sources[0]; got != engine.SourceFeatureFlag {
		t.Errorf("Conflicts() shares its slices with the snapshot: %q", got)
	}

	for src, n := range map[engine.Source]int{
		engine.SourceWaffle:         4, // flags, two of them in conflict; switches and samples are not counted
		engine.SourceFeatureFlipper: 3,
		engine.SourceFeatureFlag:    4,
		"other":                     0,
	} {
		if got := s.Count(src); got != n {
			t.Errorf("Count(%q) = %d, want %d", src, got, n)
		}
	}
	// w_full, w_on, feat_a, feat_b, key_a, key_b, dup, pair.
	if got := s.NumFlags(); got != 8 {
		t.Errorf("NumFlags() = %d, want 8", got)
	}
	var names []string
	for i := range s.NumFlags() {
		names = append(names, s.FlagName(i))
		j, ok := s.FlagIndex(s.FlagName(i))
		if !ok || j != i {
			t.Errorf("FlagIndex(%q) = %d, %v; want %d, true", s.FlagName(i), j, ok, i)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("flag names are not sorted: %q", names)
	}
	for name, src := range map[string]engine.Source{"dup": "", "pair": "", "w_on": engine.SourceWaffle, "feat_a": engine.SourceFeatureFlipper, "key_b": engine.SourceFeatureFlag} {
		i, _ := s.FlagIndex(name)
		if got := s.FlagSource(i); got != src {
			t.Errorf("FlagSource(%q) = %q, want %q", name, got, src)
		}
	}
	dec := s.Evaluate(&engine.Request{Subject: engine.Subject{UserID: "1", Authenticated: true}}, fixedRoll(0.5))
	for _, name := range []string{"dup", "pair"} {
		i, _ := s.FlagIndex(name)
		if want := (engine.Decision{Reason: engine.ReasonConflict}); dec.Flags[i] != want {
			t.Errorf("%s = %+v, want %+v", name, dec.Flags[i], want)
		}
	}
	wantSources := []engine.Source{engine.SourceFeatureFlag, engine.SourceFeatureFlipper, engine.SourceWaffle}
	if diff := cmp.Diff(wantSources, s.Sources()); diff != "" {
		t.Errorf("Sources() (-want +got):\n%s", diff)
	}
}

// NewSnapshot copies its inputs: changing the caller's rows afterwards
// changes neither the decisions nor the version.
func TestNewSnapshotCopiesInputs(t *testing.T) {
	d := engine.Data{
		Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper, engine.SourceFeatureFlag},
		Waffle:  engine.DefaultWaffleSettings(),
		WaffleFlags: []engine.WaffleFlag{
			{Name: "w_users", Users: []string{"1", "2"}},
			{Name: "w_groups", Groups: []int64{10, 20}},
			{Name: "w_on", Everyone: engine.Yes},
		},
		Switches:     []engine.Switch{{Name: "s", Active: true}},
		Samples:      []engine.Sample{{Name: "sm", Percent: engine.PercentOf(500)}},
		Features:     []engine.Feature{{Name: "feat", Enabled: true}},
		FeatureFlags: []engine.FeatureFlag{{Key: "key", Enabled: true, AllowedUsers: []string{"3", "2"}}},
	}
	s := mustSnapshot(t, d)
	version := s.Version()
	req := &engine.Request{Subject: engine.Subject{UserID: "2", Authenticated: true, Groups: []int64{20}}}
	before := s.Evaluate(req, fixedRoll(0.4))
	for i, dec := range before.Flags {
		if !dec.On {
			t.Fatalf("test setup: %s is off (%s), want every flag on", s.FlagName(i), dec.Reason)
		}
	}

	d.Sources[0] = "mutated"
	d.WaffleFlags[0].Users[1] = "999"
	d.WaffleFlags[1].Groups[1] = 999
	d.WaffleFlags[2].Everyone = engine.No
	d.Switches[0].Active = false
	d.Samples[0].Percent = engine.PercentOf(0)
	d.Features[0].Enabled = false
	d.FeatureFlags[0].AllowedUsers[1] = "999"
	d.FeatureFlags[0].Enabled = false
	d.Waffle.Override = true

	if got := s.Version(); got != version {
		t.Errorf("Version changed from %s to %s after the caller's rows changed", version, got)
	}
	if diff := cmp.Diff(before, s.Evaluate(req, fixedRoll(0.4))); diff != "" {
		t.Errorf("decisions changed after the caller's rows changed (-before +after):\n%s", diff)
	}
	s.Sources()[0] = "mutated"
	if s.Sources()[0] == "mutated" {
		t.Error("Sources() shares its slice with the snapshot")
	}
}

// TestReadsHeader: a snapshot reads the testing header of each flag in
// testing mode, compared as Request.Header compares names, and no other.
func TestReadsHeader(t *testing.T) {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.WaffleFlags = []engine.WaffleFlag{{Name: "beta_x", Testing: true}, {Name: "plain", Percent: engine.PercentOf(500)}}
	s := mustSnapshot(t, d)
	for name, want := range map[string]bool{"Dwft-Beta-X": true, "dwft_beta_x": true, "DWFT-BETA-X": true,
		"Dwft-Plain": false, "Accept-Language": false, "Dwft-Beta": false} {
		if got := s.ReadsHeader(name); got != want {
			t.Errorf("ReadsHeader(%q) = %v, want %v", name, got, want)
		}
	}
	if empty := mustSnapshot(t, engine.DefaultData()); empty.ReadsHeader("Dwft-Beta-X") {
		t.Error("a snapshot without testing flags reads a testing header")
	}
}
