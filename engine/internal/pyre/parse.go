package pyre

import (
	"fmt"
	"strconv"
)

// maxNesting bounds group nesting. CPython's parser is recursive and
// raises RecursionError somewhere deeper than this, at a depth that
// depends on the caller's stack, so deeper patterns are unsupported.
const maxNesting = 100

// state mirrors _parser.State, plus what the emitter needs to know.
type state struct {
	flags            flagSet
	groupdict        map[string]int
	groupwidths      []*width // index 0 is group 0; nil while open
	lookbehindgroups int      // -1 for None
	grouprefpos      map[int]int
}

// groups returns the number of groups opened so far plus one.
func (st *state) groups() int { return len(st.groupwidths) }

// opengroup is State.opengroup.
func (st *state) opengroup(name string, named bool) (int, string) {
	gid := st.groups()
	st.groupwidths = append(st.groupwidths, nil)
	if st.groups() > maxGroups {
		return 0, "too many groups"
	}
	if named {
		if ogid, ok := st.groupdict[name]; ok {
			return 0, fmt.Sprintf("redefinition of group name %s as group %d; was group %d",
				pyRepr(name), gid, ogid)
		}
		st.groupdict[name] = gid
	}
	return gid, ""
}

// closegroup is State.closegroup.
func (st *state) closegroup(gid int, p *subpattern) {
	w := st.getwidth(p)
	st.groupwidths[gid] = &w
}

// checkgroup is State.checkgroup.
func (st *state) checkgroup(gid int) bool {
	return gid < st.groups() && st.groupwidths[gid] != nil
}

// checklookbehindgroup is State.checklookbehindgroup.
func (st *state) checklookbehindgroup(gid int, src *tokenizer) *Error {
	if st.lookbehindgroups < 0 {
		return nil
	}
	if !st.checkgroup(gid) {
		return src.error("cannot refer to an open group", 0)
	}
	if gid >= st.lookbehindgroups {
		return src.error("cannot refer to group defined in the same lookbehind subpattern", 0)
	}
	return nil
}

// parser holds the tokenizer and the state of one parse.
type parser struct {
	src *tokenizer
	st  *state
}

// parsePattern is _parser.parse for a str pattern with no flags.
func parsePattern(pattern []rune) (*subpattern, *state, *Error) {
	src, err := newTokenizer(pattern)
	if err != nil {
		return nil, nil, err
	}
	st := &state{groupdict: map[string]int{}, groupwidths: []*width{nil},
		lookbehindgroups: -1, grouprefpos: map[int]int{}}
	ps := &parser{src: src, st: st}
	p, err := ps.parseSub(false, 0)
	if err != nil {
		return nil, nil, err
	}
	// fix_flags for a str pattern.
	if st.flags&flagLocale != 0 {
		return nil, nil, syntaxErr("cannot use LOCALE flag with a str pattern", -1)
	}
	if st.flags&flagASCII == 0 {
		st.flags |= flagUnicode
	} else if st.flags&flagUnicode != 0 {
		return nil, nil, syntaxErr("ASCII and UNICODE flags are incompatible", -1)
	}
	if src.next != "" {
		return nil, nil, src.error("unbalanced parenthesis", 0)
	}
	for g, pos := range st.grouprefpos {
		if g >= st.groups() {
			return nil, nil, syntaxErr(fmt.Sprintf("invalid group reference %d", g), pos)
		}
	}
	return p, st, nil
}

// parseSub is _parse_sub: an alternation a|b|c.
func (ps *parser) parseSub(verbose bool, nested int) (*subpattern, *Error) {
	if nested > 2*maxNesting {
		return nil, unsupported("groups nested too deeply", ps.src.tell())
	}
	var items []*subpattern
	for {
		item, err := ps.parse(verbose, nested+1, nested == 0 && len(items) == 0)
		if err != nil {
			return nil, err
		}
		items = append(items, item)
		ok, err := ps.src.match("|")
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if nested == 0 {
			verbose = ps.st.flags&flagVerbose != 0
		}
	}
	if len(items) == 1 {
		return items[0], nil
	}
	return factorBranch(items), nil
}

// factorBranch moves a common prefix out of the alternatives and turns an
// alternation of single characters into a set, as _parse_sub does.
func factorBranch(items []*subpattern) *subpattern {
	out := &subpattern{}
	for {
		var prefix *node
		all := true
		for _, it := range items {
			if len(it.nodes) == 0 {
				all = false
				break
			}
			if prefix == nil {
				prefix = it.nodes[0]
			} else if !equalSimple(it.nodes[0], prefix) {
				all = false
				break
			}
		}
		if !all {
			break
		}
		for _, it := range items {
			it.nodes = it.nodes[1:]
		}
		out.nodes = append(out.nodes, prefix)
	}
	var set []setItem
	for _, it := range items {
		if len(it.nodes) != 1 {
			set = nil
			break
		}
		n := it.nodes[0]
		if n.op == opLiteral {
			set = append(set, setItem{kind: setLiteral, lo: n.ch, hi: n.ch})
		} else if n.op == opIn && n.set[0].kind != setNegate {
			set = append(set, n.set...)
		} else {
			set = nil
			break
		}
	}
	if set != nil {
		out.nodes = append(out.nodes, &node{op: opIn, set: uniqSet(set)})
		return out
	}
	out.nodes = append(out.nodes, &node{op: opBranch, branches: items})
	return out
}

// uniqSet drops repeated set members, keeping the first of each.
func uniqSet(items []setItem) []setItem {
	var out []setItem
	seen := map[setItem]bool{}
	for _, it := range items {
		if !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out
}

// parse is _parse: a sequence of items up to '|' or ')'.
func (ps *parser) parse(verbose bool, nested int, first bool) (*subpattern, *Error) {
	sp := &subpattern{}
	src := ps.src
	for {
		this := src.next
		if this == "" || this == "|" || this == ")" {
			break
		}
		if err := src.advance(); err != nil {
			return nil, err
		}
		if verbose {
			if isOneOf(this, whitespace) {
				continue
			}
			if this == "#" {
				if err := ps.skipComment(); err != nil {
					return nil, err
				}
				continue
			}
		}
		var err *Error
		if verbose, err = ps.item(sp, this, verbose, nested, first); err != nil {
			return nil, err
		}
	}
	// Unpack non-capturing groups without flags.
	var out []*node
	for _, n := range sp.nodes {
		if n.op == opSubpattern && n.group == 0 && n.add == 0 && n.del == 0 {
			out = append(out, n.sub.nodes...)
			continue
		}
		out = append(out, n)
	}
	sp.nodes = out
	return sp, nil
}

// item parses one item starting with token this and appends it to sp. It
// returns the verbose setting in force afterwards.
func (ps *parser) item(sp *subpattern, this string, verbose bool, nested int, first bool) (bool, *Error) {
	var n *node
	switch {
	case this[0] == '\\':
		var err *Error
		if n, err = ps.escape(this); err != nil {
			return verbose, err
		}
	case !isOneOf(this, ".\\[{()*+?^$|"):
		n = &node{op: opLiteral, ch: []rune(this)[0]}
	case this == "[":
		return verbose, ps.parseClass(sp)
	case isOneOf(this, "*+?{"):
		return verbose, ps.parseRepeat(sp, this)
	case this == ".":
		n = &node{op: opAny}
	case this == "(":
		return ps.parseGroup(sp, verbose, nested, first)
	case this == "^":
		n = &node{op: opAt, at: atBeginning}
	default: // "$"
		n = &node{op: opAt, at: atEnd}
	}
	sp.nodes = append(sp.nodes, n)
	return verbose, nil
}

// skipComment skips a verbose-mode comment up to a newline.
func (ps *parser) skipComment() *Error {
	for {
		this, err := ps.src.get()
		if err != nil {
			return err
		}
		if this == "" || this == "\n" {
			return nil
		}
	}
}

// parseRepeat handles a quantifier after the last item of sp.
func (ps *parser) parseRepeat(sp *subpattern, this string) *Error {
	src := ps.src
	here := src.tell()
	var lo, hi int64
	switch this {
	case "?":
		lo, hi = 0, 1
	case "*":
		lo, hi = 0, maxRepeat
	case "+":
		lo, hi = 1, maxRepeat
	case "{":
		var literal bool
		var err *Error
		lo, hi, literal, err = ps.parseBraces(here)
		if err != nil {
			return err
		}
		if literal {
			sp.nodes = append(sp.nodes, &node{op: opLiteral, ch: '{'})
			return nil
		}
	}
	if len(sp.nodes) == 0 || sp.nodes[len(sp.nodes)-1].op == opAt {
		return src.error("nothing to repeat", src.tell()-here+runeLen(this))
	}
	last := sp.nodes[len(sp.nodes)-1]
	if last.op == opRepeat {
		return src.error("multiple repeat", src.tell()-here+runeLen(this))
	}
	body := &subpattern{nodes: []*node{last}}
	if last.op == opSubpattern && last.group == 0 && last.add == 0 && last.del == 0 {
		body = last.sub
	}
	kind := repeatGreedy
	if ok, err := src.match("?"); err != nil {
		return err
	} else if ok {
		kind = repeatLazy
	} else if ok, err := src.match("+"); err != nil {
		return err
	} else if ok {
		kind = repeatPossessive
	}
	sp.nodes[len(sp.nodes)-1] = &node{op: opRepeat, min: lo, max: hi, sub: body, kind: kind}
	return nil
}

// parseBraces reads {m,n} after '{'. literal is true when the brace is a
// plain character (the tokenizer is then back after the '{').
func (ps *parser) parseBraces(here int) (lo, hi int64, literal bool, err *Error) {
	src := ps.src
	if src.next == "}" {
		return 0, 0, true, nil
	}
	lo, hi = 0, maxRepeat
	loS, hiS := "", ""
	if loS, err = src.getwhile(-1, digits); err != nil {
		return 0, 0, false, err
	}
	comma, err := src.match(",")
	if err != nil {
		return 0, 0, false, err
	}
	if comma {
		if hiS, err = src.getwhile(-1, digits); err != nil {
			return 0, 0, false, err
		}
	} else {
		hiS = loS
	}
	if ok, err := src.match("}"); err != nil || !ok {
		if err == nil {
			err = src.seek(here)
		}
		return 0, 0, err == nil, err
	}
	if loS != "" {
		if lo, err = parseCount(loS); err != nil {
			return 0, 0, false, err
		}
	}
	if hiS != "" {
		if hi, err = parseCount(hiS); err != nil {
			return 0, 0, false, err
		}
		if hi < lo {
			return 0, 0, false, src.error("min repeat greater than max repeat", src.tell()-here)
		}
	}
	return lo, hi, false, nil
}

// parseCount converts a repeat count, failing as Python does (with
// OverflowError) at MAXREPEAT or more.
func parseCount(s string) (int64, *Error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v >= maxRepeat {
		return 0, syntaxErr("the repetition number is too large", -1)
	}
	return v, nil
}
