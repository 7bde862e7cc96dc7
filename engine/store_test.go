package engine_test

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

func TestStorePublishKeepsPointerForSameVersion(t *testing.T) {
	var s engine.Store
	if s.Load() != nil {
		t.Fatal("zero Store: Load() != nil")
	}
	if !s.LoadedAt().IsZero() {
		t.Fatalf("zero Store: LoadedAt() = %v, want the zero time", s.LoadedAt())
	}

	dataA := engine.Data{
		Sources:     []engine.Source{engine.SourceWaffle},
		Waffle:      engine.DefaultWaffleSettings(),
		WaffleFlags: []engine.WaffleFlag{{Name: "x", Everyone: engine.Yes}},
	}
	dataB := dataA
	dataB.WaffleFlags = []engine.WaffleFlag{{Name: "x", Everyone: engine.No}}
	a1, a2, b := mustSnapshot(t, dataA), mustSnapshot(t, dataA), mustSnapshot(t, dataB)
	if a1 == a2 || a1.Version() != a2.Version() || a1.Version() == b.Version() {
		t.Fatal("test setup: want two distinct snapshots with equal versions and a third with another")
	}

	t0 := time.Date(2026, 11, 21, 8, 0, 0, 123456789, time.UTC)
	steps := []struct {
		publish *engine.Snapshot
		at      time.Time
		want    *engine.Snapshot
	}{
		{a1, t0, a1},
		{a2, t0.Add(30 * time.Second), a1}, // same version: readers keep a1
		{a2, t0.Add(60 * time.Second), a1},
		{b, t0.Add(90 * time.Second), b},
		{a2, t0.Add(120 * time.Second), a2}, // version differs from b: swapped
	}
	for i, st := range steps {
		s.Publish(st.publish, st.at)
		if got := s.Load(); got != st.want {
			t.Errorf("step %d: Load() = %p (version %s), want %p", i, got, got.Version(), st.want)
		}
		if got := s.LoadedAt(); !got.Equal(st.at) {
			t.Errorf("step %d: LoadedAt() = %v, want %v", i, got, st.at)
		}
	}
}

// TestStoreConcurrentPublishAndEvaluate swaps snapshots while readers load
// and evaluate; run it with -race. Every reader must see a whole snapshot:
// decisions that match the version it loaded.
func TestStoreConcurrentPublishAndEvaluate(t *testing.T) {
	const readers = 8
	mk := func(everyone engine.Tristate, extra ...engine.WaffleFlag) *engine.Snapshot {
		return mustSnapshot(t, engine.Data{
			Sources: []engine.Source{engine.SourceWaffle, engine.SourceFeatureFlag},
			Waffle:  engine.DefaultWaffleSettings(),
			WaffleFlags: append([]engine.WaffleFlag{
				{Name: "x", Everyone: everyone},
				{Name: "pct", Percent: engine.PercentOf(500)},
			}, extra...),
			FeatureFlags: []engine.FeatureFlag{{Key: "new-checkout", Enabled: true, RolloutPercent: 47}},
			Samples:      []engine.Sample{{Name: "sm", Percent: engine.PercentOf(500)}},
		})
	}
	snaps := []*engine.Snapshot{
		mk(engine.Yes),
		mk(engine.No, engine.WaffleFlag{Name: "y", Staff: true}),
	}
	wantX := map[string]bool{snaps[0].Version(): true, snaps[1].Version(): false}

	var store engine.Store
	start := time.Unix(1_700_000_000, 0)
	store.Publish(snaps[0], start)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var evaluations atomic.Int64
	for r := range readers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(1, uint64(r)))
			subj := engine.Subject{UserID: "1", Authenticated: true, Groups: []int64{1, 2}}
			var last time.Time
			for n := 0; n < 200 || !stop.Load(); n++ {
				snap := store.Load()
				d := snap.Evaluate(&engine.Request{Subject: subj, Cookies: engine.Params{"dwf_pct": "True"}}, rnd)
				evaluations.Add(1)
				if len(d.Flags) != snap.NumFlags() || len(d.Samples) != snap.NumSamples() {
					t.Errorf("reader %d: %d flag decisions for %d flags", r, len(d.Flags), snap.NumFlags())
					return
				}
				i, _ := snap.FlagIndex("x")
				if d.Flags[i].On != wantX[snap.Version()] {
					t.Errorf("reader %d: x = %v on version %s", r, d.Flags[i].On, snap.Version())
					return
				}
				i, _ = snap.FlagIndex("new-checkout") // bucket 46 < 47
				if !d.Flags[i].On {
					t.Errorf("reader %d: new-checkout off for user 1", r)
					return
				}
				at := store.LoadedAt()
				if at.Before(last) {
					t.Errorf("reader %d: LoadedAt went back from %v to %v", r, last, at)
					return
				}
				last = at
			}
		})
	}
	for i := 1; i <= 2000; i++ {
		// Alternate, and republish equal content every third step.
		next := snaps[i%2]
		if i%3 == 0 {
			next = mk(engine.Yes)
			if i%2 == 1 {
				next = mk(engine.No, engine.WaffleFlag{Name: "y", Staff: true})
			}
		}
		store.Publish(next, start.Add(time.Duration(i)*time.Second))
	}
	stop.Store(true)
	wg.Wait()
	if evaluations.Load() < readers*200 {
		t.Errorf("only %d evaluations ran", evaluations.Load())
	}
}

// TestStoreRestore: a restored snapshot is served with no load time (so it
// is stale) until a real load replaces it, and never replaces one.
func TestStoreRestore(t *testing.T) {
	var s engine.Store
	a := mustSnapshotData(t, true)
	b := mustSnapshotData(t, false)
	if !s.Restore(a) || s.Load() != a || !s.LoadedAt().IsZero() {
		t.Fatalf("Restore on an empty store: %p, loaded at %v", s.Load(), s.LoadedAt())
	}
	at := time.Unix(1_800_000_000, 0)
	s.Publish(b, at)
	if s.Load() != b || !s.LoadedAt().Equal(at) {
		t.Errorf("Publish after Restore: %p at %v", s.Load(), s.LoadedAt())
	}
	if s.Restore(a) || s.Load() != b {
		t.Error("Restore replaced a loaded snapshot")
	}
	if s.Restore(nil) {
		t.Error("Restore(nil) reported success")
	}
}

func mustSnapshotData(t *testing.T, on bool) *engine.Snapshot {
	t.Helper()
	d := engine.DefaultData()
	d.Sources = []engine.Source{engine.SourceWaffle}
	d.Switches = []engine.Switch{{Name: "s", Active: on}}
	s, err := engine.NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
