package pyre

// width is a (min, max) match length, as SubPattern.getwidth returns it.
type width struct{ lo, hi int64 }

// satCap keeps width arithmetic far above maxRepeat without overflowing;
// every width is clamped to maxRepeat afterwards, as Python does.
const satCap int64 = 1 << 62

// satAdd adds two non-negative values, saturating at satCap.
func satAdd(a, b int64) int64 {
	if a >= satCap-b {
		return satCap
	}
	return a + b
}

// satMul multiplies two non-negative values, saturating at satCap.
func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > satCap/b {
		return satCap
	}
	return a * b
}

// getwidth is SubPattern.getwidth of Lib/re/_parser.py.
func (st *state) getwidth(p *subpattern) width {
	var lo, hi int64
	for _, n := range p.nodes {
		w := st.nodeWidth(n)
		lo, hi = satAdd(lo, w.lo), satAdd(hi, w.hi)
	}
	return width{min(lo, maxRepeat-1), min(hi, maxRepeat)}
}

// nodeWidth returns the width one node adds.
func (st *state) nodeWidth(n *node) width {
	switch n.op {
	case opBranch:
		i, j := int64(maxRepeat-1), int64(0)
		for _, b := range n.branches {
			w := st.getwidth(b)
			i, j = min(i, w.lo), max(j, w.hi)
		}
		return width{i, j}
	case opAtomic, opSubpattern:
		return st.getwidth(n.sub)
	case opRepeat:
		w := st.getwidth(n.sub)
		return width{satMul(w.lo, n.min), satMul(w.hi, n.max)}
	case opLiteral, opNotLiteral, opAny, opIn:
		return width{1, 1}
	case opGroupref:
		return *st.groupwidths[n.group]
	case opGrouprefExists:
		w := st.getwidth(n.sub)
		if n.no == nil {
			return width{0, w.hi}
		}
		v := st.getwidth(n.no)
		return width{min(w.lo, v.lo), max(w.hi, v.hi)}
	}
	return width{}
}
