package pyre

// searchGuard reproduces a quirk of sre's search: when a pattern (of
// non-zero minimum width) starts with a character set, _compile_info
// stores that set as a prefix check compiled with the pattern's global
// flags, even when the set sits in a group such as (?a:...) whose own
// flags read \w, \d or \s differently. re.search skips every position whose
// character fails that check. searchGuard returns the prefix set when it
// can disagree with the set itself, and ok false otherwise.
func (st *state) searchGuard(p *subpattern) (guard runeSet, ok bool) {
	if st.getwidth(p).lo == 0 {
		return nil, false
	}
	f := st.flags
	for {
		if len(p.nodes) == 0 {
			return nil, false
		}
		n := p.nodes[0]
		if n.op != opSubpattern {
			break
		}
		f = combineFlags(f, n.add, n.del)
		p = n.sub
	}
	n := p.nodes[0]
	if n.op != opIn || f&typeFlags == st.flags&typeFlags || !hasCategory(n.set) {
		return nil, false
	}
	if f&flagIgnoreCase != 0 && setIsCased(n.set, foldingFor(f)) {
		return nil, false // _get_charset_prefix gives up
	}
	negate := n.set[0].kind == setNegate
	return applyNegate(plainSet(n.set, st.flags), negate), true
}

// hasCategory reports whether a set has a \d, \w or \s member.
func hasCategory(items []setItem) bool {
	for _, it := range items {
		if it.kind == setCategory {
			return true
		}
	}
	return false
}

// setIsCased is _get_charset_prefix's test for cased literals and ranges.
func setIsCased(items []setItem, fo folding) bool {
	for _, it := range items {
		switch it.kind {
		case setLiteral:
			if fo.cased.contains(it.lo) {
				return true
			}
		case setRange:
			if it.hi > 0xFFFF || fo.cased.overlaps(it.lo, it.hi) {
				return true
			}
		}
	}
	return false
}
