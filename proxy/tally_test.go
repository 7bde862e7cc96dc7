package proxy

import (
	"sync"
	"testing"

	"github.com/flagproxy/flagproxy/engine"
)

// BenchmarkTally is what counting one request's decisions costs on the
// hot path, for the 50- and 1,000-flag snapshots of BenchmarkServeHTTP.
func BenchmarkTally(b *testing.B) {
	for _, tc := range []struct {
		name  string
		scale int
	}{{"50", 1}, {"1000", 20}} {
		b.Run(tc.name, func(b *testing.B) {
			snap := benchSnapshotN(b, tc.scale)
			d := snap.Evaluate(&engine.Request{}, fixedRand(0.5))
			tl := newTally(testNow)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tl.add(snap, &d)
				}
			})
		})
	}
}

// TestTallyCountsConcurrently: decisions counted from many goroutines at
// once, while the counts are read, add up exactly (run with -race: the
// stripes' plain adds must happen under their locks).
func TestTallyCountsConcurrently(t *testing.T) {
	snap := benchSnapshotN(t, 2)
	d := snap.Evaluate(&engine.Request{}, fixedRand(0.5))
	tl := newTally(testNow)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				tl.add(snap, &d)
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
	counts, _ := tl.read()
	for i := range snap.NumFlags() {
		want := onTotal{total: workers * each}
		if d.Flags[i].On {
			want.on = workers * each
		}
		if got := counts[nameKey{engine.KindFlag, snap.FlagName(i)}]; got != want {
			t.Fatalf("flag %s: counted %+v, want %+v", snap.FlagName(i), got, want)
		}
	}
}
