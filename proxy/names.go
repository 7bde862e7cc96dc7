package proxy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// kind is what a name names: a flag (of any library), a waffle switch or a
// waffle sample. Names are unique within a kind only.
type kind uint8

const (
	kindFlag kind = 1 << iota
	kindSwitch
	kindSample
)

func (k kind) String() string {
	switch k {
	case kindSwitch:
		return "switch"
	case kindSample:
		return "sample"
	}
	return "flag"
}

// The key prefixes that name a kind, in OFREP keys and --browser-flags
// patterns: "switch:maintenance", "sample:survey", and "flag:x" for a flag
// (needed only when the flag's own name begins with one of these).
const (
	prefixFlag   = "flag:"
	prefixSwitch = "switch:"
	prefixSample = "sample:"
)

// parseKey splits a key into its kind and name: "switch:x" and "sample:x"
// name a switch and a sample, "flag:x" and any other key a flag.
func parseKey(key string) (kind, string) {
	switch {
	case strings.HasPrefix(key, prefixSwitch):
		return kindSwitch, key[len(prefixSwitch):]
	case strings.HasPrefix(key, prefixSample):
		return kindSample, key[len(prefixSample):]
	case strings.HasPrefix(key, prefixFlag):
		return kindFlag, key[len(prefixFlag):]
	}
	return kindFlag, key
}

// keyOf is the key that parseKey reads back as k and name: a flag's own
// name unless that begins with a kind prefix.
func keyOf(k kind, name string) string {
	switch k {
	case kindSwitch:
		return prefixSwitch + name
	case kindSample:
		return prefixSample + name
	}
	if strings.HasPrefix(name, prefixSwitch) || strings.HasPrefix(name, prefixSample) || strings.HasPrefix(name, prefixFlag) {
		return prefixFlag + name
	}
	return name
}

// nameMatcher holds the --browser-flags or --exposure-flags patterns. A
// pattern is a glob over
// a name: '*' matches any run of characters (none included), '?' one
// character, '\' makes the next character literal. A pattern that begins
// with "flag:", "switch:" or "sample:" matches names of that kind only;
// any other matches flags, switches and samples alike, so "*" serves
// everything, as waffle's views do.
type nameMatcher struct {
	patterns []namePattern
}

type namePattern struct {
	kinds kind
	glob  string
}

// newNameMatcher compiles patterns; nil when there are none.
func newNameMatcher(patterns []string) (*nameMatcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	m := &nameMatcher{}
	for _, p := range patterns {
		np := namePattern{kinds: kindFlag | kindSwitch | kindSample, glob: p}
		for _, pre := range []struct {
			prefix string
			k      kind
		}{{prefixFlag, kindFlag}, {prefixSwitch, kindSwitch}, {prefixSample, kindSample}} {
			if rest, ok := strings.CutPrefix(p, pre.prefix); ok {
				np = namePattern{kinds: pre.k, glob: rest}
			}
		}
		switch {
		case np.glob == "":
			return nil, fmt.Errorf("pattern %q: %w", p, errNoPatterns)
		case !utf8.ValidString(np.glob):
			return nil, fmt.Errorf("pattern %q is not UTF-8", p)
		case (len(np.glob)-len(strings.TrimRight(np.glob, `\`)))%2 == 1:
			return nil, fmt.Errorf("pattern %q ends with an unfinished '\\'", p)
		}
		m.patterns = append(m.patterns, np)
	}
	return m, nil
}

// match reports whether some pattern matches the name of kind k.
func (m *nameMatcher) match(k kind, name string) bool {
	if m == nil {
		return false
	}
	for _, p := range m.patterns {
		if p.kinds&k != 0 && globMatch(p.glob, name) {
			return true
		}
	}
	return false
}

// globMatch matches name against a glob of '*', '?' and '\' escapes, in
// time proportional to len(glob)*len(name) at worst.
func globMatch(glob, name string) bool {
	var starG, starN = -1, 0
	g, n := 0, 0
	for n < len(name) {
		if g < len(glob) {
			switch c := glob[g]; c {
			case '*':
				starG, starN = g, n
				g++
				continue
			case '?':
				_, size := utf8.DecodeRuneInString(name[n:])
				g, n = g+1, n+size
				continue
			default:
				lit, size := c, 1
				if c == '\\' && g+1 < len(glob) {
					lit, size = glob[g+1], 2
				}
				if name[n] == lit {
					g, n = g+size, n+1
					continue
				}
			}
		}
		if starG < 0 {
			return false
		}
		// Let the last '*' take one more character and try again.
		_, size := utf8.DecodeRuneInString(name[starN:])
		starN += size
		g, n = starG+1, starN
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}

// CheckBrowserFlags reports whether patterns can be Config.BrowserFlags.
func CheckBrowserFlags(patterns []string) error {
	return CheckPatterns(patterns)
}

// CheckPatterns reports whether patterns are valid name patterns (see
// nameMatcher), as Config.BrowserFlags and ExposureConfig.Patterns take.
func CheckPatterns(patterns []string) error {
	_, err := newNameMatcher(patterns)
	return err
}
