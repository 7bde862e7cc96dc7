package proxy

import (
	"sync"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

// BenchmarkTally is what counting one request's decisions costs on the
// hot path, for the 50- and 1,000-flag snapshots of BenchmarkServeHTTP,
// with the on states as a memo entry gives them or without.
func BenchmarkTally(b *testing.B) {
	for _, tc := range []struct {
		name  string
		scale int
	}{{"50", 1}, {"1000", 20}} {
		snap := benchSnapshotN(b, tc.scale)
		d := snap.Evaluate(&engine.Request{}, fixedRand(0.5))
		on := fingerprintHead(nil, &d)[:len(d.Flags)+len(d.Switches)]
		for _, v := range []struct {
			name string
			on   []byte
		}{{"", nil}, {"-memo", on}} {
			b.Run(tc.name+v.name, func(b *testing.B) {
				tl := newTally(testNow)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						tl.add(snap, &d, v.on)
					}
				})
			})
		}
	}
}

// TestTallyCountsConcurrently: decisions counted from many goroutines at
// once, half of them with the on states as bytes (as a memo entry gives
// them: 110 flags and switches, so the lanes have a tail, and more
// requests a stripe than a lane byte holds), while the counts are read,
// add up exactly (run with -race: the stripes' plain adds must happen
// under their locks).
func TestTallyCountsConcurrently(t *testing.T) {
	snap := benchSnapshotN(t, 2)
	d := snap.Evaluate(&engine.Request{}, fixedRand(0.5))
	on := fingerprintHead(nil, &d)[:len(d.Flags)+len(d.Switches)]
	tl := newTally(testNow)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				tl.add(snap, &d, on[:len(on)*(w%2)])
			}
		})
	}
	stop := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			select {
			case <-stop:
				return
			default:
				tl.read()
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-read
	checkCounts(t, tl, snap, &d, workers*each)
}

// checkCounts checks that tl counted n requests of the decisions d on
// snap, flags and switches.
func checkCounts(t *testing.T, tl *tally, snap *engine.Snapshot, d *engine.Decisions, n uint64) {
	t.Helper()
	counts, _ := tl.read()
	check := func(k nameKey, dec engine.Decision) {
		want := onTotal{total: n}
		if dec.On {
			want.on = n
		}
		if got := counts[k]; got != want {
			t.Fatalf("%v %s: counted %+v, want %+v", k.kind, k.name, got, want)
		}
	}
	for i := range snap.NumFlags() {
		check(nameKey{engine.KindFlag, snap.FlagName(i)}, d.Flags[i])
	}
	for i := range snap.NumSwitches() {
		check(nameKey{engine.KindSwitch, snap.SwitchName(i)}, d.Switches[i])
	}
}

// TestTallyLanesHoldTheirCount: thousands of requests counted through
// the lanes with no read between them (so only the lanes' own flushes keep
// a byte from overflowing) add up exactly.
func TestTallyLanesHoldTheirCount(t *testing.T) {
	snap := benchSnapshotN(t, 1)
	d := snap.Evaluate(&engine.Request{}, fixedRand(0.5))
	on := fingerprintHead(nil, &d)[:len(d.Flags)+len(d.Switches)]
	tl := newTally(testNow)
	const n = 5000
	for range n {
		tl.add(snap, &d, on)
	}
	checkCounts(t, tl, snap, &d, n)
}
