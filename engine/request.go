package engine

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Params is a parsed query string or cookie header: each name maps to the
// value Django would see, the last duplicate having already won. A nil Params
// holds nothing.
type Params map[string]string

// Get returns the value of name and whether it was present.
func (p Params) Get(name string) (string, bool) {
	v, ok := p[name]
	return v, ok
}

// ParseQuery parses a raw query string (the part of the request target after
// "?", still percent-encoded) into what Django 3.2 and later put in
// request.GET, taking the last value of a repeated name.
//
// Django builds request.GET with QueryDict, which decodes the raw bytes as
// UTF-8 (falling back to Latin-1 for the whole string when they are not valid
// UTF-8) and then calls Python's urllib.parse.parse_qsl with
// keep_blank_values=True, encoding "utf-8" and errors "replace":
//   - pieces are separated by "&" only, so "f=1;x=2" gives f = "1;x=2";
//   - empty pieces are skipped;
//   - a piece is split at its first "="; a piece without "=" has value "";
//   - in both name and value "+" becomes a space, then each valid %XX escape
//     becomes its byte and an invalid one stays as written;
//   - the bytes produced by escapes are decoded as UTF-8, each maximal
//     invalid subsequence becoming U+FFFD, as Python's decoder does.
//
// Every name and value returned is valid UTF-8. Django's limit on the number
// of fields (DATA_UPLOAD_MAX_NUMBER_FIELDS, which makes Django answer 400) is
// not applied.
func ParseQuery(raw string) Params { return ParseQueryInto(nil, raw) }

// ParseQueryInto is ParseQuery adding the fields to p, an empty map the
// caller reuses (nil: a new one). It returns the map, or nil when raw is
// empty.
func ParseQueryInto(p Params, raw string) Params {
	if raw == "" {
		return nil
	}
	if !utf8.ValidString(raw) {
		raw = latin1(raw)
	}
	if p == nil {
		p = make(Params, min(strings.Count(raw, "&")+1, 16))
	}
	for piece := range strings.SplitSeq(raw, "&") {
		if piece == "" {
			continue
		}
		name, value, _ := strings.Cut(piece, "=")
		p[unquotePlus(name)] = unquotePlus(value)
	}
	return p
}

// ParseQueryKeys returns the names of a raw query string's fields in the
// order they appear, decoded as ParseQuery decodes them; a repeated name
// appears each time. Empty fields are skipped, as Django skips them.
func ParseQueryKeys(raw string) []string {
	if raw == "" {
		return nil
	}
	if !utf8.ValidString(raw) {
		raw = latin1(raw)
	}
	keys := make([]string, 0, min(strings.Count(raw, "&")+1, 16))
	for piece := range strings.SplitSeq(raw, "&") {
		if piece != "" {
			name, _, _ := strings.Cut(piece, "=")
			keys = append(keys, unquotePlus(name))
		}
	}
	return keys
}

// latin1 decodes s as ISO-8859-1: every byte becomes the rune of its value.
func latin1(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// unquotePlus is Python's urllib.parse.unquote(s.replace("+", " ")) for a
// valid UTF-8 s, with encoding "utf-8" and errors "replace". Python decodes
// escapes one ASCII run at a time: a non-ASCII character between two escapes
// ends the byte sequence they form.
func unquotePlus(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	out := make([]byte, 0, len(s))
	var run []byte
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			j := i
			for j < len(s) && s[j] >= utf8.RuneSelf {
				j++
			}
			out = append(out, s[i:j]...)
			i = j
			continue
		}
		run = run[:0]
		for i < len(s) && s[i] < utf8.RuneSelf {
			c = s[i]
			switch {
			case c == '+':
				run = append(run, ' ')
				i++
			case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
				run = append(run, unhex(s[i+1])<<4|unhex(s[i+2]))
				i += 3
			default:
				run = append(run, c)
				i++
			}
		}
		out = appendPyUTF8(out, run)
	}
	return string(out)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// appendPyUTF8 appends b decoded the way Python's bytes.decode("utf-8",
// "replace") does: valid sequences are kept and each maximal subpart of an
// invalid sequence (a lead byte followed by the continuation bytes that could
// still complete it) becomes one U+FFFD.
func appendPyUTF8(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case 0xC2 <= c && c <= 0xDF:
			need = 1
		case c == 0xE0:
			need, lo = 2, 0xA0
		case c == 0xED:
			need, hi = 2, 0x9F
		case 0xE1 <= c && c <= 0xEF:
			need = 2
		case c == 0xF0:
			need, lo = 3, 0x90
		case c == 0xF4:
			need, hi = 3, 0x8F
		case 0xF1 <= c && c <= 0xF3:
			need = 3
		default:
			dst = append(dst, "\uFFFD"...)
			i++
			continue
		}
		j := i + 1
		for k := 0; k < need && j < len(b); k++ {
			if x := b[j]; x < lo || x > hi {
				break
			}
			lo, hi = 0x80, 0xBF
			j++
		}
		if j-i == need+1 {
			dst = append(dst, b[i:j]...)
		} else {
			dst = append(dst, "\uFFFD"...)
		}
		i = j
	}
	return dst
}

// ParseCookies parses one Cookie header value into what Django puts in
// request.COOKIES (django.http.cookie.parse_cookie, unchanged from Django 3.2
// to 6.1). Under WSGI Django first decodes the header bytes as UTF-8 with
// replacement, and so does ParseCookies. Then:
//   - the header is split on ";" only (a "," separates nothing);
//   - a chunk with "=" is split at its first "="; a chunk without one is a
//     value with the empty name;
//   - name and value are stripped of Python whitespace (str.strip);
//   - a chunk whose name and value are both empty is skipped;
//   - the value is unquoted as Python's http.cookies._unquote does: only a
//     value of two or more characters that starts and ends with '"' loses
//     those quotes, and inside it "\ooo" (three octal digits, the first 0-3)
//     becomes the character of that code and "\X" becomes X (X not a
//     newline); there is no percent-decoding;
//   - the last chunk with a given name wins, and names are case-sensitive.
//
// Several Cookie header lines must be joined with "; " by the caller before
// parsing, and that joined line is what should be forwarded: gunicorn and
// Django's ASGI handler before 6.1 would join them with ",", which leaves
// Django with one useless cookie (spec/django-sessions.md §5.2–5.3).
func ParseCookies(header string) Params { return ParseCookiesInto(nil, header) }

// ParseCookiesInto is ParseCookies adding the cookies to p, an empty map
// the caller reuses (nil: a new one). It returns the map, or nil when the
// header is empty.
func ParseCookiesInto(p Params, header string) Params {
	if header == "" {
		return nil
	}
	if !utf8.ValidString(header) {
		header = string(appendPyUTF8(nil, []byte(header)))
	}
	if p == nil {
		// Sized for every chunk (a returning visitor of a site with many
		// percentage flags sends hundreds): growing the map costs more
		// than filling it. The bound keeps a header of empty chunks cheap.
		p = make(Params, min(strings.Count(header, ";")+1, maxPresized))
	}
	for chunk := range strings.SplitSeq(header, ";") {
		name, value, ok := strings.Cut(chunk, "=")
		if !ok {
			name, value = "", chunk
		}
		name, value = pyStrip(name), pyStrip(value)
		if name == "" && value == "" {
			continue
		}
		p[name] = cookieUnquote(value)
	}
	return p
}

// CookieValue returns the value of the cookie name in a Cookie header,
// exactly as ParseCookiesInto(nil, header)[name] would.
func CookieValue(header, name string) (string, bool) {
	var value [1]string
	var found [1]bool
	PickCookies(header, []string{name}, value[:], found[:])
	return value[0], found[0]
}

// PickCookies sets values[i] and found[i] to what ParseCookiesInto(nil,
// header)[names[i]] would hold, for each of a few names, in one pass over
// the header that makes no map: a caller that needs a few cookies of a
// long header (a returning visitor of a site with many percentage flags
// sends hundreds) skips the others at the cost of a byte comparison each.
func PickCookies(header string, names, values []string, found []bool) {
	clear(values)
	clear(found)
	if slices.Contains(names, "") || !utf8.ValidString(header) {
		p := ParseCookiesInto(nil, header)
		for i, n := range names {
			values[i], found[i] = p[n]
		}
		return
	}
	var first [256]bool // the names' first bytes
	for _, n := range names {
		first[n[0]] = true
	}
	for chunk := range strings.SplitSeq(header, ";") {
		if !mayName(chunk, names, &first) {
			continue
		}
		key, value, ok := strings.Cut(chunk, "=")
		if !ok {
			continue // its name is "", which no name is
		}
		key = pyStrip(key)
		for i, n := range names {
			if key == n {
				values[i], found[i] = cookieUnquote(pyStrip(value)), true // the last one wins
			}
		}
	}
}

// mayName reports whether chunk's name could be one of names: it begins,
// after the ASCII spaces Python strips, with one of them (first holds
// their first bytes), or with a non-ASCII byte (the stripped spaces may go
// on beyond ASCII).
func mayName(chunk string, names []string, first *[256]bool) bool {
	for i := 0; i < len(chunk); i++ {
		c := chunk[i]
		switch {
		case c >= utf8.RuneSelf:
			return true
		case pyIsSpace(rune(c)):
			continue
		case !first[c]:
			return false
		}
		for _, n := range names {
			if strings.HasPrefix(chunk[i:], n) {
				return true
			}
		}
		return false
	}
	return false
}

// maxPresized bounds the entries ParseCookies makes room for before
// parsing.
const maxPresized = 1024

// pyIsSpace reports whether Python's str.isspace is true for r: Go's
// unicode.IsSpace plus the ASCII separators U+001C to U+001F.
func pyIsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x1C, 0x1D, 0x1E, 0x1F, 0x85, 0xA0,
		0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return 0x2000 <= r && r <= 0x200A
}

// pyStrip is Python's str.strip() without arguments.
func pyStrip(s string) string {
	// The ASCII spaces byte by byte (the usual case, "; " between
	// cookies); then decoding runes only if an end is not ASCII.
	i, j := 0, len(s)
	for i < j && s[i] < utf8.RuneSelf && pyIsSpace(rune(s[i])) {
		i++
	}
	for j > i && s[j-1] < utf8.RuneSelf && pyIsSpace(rune(s[j-1])) {
		j--
	}
	if s = s[i:j]; s == "" || s[0] < utf8.RuneSelf && s[len(s)-1] < utf8.RuneSelf {
		return s
	}
	return strings.TrimFunc(s, pyIsSpace)
}

// cookieUnquote is CPython's http.cookies._unquote.
func cookieUnquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		if i+3 < len(s) && '0' <= s[i+1] && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteRune(rune(s[i+1]-'0')<<6 | rune(s[i+2]-'0')<<3 | rune(s[i+3]-'0'))
			i += 4
			continue
		}
		if s[i+1] == '\n' {
			// Python's "." does not match a newline: the backslash stays.
			b.WriteByte('\\')
			i++
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i+1:])
		b.WriteString(s[i+1 : i+1+n])
		i += 1 + n
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

// DjangoPath returns request.path for a request whose target path, as
// sent, is raw (still percent-encoded): valid %XX escapes become bytes
// (invalid ones stay as written), the bytes are decoded as UTF-8, and each
// byte of an invalid sequence is percent-encoded again, as Django's
// repercent_broken_unicode does. The site is assumed to be mounted at "/".
func DjangoPath(raw string) string {
	if !strings.Contains(raw, "%") && utf8.ValidString(raw) {
		return raw
	}
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]) {
			b = append(b, unhex(raw[i+1])<<4|unhex(raw[i+2]))
			i += 2
			continue
		}
		b = append(b, raw[i])
	}
	return string(repercent(b))
}

// repercent keeps the valid UTF-8 sequences of b and writes every byte
// that is not part of one as %XX (upper-case hex), as Django's
// repercent_broken_unicode does.
func repercent(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			out = append(out, '%', "0123456789ABCDEF"[b[0]>>4], "0123456789ABCDEF"[b[0]&15])
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}
