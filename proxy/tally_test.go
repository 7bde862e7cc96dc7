package proxy

import (
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
