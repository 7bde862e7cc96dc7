package proxy

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// Bounds of the decision counts.
const (
	// maxSeries is how many names get a series of their own in
	// flagproxy_flag_decisions_total (the first seen since start); the
	// others are counted under the name "other" of their kind.
	maxSeries = 1000
	// otherName is the name the rest is counted under; a flag actually
	// called "other" is counted there too, so no two series collide.
	otherName = "other"
	// maxTallied bounds the names counted apart in memory, for the
	// status page.
	maxTallied = 100_000
	// tallyGrace is how long the counters of a replaced snapshot stay
	// apart before they are added to the totals: requests that loaded
	// that snapshot have finished counting by then.
	tallyGrace = 10 * time.Second
	maxStripes = 8
)

// nameKey is a name of one kind.
type nameKey struct {
	kind engine.Kind
	name string
}

// onTotal is how often a name was decided on, and decided at all.
type onTotal struct{ on, total uint64 }

// tally counts every decision the pipeline makes, on and off, by name,
// since start. The hot path adds to the counters of the current
// snapshot's generation, in one of a few stripes picked at random so that
// cores rarely contend: it locks the stripe once, then counts each "on"
// decision and the request with plain adds (an atomic add per "on"
// decision made it 1.6 times as slow with 1,000 flags: BenchmarkTally).
// Readers (the status page, /metrics) lock each stripe in turn to sum the
// generations by name.
type tally struct {
	stripes int
	now     func() time.Time
	cur     atomic.Pointer[generation]

	mu      sync.Mutex
	retired []*generation
	totals  map[nameKey]onTotal // of the generations folded in
	series  map[nameKey]bool    // the names with a series of their own
	rest    map[engine.Kind]onTotal
}

// generation holds the counters of one snapshot, in stripes.
type generation struct {
	snap    *engine.Snapshot
	keys    []nameKey // flags, then switches, then samples
	stripes []stripe
	retired time.Time
}

// stripe is one set of a generation's counters: one cell a name (decided
// on) and a last cell (requests), guarded by mu. A request whose flags and
// switches come with their on states as bytes (a memo entry's) adds them
// eight at a time to lanes, a byte a name, which go to the cells before a
// byte can overflow and before any read. The padding keeps two stripes'
// locks off one cache line.
type stripe struct {
	mu      sync.Mutex
	cells   []uint64
	lanes   []uint64 // a byte a flag or switch, eight to a word
	pending int      // the requests added to lanes since they went to cells
	_       [128 - 64]byte
}

// maxLaneAdds is how many requests a lane byte can count.
const maxLaneAdds = 255

func newTally(now func() time.Time) *tally {
	return &tally{stripes: min(maxStripes, 2*runtime.GOMAXPROCS(0)), now: now,
		totals: map[nameKey]onTotal{}, series: map[nameKey]bool{}, rest: map[engine.Kind]onTotal{}}
}

// add counts the decisions d made on snap. on, when not nil, holds the
// on state of d's flags then switches, a byte (0 or 1) each.
func (t *tally) add(snap *engine.Snapshot, d *engine.Decisions, on []byte) {
	g := t.cur.Load()
	if g == nil || g.snap != snap {
		g = t.swap(snap)
	}
	if len(d.Flags)+len(d.Switches)+len(d.Samples) != len(g.keys) {
		return // not decided on snap
	}
	s := &g.stripes[rand.Uint32N(uint32(len(g.stripes)))]
	s.mu.Lock()
	n := len(d.Flags) + len(d.Switches)
	if len(on) == n {
		s.addLanes(on)
	} else {
		s.addDecisions(0, d.Flags)
		s.addDecisions(len(d.Flags), d.Switches)
	}
	s.addDecisions(n, d.Samples)
	s.cells[len(g.keys)]++
	s.mu.Unlock()
}

// addDecisions counts the decisions on of list from cell at.
func (s *stripe) addDecisions(at int, list []engine.Decision) {
	cells := s.cells[at : at+len(list)]
	for i, x := range list {
		cells[i] += uint64(onByte(x.On))
	}
}

// addLanes counts on, a byte a name, eight names an add (an add a name,
// as addDecisions does, took 9,000 of a 1,000-flag request's 102,000
// instructions in BenchmarkServeHTTP1000, counted with callgrind).
func (s *stripe) addLanes(on []byte) {
	full := len(on) / 8
	for i := range full {
		s.lanes[i] += binary.LittleEndian.Uint64(on[8*i:])
	}
	for i := 8 * full; i < len(on); i++ {
		s.cells[i] += uint64(on[i])
	}
	if s.pending++; s.pending == maxLaneAdds {
		s.flushLanes()
	}
}

// flushLanes adds the lanes to the cells and empties them.
func (s *stripe) flushLanes() {
	for i, w := range s.lanes {
		for at := 8 * i; w != 0; at++ {
			s.cells[at] += w & 0xFF
			w >>= 8
		}
		s.lanes[i] = 0
	}
	s.pending = 0
}

// swap makes a generation for snap the current one, unless another
// goroutine did.
func (t *tally) swap(snap *engine.Snapshot) *generation {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g := t.cur.Load(); g != nil && g.snap == snap {
		return g
	}
	g := &generation{snap: snap}
	for i := range snap.NumFlags() {
		g.keys = append(g.keys, nameKey{engine.KindFlag, snap.FlagName(i)})
	}
	for i := range snap.NumSwitches() {
		g.keys = append(g.keys, nameKey{engine.KindSwitch, snap.SwitchName(i)})
	}
	for i := range snap.NumSamples() {
		g.keys = append(g.keys, nameKey{engine.KindSample, snap.SampleName(i)})
	}
	g.stripes = make([]stripe, t.stripes)
	for i := range g.stripes {
		g.stripes[i].cells = make([]uint64, len(g.keys)+1)
		g.stripes[i].lanes = make([]uint64, (snap.NumFlags()+snap.NumSwitches())/8)
	}
	for _, k := range g.keys {
		if !t.series[k] && len(t.series) < maxSeries && k.name != otherName {
			t.series[k] = true
		}
	}
	if old := t.cur.Load(); old != nil {
		old.retired = t.now()
		t.retired = append(t.retired, old)
	}
	t.cur.Store(g)
	t.foldLocked(false)
	return g
}

// sum adds g's counts, by name, to into.
func (g *generation) sum(into func(nameKey, onTotal)) {
	var total uint64
	on := make([]uint64, len(g.keys))
	for i := range g.stripes {
		s := &g.stripes[i]
		s.mu.Lock()
		s.flushLanes()
		for j := range g.keys {
			on[j] += s.cells[j]
		}
		total += s.cells[len(g.keys)]
		s.mu.Unlock()
	}
	for i, k := range g.keys {
		into(k, onTotal{on: on[i], total: total})
	}
}

// foldLocked adds the generations retired more than tallyGrace ago (all
// of them when all is set) to the totals.
func (t *tally) foldLocked(all bool) {
	keep := t.retired[:0]
	for _, g := range t.retired {
		if !all && t.now().Sub(g.retired) < tallyGrace {
			keep = append(keep, g)
			continue
		}
		g.sum(t.addLocked)
	}
	clear(t.retired[len(keep):])
	t.retired = keep
}

// addLocked adds c to the totals of k, or to its kind's rest once
// maxTallied names are counted apart.
func (t *tally) addLocked(k nameKey, c onTotal) {
	cur, ok := t.totals[k]
	if !ok && len(t.totals) >= maxTallied {
		r := t.rest[k.kind]
		t.rest[k.kind] = onTotal{r.on + c.on, r.total + c.total}
		return
	}
	t.totals[k] = onTotal{cur.on + c.on, cur.total + c.total}
}

// read returns the counts of every name since start, and the counts of
// the names past maxTallied by kind.
func (t *tally) read() (map[nameKey]onTotal, map[engine.Kind]onTotal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.foldLocked(false)
	out := make(map[nameKey]onTotal, len(t.totals))
	for k, v := range t.totals {
		out[k] = v
	}
	rest := map[engine.Kind]onTotal{}
	for k, v := range t.rest {
		rest[k] = v
	}
	add := func(k nameKey, c onTotal) {
		v := out[k]
		out[k] = onTotal{v.on + c.on, v.total + c.total}
	}
	for _, g := range t.retired {
		g.sum(add)
	}
	if g := t.cur.Load(); g != nil {
		g.sum(add)
	}
	return out, rest
}

// tallyCollector exports flagproxy_flag_decisions_total{kind,name,state}.
type tallyCollector struct {
	t    *tally
	desc *prometheus.Desc
}

func newTallyCollector(t *tally) tallyCollector {
	return tallyCollector{t: t, desc: prometheus.NewDesc("flagproxy_flag_decisions_total",
		fmt.Sprintf("Decisions made since start by kind (flag, switch, sample), name and state (on, off); names past the first %d seen are counted under name %q.", maxSeries, otherName),
		[]string{"kind", "name", "state"}, nil)}
}

func (c tallyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c tallyCollector) Collect(ch chan<- prometheus.Metric) {
	counts, rest := c.t.read()
	c.t.mu.Lock()
	named := make(map[nameKey]bool, len(c.t.series))
	for k := range c.t.series {
		named[k] = true
	}
	c.t.mu.Unlock()
	others := rest
	for k, v := range counts {
		if named[k] {
			c.emit(ch, k.kind, k.name, v)
			continue
		}
		o := others[k.kind]
		others[k.kind] = onTotal{o.on + v.on, o.total + v.total}
	}
	for kind, v := range others {
		c.emit(ch, kind, otherName, v)
	}
}

func (c tallyCollector) emit(ch chan<- prometheus.Metric, k engine.Kind, name string, v onTotal) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v.on), k.String(), name, "on")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v.total-v.on), k.String(), name, "off")
}
