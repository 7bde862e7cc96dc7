package proxy

import (
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// seenShards is how many independently locked parts the dedup set has,
// so that requests on different cores seldom wait for one lock.
const seenShards = 16

// seenSet remembers which visitor-name-value triples were logged in which
// dedup window. It holds at most a fixed number of entries, each a 64-bit
// hash of the triple and a window number (about 100 bytes with the LRU's
// bookkeeping); beyond that the least recently seen goes. An entry evicted
// while its window lasts may log its triple once more in that window:
// those evictions are counted.
//
// Two triples whose hashes collide (about one chance in 10^7 with a million
// entries remembered) share an entry: the second is not logged in a window
// where the first was.
type seenSet struct {
	seed    maphash.Seed
	shards  [seenShards]seenShard
	evicted prometheus.Counter
}

type seenShard struct {
	mu     sync.Mutex
	lru    *simplelru.LRU[uint64, int64]
	window int64 // of the add in progress, for the eviction callback
}

// newSeenSet returns a set of about entries entries whose eviction
// counter goes to reg.
func newSeenSet(entries int, reg prometheus.Registerer) (*seenSet, error) {
	s := &seenSet{seed: maphash.MakeSeed(), evicted: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flagproxy_exposure_dedup_evictions_total",
		Help: "Entries of the exposure dedup set evicted, for its bound, before their window ended: their visitor may be logged again in that window.",
	})}
	if err := reg.Register(s.evicted); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	per := max(1, entries/seenShards)
	for i := range s.shards {
		sh := &s.shards[i]
		l, err := simplelru.NewLRU(per, func(_ uint64, window int64) {
			if window == sh.window {
				s.evicted.Inc()
			}
		})
		if err != nil {
			return nil, err
		}
		sh.lru = l
	}
	return s, nil
}

// add reports whether key was not yet seen in window, and marks it seen.
func (s *seenSet) add(key uint64, window int64) bool {
	sh := &s.shards[key%seenShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if w, ok := sh.lru.Get(key); ok && w == window {
		return false
	}
	sh.window = window
	sh.lru.Add(key, window)
	return true
}

// seenKey hashes who saw which decision of which name.
func seenKey(s *seenSet, v *visitor, k engine.Kind, name string, on bool) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	switch {
	case v.userID != "":
		h.WriteByte('u')
		h.WriteString(v.userID)
	case v.id != "":
		h.WriteByte('s')
		h.WriteString(v.id)
	default:
		h.WriteByte('-')
	}
	h.WriteByte(0)
	h.WriteByte(byte(k))
	h.WriteString(name)
	h.WriteByte(0)
	if on {
		h.WriteByte(1)
	}
	return h.Sum64()
}
