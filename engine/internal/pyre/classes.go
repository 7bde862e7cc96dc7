package pyre

var (
	asciiDigitSet = newSet(rng{'0', '9'})
	asciiSpaceSet = newSet(rng{'\t', '\r'}, rng{' ', ' '})
	asciiWordSet  = newSet(rng{'0', '9'}, rng{'A', 'Z'}, rng{'_', '_'}, rng{'a', 'z'})
	uniDigitSet   = newSet(uniDigit...)
	uniSpaceSet   = newSet(uniSpace...)
	uniWordSet    = newSet(uniWord...)
)

// categorySet returns the characters of an sre category under flags.
func categorySet(c category, f flagSet) runeSet {
	ascii := f&flagASCII != 0
	var s runeSet
	switch c {
	case catDigit, catNotDigit:
		s = pick(ascii, asciiDigitSet, uniDigitSet)
	case catSpace, catNotSpace:
		s = pick(ascii, asciiSpaceSet, uniSpaceSet)
	default:
		s = pick(ascii, asciiWordSet, uniWordSet)
	}
	if c == catNotDigit || c == catNotSpace || c == catNotWord {
		return s.complement()
	}
	return s
}

// pick returns a if cond holds, else b.
func pick(cond bool, a, b runeSet) runeSet {
	if cond {
		return a
	}
	return b
}

// wordSet returns the characters \b treats as word characters.
func wordSet(f flagSet) runeSet { return categorySet(catWord, f) }

// inSet returns the characters an IN node matches under flags, following
// _compiler._optimize_charset and the IN / IN_UNI_IGNORE opcodes: with
// IGNORECASE and a cased member, the set is tested against the lowercased
// input character, and members beyond the BMP are kept as written.
func inSet(items []setItem, f flagSet) runeSet {
	negate := len(items) > 0 && items[0].kind == setNegate
	if f&flagIgnoreCase == 0 {
		return applyNegate(plainSet(items, f), negate)
	}
	fo := foldingFor(f)
	lowered := runeSet{} // Python's charmap: lowered BMP members
	tail := runeSet{}    // members tested as written against lower(ch)
	hascased := false
	for _, it := range items {
		switch it.kind {
		case setLiteral:
			lo := fo.lower.of(it.lo)
			if lo > 0xFFFF {
				tail, hascased = tail.union(single(it.lo)), true
				continue
			}
			lowered = lowered.union(fo.withExtra(lo))
			hascased = hascased || fo.cased.contains(it.lo)
		case setRange:
			bmp := newSet(rng{it.lo, min(it.hi, 0xFFFF)})
			lowered = lowered.union(withExtras(fo, fo.lower.image(bmp)))
			if it.hi > 0xFFFF {
				tail, hascased = tail.union(rangeUniIgnore(it.lo, it.hi)), true
				continue
			}
			hascased = hascased || fo.cased.overlaps(it.lo, it.hi)
		case setCategory:
			tail = tail.union(categorySet(it.cat, f))
		}
	}
	if !hascased {
		return applyNegate(plainSet(items, f), negate)
	}
	return applyNegate(fo.lower.preimage(lowered.union(tail)), negate)
}

// withExtras adds _casefix's extra cases of every member of s.
func withExtras(fo folding, s runeSet) runeSet {
	for k, vs := range fo.extra {
		if s.contains(k) {
			for _, v := range vs {
				s = s.union(single(v))
			}
		}
	}
	return s
}

// rangeUniIgnore is what RANGE_UNI_IGNORE lo-hi accepts for an already
// lowercased character v: v in range, or its uppercase in range.
func rangeUniIgnore(lo, hi rune) runeSet {
	r := newSet(rng{lo, hi})
	return r.union(uniUpperMap.preimage(r))
}

// plainSet is the union of the members, tested against the character as is.
func plainSet(items []setItem, f flagSet) runeSet {
	var rs []rng
	for _, it := range items {
		switch it.kind {
		case setLiteral, setRange:
			rs = append(rs, rng{it.lo, it.hi})
		case setCategory:
			rs = append(rs, categorySet(it.cat, f)...)
		}
	}
	return newSet(rs...)
}

// applyNegate complements s when negate is set.
func applyNegate(s runeSet, negate bool) runeSet {
	if negate {
		return s.complement()
	}
	return s
}
