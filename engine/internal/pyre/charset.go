package pyre

import "sort"

// maxRune is the largest code point a Python str can hold.
const maxRune rune = 0x10FFFF

// rng is an inclusive range of code points.
type rng struct{ lo, hi rune }

// runeSet is a set of code points kept as sorted, disjoint, non-adjacent
// ranges.
type runeSet []rng

// newSet returns the normalized set holding every range in rs.
func newSet(rs ...rng) runeSet {
	c := make([]rng, 0, len(rs))
	for _, r := range rs {
		if r.lo <= r.hi {
			c = append(c, r)
		}
	}
	sort.Slice(c, func(i, j int) bool { return c[i].lo < c[j].lo })
	out := runeSet{}
	for _, r := range c {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			if r.hi > out[n-1].hi {
				out[n-1].hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// single returns the set holding only c.
func single(c rune) runeSet { return runeSet{{c, c}} }

// fullSet returns the set of every code point.
func fullSet() runeSet { return runeSet{{0, maxRune}} }

// contains reports whether c is in s.
func (s runeSet) contains(c rune) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].hi >= c })
	return i < len(s) && s[i].lo <= c
}

// union returns s ∪ t.
func (s runeSet) union(t runeSet) runeSet {
	all := make([]rng, 0, len(s)+len(t))
	all = append(all, s...)
	return newSet(append(all, t...)...)
}

// complement returns every code point not in s.
func (s runeSet) complement() runeSet {
	out := runeSet{}
	next := rune(0)
	for _, r := range s {
		if r.lo > next {
			out = append(out, rng{next, r.lo - 1})
		}
		next = r.hi + 1
	}
	if next <= maxRune {
		out = append(out, rng{next, maxRune})
	}
	return out
}

// minus returns s \ t.
func (s runeSet) minus(t runeSet) runeSet {
	return s.intersect(t.complement())
}

// intersect returns s ∩ t.
func (s runeSet) intersect(t runeSet) runeSet {
	out := runeSet{}
	i, j := 0, 0
	for i < len(s) && j < len(t) {
		lo, hi := max(s[i].lo, t[j].lo), min(s[i].hi, t[j].hi)
		if lo <= hi {
			out = append(out, rng{lo, hi})
		}
		if s[i].hi < t[j].hi {
			i++
		} else {
			j++
		}
	}
	return out
}

// overlaps reports whether s and the range [lo, hi] share a code point.
func (s runeSet) overlaps(lo, hi rune) bool {
	return len(s.intersect(runeSet{{lo, hi}})) > 0
}

// isEmpty reports whether s holds no code point.
func (s runeSet) isEmpty() bool { return len(s) == 0 }
