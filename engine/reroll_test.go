package engine_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flagproxy/flagproxy/engine"
)

// seqRand returns its values in order, then fails the test.
type seqRand struct {
	t    *testing.T
	vals []float64
}

func (r *seqRand) Float64() float64 {
	if len(r.vals) == 0 {
		r.t.Fatal("Evaluate drew more often than the flags and samples that roll")
	}
	v := r.vals[0]
	r.vals = r.vals[1:]
	return v
}

// hashDraw is a deterministic Draw for the tests.
func hashDraw(name string, sample bool) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%v\x00%s", sample, name)
	return float64(h.Sum64()>>11) / (1 << 53)
}

// rerollWorld is a random snapshot of waffle flags (some with a
// percentage, some decided earlier), a FeatureFlag key, switches and
// samples, and a random request: cookies for some percentage flags.
func rerollWorld(t *testing.T, rng *rand.Rand) (*engine.Snapshot, engine.Request) {
	t.Helper()
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlag}
	cookies := engine.Params{}
	for i := range 2 + rng.IntN(12) {
		f := engine.WaffleFlag{Name: fmt.Sprintf("f%02d", i), Percent: engine.PercentOf(int32(rng.IntN(1001)))}
		switch rng.IntN(5) {
		case 0:
			f.Everyone = engine.Yes
		case 1:
			f.Authenticated = true
		case 2:
			f.Percent = engine.Percent{}
		}
		if rng.IntN(3) == 0 {
			cookies["dwf_"+f.Name] = []string{"True", "False"}[rng.IntN(2)]
		}
		d.WaffleFlags = append(d.WaffleFlags, f)
	}
	d.FeatureFlags = []engine.FeatureFlag{{Key: "model", Enabled: true, RolloutPercent: 40}}
	d.Switches = []engine.Switch{{Name: "sw", Active: true}}
	for i := range rng.IntN(4) {
		d.Samples = append(d.Samples, engine.Sample{Name: fmt.Sprintf("s%d", i), Percent: engine.PercentOf(int32(rng.IntN(1001)))})
	}
	snap, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	req := engine.Request{Cookies: cookies}
	if rng.IntN(2) == 0 {
		req.Subject = engine.Subject{UserID: "7", Authenticated: true, Active: true}
	}
	return snap, req
}

// TestRerollIsEvaluateWithKeyedDraws checks Reroll against its contract:
// for random worlds and requests, Evaluate followed by Reroll gives what
// Evaluate gives with a Rand that returns, in Evaluate's order, the draw of
// each flag and sample it rolls for; and the result does not depend on the
// Rand of the first evaluation.
func TestRerollIsEvaluateWithKeyedDraws(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	for n := range 500 {
		snap, req := rerollWorld(t, rng)
		first := snap.Evaluate(&req, rand.New(rand.NewPCG(uint64(n), 1)))
		snap.Reroll(&first, hashDraw)

		// The keyed Rand: the flags that rolled, in flag order, then
		// every sample.
		keyed := &seqRand{t: t}
		for i, d := range first.Flags {
			if d.Reason == engine.ReasonPercentRoll {
				keyed.vals = append(keyed.vals, hashDraw(snap.FlagName(i), false))
			}
		}
		for i := range first.Samples {
			keyed.vals = append(keyed.vals, hashDraw(snap.SampleName(i), true))
		}
		want := snap.Evaluate(&req, keyed)
		if len(keyed.vals) != 0 {
			t.Fatalf("world %d: Evaluate drew %d times fewer than Reroll replaced", n, len(keyed.vals))
		}
		first.Cookies, want.Cookies = nil, nil
		if diff := cmp.Diff(want, first); diff != "" {
			t.Fatalf("world %d: Reroll differs from Evaluate with keyed draws (-want +got):\n%s", n, diff)
		}

		again := snap.Evaluate(&req, rand.New(rand.NewPCG(uint64(n), 2)))
		snap.Reroll(&again, hashDraw)
		again.Cookies = nil
		if diff := cmp.Diff(first, again); diff != "" {
			t.Fatalf("world %d: rerolled decisions depend on the first Rand (-first +again):\n%s", n, diff)
		}
	}
}

// TestRerollLeavesOverridesAlone: a flag that rolled and was then
// overridden keeps the override's decision.
func TestRerollLeavesOverridesAlone(t *testing.T) {
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.WaffleFlags = []engine.WaffleFlag{{Name: "a", Percent: engine.PercentOf(1000)}, {Name: "b", Percent: engine.PercentOf(1000)}}
	snap, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	req := engine.Request{Overrides: engine.Overrides{URL: map[string]bool{"a": false}}}
	got := snap.Evaluate(&req, fixedRoll(0.5))
	snap.Reroll(&got, func(string, bool) float64 { return 0.999 })
	want := []engine.Decision{{On: false, Reason: engine.ReasonOverrideURL}, {On: true, Reason: engine.ReasonPercentRoll}}
	if diff := cmp.Diff(want, got.Flags); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if p, ok := snap.FlagPercent(0); !ok || p != 100 {
		t.Errorf("FlagPercent(0) = %v, %v; want 100, true", p, ok)
	}
}
