package pyre

import (
	"fmt"
	"strconv"
)

// simpleEscapes are _parser.ESCAPES.
var simpleEscapes = map[string]rune{
	`\a`: '\a', `\b`: '\b', `\f`: '\f', `\n`: '\n', `\r`: '\r', `\t`: '\t', `\v`: '\v', `\\`: '\\',
}

// categoryEscapes are the IN members of _parser.CATEGORIES.
var categoryEscapes = map[string]category{
	`\d`: catDigit, `\D`: catNotDigit, `\s`: catSpace, `\S`: catNotSpace, `\w`: catWord, `\W`: catNotWord,
}

// atEscapes are the AT members of _parser.CATEGORIES.
var atEscapes = map[string]atCode{
	`\A`: atBeginningString, `\b`: atBoundary, `\B`: atNonBoundary, `\Z`: atEndString,
}

// classNode returns the IN node for one category escape.
func classNode(c category) *node {
	return &node{op: opIn, set: []setItem{{kind: setCategory, cat: c}}}
}

// hexEscape reads the digits of \x, \u or \U; ok is false when the escape
// is not one of those.
func (ps *parser) hexEscape(escape string) (r rune, ok bool, err *Error) {
	n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[escape[1]]
	if n == 0 {
		return 0, false, nil
	}
	more, err := ps.src.getwhile(n, hexDigits)
	if err != nil {
		return 0, true, err
	}
	escape += more
	if len(escape) != n+2 {
		return 0, true, ps.src.error("incomplete escape "+escape, runeLen(escape))
	}
	v, _ := strconv.ParseUint(escape[2:], 16, 32)
	if v > uint64(maxRune) {
		// chr() raises ValueError, which becomes "bad escape".
		return 0, true, ps.src.error("bad escape "+escape, runeLen(escape))
	}
	return rune(v), true, nil
}

// namedEscape handles \N{...}: the code point of a character name. A name
// Go's table does not hold may still be one of Python's aliases or named
// sequences, so it is unsupported rather than a syntax error.
func (ps *parser) namedEscape() (rune, *Error) {
	ok, err := ps.src.match("{")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ps.src.error("missing {", 0)
	}
	name, err := ps.src.getuntil("}", "character name")
	if err != nil {
		return 0, err
	}
	r, found := lookupName(name)
	if !found {
		return 0, unsupported("undefined or alias character name "+strconv.Quote(name), ps.src.tell())
	}
	return r, nil
}

// classEscape is _class_escape: an escape inside [...]. It returns either a
// literal code point or a category.
func (ps *parser) classEscape(escape string) (setItem, *Error) {
	if c, ok := simpleEscapes[escape]; ok {
		return setItem{kind: setLiteral, lo: c, hi: c}, nil
	}
	if c, ok := categoryEscapes[escape]; ok {
		return setItem{kind: setCategory, cat: c}, nil
	}
	c := []rune(escape)[1]
	if r, ok, err := ps.hexEscape(escape); ok {
		return setItem{kind: setLiteral, lo: r, hi: r}, err
	}
	switch {
	case c == 'N':
		r, err := ps.namedEscape()
		return setItem{kind: setLiteral, lo: r, hi: r}, err
	case c >= '0' && c <= '7':
		more, err := ps.src.getwhile(2, octDigits)
		if err != nil {
			return setItem{}, err
		}
		escape += more
		v, _ := strconv.ParseUint(escape[1:], 8, 32)
		if v > 0o377 {
			return setItem{}, ps.src.error(fmt.Sprintf("octal escape value %s outside of range 0-0o377", escape), runeLen(escape))
		}
		return setItem{kind: setLiteral, lo: rune(v), hi: rune(v)}, nil
	case c == '8' || c == '9':
		return setItem{}, ps.src.error("bad escape "+escape, runeLen(escape))
	case c < 128 && isOneOf(string(c), asciiLetter):
		return setItem{}, ps.src.error("bad escape "+escape, runeLen(escape))
	}
	return setItem{kind: setLiteral, lo: c, hi: c}, nil
}

// escape is _escape: an escape outside a character set.
func (ps *parser) escape(escape string) (*node, *Error) {
	if a, ok := atEscapes[escape]; ok {
		return &node{op: opAt, at: a}, nil
	}
	if c, ok := categoryEscapes[escape]; ok {
		return classNode(c), nil
	}
	if c, ok := simpleEscapes[escape]; ok {
		return &node{op: opLiteral, ch: c}, nil
	}
	c := []rune(escape)[1]
	if r, ok, err := ps.hexEscape(escape); ok {
		return &node{op: opLiteral, ch: r}, err
	}
	switch {
	case c == 'N':
		r, err := ps.namedEscape()
		if err != nil {
			return nil, err
		}
		return &node{op: opLiteral, ch: r}, nil
	case c == '0':
		more, err := ps.src.getwhile(2, octDigits)
		if err != nil {
			return nil, err
		}
		v, _ := strconv.ParseUint(escape[1:]+more, 8, 32)
		return &node{op: opLiteral, ch: rune(v)}, nil
	case c >= '1' && c <= '9':
		return ps.numericEscape(escape)
	case c < 128 && isOneOf(string(c), asciiLetter):
		return nil, ps.src.error("bad escape "+escape, runeLen(escape))
	}
	return &node{op: opLiteral, ch: c}, nil
}

// numericEscape handles \1..\99 group references and three-digit octal
// escapes.
func (ps *parser) numericEscape(escape string) (*node, *Error) {
	src := ps.src
	if isOneOf(src.next, digits) {
		t, err := src.get()
		if err != nil {
			return nil, err
		}
		escape += t
		if isOneOf(escape[1:2], octDigits) && isOneOf(escape[2:3], octDigits) && isOneOf(src.next, octDigits) {
			t, err := src.get()
			if err != nil {
				return nil, err
			}
			escape += t
			v, _ := strconv.ParseUint(escape[1:], 8, 32)
			if v > 0o377 {
				return nil, src.error(fmt.Sprintf("octal escape value %s outside of range 0-0o377", escape), runeLen(escape))
			}
			return &node{op: opLiteral, ch: rune(v)}, nil
		}
	}
	group, _ := strconv.Atoi(escape[1:])
	if group < ps.st.groups() {
		if !ps.st.checkgroup(group) {
			return nil, src.error("cannot refer to an open group", runeLen(escape))
		}
		if err := ps.st.checklookbehindgroup(group, src); err != nil {
			return nil, err
		}
		return &node{op: opGroupref, group: group}, nil
	}
	return nil, src.error(fmt.Sprintf("invalid group reference %d", group), runeLen(escape)-1)
}
