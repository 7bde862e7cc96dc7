package pyre

// flagSet holds sre flag bits, with Python's values.
type flagSet int

const (
	flagTemplate   flagSet = 1
	flagIgnoreCase flagSet = 2
	flagLocale     flagSet = 4
	flagMultiline  flagSet = 8
	flagDotAll     flagSet = 16
	flagUnicode    flagSet = 32
	flagVerbose    flagSet = 64
	flagASCII      flagSet = 256

	typeFlags   = flagASCII | flagLocale | flagUnicode
	globalFlags = flagTemplate
)

// flagLetters maps Python's inline flag letters to flags.
var flagLetters = map[string]flagSet{
	"i": flagIgnoreCase, "L": flagLocale, "m": flagMultiline, "s": flagDotAll,
	"x": flagVerbose, "a": flagASCII, "t": flagTemplate, "u": flagUnicode,
}

// combineFlags is _compiler._combine_flags.
func combineFlags(f, add, del flagSet) flagSet {
	if add&typeFlags != 0 {
		f &^= typeFlags
	}
	return (f | add) &^ del
}

// Python's limits (64-bit CPython 3.11).
const (
	maxRepeat = 4294967295 // _sre.MAXREPEAT
	maxGroups = 1073741823 // _sre.MAXGROUPS
)

// opKind is an sre opcode of the parsed pattern.
type opKind uint8

const (
	opLiteral opKind = iota
	opNotLiteral
	opAny
	opIn
	opAt
	opBranch
	opSubpattern
	opAtomic
	opRepeat
	opGroupref
	opGrouprefExists
	opAssert
)

// atCode is an sre AT code before flags are applied.
type atCode uint8

const (
	atBeginning atCode = iota
	atBeginningString
	atBoundary
	atNonBoundary
	atEnd
	atEndString
)

// repeatKind says how a repeat backtracks.
type repeatKind uint8

const (
	repeatGreedy repeatKind = iota
	repeatLazy
	repeatPossessive
)

// setKind is the kind of one character-set member.
type setKind uint8

const (
	setLiteral setKind = iota
	setRange
	setCategory
	setNegate
)

// category is an sre character category.
type category uint8

const (
	catDigit category = iota
	catNotDigit
	catSpace
	catNotSpace
	catWord
	catNotWord
)

// setItem is one member of a character set, as in (op, av).
type setItem struct {
	kind   setKind
	lo, hi rune
	cat    category
}

// node is one (op, av) pair of a parsed pattern.
type node struct {
	op       opKind
	ch       rune      // opLiteral, opNotLiteral
	set      []setItem // opIn
	at       atCode
	group    int     // opSubpattern (0: none), opGroupref, opGrouprefExists
	add, del flagSet // opSubpattern
	// sub is the body of opSubpattern, opAtomic, opRepeat, opAssert and the
	// "yes" arm of opGrouprefExists.
	sub      *subpattern
	no       *subpattern   // opGrouprefExists "no" arm, nil if absent
	branches []*subpattern // opBranch
	min, max int64         // opRepeat
	kind     repeatKind    // opRepeat
	behind   bool          // opAssert: look-behind
	negate   bool          // opAssert: negative
}

// subpattern is a sequence of nodes (Python's SubPattern).
type subpattern struct {
	nodes []*node
}

// equalSimple reports whether a and b compare equal in Python. Nodes that
// hold a SubPattern compare by identity there, so they never do here.
func equalSimple(a, b *node) bool {
	if a == b {
		return true
	}
	if a.op != b.op {
		return false
	}
	switch a.op {
	case opLiteral, opNotLiteral:
		return a.ch == b.ch
	case opAny:
		return true
	case opAt:
		return a.at == b.at
	case opGroupref:
		return a.group == b.group
	case opIn:
		if len(a.set) != len(b.set) {
			return false
		}
		for i := range a.set {
			if a.set[i] != b.set[i] {
				return false
			}
		}
		return true
	}
	return false
}

// isSimple is _compiler._simple: one single-character unit.
func isSimple(p *subpattern) bool {
	if len(p.nodes) != 1 {
		return false
	}
	n := p.nodes[0]
	switch n.op {
	case opSubpattern:
		return n.group == 0 && isSimple(n.sub)
	case opLiteral, opNotLiteral, opAny, opIn:
		return true
	}
	return false
}
