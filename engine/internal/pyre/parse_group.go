package pyre

import (
	"fmt"
	"strconv"
	"strings"
)

// parseClass parses a [...] set after its '['.
func (ps *parser) parseClass(sp *subpattern) *Error {
	src := ps.src
	here := src.tell() - 1
	var set []setItem
	negate, err := src.match("^")
	if err != nil {
		return err
	}
	for {
		this, err := src.get()
		if err != nil {
			return err
		}
		if this == "" {
			return src.error("unterminated character set", src.tell()-here)
		}
		if this == "]" && len(set) > 0 {
			break
		}
		code1, err := ps.classMember(this)
		if err != nil {
			return err
		}
		dash, err := src.match("-")
		if err != nil {
			return err
		}
		if !dash {
			set = append(set, code1)
			continue
		}
		that, err := src.get()
		if err != nil {
			return err
		}
		if that == "" {
			return src.error("unterminated character set", src.tell()-here)
		}
		if that == "]" {
			set = append(set, code1, setItem{kind: setLiteral, lo: '-', hi: '-'})
			break
		}
		code2, err := ps.classMember(that)
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("bad character range %s-%s", this, that)
		if code1.kind != setLiteral || code2.kind != setLiteral || code2.lo < code1.lo {
			return src.error(msg, runeLen(this)+1+runeLen(that))
		}
		set = append(set, setItem{kind: setRange, lo: code1.lo, hi: code2.lo})
	}
	set = uniqSet(set)
	switch {
	case len(set) == 1 && set[0].kind == setLiteral && negate:
		sp.nodes = append(sp.nodes, &node{op: opNotLiteral, ch: set[0].lo})
	case len(set) == 1 && set[0].kind == setLiteral:
		sp.nodes = append(sp.nodes, &node{op: opLiteral, ch: set[0].lo})
	case negate:
		sp.nodes = append(sp.nodes, &node{op: opIn, set: append([]setItem{{kind: setNegate}}, set...)})
	default:
		sp.nodes = append(sp.nodes, &node{op: opIn, set: set})
	}
	return nil
}

// classMember reads one set member token: an escape or a literal.
func (ps *parser) classMember(tok string) (setItem, *Error) {
	if tok[0] == '\\' {
		return ps.classEscape(tok)
	}
	c := []rune(tok)[0]
	return setItem{kind: setLiteral, lo: c, hi: c}, nil
}

// parseGroup parses what follows '('. It returns the verbose setting in
// force afterwards (global flags can turn it on).
func (ps *parser) parseGroup(sp *subpattern, verbose bool, nested int, first bool) (bool, *Error) {
	src := ps.src
	start := src.tell() - 1
	capture, atomic, named := true, false, false
	name := ""
	var add, del flagSet
	q, err := src.match("?")
	if err != nil {
		return verbose, err
	}
	if !q {
		return verbose, ps.groupBody(sp, verbose, nested, start, capture, atomic, named, name, add, del)
	}
	char, err := src.get()
	if err != nil {
		return verbose, err
	}
	switch {
	case char == "":
		return verbose, src.error("unexpected end of pattern", 0)
	case char == "P":
		done, err := ps.parsePExtension(sp, &name)
		if err != nil || done {
			return verbose, err
		}
		named = true
	case char == ":":
		capture = false
	case char == "#":
		return verbose, ps.skipGroupComment(start)
	case isOneOf(char, "=!<"):
		return verbose, ps.parseLookaround(sp, char, verbose, nested, start)
	case char == "(":
		return verbose, ps.parseConditional(sp, verbose, nested, start)
	case char == ">":
		capture, atomic = false, true
	case flagLetters[char] != 0 || char == "-":
		a, d, global, err := ps.parseFlags(char)
		if err != nil {
			return verbose, err
		}
		if global {
			if !first || len(sp.nodes) > 0 {
				return verbose, src.error("global flags not at the start of the expression", src.tell()-start)
			}
			return ps.st.flags&flagVerbose != 0, nil
		}
		add, del, capture = a, d, false
	default:
		return verbose, src.error("unknown extension ?"+char, runeLen(char)+1)
	}
	return verbose, ps.groupBody(sp, verbose, nested, start, capture, atomic, named, name, add, del)
}

// groupBody parses a group's contents up to its ')' and appends the group.
func (ps *parser) groupBody(sp *subpattern, verbose bool, nested, start int, capture, atomic, named bool,
	name string, add, del flagSet) *Error {
	src := ps.src
	group := 0
	if capture {
		gid, msg := ps.st.opengroup(name, named)
		if msg != "" {
			return src.error(msg, runeLen(name)+1)
		}
		group = gid
	}
	subVerbose := (verbose || add&flagVerbose != 0) && del&flagVerbose == 0
	p, err := ps.parseSub(subVerbose, nested+1)
	if err != nil {
		return err
	}
	if ok, err := src.match(")"); err != nil {
		return err
	} else if !ok {
		return src.error("missing ), unterminated subpattern", src.tell()-start)
	}
	if group != 0 {
		ps.st.closegroup(group, p)
	}
	if atomic {
		sp.nodes = append(sp.nodes, &node{op: opAtomic, sub: p})
	} else {
		sp.nodes = append(sp.nodes, &node{op: opSubpattern, group: group, add: add, del: del, sub: p})
	}
	return nil
}

// parsePExtension handles (?P<name>...) and (?P=name). done is true when
// the whole construct was consumed (a named back reference).
func (ps *parser) parsePExtension(sp *subpattern, name *string) (done bool, err *Error) {
	src := ps.src
	if ok, err := src.match("<"); err != nil {
		return false, err
	} else if ok {
		if *name, err = src.getuntil(">", "group name"); err != nil {
			return false, err
		}
		return false, ps.checkgroupname(*name, 1)
	}
	if ok, err := src.match("="); err != nil {
		return false, err
	} else if ok {
		return true, ps.namedBackref(sp)
	}
	char, err := src.get()
	if err != nil {
		return false, err
	}
	if char == "" {
		return false, src.error("unexpected end of pattern", 0)
	}
	return false, src.error("unknown extension ?P"+char, runeLen(char)+2)
}

// namedBackref parses the name of (?P=name) and appends the reference.
func (ps *parser) namedBackref(sp *subpattern) *Error {
	src := ps.src
	name, err := src.getuntil(")", "group name")
	if err != nil {
		return err
	}
	if err := ps.checkgroupname(name, 1); err != nil {
		return err
	}
	gid, ok := ps.st.groupdict[name]
	if !ok {
		return src.error("unknown group name "+pyRepr(name), runeLen(name)+1)
	}
	if !ps.st.checkgroup(gid) {
		return src.error("cannot refer to an open group", runeLen(name)+1)
	}
	if err := ps.st.checklookbehindgroup(gid, src); err != nil {
		return err
	}
	sp.nodes = append(sp.nodes, &node{op: opGroupref, group: gid})
	return nil
}

// checkgroupname is Tokenizer.checkgroupname for a str pattern.
func (ps *parser) checkgroupname(name string, offset int) *Error {
	id, known := isIdentifier(name)
	if !known {
		return unsupported("non-ASCII group name "+pyRepr(name), ps.src.tell())
	}
	if !id {
		return ps.src.error("bad character in group name "+pyRepr(name), runeLen(name)+offset)
	}
	return nil
}

// isIdentifier is str.isidentifier for ASCII names; known is false for
// names with other characters, which would need Unicode's XID tables.
func isIdentifier(s string) (id, known bool) {
	for _, c := range s {
		if c >= 0x80 {
			return false, false
		}
	}
	for i, c := range s {
		letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false, true
		}
	}
	return s != "", true
}

// skipGroupComment skips a (?#...) comment.
func (ps *parser) skipGroupComment(start int) *Error {
	src := ps.src
	for {
		if src.next == "" {
			return src.error("missing ), unterminated comment", src.tell()-start)
		}
		t, err := src.get()
		if err != nil {
			return err
		}
		if t == ")" {
			return nil
		}
	}
}

// parseLookaround parses (?=...), (?!...), (?<=...) and (?<!...).
func (ps *parser) parseLookaround(sp *subpattern, char string, verbose bool, nested, start int) *Error {
	src, st := ps.src, ps.st
	behind := false
	outer := st.lookbehindgroups
	if char == "<" {
		var err *Error
		if char, err = src.get(); err != nil {
			return err
		}
		if char == "" {
			return src.error("unexpected end of pattern", 0)
		}
		if !isOneOf(char, "=!") {
			return src.error("unknown extension ?<"+char, runeLen(char)+2)
		}
		behind = true
		if outer < 0 {
			st.lookbehindgroups = st.groups()
		}
	}
	p, err := ps.parseSub(verbose, nested+1)
	if err != nil {
		return err
	}
	if behind && outer < 0 {
		st.lookbehindgroups = -1
	}
	if ok, err := src.match(")"); err != nil {
		return err
	} else if !ok {
		return src.error("missing ), unterminated subpattern", src.tell()-start)
	}
	sp.nodes = append(sp.nodes, &node{op: opAssert, sub: p, behind: behind, negate: char == "!"})
	return nil
}

// parseConditional parses (?(group)yes|no).
func (ps *parser) parseConditional(sp *subpattern, verbose bool, nested, start int) *Error {
	src, st := ps.src, ps.st
	condname, err := src.getuntil(")", "group name")
	if err != nil {
		return err
	}
	condgroup, err := ps.condGroup(condname)
	if err != nil {
		return err
	}
	if err := st.checklookbehindgroup(condgroup, src); err != nil {
		return err
	}
	yes, err := ps.parse(verbose, nested+1, false)
	if err != nil {
		return err
	}
	var no *subpattern
	if ok, err := src.match("|"); err != nil {
		return err
	} else if ok {
		if no, err = ps.parse(verbose, nested+1, false); err != nil {
			return err
		}
		if src.next == "|" {
			return src.error("conditional backref with more than two branches", 0)
		}
	}
	if ok, err := src.match(")"); err != nil {
		return err
	} else if !ok {
		return src.error("missing ), unterminated subpattern", src.tell()-start)
	}
	sp.nodes = append(sp.nodes, &node{op: opGrouprefExists, group: condgroup, sub: yes, no: no})
	return nil
}

// condGroup resolves the group of a conditional: a name or int(condname).
func (ps *parser) condGroup(condname string) (int, *Error) {
	src, st := ps.src, ps.st
	off := runeLen(condname) + 1
	id, known := isIdentifier(condname)
	if !known {
		return 0, unsupported("non-ASCII group name "+pyRepr(condname), src.tell())
	}
	if id {
		g, ok := st.groupdict[condname]
		if !ok {
			return 0, src.error("unknown group name "+pyRepr(condname), off)
		}
		return g, nil
	}
	g, ok := pyInt(condname)
	if !ok || g < 0 {
		return 0, src.error("bad character in group name "+pyRepr(condname), off)
	}
	if g == 0 {
		return 0, src.error("bad group number", off)
	}
	if g >= maxGroups {
		return 0, src.error(fmt.Sprintf("invalid group reference %d", g), off)
	}
	if _, seen := st.grouprefpos[int(g)]; !seen {
		st.grouprefpos[int(g)] = src.tell() - off
	}
	return int(g), nil
}

// pyInt is int(s) for an ASCII string: surrounding whitespace, a sign, and
// decimal digits with single underscores between them. Values too large
// for int64 come back as maxGroups, which Python rejects too.
func pyInt(s string) (int64, bool) {
	s = strings.Trim(s, " \t\n\v\f\r\x1c\x1d\x1e\x1f")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	s = strings.ReplaceAll(s, "_", "")
	if strings.Trim(s, digits) != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		v = maxGroups
	}
	if neg {
		v = -v
	}
	return v, true
}

// pyRepr approximates Python's repr of a str for messages.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}
