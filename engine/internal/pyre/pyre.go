// Package pyre compiles Python 3.11 re patterns (str patterns, default
// flags) into matchers with Python's semantics, so that a flag condition
// such as django-flags' "path matches" (re.search(pattern, request.path))
// evaluates exactly as it does in Django.
//
// The pattern is parsed the way Lib/re/_parser.py parses it, checked the
// way Lib/re/_compiler.py checks it, and translated into a
// github.com/dlclark/regexp2 pattern built only from explicit constructs:
// every character class is spelled out as code-point ranges taken from
// CPython's own tables (\w, \d, \s and the case mappings of Unicode 14.0),
// so regexp2's flags and Unicode tables never decide a match. Patterns that
// Python rejects return ErrSyntax; patterns Python accepts but this package
// cannot reproduce exactly return ErrUnsupported, and callers fail closed.
package pyre

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

var (
	// ErrSyntax is wrapped by Compile's error when Python's re.compile
	// would raise (re.error, or OverflowError or ValueError for the few
	// patterns where Python raises those).
	ErrSyntax = errors.New("pyre: invalid Python regular expression")
	// ErrUnsupported is wrapped by Compile's error when Python accepts the
	// pattern but this package cannot reproduce its behaviour exactly.
	ErrUnsupported = errors.New("pyre: unsupported Python regular expression")
	// ErrTimeout is wrapped by Search's error when the search ran longer
	// than MatchTimeout (catastrophic backtracking).
	ErrTimeout = errors.New("pyre: match timeout")
)

// MatchTimeout bounds one Search; a search that runs longer (catastrophic
// backtracking) returns an error.
const MatchTimeout = 50 * time.Millisecond

// Regexp is a compiled Python pattern. It is safe for concurrent use.
type Regexp struct {
	pattern string
	re      *regexp2.Regexp
}

// Compile translates a Python re pattern. It returns an error wrapping
// ErrSyntax when Python's re.compile would raise, or ErrUnsupported when the
// pattern uses something this package cannot reproduce exactly.
func Compile(pattern string) (*Regexp, error) {
	if !utf8.ValidString(pattern) {
		return nil, unsupported("pattern is not valid UTF-8", -1)
	}
	p, st, perr := parsePattern([]rune(pattern))
	if perr != nil {
		return nil, perr
	}
	if perr := st.checkCompile(p); perr != nil {
		return nil, perr
	}
	e := &emitter{}
	if guard, ok := st.searchGuard(p); ok {
		e.b.WriteString("(?=" + classString(guard) + ")")
	}
	e.seq(p, st.flags)
	if e.err == nil && e.b.Len() > maxEmitted {
		e.fail("pattern too large once translated")
	}
	if e.err != nil {
		return nil, e.err
	}
	re, err := regexp2.Compile(e.b.String(), regexp2.None)
	if err != nil {
		return nil, unsupported("translation rejected by regexp2: "+err.Error(), -1)
	}
	re.MatchTimeout = MatchTimeout
	return &Regexp{pattern: pattern, re: re}, nil
}

// Search reports whether re.search(pattern, s) finds a match. s must be
// valid UTF-8. A search that exceeds MatchTimeout returns an error wrapping
// ErrTimeout.
func (r *Regexp) Search(s string) (bool, error) {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		found, err := r.re.MatchString(s)
		if err == nil {
			return found, nil
		}
		// regexp2 reads a coarse clock that a goroutine updates; when that
		// goroutine was not scheduled for a while, a search can be stopped
		// long before MatchTimeout has really passed. Retry those.
		if attempt == 3 || time.Since(start) >= MatchTimeout {
			return false, fmt.Errorf("%w: %v", ErrTimeout, err)
		}
	}
}

// String returns the Python pattern r was compiled from.
func (r *Regexp) String() string { return r.pattern }

// checkCompile reports what _compiler.compile would raise for p: a
// look-behind of variable width, or a repeat under the TEMPLATE flag.
func (st *state) checkCompile(p *subpattern) *Error {
	var err *Error
	repeats := false
	walk(p, func(n *node) {
		if n.op == opRepeat {
			repeats = true
		}
		if err != nil || n.op != opAssert || !n.behind {
			return
		}
		w := st.getwidth(n.sub)
		if w.lo != w.hi {
			err = syntaxErr("look-behind requires fixed-width pattern", -1)
		} else if w.lo > maxBehindWide {
			err = unsupported("look-behind too wide", -1)
		}
	})
	if st.flags&flagTemplate != 0 {
		if repeats {
			return syntaxErr("internal: unsupported template operator", -1)
		}
		if err == nil {
			err = unsupported("the TEMPLATE flag", -1)
		}
	}
	return err
}

// walk calls fn on every node of p, depth first.
func walk(p *subpattern, fn func(*node)) {
	if p == nil {
		return
	}
	for _, n := range p.nodes {
		fn(n)
		walk(n.sub, fn)
		walk(n.no, fn)
		for _, b := range n.branches {
			walk(b, fn)
		}
	}
}
