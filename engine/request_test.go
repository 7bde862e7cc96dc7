package engine

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The expectations below were produced by Python 3.11's parse_qsl (with
// keep_blank_values=True and separator="&", after Django's UTF-8/Latin-1
// decoding of the raw bytes) and by Django's parse_cookie; the spec
// references are to shared/spec (the specification checked out beside the repository).
func TestParseQuery(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want Params
	}{
		{"empty", "", nil},
		{"semicolon is not a separator (waffle.md §2.1, §7)", "f=1;x=2", Params{"f": "1;x=2"}},
		{"percent-encoded name (waffle.md §2.1)", "f%5Fdefault=1", Params{"f_default": "1"}},
		{"bare name", "f", Params{"f": ""}},
		{"blank value", "f=", Params{"f": ""}},
		{"last value wins (waffle.md §7)", "f=1&f=0", Params{"f": "0"}},
		{"override value 1%20", "f=1%20", Params{"f": "1 "}},
		{"plus is a space", "a+b=c+d", Params{"a b": "c d"}},
		{"escaped plus", "x=a%20b%2Bc", Params{"x": "a b+c"}},
		{"invalid escapes stay literal", "x=%zz%4", Params{"x": "%zz%4"}},
		{"double percent", "x=%%41", Params{"x": "%A"}},
		{"utf-8 escapes", "x=%C3%A9", Params{"x": "é"}},
		{"astral escapes", "x=%f0%9f%98%80", Params{"x": "😀"}},
		{"truncated sequence is one replacement", "x=%e2%82A", Params{"x": "\uFFFDA"}},
		{"surrogate bytes are three replacements", "x=%ed%a0%80", Params{"x": "\uFFFD\uFFFD\uFFFD"}},
		{"raw non-ASCII splits escape runs", "x=%C3\xc3\xa9%A9", Params{"x": "\uFFFDé\uFFFD"}},
		{"raw bytes that are not UTF-8 are Latin-1", "x=\xe9", Params{"x": "é"}},
		{"empty pieces skipped", "&&x=1&", Params{"x": "1"}},
		{"empty name", "=v", Params{"": "v"}},
		{"first equals splits", "x=a=b", Params{"x": "a=b"}},
		{"names are case-sensitive", "dwft_Mixed=1&dwft_mixed=0", Params{"dwft_Mixed": "1", "dwft_mixed": "0"}},
		{"override parameters", "enable_x&session_enable_y=1;z", Params{"enable_x": "", "session_enable_y": "1;z"}},
	}
	reused := Params{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseQuery(tt.raw)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseQuery(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
			// A map reused by a caller (cleared after each case) parses alike.
			if diff := cmp.Diff(tt.want, ParseQueryInto(reused, tt.raw), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseQueryInto(reused, %q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
			clear(reused)
		})
	}
}

// TestCookieValueMatchesParse is the property: for random headers built
// of the characters that matter to Django's parse_cookie (separators,
// spaces of every kind, quotes, escapes, names inside values and inside
// longer names, invalid UTF-8), CookieValue agrees with the parsed map for
// every name the header could hold.
func TestCookieValueMatchesParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 12))
	parts := []string{"sessionid", "id", "s", "=", ";", "; ", " ", "\t", "\u00a0", "\u3000", "\x1f", `"`, `\`, "\\073", "a", "\xff", ",", "sessionid=", "=sessionid;"}
	names := []string{"sessionid", "id", "s", "a", "sessionids", "session", "sessionid ", "a;b", "a=b"}
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		header := b.String()
		parsed := ParseCookies(header)
		for _, name := range names {
			want, wantOK := parsed[name]
			if got, ok := CookieValue(header, name); got != want || ok != wantOK {
				t.Fatalf("CookieValue(%q, %q) = %q, %v; the parsed map has %q, %v", header, name, got, ok, want, wantOK)
			}
		}
	}
}

func TestParseCookies(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   Params
	}{
		{"empty", "", nil},
		{"last duplicate wins (waffle.md §7)", "dwf_x=False; dwf_x=True", Params{"dwf_x": "True"}},
		{"quoted value (waffle.md §7)", `dwf_pct="True"`, Params{"dwf_pct": "True"}},
		{"spaces around name and value (waffle.md §7)", "dwf_x = True ", Params{"dwf_x": "True"}},
		// spec/vectors/django-sessions.json, primitives[*].parse_cookie.
		{"plain", "sessionid=abcdefgh12345678", Params{"sessionid": "abcdefgh12345678"}},
		{"duplicate", "sessionid=first; sessionid=second", Params{"sessionid": "second"}},
		{"spaced", " sessionid = spaced ; other=1", Params{"sessionid": "spaced", "other": "1"}},
		{"quoted", `sessionid="quoted"`, Params{"sessionid": "quoted"}},
		{"escapes", `sessionid="a\"b\073c\\d"`, Params{"sessionid": `a"b;c\d`}},
		{"unterminated quote", `sessionid="unterminated`, Params{"sessionid": `"unterminated`}},
		{"blank value", "sessionid=", Params{"sessionid": ""}},
		{"no equals", "sessionid", Params{"": "sessionid"}},
		{"empty name", "=sessionid", Params{"": "sessionid"}},
		{"first equals splits", "sessionid=a=b", Params{"sessionid": "a=b"}},
		{"inner space", "sessionid=a b", Params{"sessionid": "a b"}},
		{"case-sensitive", "Sessionid=upper; sessionid=lower", Params{"Sessionid": "upper", "sessionid": "lower"}},
		{"comma is not a separator", "foo, sessionid=x", Params{"foo, sessionid": "x"}},
		{"comma-joined duplicates", "sessionid=a,sessionid=b", Params{"sessionid": "a,sessionid=b"}},
		{"empty chunks", "a=1;;sessionid=z;", Params{"a": "1", "sessionid": "z"}},
		{"tabs", "sessionid=\tx\t", Params{"sessionid": "x"}},
		{"no percent-decoding", "sessionid=%61bc", Params{"sessionid": "%61bc"}},
		// CPython http.cookies._unquote corner cases.
		{"octal above 0377 is not an escape", `x="\400"`, Params{"x": "400"}},
		{"octal to Latin-1", `x="\351"`, Params{"x": "é"}},
		{"short octal", `x="\08"`, Params{"x": "08"}},
		{"escaped non-ASCII", "x=\"\\é\"", Params{"x": "é"}},
		{"backslash before newline stays", "x=\"\\\n\"", Params{"x": "\\\n"}},
		{"trailing backslash", `x="a\"`, Params{"x": `a\`}},
		{"two quotes", `x=""`, Params{"x": ""}},
		{"one quote", `x="`, Params{"x": `"`}},
		{"python whitespace", "\x1cx\x1f=\u3000v\u00a0", Params{"x": "v"}},
		{"invalid UTF-8 replaced", "x=\xff", Params{"x": "\uFFFD"}},
	}
	reused := Params{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseCookies(tt.header)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseCookies(%q) mismatch (-want +got):\n%s", tt.header, diff)
			}
			// A map reused by a caller (cleared after each case) parses alike.
			if diff := cmp.Diff(tt.want, ParseCookiesInto(reused, tt.header), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseCookiesInto(reused, %q) mismatch (-want +got):\n%s", tt.header, diff)
			}
			clear(reused)
			for _, name := range []string{"sessionid", "x", "dwf_x", "", "other", "absent"} {
				want, wantOK := tt.want[name]
				if got, ok := CookieValue(tt.header, name); got != want || ok != wantOK {
					t.Errorf("CookieValue(%q, %q) = %q, %v; want %q, %v", tt.header, name, got, ok, want, wantOK)
				}
			}
		})
	}
}

func TestParamsGet(t *testing.T) {
	var nilParams Params
	if v, ok := nilParams.Get("x"); ok || v != "" {
		t.Errorf("nil Params.Get = %q, %v; want \"\", false", v, ok)
	}
	p := Params{"x": ""}
	if v, ok := p.Get("x"); !ok || v != "" {
		t.Errorf("Get(x) = %q, %v; want \"\", true", v, ok)
	}
	var _ Values = Params(nil)
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "f=1;x=2", "f%5Fdefault=1", "f", "f=", "a+b=%zz%4", "x=%e2%82A", "x=\xe9", "=&=", "x=%C3\xc3\xa9%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p := ParseQuery(raw)
		for k, v := range p {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("ParseQuery(%q): invalid UTF-8 in %q=%q", raw, k, v)
			}
		}
		if !strings.ContainsAny(raw, "%+&") && utf8.ValidString(raw) && raw != "" {
			name, value, _ := strings.Cut(raw, "=")
			if got, ok := p.Get(name); !ok || got != value {
				t.Fatalf("ParseQuery(%q)[%q] = %q, %v; want %q", raw, name, got, ok, value)
			}
		}
	})
}

func FuzzParseCookies(f *testing.F) {
	for _, s := range []string{"", "dwf_x=False; dwf_x=True", `dwf_pct="True"`, ` a = "b\"\073" ;;`, "\x1cx\x1f=\u3000v", "x=\xff", "=", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		for k, v := range ParseCookies(header) {
			if strings.TrimFunc(k, pyIsSpace) != k || strings.TrimFunc(k, unicode.IsSpace) != k {
				t.Fatalf("ParseCookies(%q): name %q has surrounding whitespace", header, k)
			}
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("ParseCookies(%q): invalid UTF-8 in %q=%q", header, k, v)
			}
			if strings.Contains(k, ";") || strings.Contains(k, "=") {
				t.Fatalf("ParseCookies(%q): name %q holds a separator", header, k)
			}
		}
	})
}

// TestParseBoundsMemory: a header of a million separators must not make
// the parser reserve memory for a million entries.
func TestParseBoundsMemory(t *testing.T) {
	for name, parse := range map[string]func(string) Params{
		"cookies": func(s string) Params { return ParseCookies(strings.Repeat(";", len(s))) },
		"query":   func(s string) Params { return ParseQuery(strings.Repeat("&", len(s))) },
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		parse(strings.Repeat("x", 1<<20))
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
			t.Errorf("%s: parsing 1 MiB of separators allocated %d MiB", name, got>>20)
		}
	}
}

// TestDjangoPath checks request.path as Django 3.2 under gunicorn computes
// it (spec/django-flags.md §5; each expectation seen in the vectors'
// "django.path" or run through Django's get_path_info).
func TestDjangoPath(t *testing.T) {
	for raw, want := range map[string]string{
		"/":                 "/",
		"/caf%C3%A9":        "/café",
		"/caf%c3%a9":        "/café",
		"/caf%E9":           "/caf%E9",
		"/caf%FF":           "/caf%FF",
		"/caf%25FF":         "/caf%FF",
		"/a%zz":             "/a%zz",
		"/a%":               "/a%",
		"/a%2":              "/a%2",
		"/a%2Fb":            "/a/b",
		"/a%0A":             "/a\n",
		"/a+b":              "/a+b",
		"/%ED%A0%80":        "/%ED%A0%80",
		"/%F0%9F%98%80":     "/😀",
		"/%F0%9F%98":        "/%F0%9F%98",
		"/%EF%BF%BD":        "/\uFFFD",
		"/x%C3%A9%FF%C3%A9": "/xé%FFé",
	} {
		if got := DjangoPath(raw); got != want {
			t.Errorf("DjangoPath(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestPyStrip: the byte-wise fast path strips exactly what trimming every
// Python whitespace rune strips, for strings of spaces, non-spaces and
// non-ASCII runes in every order up to four.
func TestPyStrip(t *testing.T) {
	parts := []string{" ", "\t", "\x1c", "\x85", "\u00a0", "\u3000", "\u2009", "a", "é", "=", "\"", "\xff"}
	var build func(prefix string, n int)
	build = func(prefix string, n int) {
		if want := strings.TrimFunc(prefix, pyIsSpace); pyStrip(prefix) != want {
			t.Errorf("pyStrip(%q) = %q, want %q", prefix, pyStrip(prefix), want)
		}
		if n == 0 {
			return
		}
		for _, p := range parts {
			build(prefix+p, n-1)
		}
	}
	build("", 4)
}
