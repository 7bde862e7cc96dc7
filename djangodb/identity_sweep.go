package djangodb

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"
)

// knownEntry is a logged-in session's answer in the known cache, with the
// cookie value to re-check it by and whether a request used it since it
// was stored. An entry is replaced, never changed, except for used.
type knownEntry struct {
	cachedIdentity
	value string
	used  atomic.Bool
}

// markUsed records that a request was served e; it writes only the first
// time, so that requests do not contend on the flag.
func (e *knownEntry) markUsed() {
	if !e.used.Load() {
		e.used.Store(true)
	}
}

// planned is a re-check due at at for the known session key, as long as
// its entry is still the answer checked at checked. early marks a
// session's first re-check, planned at a random moment before its time
// (IdentityCache.plan).
type planned struct {
	key     [32]byte
	checked time.Time
	at      time.Time
	early   bool
}

// plan is a min-heap of planned re-checks by at.
type plan []planned

func (p plan) Len() int           { return len(p) }
func (p plan) Less(i, j int) bool { return p[i].at.Before(p[j].at) }
func (p plan) Swap(i, j int)      { p[i], p[j] = p[j], p[i] }
func (p *plan) Push(x any)        { *p = append(*p, x.(planned)) }
func (p *plan) Pop() any {
	old := *p
	x := old[len(old)-1]
	*p = old[:len(old)-1]
	return x
}

// sweeper re-checks, every tick, the known sessions that requests used
// since their last check and whose answers enter the last part of their
// TTL (see IdentityCache): together, in batches of up to BatchSize. A
// sweep is started by the first request after its time, so it needs no
// goroutine of its own and no shutdown.
type sweeper struct {
	mu   sync.Mutex
	plan plan
	max  int          // planned re-checks kept at most
	next atomic.Int64 // unix nanoseconds of the next sweep
}

// add plans a re-check; past max it is dropped, and the session is
// re-checked when a request sees its answer in the last part of its TTL.
func (s *sweeper) add(p planned) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.plan) < s.max {
		heap.Push(&s.plan, p)
	}
}

// due removes and returns the re-checks planned at or before now.
func (s *sweeper) due(now time.Time) []planned {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []planned
	for len(s.plan) > 0 && !s.plan[0].at.After(now) {
		out = append(out, heap.Pop(&s.plan).(planned))
	}
	return out
}

// maybeSweep starts a sweep if one is due at now.
func (c *IdentityCache) maybeSweep(now time.Time) {
	next := c.sweeper.next.Load()
	if now.UnixNano() < next || !c.sweeper.next.CompareAndSwap(next, now.Add(c.recheckWait).UnixNano()) {
		return
	}
	go c.sweep(now)
}

// sweep queues, due at once, the re-checks planned by now of sessions
// still holding the planned answer, used since it was stored, and still
// servable: an answer past its TTL (the first sweep after an idle spell)
// is looked up by the next request that needs it, if one comes.
func (c *IdentityCache) sweep(now time.Time) {
	var rs []recheck
	for _, p := range c.sweeper.due(now) {
		e, ok := c.known.Peek(p.key)
		if !ok || !e.checked.Equal(p.checked) || !e.used.Load() || c.state(e.cachedIdentity, now) == stateDue {
			continue
		}
		rs = append(rs, recheck{key: p.key, value: e.value, used: p.early})
	}
	if len(rs) > 0 {
		c.batch.recheckAll(rs, time.Now())
	}
}
