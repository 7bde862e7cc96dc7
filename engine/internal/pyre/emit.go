package pyre

import (
	"fmt"
	"strings"
)

// Limits beyond which patterns are refused as unsupported rather than
// translated.
const (
	maxCount      = 1000000 // largest repeat count other than MAXREPEAT
	maxEmitted    = 1 << 20 // largest translated pattern, in bytes
	maxBehindWide = 1 << 20 // largest look-behind width
)

// emitter writes the regexp2 translation of a parsed pattern. It uses only
// constructs whose meaning does not depend on regexp2's options: explicit
// code-point classes, \A, \z, look-arounds, groups and quantifiers.
type emitter struct {
	b   strings.Builder
	err *Error
}

// fail records the first unsupported construct.
func (e *emitter) fail(msg string) {
	if e.err == nil {
		e.err = unsupported(msg, -1)
	}
}

// seq emits a subpattern under flags f.
func (e *emitter) seq(p *subpattern, f flagSet) {
	for _, n := range p.nodes {
		if e.err != nil || e.b.Len() > maxEmitted {
			e.fail("pattern too large once translated")
			return
		}
		e.node(n, f)
	}
}

// group emits p inside a non-capturing group.
func (e *emitter) group(p *subpattern, f flagSet) {
	e.b.WriteString("(?:")
	e.seq(p, f)
	e.b.WriteString(")")
}

// node emits one node under flags f.
func (e *emitter) node(n *node, f flagSet) {
	switch n.op {
	case opLiteral:
		e.set(e.literalSet(n.ch, f))
	case opNotLiteral:
		e.set(e.literalSet(n.ch, f).complement())
	case opAny:
		if f&flagDotAll != 0 {
			e.set(fullSet())
		} else {
			e.set(single('\n').complement())
		}
	case opIn:
		e.set(inSet(n.set, f))
	case opAt:
		e.at(n.at, f)
	case opBranch:
		e.b.WriteString("(?:")
		for i, br := range n.branches {
			if i > 0 {
				e.b.WriteString("|")
			}
			e.seq(br, f)
		}
		e.b.WriteString(")")
	case opSubpattern:
		e.subpattern(n, f)
	case opAtomic:
		e.b.WriteString("(?>")
		e.seq(n.sub, f)
		e.b.WriteString(")")
	case opRepeat:
		e.repeat(n, f)
	case opGroupref:
		e.groupref(n.group, f)
	case opGrouprefExists:
		fmt.Fprintf(&e.b, "(?(%d)", n.group)
		e.group(n.sub, f)
		if n.no != nil {
			e.b.WriteString("|")
			e.group(n.no, f)
		}
		e.b.WriteString(")")
	case opAssert:
		e.b.WriteString(assertOpen(n.behind, n.negate))
		e.seq(n.sub, f)
		e.b.WriteString(")")
	}
}

// assertOpen returns the opening of a look-ahead or look-behind.
func assertOpen(behind, negate bool) string {
	switch {
	case behind && negate:
		return "(?<!"
	case behind:
		return "(?<="
	case negate:
		return "(?!"
	}
	return "(?="
}

// literalSet returns the characters a LITERAL c matches under flags.
func (e *emitter) literalSet(c rune, f flagSet) runeSet {
	if f&flagIgnoreCase == 0 {
		return single(c)
	}
	return foldingFor(f).literalSet(c)
}

// subpattern emits a group, capturing or not, with its flags applied.
func (e *emitter) subpattern(n *node, f flagSet) {
	if n.group != 0 {
		e.b.WriteString("(")
	} else {
		e.b.WriteString("(?:")
	}
	e.seq(n.sub, combineFlags(f, n.add, n.del))
	e.b.WriteString(")")
}

// repeat emits a quantified body.
func (e *emitter) repeat(n *node, f flagSet) {
	if n.min > maxCount || (n.max != maxRepeat && n.max > maxCount) {
		e.fail("repeat count too large")
		return
	}
	if n.kind == repeatPossessive {
		if !isSimple(n.sub) {
			// CPython 3.11.0-3.11.4 match these differently from later 3.11.
			e.fail("possessive repeat of a multi-character item")
			return
		}
		e.b.WriteString("(?>")
	}
	e.group(n.sub, f)
	switch {
	case n.max == maxRepeat:
		fmt.Fprintf(&e.b, "{%d,}", n.min)
	default:
		fmt.Fprintf(&e.b, "{%d,%d}", n.min, n.max)
	}
	if n.kind == repeatLazy {
		e.b.WriteString("?")
	}
	if n.kind == repeatPossessive {
		e.b.WriteString(")")
	}
}

// groupref emits a back reference.
func (e *emitter) groupref(g int, f flagSet) {
	switch {
	case f&flagIgnoreCase == 0:
		fmt.Fprintf(&e.b, `\k<%d>`, g)
	case f&flagASCII != 0:
		e.fail("case-insensitive back reference in ASCII mode")
	default:
		// regexp2 compares unicode.ToLower of both sides, which equals
		// sre's lower() on every code point (see TestGoLowerMatchesPython).
		fmt.Fprintf(&e.b, `(?i:\k<%d>)`, g)
	}
}

// at emits an anchor.
func (e *emitter) at(a atCode, f flagSet) {
	multi := f&flagMultiline != 0
	switch {
	case a == atBeginning && multi:
		e.b.WriteString(`(?<!` + classString(single('\n').complement()) + `)`)
	case a == atBeginning, a == atBeginningString:
		e.b.WriteString(`\A`)
	case a == atEnd && multi:
		e.b.WriteString(`(?!` + classString(single('\n').complement()) + `)`)
	case a == atEnd:
		e.b.WriteString(`(?=\x{A}?\z)`)
	case a == atEndString:
		e.b.WriteString(`\z`)
	case a == atBoundary:
		w := classString(wordSet(f))
		e.b.WriteString("(?:(?<=" + w + ")(?!" + w + ")|(?<!" + w + ")(?=" + w + "))")
	case a == atNonBoundary:
		w := classString(wordSet(f))
		e.b.WriteString(`(?!\A\z)(?:(?<=` + w + ")(?=" + w + ")|(?<!" + w + ")(?!" + w + "))")
	}
}

// set emits a character class for s.
func (e *emitter) set(s runeSet) { e.b.WriteString(classString(s)) }

// classString writes s as a regexp2 class of escaped code points.
func classString(s runeSet) string {
	if s.isEmpty() {
		return "(?!)"
	}
	if len(s) == 1 && s[0].lo == s[0].hi {
		return char(s[0].lo)
	}
	var b strings.Builder
	b.WriteString("[")
	for _, r := range s {
		b.WriteString(char(r.lo))
		if r.hi != r.lo {
			b.WriteString("-" + char(r.hi))
		}
	}
	b.WriteString("]")
	return b.String()
}

// char writes one code point: ASCII letters and digits as themselves,
// everything else as \x{HEX}, so no character is ever special.
func char(c rune) string {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return string(c)
	}
	return fmt.Sprintf(`\x{%X}`, c)
}
