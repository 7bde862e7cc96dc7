package djangodb

import (
	"sync"
	"sync/atomic"
	"time"
)

// minRecheckMargin is the least time a re-check is given to answer before
// its session's TTL, however fast the database has been: room for a
// collection, a busy scheduler or a slower query than any seen yet.
const minRecheckMargin = 100 * time.Millisecond

// marginWindow is how long a slow re-check keeps the margin wide: the
// slowest of the current window and of the one before count.
const marginWindow = 30 * time.Second

// recheckMargin is how long before an answer's TTL its re-check must be
// sent for the answer to arrive in time: twice the slowest batch of the
// last 30 to 60 s (from when it was due to when it answered, so waiting
// for a free slot counts), between minRecheckMargin and max. It is max
// until a batch has answered, and while the slowest recent batch took half
// of max or more (a slow database, or one that hangs until the lookup
// timeout).
//
// A session is re-checked once a TTL at least; the smaller the margin, the
// closer to once. A fixed margin sized for a slow database costs a
// database that answers in milliseconds a third more re-checks.
type recheckMargin struct {
	max   time.Duration
	value atomic.Int64 // the margin, in nanoseconds

	mu          sync.Mutex
	windowStart time.Time
	cur, prev   time.Duration // the slowest batch of this window and the last
}

func newRecheckMargin(max time.Duration) *recheckMargin {
	m := &recheckMargin{max: max}
	m.value.Store(int64(max))
	return m
}

// get returns the margin.
func (m *recheckMargin) get() time.Duration { return time.Duration(m.value.Load()) }

// observe records that a batch due at due answered at now.
func (m *recheckMargin) observe(due, now time.Time) {
	took := max(now.Sub(due), 0)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch since := now.Sub(m.windowStart); {
	case since >= 2*marginWindow:
		m.windowStart, m.cur, m.prev = now, 0, 0
	case since >= marginWindow:
		m.windowStart, m.cur, m.prev = now, 0, m.cur
	}
	m.cur = max(m.cur, took)
	m.value.Store(int64(min(m.max, max(minRecheckMargin, 2*max(m.cur, m.prev)))))
}
