package engine

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// changeBase is a Data with one row of every kind, which each case of
// TestDiff edits.
func changeBase() Data {
	d := DefaultData()
	d.Sources = KnownSources()
	d.WaffleFlags = []WaffleFlag{{Name: "wf", Everyone: Unset, Percent: PercentOf(125), Users: []string{"2", "10"}, Groups: []int64{3}, Info: Info{Note: "n"}}}
	d.Switches = []Switch{{Name: "sw", Active: true}}
	d.Samples = []Sample{{Name: "sa", Percent: PercentOf(500)}}
	d.Features = []Feature{{Name: "ff", Enabled: false, Description: "d"}}
	d.FeatureFlags = []FeatureFlag{{Key: "fk", Enabled: true, RolloutPercent: 35, AllowedUsers: []string{"1"}}}
	d.FlagStates = []FlagState{{Name: "ds", Condition: "boolean", Value: "true"}}
	return d
}

func TestDiff(t *testing.T) {
	flag := func(field, old, new string) Change {
		return Change{Kind: KindFlag, Source: SourceWaffle, Name: "wf", Op: OpChanged, Field: field, Old: old, New: new}
	}
	cases := []struct {
		name string
		edit func(d *Data)
		want []Change
	}{
		{"nothing", func(*Data) {}, nil},
		{"everyone", func(d *Data) { d.WaffleFlags[0].Everyone = Yes }, []Change{flag("everyone", "NULL", "true")}},
		{"everyone off", func(d *Data) { d.WaffleFlags[0].Everyone = No }, []Change{flag("everyone", "NULL", "false")}},
		{"percent", func(d *Data) { d.WaffleFlags[0].Percent = PercentOf(500) }, []Change{flag("percent", "12.5", "50.0")}},
		{"percent null", func(d *Data) { d.WaffleFlags[0].Percent = Percent{} }, []Change{flag("percent", "12.5", "NULL")}},
		{"testing", func(d *Data) { d.WaffleFlags[0].Testing = true }, []Change{flag("testing", "false", "true")}},
		{"superusers", func(d *Data) { d.WaffleFlags[0].Superusers = true }, []Change{flag("superusers", "false", "true")}},
		{"staff", func(d *Data) { d.WaffleFlags[0].Staff = true }, []Change{flag("staff", "false", "true")}},
		{"authenticated", func(d *Data) { d.WaffleFlags[0].Authenticated = true }, []Change{flag("authenticated", "false", "true")}},
		{"languages", func(d *Data) { d.WaffleFlags[0].Languages = "de,fr" }, []Change{flag("languages", "", "de,fr")}},
		{"rollout", func(d *Data) { d.WaffleFlags[0].Rollout = true }, []Change{flag("rollout", "false", "true")}},
		{"users added", func(d *Data) { d.WaffleFlags[0].Users = []string{"10", "2", "7"} }, []Change{flag("users", "2, 10", "2, 7, 10")}},
		{"users reordered", func(d *Data) { d.WaffleFlags[0].Users = []string{"10", "2"} }, nil},
		{"groups removed", func(d *Data) { d.WaffleFlags[0].Groups = nil }, []Change{flag("groups", "3", "")}},
		{"note", func(d *Data) { d.WaffleFlags[0].Note = "why" }, []Change{flag("note", "n", "why")}},
		{"dates are not changes", func(d *Data) { d.WaffleFlags[0].Modified = time.Unix(1e9, 0) }, nil},
		{"two fields", func(d *Data) { d.WaffleFlags[0].Staff, d.WaffleFlags[0].Everyone = true, No },
			[]Change{flag("everyone", "NULL", "false"), flag("staff", "false", "true")}},
		{"switch", func(d *Data) { d.Switches[0].Active = false },
			[]Change{{Kind: KindSwitch, Source: SourceWaffle, Name: "sw", Op: OpChanged, Field: "active", Old: "true", New: "false"}}},
		{"sample", func(d *Data) { d.Samples[0].Percent = PercentOf(1) },
			[]Change{{Kind: KindSample, Source: SourceWaffle, Name: "sa", Op: OpChanged, Field: "percent", Old: "50.0", New: "0.1"}}},
		{"feature-flipper", func(d *Data) { d.Features[0].Enabled, d.Features[0].Description = true, "e" }, []Change{
			{Kind: KindFlag, Source: SourceFeatureFlipper, Name: "ff", Op: OpChanged, Field: "enabled", Old: "false", New: "true"},
			{Kind: KindFlag, Source: SourceFeatureFlipper, Name: "ff", Op: OpChanged, Field: "description", Old: "d", New: "e"}}},
		{"FeatureFlag", func(d *Data) {
			d.FeatureFlags[0].RolloutPercent, d.FeatureFlags[0].AllowedUsers, d.FeatureFlags[0].Enabled = 40, nil, false
		}, []Change{
			{Kind: KindFlag, Source: SourceFeatureFlag, Name: "fk", Op: OpChanged, Field: "enabled", Old: "true", New: "false"},
			{Kind: KindFlag, Source: SourceFeatureFlag, Name: "fk", Op: OpChanged, Field: "rollout_percent", Old: "35", New: "40"},
			{Kind: KindFlag, Source: SourceFeatureFlag, Name: "fk", Op: OpChanged, Field: "allowed_users", Old: "1", New: ""}}},
		{"django-flags condition added", func(d *Data) {
			d.FlagStates = append(d.FlagStates, FlagState{Name: "ds", Condition: "path matches", Value: "^/beta", Required: true})
		}, []Change{{Kind: KindFlag, Source: SourceDjangoFlags, Name: "ds", Op: OpChanged, Field: "conditions",
			Old: "boolean=true", New: "boolean=true; path matches=^/beta (required)"}}},
		{"django-flags value", func(d *Data) { d.FlagStates[0].Value = "false" },
			[]Change{{Kind: KindFlag, Source: SourceDjangoFlags, Name: "ds", Op: OpChanged, Field: "conditions", Old: "boolean=true", New: "boolean=false"}}},
		{"django-flags name removed", func(d *Data) { d.FlagStates = nil },
			[]Change{{Kind: KindFlag, Source: SourceDjangoFlags, Name: "ds", Op: OpRemoved, Old: "conditions=boolean=true"}}},
		{"switch added", func(d *Data) { d.Switches = append(d.Switches, Switch{Name: "new"}) },
			[]Change{{Kind: KindSwitch, Source: SourceWaffle, Name: "new", Op: OpAdded, New: "active=false, note="}}},
		{"flag removed", func(d *Data) { d.WaffleFlags = nil }, []Change{{Kind: KindFlag, Source: SourceWaffle, Name: "wf", Op: OpRemoved,
			Old: "everyone=NULL, percent=12.5, testing=false, superusers=false, staff=false, authenticated=false, languages=, rollout=false, users=2, 10, groups=3, note=n"}}},
		{"renamed", func(d *Data) { d.Samples[0].Name = "sb" }, []Change{
			{Kind: KindSample, Source: SourceWaffle, Name: "sa", Op: OpRemoved, Old: "percent=50.0, note="},
			{Kind: KindSample, Source: SourceWaffle, Name: "sb", Op: OpAdded, New: "percent=50.0, note="}}},
		{"settings are not changes", func(d *Data) { d.Waffle.FlagDefault = true }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, new := changeBase(), changeBase()
			c.edit(&new)
			if d := cmp.Diff(c.want, Diff(old, new)); d != "" {
				t.Errorf("Diff (-want +got):\n%s", d)
			}
			// The reverse swaps added and removed, old and new.
			back := Diff(new, old)
			if len(back) != len(c.want) {
				t.Errorf("reverse Diff has %d changes, want %d: %v", len(back), len(c.want), back)
			}
		})
	}
}

// TestDiffOrder checks that the changes come sorted by kind, source and
// name, whatever the order of the rows.
func TestDiffOrder(t *testing.T) {
	old := DefaultData()
	new := DefaultData()
	new.Samples = []Sample{{Name: "z", Percent: PercentOf(1)}}
	new.Switches = []Switch{{Name: "b"}, {Name: "a"}}
	new.Features = []Feature{{Name: "m"}}
	new.WaffleFlags = []WaffleFlag{{Name: "m"}}
	var got []string
	for _, c := range Diff(old, new) {
		got = append(got, c.Kind.String()+"/"+string(c.Source)+"/"+c.Name)
	}
	want := []string{"flag/featureflipper/m", "flag/waffle/m", "switch/waffle/a", "switch/waffle/b", "sample/waffle/z"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}
}

func TestAttribute(t *testing.T) {
	change := Change{Kind: KindFlag, Source: SourceWaffle, Name: "wf", Op: OpChanged, Field: "everyone"}
	entry := func(id int64, user string, a AdminAction) AdminEntry {
		return AdminEntry{ID: id, UserID: user, Username: "u" + user, Kind: KindFlag, Source: SourceWaffle, Name: "wf", Action: a}
	}
	other := entry(9, "1", AdminChange)
	other.Name = "other"
	switchEntry := entry(8, "1", AdminChange)
	switchEntry.Kind = KindSwitch
	cases := []struct {
		name    string
		change  Change
		entries []AdminEntry
		want    int64 // the entry's ID; 0 for unknown
	}{
		{"none", change, nil, 0},
		{"one", change, []AdminEntry{entry(4, "1", AdminChange)}, 4},
		{"same user twice: the latest", change, []AdminEntry{entry(5, "1", AdminChange), entry(4, "1", AdminChange)}, 5},
		{"two users: unknown", change, []AdminEntry{entry(4, "1", AdminChange), entry(5, "2", AdminChange)}, 0},
		{"another name", change, []AdminEntry{other}, 0},
		{"another kind", change, []AdminEntry{switchEntry}, 0},
		{"another user's entry on another row does not count", change, []AdminEntry{entry(4, "1", AdminChange), other}, 4},
		{"an addition does not change a row", change, []AdminEntry{entry(4, "1", AdminAddition)}, 0},
		{"an addition adds", Change{Kind: KindFlag, Source: SourceWaffle, Name: "wf", Op: OpAdded}, []AdminEntry{entry(4, "1", AdminAddition)}, 4},
		{"a deletion does not add", Change{Kind: KindFlag, Source: SourceWaffle, Name: "wf", Op: OpAdded}, []AdminEntry{entry(4, "1", AdminDeletion)}, 0},
		{"a deletion removes", Change{Kind: KindFlag, Source: SourceWaffle, Name: "wf", Op: OpRemoved}, []AdminEntry{entry(4, "1", AdminDeletion)}, 4},
		{"an edit renames", Change{Kind: KindFlag, Source: SourceWaffle, Name: "wf", Op: OpAdded}, []AdminEntry{entry(4, "1", AdminChange)}, 4},
		{"an unknown action", change, []AdminEntry{entry(4, "1", 7)}, 0},
		{"a django-flags condition added", Change{Kind: KindFlag, Source: SourceDjangoFlags, Name: "wf", Op: OpChanged},
			[]AdminEntry{{ID: 3, UserID: "1", Kind: KindFlag, Source: SourceDjangoFlags, Name: "wf", Action: AdminAddition}}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, ok := Attribute(c.change, c.entries)
			if ok != (c.want != 0) || e.ID != c.want {
				t.Errorf("Attribute = %d, %v; want %d", e.ID, ok, c.want)
			}
		})
	}
}
