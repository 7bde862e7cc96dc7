package pyre

import "sort"

// caseRun maps every stride-th code point from lo to hi to itself plus
// delta.
type caseRun struct {
	lo, hi rune
	stride rune
	delta  rune
}

// casePair is one code point that a case mapping changes.
type casePair struct{ from, to rune }

// caseMap is a compiled case mapping: the lookup runs, the code points it
// changes, and the changed pairs sorted by target for inverse lookups.
type caseMap struct {
	runs    []caseRun
	changed runeSet
	byTo    []casePair
}

// newCaseMap compiles runs into a caseMap.
func newCaseMap(runs []caseRun) *caseMap {
	m := &caseMap{runs: runs}
	var rs []rng
	for _, r := range runs {
		for c := r.lo; c <= r.hi; c += r.stride {
			rs = append(rs, rng{c, c})
			m.byTo = append(m.byTo, casePair{c, c + r.delta})
		}
	}
	m.changed = newSet(rs...)
	sort.Slice(m.byTo, func(i, j int) bool { return m.byTo[i].to < m.byTo[j].to })
	return m
}

// of returns the mapping of c.
func (m *caseMap) of(c rune) rune {
	i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].hi >= c })
	if i < len(m.runs) {
		r := m.runs[i]
		if c >= r.lo && (c-r.lo)%r.stride == 0 {
			return c + r.delta
		}
	}
	return c
}

// preimage returns every code point whose mapping lies in x.
func (m *caseMap) preimage(x runeSet) runeSet {
	out := x.minus(m.changed)
	var add []rng
	for _, r := range x {
		i := sort.Search(len(m.byTo), func(i int) bool { return m.byTo[i].to >= r.lo })
		for ; i < len(m.byTo) && m.byTo[i].to <= r.hi; i++ {
			add = append(add, rng{m.byTo[i].from, m.byTo[i].from})
		}
	}
	return out.union(newSet(add...))
}

// image returns the mapping of every code point in x.
func (m *caseMap) image(x runeSet) runeSet {
	out := x.minus(m.changed)
	var add []rng
	for _, r := range x.intersect(m.changed) {
		for c := r.lo; c <= r.hi; c++ {
			if m.changed.contains(c) {
				t := m.of(c)
				add = append(add, rng{t, t})
			}
		}
	}
	return out.union(newSet(add...))
}

var (
	uniLowerMap = newCaseMap(uniLower)
	uniUpperMap = newCaseMap(uniUpper)
	// asciiLowerMap is sre's ascii_tolower: A-Z to a-z.
	asciiLowerMap = newCaseMap([]caseRun{{'A', 'Z', 1, 'a' - 'A'}})
	uniCasedSet   = newSet(uniCased...)
	asciiCasedSet = newSet(rng{'A', 'Z'}, rng{'a', 'z'})
)

// folding is the case-insensitive behaviour of one compiled pattern part:
// Unicode (with _casefix's extra cases) or ASCII.
type folding struct {
	lower *caseMap
	cased runeSet
	extra map[rune][]rune
}

// foldingFor returns the folding sre uses under the given flags.
func foldingFor(f flagSet) folding {
	if f&flagASCII != 0 {
		return folding{lower: asciiLowerMap, cased: asciiCasedSet}
	}
	return folding{lower: uniLowerMap, cased: uniCasedSet, extra: uniExtraCases}
}

// withExtra returns lo plus the characters _casefix lists for it.
func (fo folding) withExtra(lo rune) runeSet {
	set := single(lo)
	for _, e := range fo.extra[lo] {
		set = set.union(single(e))
	}
	return set
}

// literalSet returns the characters a LITERAL c matches under IGNORECASE.
func (fo folding) literalSet(c rune) runeSet {
	if !fo.cased.contains(c) {
		return single(c)
	}
	return fo.lower.preimage(fo.withExtra(fo.lower.of(c)))
}
