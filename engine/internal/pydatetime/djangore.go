package pydatetime

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// legacySource is datetime_re from Django 3.2's django/utils/dateparse.py,
// copied verbatim.
const legacySource = `(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})` +
	`[T ](?P<hour>\d{1,2}):(?P<minute>\d{1,2})` +
	`(?::(?P<second>\d{1,2})(?:[\.,](?P<microsecond>\d{1,6})\d{0,6})?)?` +
	`(?P<tzinfo>Z|[+-]\d{2}(?::?\d{2})?)?$`

// modernSource is datetime_re from Django 4.0 and later, copied verbatim:
// it adds \s* before the zone.
const modernSource = `(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})` +
	`[T ](?P<hour>\d{1,2}):(?P<minute>\d{1,2})` +
	`(?::(?P<second>\d{1,2})(?:[\.,](?P<microsecond>\d{1,6})\d{0,6})?)?` +
	`\s*(?P<tzinfo>Z|[+-]\d{2}(?::?\d{2})?)?$`

// digitZeros lists every Unicode 14.0 (Python 3.11) character with
// decimal value 0. Python's \d and int() accept exactly the ten characters
// starting at each of them; the table is fixed so that the result does not
// depend on the Unicode version of the Go release.
var digitZeros = []rune{
	0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6,
	0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0,
	0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
	0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900,
	0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066,
	0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0,
	0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0,
	0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0,
	0x1E950, 0x1FBF0,
}

// pySpaceClass is Python 3.11's \s for str patterns (str.isspace()) as a
// Go character class. Unlike Go's \s it includes \v, U+001C..U+001F and
// the Unicode spaces.
const pySpaceClass = `[\t\n\v\f\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}` +
	`\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]`

// legacyRE and modernRE are the compiled Django 3.2 and Django 4+ patterns.
var (
	legacyRE = compilePython(legacySource)
	modernRE = compilePython(modernSource)
)

// compilePython compiles a Python pattern for use with re.match: anchored
// at the start, \d and \s with Python's Unicode meaning, and $ matching at
// the end or before one final newline. Go's leftmost-first submatch
// semantics equal those of Python's backtracking engine.
func compilePython(src string) *regexp.Regexp {
	var digits strings.Builder
	digits.WriteString("[")
	for _, z := range digitZeros {
		fmt.Fprintf(&digits, `\x{%x}-\x{%x}`, z, z+9)
	}
	digits.WriteString("]")
	r := strings.NewReplacer(`\d`, digits.String(), `\s`, pySpaceClass, `$`, `\n?\z`)
	return regexp.MustCompile(`\A` + r.Replace(src))
}

// digitValue returns the decimal value of a character Python's \d
// matches, and false for any other character.
func digitValue(r rune) (int, bool) {
	i := sort.Search(len(digitZeros), func(i int) bool { return digitZeros[i] > r }) - 1
	if i < 0 || r-digitZeros[i] > 9 {
		return 0, false
	}
	return int(r - digitZeros[i]), true
}

// pyInt is Python's int() of a string of \d characters.
func pyInt(s string) int {
	n := 0
	for _, r := range s {
		d, _ := digitValue(r)
		n = n*10 + d
	}
	return n
}

// matchDjango is the regular-expression part of parse_datetime: no match
// gives None, a match gives datetime.datetime(**kw) or its ValueError.
func matchDjango(s string, re *regexp.Regexp) (Value, error) {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return Value{}, nil
	}
	group := func(name string) string { return m[re.SubexpIndex(name)] }
	z, err := djangoZone(group("tzinfo"))
	if err != nil {
		return Value{}, err
	}
	f := fields{
		year:   pyInt(group("year")),
		month:  pyInt(group("month")),
		day:    pyInt(group("day")),
		hour:   pyInt(group("hour")),
		minute: pyInt(group("minute")),
		second: pyInt(group("second")),
		micro:  pyInt(ljust6(group("microsecond"))),
	}
	return newDatetime(f, z)
}

// ljust6 is Python's s.ljust(6, '0') for a non-empty s; an absent group
// stays empty.
func ljust6(s string) string {
	if s == "" {
		return ""
	}
	if n := len([]rune(s)); n < 6 {
		s += strings.Repeat("0", 6-n)
	}
	return s
}

// djangoZone turns the tzinfo group into a zone the way parse_datetime
// does: "Z" is UTC, ±HH[[:]MM] is get_fixed_timezone(minutes), which
// raises ValueError unless strictly between -24h and 24h.
func djangoZone(tz string) (zone, error) {
	switch tz {
	case "":
		return zone{}, nil
	case "Z":
		return zone{aware: true}, nil
	}
	rs := []rune(tz)
	mins := 0
	if len(rs) > 3 {
		mins = pyInt(string(rs[len(rs)-2:]))
	}
	offset := 60*pyInt(string(rs[1:3])) + mins
	if rs[0] == '-' {
		offset = -offset
	}
	return newTimezone(int64(offset) * 60 * usPerSecond)
}
