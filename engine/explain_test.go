package engine_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// fixedRand is a Rand that always returns its value.
type fixedRand float64

func (r fixedRand) Float64() float64 { return float64(r) }

// randomWorld builds data of every source with random rows.
func randomWorld(rng *rand.Rand) engine.Data {
	d := engine.DefaultData()
	d.Sources = engine.KnownSources()
	d.Waffle.Override = rng.IntN(3) == 0
	tri := []engine.Tristate{engine.Unset, engine.Unset, engine.Yes, engine.No}
	for i := range 12 {
		f := engine.WaffleFlag{Name: fmt.Sprintf("w-%d.x", i), Everyone: tri[rng.IntN(4)],
			Testing: rng.IntN(3) == 0, Superusers: rng.IntN(2) == 0, Staff: rng.IntN(3) == 0,
			Authenticated: rng.IntN(5) == 0, Rollout: rng.IntN(4) == 0}
		if rng.IntN(2) == 0 {
			f.Percent = engine.PercentOf(int32(rng.IntN(1001)))
		}
		if rng.IntN(4) == 0 {
			f.Languages = "en, fr"
		}
		if rng.IntN(3) == 0 {
			f.Users = []string{strconv.Itoa(1 + rng.IntN(4))}
		}
		if rng.IntN(3) == 0 {
			f.Groups = []int64{int64(1 + rng.IntN(3))}
		}
		d.WaffleFlags = append(d.WaffleFlags, f)
	}
	for i := range 4 {
		d.Features = append(d.Features, engine.Feature{Name: fmt.Sprintf("feat_%d", i), Enabled: rng.IntN(2) == 0})
		ff := engine.FeatureFlag{Key: fmt.Sprintf("key-%d", i), Enabled: rng.IntN(4) != 0, RolloutPercent: int64(rng.IntN(120))}
		if rng.IntN(2) == 0 {
			ff.AllowedUsers = []string{strconv.Itoa(1 + rng.IntN(4))}
		}
		d.FeatureFlags = append(d.FeatureFlags, ff)
	}
	conds := []engine.FlagState{{Condition: "boolean", Value: "true"}, {Condition: "parameter", Value: "beta=1"},
		{Condition: "anonymous", Value: "False"}, {Condition: "path matches", Value: "^/shop"}, {Condition: "user", Value: "u2"},
		{Condition: "boolean", Value: "maybe"}}
	for i := range 4 {
		for range rng.IntN(3) {
			c := conds[rng.IntN(len(conds))]
			c.Name, c.Required = fmt.Sprintf("dj_%d", i), rng.IntN(3) == 0
			d.FlagStates = append(d.FlagStates, c)
		}
	}
	// A name two sources define.
	d.Features = append(d.Features, engine.Feature{Name: "w-0.x"})
	d.Groups = []engine.Group{{ID: 1, Name: "beta-testers"}, {ID: 2, Name: "qa"}}
	return d
}

// randomRequest is a random visitor and request for w.
func randomRequest(rng *rand.Rand, s *engine.Snapshot) engine.Request {
	r := engine.Request{Subject: engine.Anonymous, Now: time.Unix(1.7e9, 0)}
	if pk := rng.IntN(5); pk > 0 {
		r.Subject = engine.Subject{UserID: strconv.Itoa(pk), Username: "u" + strconv.Itoa(pk), Authenticated: true, Active: true,
			Staff: rng.IntN(2) == 0, Superuser: rng.IntN(4) == 0, Groups: []int64{int64(rng.IntN(4))}}
	}
	q, c := engine.Params{}, engine.Params{}
	for i := range s.NumFlags() {
		n := s.FlagName(i)
		switch rng.IntN(8) {
		case 0:
			q["dwft_"+n] = strconv.Itoa(rng.IntN(2))
		case 1:
			c["dwf_"+n] = []string{"True", "False"}[rng.IntN(2)]
		case 2:
			c["dwft_"+n] = "True"
		case 3:
			q[n] = "1"
		}
	}
	if rng.IntN(2) == 0 {
		q["beta"] = "1"
	}
	r.Query, r.Cookies, r.RawQuery = q, c, "beta=1"
	r.Language, r.HasLanguage = []string{"en", "de"}[rng.IntN(2)], rng.IntN(3) != 0
	r.Path = []string{"/", "/shop/x"}[rng.IntN(2)]
	return r
}

// TestExplainDecidesAsEvaluate checks over random worlds and requests
// that every explanation's own walk of the library's rule reaches the
// decision Evaluate made, and that with overrides the explanation still
// reports Evaluate's decision, with the rule's answer underneath.
func TestExplainDecidesAsEvaluate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for world := range 200 {
		snap, err := engine.NewSnapshot(randomWorld(rng))
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			r := randomRequest(rng, snap)
			roll := fixedRand(rng.Float64())
			plain := snap.Evaluate(&r, roll)
			ro := r
			ro.Overrides = engine.Overrides{URL: map[string]bool{snap.FlagName(rng.IntN(snap.NumFlags())): true},
				Session: map[string]bool{snap.FlagName(rng.IntN(snap.NumFlags())): false}}
			over := snap.Evaluate(&ro, roll)
			for i := range snap.NumFlags() {
				got, known := snap.RuleDecision(i, &r, plain.Flags[i])
				if !known || got != plain.Flags[i] {
					t.Fatalf("world %d flag %s: explain decides %+v (known %v), Evaluate %+v", world, snap.FlagName(i), got, known, plain.Flags[i])
				}
				x := snap.Explain(engine.KindFlag, i, &ro, over.Flags[i])
				if x.Decision != over.Flags[i] || len(x.Steps) == 0 || x.Because() == "" {
					t.Fatalf("flag %s with overrides: %+v, Evaluate %+v", snap.FlagName(i), x, over.Flags[i])
				}
				if got, known := snap.RuleDecision(i, &ro, over.Flags[i]); known && got != plain.Flags[i] {
					t.Fatalf("flag %s: the rule under overrides decides %+v, without them %+v", snap.FlagName(i), got, plain.Flags[i])
				}
			}
		}
	}
}

func TestExplainSteps(t *testing.T) {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlag}
	d.WaffleFlags = []engine.WaffleFlag{{Name: "beta", Staff: true, Groups: []int64{7}, Percent: engine.PercentOf(250)}}
	d.FeatureFlags = []engine.FeatureFlag{{Key: "gradual-rollout", Enabled: true, RolloutPercent: 25}}
	d.Groups = []engine.Group{{ID: 7, Name: "beta-testers"}}
	snap, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	r := engine.Request{Subject: engine.Subject{UserID: "42", Authenticated: true, Active: true, Groups: []int64{7}}}
	dec := snap.Evaluate(&r, fixedRand(0.9))
	i, _ := snap.FlagIndex("beta")
	x := snap.Explain(engine.KindFlag, i, &r, dec.Flags[i])
	var got []string
	for _, s := range x.Steps {
		got = append(got, s.Check+": "+s.Outcome)
	}
	want := "everyone: unset|testing: off|staff: user 42 is not staff|groups: in beta-testers → on"
	if strings.Join(got, "|") != want {
		t.Errorf("steps = %q\nwant    %q", strings.Join(got, "|"), want)
	}
	if x.Rule != "staff, groups: beta-testers, 25.0 %" {
		t.Errorf("rule = %q", x.Rule)
	}
	if b := x.Because(); b != "groups: in beta-testers → on" {
		t.Errorf("because = %q", b)
	}
	j, _ := snap.FlagIndex("gradual-rollout")
	if w := snap.FlagRule(j); w != "25 % of users (bucket)" {
		t.Errorf("FeatureFlag rule = %q", w)
	}
	body, _ := json.Marshal(snap.Explain(engine.KindFlag, j, &r, dec.Flags[j]))
	if !strings.Contains(string(body), `"check":"bucket"`) || !strings.Contains(string(body), `"kind":"flag"`) {
		t.Errorf("FeatureFlag explanation: %s", body)
	}
}

// TestInfoLeavesVersion: notes and dates never change the version, but do
// change InfoDigest, so the store swaps the snapshot in.
func TestInfoLeavesVersion(t *testing.T) {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlipper}
	d.WaffleFlags = []engine.WaffleFlag{{Name: "a", Info: engine.Info{Note: "first"}}}
	d.Switches = []engine.Switch{{Name: "s", Info: engine.Info{Modified: time.Unix(100, 0)}}}
	d.Features = []engine.Feature{{Name: "f", Description: "one"}}
	s1, _ := engine.NewSnapshot(d)
	d.WaffleFlags[0].Note, d.Switches[0].Modified, d.Features[0].Description = "second", time.Unix(200, 0), "two"
	s2, _ := engine.NewSnapshot(d)
	if s1.Version() != s2.Version() || s1.InfoDigest() == s2.InfoDigest() {
		t.Fatalf("versions %s %s, info %s %s", s1.Version(), s2.Version(), s1.InfoDigest(), s2.InfoDigest())
	}
	i, _ := s2.FlagIndex("f")
	if s2.FlagInfo(i).Note != "two" || s2.SwitchInfo(0).Modified.Unix() != 200 {
		t.Errorf("info: %+v %+v", s2.FlagInfo(i), s2.SwitchInfo(0))
	}
	var st engine.Store
	st.Publish(s1, time.Now())
	st.Publish(s2, time.Now())
	if st.Load() != s2 {
		t.Error("a snapshot with new notes was not swapped in")
	}
}
