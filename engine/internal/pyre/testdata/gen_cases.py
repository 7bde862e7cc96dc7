"""Generate cases_test.go: Python 3.11's own answers for a table of patterns.

Run from engine/internal/pyre:

    python3 testdata/gen_cases.py > cases_test.go && gofmt -w cases_test.go

For every pattern: does re.compile raise, and if not, what re.search gives
on each input. The table is committed; tests never run Python.
"""
import re
import sys
import warnings

warnings.simplefilter("ignore")

# (pattern, inputs)
CASES = [
    # literals, dot, anchors
    ("abc", ["abc", "xabcx", "ab", ""]),
    ("^/a$", ["/a", "/a\n", "/a\n\n", "x/a", "/ab"]),
    ("^/a\\Z", ["/a", "/a\n"]),
    ("\\A/a", ["/a", "x\n/a"]),
    ("a.c", ["abc", "a\nc", "a\u2028c", "ac"]),
    ("(?s)a.c", ["a\nc", "ac"]),
    ("(?m)^b$", ["a\nb\nc", "ab", "b\n", "a\rb"]),
    ("(?m)a$", ["a\n", "a\r", "ab"]),
    ("$", ["", "a", "\n"]),
    ("^$", ["", "\n", "a"]),
    ("\\Z", ["", "a"]),
    ("x\\Z|y$", ["x\n", "y\n", "x"]),
    ("", ["", "abc"]),
    ("\\x00", ["a\x00b", "ab"]),
    ("\\0\\07\\101", ["\x00\x07A", "A"]),
    ("\\u00e9\\U0001F600", ["\u00e9\U0001F600", "e\U0001F600"]),
    ("caf\u00e9", ["caf\u00e9", "cafe\u0301"]),
    ("/\u2028/", ["/\u2028/", "/\n/"]),
    # \d \w \s \b \B
    ("^\\d+$", ["123", "\u0663\u0664", "\u00b2", "\uff11", "1a"]),
    ("^\\w+$", ["abc_1", "caf\u00e9", "cafe\u0301", "\u00b2\u00bd", "\u4e2d", "a-b", "\u2160"]),
    ("(?a)^\\w+$", ["abc_1", "caf\u00e9"]),
    ("\\s", ["a b", "a\x1cb", "a\x85b", "a\u00a0b", "a\u200bb", "a\u3000b", "ab"]),
    ("(?a)\\s", ["a\x1cb", "a\u00a0b", "a\vb"]),
    ("\\S+$", ["\u00a0", "x"]),
    ("\\D\\W", ["a!", "1!", "a_"]),
    ("\\bb", ["a b", "ab", "b", "\u00e9b", "\u0301b"]),
    ("b\\b", ["b c", "bc", "b\u0301"]),
    ("\\B", ["", "a", "ab", " "]),
    ("(?a)\\b\u00e9", ["\u00e9", "a\u00e9"]),
    ("^\\B$", ["", "x"]),
    # case-insensitive matching
    ("(?i)^/k$", ["/k", "/K", "/\u212a", "/q"]),
    ("(?i)^/\u212a$", ["/k", "/K"]),
    ("(?i)stra\u00dfe", ["STRASSE", "stra\u00dfe", "STRA\u1e9eE"]),
    ("(?i)\u1e9e", ["\u00df", "ss", "\u1e9e"]),
    ("(?i)s", ["\u017f", "S"]),
    ("(?i)[a-z]+$", ["\u017f\u212a", "ABC", "\u0131"]),
    ("(?i)i", ["\u0130", "\u0131", "I"]),
    ("(?i)\u00b5", ["\u03bc", "\u039c"]),
    ("(?i)[^k]", ["\u212a", "K", "kx"]),
    ("(?i)[\u00df!]", ["\u1e9e"]),
    ("(?i)x\U00010400|xy", ["x\U00010400", "x\U00010428", "xY"]),
    ("(?i)\U00010400", ["\U00010428"]),
    ("(?i)[\U00010400y]", ["\U00010400", "\U00010428", "Y"]),
    ("(?ai)k", ["\u212a", "K"]),
    ("(?i)(?-i:a)B", ["ab", "Ab", "aB"]),
    ("(?i:a)b", ["Ab", "AB"]),
    ("(?i)(a)\\1", ["aA", "Aa", "ab"]),
    ("(?i)^\\w$", ["\u212a"]),
    # sets
    ("[[:alpha:]]", ["[", ":", "a]", "b", "a"]),
    ("^/[[:alpha:]]+$", ["/abc", "/a]", "/:]"]),
    ("[]a]", ["]", "a", "b"]),
    ("[^]a]", ["]", "b"]),
    ("[a-]", ["-", "a", "b"]),
    ("[\\d-z]", ["-", "5", "z", "y"]),
    ("[\\w-]+$", ["a-b", "a b"]),
    ("[a-c-e]", ["b", "-", "e", "d"]),
    ("[\\b]", ["\b", "b"]),
    ("[\\]]", ["]"]),
    ("[\\x41-\\x43]", ["B", "D"]),
    ("[\u00e0-\u00ff]", ["\u00e9", "e"]),
    ("[^/]+$", ["/a", "a", "/"]),
    ("[.]", [".", "a"]),
    ("[\\s\\S]", ["\n", ""]),
    ("[a-z&&[^b]]", ["b&&]", "a&&]"]),
    ("[^\\x00-\\U0010ffff]*x", ["x", ""]),
    ("x[^\\s\\S]?$", ["x", "xy"]),
    ("\\ud800|a", ["a", "b"]),
    ("[\\ud7ff-\\ue000]", ["\ue000", "\ud7ff", "a"]),
    ("(?i)[\\U00010000-\\U00010500]", ["\U00010428", "\U00010600"]),
    ("(?i)[a-\\U00010428]$", ["\U00010400", "\u212a", "A"]),
    # quantifiers
    ("^/a{,2}b$", ["/b", "/aab", "/aaab"]),
    ("a{,3}", ["", "x"]),
    ("^a{2}$", ["aa", "aaa"]),
    ("^a{2,}$", ["a", "aaaa"]),
    ("a{}", ["a{}", "a"]),
    ("a{1,2", ["a{1,2", "a"]),
    ("a{,}", ["a{,}", ""]),
    ("x{a}", ["x{a}", "x"]),
    ("^a*?b", ["aab"]),
    ("^/a*+b$", ["/aab", "/b"]),
    ("^a*+a", ["aaa"]),
    ("^a?+a$", ["a", "aa"]),
    ("^(?:ab)*c$", ["ababc", "abac"]),
    ("^(a|ab)(c|bcd)(d*)$", ["abcd", "abcdd"]),
    ("(a+)+b", ["aaaab", "aaaa"]),
    # groups and references
    ("^/(a)/\\1", ["/a/a", "/a/b"]),
    ("(?P<id>\\d+)-(?P=id)", ["12-12", "12-13"]),
    ("^/item/(?P<id>\\d+)$", ["/item/42", "/item/x"]),
    ("(a)|b\\1", ["b", "ba", "a"]),
    ("(a)?(?(1)b|c)", ["ab", "c", "b"]),
    ("(?P<q>')?x(?(q)')$", ["'x'", "x", "'x"]),
    ("(?:(a)|b)+\\1", ["aba", "bab", "ba"]),
    ("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)\\10", ["abcdefghijj", "abcdefghija"]),
    ("(a)\\10", ["a\x08", "a10"]),
    ("(a(?(1)b|c))+", ["acab", "ac", "ab"]),
    ("(?(1)a|b)(x)?", ["b", "a"]),
    ("(?:(a)|b(?(1)x|y))+$", ["by", "abx", "aby"]),
    ("(?>a+)b", ["aab"]),
    ("(?>a|ab)c", ["abc", "ac"]),
    ("(?#comment)a", ["a"]),
    # look-arounds
    ("(?<=/)b", ["/b", "ab"]),
    ("(?<!/)b", ["/b", "ab", "b"]),
    ("^/a(?!/)", ["/a/b", "/ab", "/a"]),
    ("(?=(a+))a*b\\1", ["baabac", "ab"]),
    ("(?<=ab|cd)x", ["abx", "cdx", "ax"]),
    ("(?<=(a))b\\1", ["aba", "abb"]),
    ("(?<=\\bfoo)bar", ["foobar", "xfoobar"]),
    ("(?<=a{2})b", ["aab", "ab"]),
    # verbose mode
    ("(?x) ^ /a  # comment", ["/a", "/ a"]),
    ("(?x)a\\ b", ["a b", "ab"]),
    ("(?x)[ ]a", [" a", "a"]),
    ("(?x)a{1, 2}", ["a{1,2}", "a"]),
    ("(?x: a b )c", ["abc", "a bc"]),
    ("(?x)a#b\nc", ["ac", "abc"]),
    # flags
    ("(?ms)^a.b$", ["x\na\nb", "a\nb"]),
    ("(?u)\\w", ["\u00e9"]),
    ("(?a)(?u:\\w)", ["\u00e9", "a\u00e9"]),
    ("(?a)(?u:\\w)x", ["\u00e9x", "ax"]),
    ("(?a:\\W)", ["\u03b9", "\u03b9!"]),
    ("((?a:[^\\d]))", ["\u0663", "\u0663x"]),
    ("(?a:\\W)?", ["\u03b9"]),
    ("(?#x)(?i)A", ["a"]),
    ("(?x)(?i)A", ["a"]),
    # errors
    ("*", []), ("a**", []), ("a{2,1}", []), ("(", []), (")", []), ("[", []),
    ("[a", []), ("\\", []), ("a\\", []), ("[z-a]", []), ("[\\d-z]x[a-\\d]", []),
    ("\\p{L}", []), ("\\z", []), ("\\e", []), ("\\k<a>", []), ("(?<n>a)", []),
    ("(?P<1>a)", []), ("(?P=n)", []), ("(a)\\2", []), ("(a\\1)", []),
    ("a(?i)", []), ("(?i)|(?m)", []), ("((?i))", []), ("(?L)a", []),
    ("(?au)a", []), ("(?a)(?u)a", []), ("(?-a:a)", []), ("(?i-i:a)", []),
    ("(?<=a|bc)", []), ("(?<=a*)b", []), ("(?<=(a)\\1)", []), ("\\8", []),
    ("\\400", []), ("a{4294967295}", []), ("(?P<a>x)(?P<a>y)", []),
    ("(?(1)a|b|c)", []), ("(?(2)a)(b)", []), ("(?(0)a)", []), ("^*", []),
    ("\\x4", []), ("\\u123", []), ("\\U00110000", []), ("[\\A]", []), ("(?t)a*", []),
    ("(?", []), ("(?P", []), ("(?<", []), ("(?<x", []), ("(?#x", []), ("(?x", []),
    ("(?-)", []), ("(?i", []), ("a{1,2}{3}", []), ("(?P<a-b>x)", []),
]


def go(s):
    out = []
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(ch)
        elif c <= 0xFFFF:
            if 0xD800 <= c <= 0xDFFF:
                raise ValueError("surrogate")
            out.append("\\u%04x" % c)
        else:
            out.append("\\U%08x" % c)
    return '"' + "".join(out) + '"'


def main():
    print("// Code generated by testdata/gen_cases.py from Python %s; DO NOT EDIT."
          % sys.version.split()[0])
    print()
    print("package pyre")
    print()
    print("// pythonCases are Python's own answers: err when re.compile raises,")
    print("// else re.search's result for each input.")
    print("var pythonCases = []pythonCase{")
    for pattern, inputs in CASES:
        try:
            rx = re.compile(pattern)
        except Exception as e:  # re.error, OverflowError, ValueError
            print("\t{%s, true, nil}, // %s: %s" % (go(pattern), type(e).__name__, e))
            continue
        ins = ", ".join("{%s, %s}" % (go(s), "true" if rx.search(s) else "false")
                        for s in inputs)
        print("\t{%s, false, []pythonInput{%s}}," % (go(pattern), ins))
    print("}")


main()
