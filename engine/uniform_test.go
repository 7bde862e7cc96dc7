package engine_test

import (
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

func TestFlagUniform(t *testing.T) {
	pct := engine.PercentOf
	type want struct{ on, ok bool }
	d := engine.DefaultData()
	d.Sources = engine.KnownSources()
	d.WaffleFlags = []engine.WaffleFlag{
		{Name: "w_everyone_on", Everyone: engine.Yes, Percent: pct(500), Staff: true},
		{Name: "w_everyone_off", Everyone: engine.No, Authenticated: true},
		{Name: "w_percent_100", Percent: pct(1000), Staff: true},
		{Name: "w_percent_0", Percent: pct(0)},
		{Name: "w_null", Percent: engine.Percent{}},
		{Name: "w_percent_50", Percent: pct(500)},
		{Name: "w_staff", Staff: true},
		{Name: "w_users", Users: []string{"1"}},
		{Name: "w_groups", Groups: []int64{1}},
		{Name: "w_language", Languages: "de"},
		{Name: "w_testing", Testing: true},
		{Name: "shared"},
	}
	d.Features = []engine.Feature{{Name: "ff_on", Enabled: true}, {Name: "ff_off"}, {Name: "shared", Enabled: true}}
	d.FeatureFlags = []engine.FeatureFlag{
		{Key: "m_disabled", RolloutPercent: 100, AllowedUsers: []string{"1"}},
		{Key: "m_full", Enabled: true, RolloutPercent: 100},
		{Key: "m_none", Enabled: true},
		{Key: "m_allowed", Enabled: true, AllowedUsers: []string{"1"}},
		{Key: "m_half", Enabled: true, RolloutPercent: 50},
	}
	d.FlagStates = []engine.FlagState{
		{Name: "df_true", Condition: "boolean", Value: "True"},
		{Name: "df_false", Condition: "boolean", Value: "False"},
		{Name: "df_true_unknown", Condition: "boolean", Value: "true"},
		{Name: "df_true_unknown", Condition: "no such condition", Value: "x"},
		{Name: "df_param", Condition: "parameter", Value: "x"},
		{Name: "df_required_unknown", Condition: "boolean", Value: "True"},
		{Name: "df_required_unknown", Condition: "path", Value: "/", Required: true},
	}
	s := mustSnapshot(t, d)
	for name, w := range map[string]want{
		"w_everyone_on": {true, true}, "w_everyone_off": {false, true}, "w_percent_100": {true, true},
		"w_percent_0": {false, true}, "w_null": {false, true}, "w_percent_50": {}, "w_staff": {}, "w_users": {},
		"w_groups": {}, "w_language": {}, "w_testing": {}, "shared": {},
		"ff_on": {true, true}, "ff_off": {false, true},
		"m_disabled": {false, true}, "m_full": {true, true}, "m_none": {false, true}, "m_allowed": {}, "m_half": {},
		"df_true": {true, true}, "df_false": {false, true}, "df_true_unknown": {true, true}, "df_param": {},
		"df_required_unknown": {false, true},
	} {
		i, found := s.FlagIndex(name)
		if !found {
			t.Errorf("%s: not in the snapshot", name)
			continue
		}
		if on, ok := s.FlagUniform(i); on != w.on || ok != w.ok {
			t.Errorf("FlagUniform(%s) = %v, %v; want %v, %v", name, on, ok, w.on, w.ok)
		}
	}
}

func TestSwitchAndSampleUniform(t *testing.T) {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.Switches = []engine.Switch{{Name: "a", Active: true}, {Name: "b"}}
	d.Samples = []engine.Sample{{Name: "a", Percent: engine.PercentOf(0)}, {Name: "b", Percent: engine.PercentOf(1000)}, {Name: "c", Percent: engine.PercentOf(999)}}
	s := mustSnapshot(t, d)
	for i, want := range [][2]bool{{true, true}, {false, true}} {
		if on, ok := s.SwitchUniform(i); [2]bool{on, ok} != want {
			t.Errorf("SwitchUniform(%d) = %v, %v; want %v", i, on, ok, want)
		}
	}
	for i, want := range [][2]bool{{false, true}, {true, true}, {false, false}} {
		if on, ok := s.SampleUniform(i); [2]bool{on, ok} != want {
			t.Errorf("SampleUniform(%d) = %v, %v; want %v", i, on, ok, want)
		}
	}
}
