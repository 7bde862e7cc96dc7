package engine

import (
	"sync/atomic"
	"time"
)

// Store publishes the current snapshot to concurrent readers. The zero value
// holds no snapshot and is ready to use.
type Store struct {
	snap     atomic.Pointer[Snapshot]
	loadedAt atomic.Int64 // unix nanoseconds of the last successful load
}

// Load returns the current snapshot, or nil before the first Publish.
func (s *Store) Load() *Snapshot { return s.snap.Load() }

// Publish records a successful load at time at. A snapshot whose version
// and informative fields (notes, dates: InfoDigest) equal the current
// one's is not swapped in, so readers keep the same pointer while the data
// is unchanged. A nil snapshot is ignored.
func (s *Store) Publish(snap *Snapshot, at time.Time) {
	if snap == nil {
		return
	}
	if cur := s.snap.Load(); cur == nil || cur.Version() != snap.Version() || cur.InfoDigest() != snap.InfoDigest() {
		s.snap.Store(snap)
	}
	s.loadedAt.Store(at.UnixNano())
}

// LoadedAt returns the time of the last successful load, or the zero time.
func (s *Store) LoadedAt() time.Time {
	n := s.loadedAt.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Restore publishes snap, read from a persisted snapshot file rather than
// loaded, when nothing has been published yet: LoadedAt stays zero, so the
// snapshot counts as stale until the first real load replaces it. It
// reports whether snap was published.
func (s *Store) Restore(snap *Snapshot) bool {
	return snap != nil && s.loadedAt.Load() == 0 && s.snap.CompareAndSwap(nil, snap)
}
