package engine

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// LocaleSettings are the Django settings that decide request.LANGUAGE_CODE,
// the value waffle's languages column is compared with.
type LocaleSettings struct {
	// I18N is USE_I18N. Without it, LocaleMiddleware always sets
	// LanguageCode verbatim.
	I18N bool
	// LanguageCode is LANGUAGE_CODE.
	LanguageCode string
	// Languages are the codes of LANGUAGES, in their order.
	Languages []string
	// Available are the codes of Languages for which Django finds a
	// translation catalog (check_for_language). Nil means all of them, as
	// for Django's own LANGUAGES.
	Available []string
	// CookieName is LANGUAGE_COOKIE_NAME.
	CookieName string
	// Patterns reports that the root URLconf uses i18n_patterns;
	// PrefixDefaultLanguage is its prefix_default_language argument.
	Patterns              bool
	PrefixDefaultLanguage bool
	// ThreePartPrefixes is Django 4.1's language_code_prefix_re: a URL
	// prefix may name a language, a script and a region (/zh-hant-tw/).
	// Before 4.1 a prefix has at most two parts.
	ThreePartPrefixes bool
}

// Locale reproduces Django's LocaleMiddleware.process_request: the
// language a request activates, as request.LANGUAGE_CODE. It follows
// Django 3.2.25 as Debian ships it (with its security backports), against
// which it is tested, and Django 4.1's longer URL prefixes when
// ThreePartPrefixes is set. Django's \w is that of Python's Unicode
// database, which may be older than Go's: a path prefix with letters new
// in Go's version can match here and not in Django.
type Locale struct {
	s         LocaleSettings
	supported map[string]bool // keys of LANGUAGES, as written
	available map[string]bool // lower-cased; nil: every supported code
	// accepted remembers what short Accept-Language values choose (a code,
	// or "" for none), as Django's lru_cache does; bounded by acceptCacheSize.
	accepted     sync.Map
	acceptedSize atomic.Int32
}

// acceptCacheSize and acceptCacheKeyLen bound the memory accepted may take.
const (
	acceptCacheSize   = 1024
	acceptCacheKeyLen = 256
)

// NewLocale prepares s for Language.
func NewLocale(s LocaleSettings) *Locale {
	l := &Locale{s: s, supported: make(map[string]bool, len(s.Languages))}
	l.s.Languages = slices.Clone(s.Languages)
	for _, c := range s.Languages {
		l.supported[c] = true
	}
	if s.Available != nil {
		l.available = make(map[string]bool, len(s.Available))
		for _, c := range s.Available {
			l.available[strings.ToLower(c)] = true
		}
	}
	return l
}

// Language returns the request.LANGUAGE_CODE Django would set for a request
// to path (the decoded URL path, as Django's path_info when the site is
// mounted at "/"), with the given cookies and Accept-Language header value.
func (l *Locale) Language(path string, cookies Values, acceptLanguage string) string {
	if !l.s.I18N {
		return l.s.LanguageCode
	}
	if l.s.Patterns {
		if lang, ok := l.fromPath(path); ok {
			return toLanguage(lang)
		}
		if !l.s.PrefixDefaultLanguage {
			// No prefix in the path: the default language wins outright.
			return toLanguage(l.s.LanguageCode)
		}
	}
	return toLanguage(l.fromRequest(cookies, acceptLanguage))
}

// fromRequest is get_language_from_request after its path check.
func (l *Locale) fromRequest(cookies Values, acceptLanguage string) string {
	var code string
	var ok bool
	if cookies != nil {
		code, ok = cookies.Get(l.s.CookieName)
	}
	if ok && l.supported[code] && l.hasCatalog(code) {
		return code
	}
	if ok {
		if v, found := l.variant(code); found {
			return v
		}
	}
	if v := l.fromAccept(acceptLanguage); v != "" {
		return v
	}
	if v, found := l.variant(l.s.LanguageCode); found {
		return v
	}
	return l.s.LanguageCode
}

// fromAccept is the Accept-Language step of get_language_from_request: the
// first supported variant of the preferred ranges, or "".
func (l *Locale) fromAccept(value string) string {
	if value == "" {
		return ""
	}
	if v, ok := l.accepted.Load(value); ok {
		return v.(string)
	}
	chosen := ""
	for _, accept := range parseAcceptLanguage(value) {
		if accept == "*" {
			break
		}
		if !languageCodeRE.MatchString(accept) {
			continue
		}
		if v, found := l.variant(accept); found {
			chosen = v
			break
		}
	}
	if len(value) <= acceptCacheKeyLen && l.acceptedSize.Load() < acceptCacheSize {
		if _, loaded := l.accepted.LoadOrStore(value, chosen); !loaded {
			l.acceptedSize.Add(1)
		}
	}
	return chosen
}

// maxLanguageCodeLength is Django's LANGUAGE_CODE_MAX_LENGTH: longer codes
// and Accept-Language values are cut or refused before any lookup.
const maxLanguageCodeLength = 500

// variant is get_supported_language_variant(code, strict=False).
func (l *Locale) variant(code string) (string, bool) {
	if code == "" {
		return "", false
	}
	if pyLen(code) > maxLanguageCodeLength {
		i := strings.LastIndexByte(pyPrefix(code, maxLanguageCodeLength), '-')
		if i <= 0 {
			return "", false
		}
		code = code[:i]
	}
	possible := []string{code}
	possible = append(possible, langFallbacks[code]...)
	for i := strings.LastIndexByte(code, '-'); i > -1; i = strings.LastIndexByte(code[:i], '-') {
		possible = append(possible, code[:i])
	}
	for _, c := range possible {
		if l.supported[pyLower(c)] && l.hasCatalog(c) {
			return c, true
		}
	}
	generic := possible[len(possible)-1] + "-"
	for _, c := range l.s.Languages {
		if strings.HasPrefix(c, generic) {
			return c, true
		}
	}
	return "", false
}

// hasCatalog is check_for_language for a code whose lower case is one of
// LANGUAGES.
func (l *Locale) hasCatalog(code string) bool {
	if pyLen(code) > maxLanguageCodeLength || !languageCodeRE.MatchString(code) {
		return false
	}
	return l.available == nil || l.available[strings.ToLower(code)]
}

// fromPath is get_language_from_path(path).
func (l *Locale) fromPath(path string) (string, bool) {
	re := languagePrefixRE
	if l.s.ThreePartPrefixes {
		re = languagePrefix3RE
	}
	m := re.FindStringSubmatch(path)
	if m == nil {
		return "", false
	}
	return l.variant(m[1])
}

// langFallbacks are the "fallback" entries of django.conf.locale.LANG_INFO.
var langFallbacks = map[string][]string{
	"zh-cn": {"zh-hans"},
	"zh-hk": {"zh-hant"},
	"zh-mo": {"zh-hant"},
	"zh-my": {"zh-hans"},
	"zh-sg": {"zh-hans"},
	"zh-tw": {"zh-hant"},
}

var (
	// languageCodeRE is Django's language_code_re (re.IGNORECASE; Python's
	// "$" also matches before a final newline).
	languageCodeRE = regexp.MustCompile(`(?i)^[a-z]{1,8}(?:-[a-z0-9]{1,8})*(?:@[a-z0-9]{1,20})?\n?$`)
	// languagePrefixRE is language_code_prefix_re, with Python's Unicode \w.
	languagePrefixRE  = regexp.MustCompile(`^/([\p{L}\p{N}_]+(?:[@-][\p{L}\p{N}_]+)?)(?:/|\n?$)`)
	languagePrefix3RE = regexp.MustCompile(`^/([\p{L}\p{N}_]+(?:[@-][\p{L}\p{N}_]+){0,2})(?:/|\n?$)`)
	// acceptLanguageRE is accept_language_re; the header has been
	// lower-cased and decoded as Latin-1, and \s is Python's whitespace.
	acceptLanguageRE = regexp.MustCompile(`([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)` +
		`(?:` + pySpace + `*;` + pySpace + `*q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?))?` +
		`(?:` + pySpace + `*,` + pySpace + `*|$)`)
)

// pySpace is the class of what Python's \s matches among Latin-1 characters.
const pySpace = `[\t\n\v\f\r \x{1c}-\x{1f}\x{85}\x{a0}]`

// parseAcceptLanguage is Django's parse_accept_lang_header: the language
// ranges of an Accept-Language value by descending q, or nothing when the
// value is malformed anywhere.
func parseAcceptLanguage(v string) []string {
	if v == "" {
		return nil
	}
	s := latin1Lower(v)
	if pyLen(s) > maxLanguageCodeLength {
		i := strings.LastIndexByte(pyPrefix(s, maxLanguageCodeLength), ',')
		if i <= 0 {
			return nil
		}
		s = s[:i]
	}
	type lang struct {
		code string
		q    float64
	}
	var langs []lang
	end := 0
	for _, m := range acceptLanguageRE.FindAllStringSubmatchIndex(s, -1) {
		if m[0] != end {
			return nil // text between two ranges
		}
		end = m[1]
		q := 1.0
		if m[4] >= 0 && m[5] > m[4] {
			q, _ = strconv.ParseFloat(s[m[4]:m[5]], 64)
		}
		langs = append(langs, lang{s[m[2]:m[3]], q})
	}
	if end != len(s) {
		return nil
	}
	slices.SortStableFunc(langs, func(a, b lang) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	out := make([]string, len(langs))
	for i, l := range langs {
		out[i] = l.code
	}
	return out
}

// latin1Lower decodes a header value as WSGI does (each byte one Latin-1
// character) and lower-cases it as Python's str.lower does, as UTF-8.
func latin1Lower(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := rune(v[i])
		if ('A' <= c && c <= 'Z') || (0xc0 <= c && c <= 0xde && c != 0xd7) {
			c += 0x20
		}
		b.WriteRune(c)
	}
	return b.String()
}

// toLanguage is django.utils.translation.to_language: lower case, with the
// first '_' turned into '-'.
func toLanguage(code string) string {
	if i := strings.IndexByte(code, '_'); i >= 0 {
		return pyLower(code[:i]) + "-" + pyLower(code[i+1:])
	}
	return pyLower(code)
}

// pyLower lower-cases like Python's str.lower. Go maps each character to
// one character, Python to its full lower case: of the characters whose
// lower case is ASCII, only U+0130 differs ("i" and a combining dot).
func pyLower(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "\u0130", "i\u0307"))
}

// pyLen is len() of a Python str: the number of characters.
func pyLen(s string) int { return utf8.RuneCountInString(s) }

// pyPrefix is s[:n] of a Python str.
func pyPrefix(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
