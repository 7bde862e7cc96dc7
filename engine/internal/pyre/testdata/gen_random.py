"""Differential test data: random patterns and Python 3.11's answers.

    python3 testdata/gen_random.py SEED COUNT MODE OUT.json
    PYRE_DIFF=OUT.json go test -run TestDifferential -v .

MODE is "all" (every construct over a wide alphabet), "small" (the same
over a 4-character alphabet), "refs" (groups, back references,
conditionals and look-arounds over "ab") or "syntax" (random token soup,
mostly for the error paths). Each record holds the pattern, whether
re.compile raised, and for up to 6 matching and 6 non-matching inputs
what re.search returned.
"""
import json
import random
import re
import sys
import warnings

warnings.simplefilter("ignore")
SEED, COUNT, MODE, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
R = random.Random(SEED)
WIDE = ["a", "b", "A", "B", "/", "k", "K", "\u212a", "\u00df", "\u1e9e", "s", "S", "\u017f",
        "\u00e9", "\u00c9", "\n", "1", "\u0663", " ", "_", "\u0130", "i", "\u0131", "I",
        "\U00010400", "\U00010428", "-", "\u00b5", "\u03bc", "\u039c", "\u0345", "\u03b9",
        "\u1fbe", "x", "\u00a0", "\u2028", "\t", "\x1c", "0", "9", "\u01c5", "\u01c6",
        "\u01c4", "\u0300", "#"]
ALPH = WIDE
ESC = [r"\d", r"\D", r"\w", r"\W", r"\s", r"\S", r"\b", r"\B", r"\A", r"\Z", "^", "$", ".",
       r"\n", r"\t", r"\x41", r"\u212a", r"\U00010400", r"\0", r"\07", r"\101", r"\-",
       r"\.", r"\/", r"\\", r"\]", r"\{"]
GROUPS = ["(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?i:", "(?-i:", "(?a:", "(?s:",
          "(?m:", "(?x:", "(", "("]
QUANTS = ["*", "+", "?", "{2}", "{1,3}", "{,2}", "{2,}", "{0}", "{3,1}", "{", "{a}", "{1,}"]
SYNTAX = ["[", "]", "^", "-", "\\", "(", ")", "?", "*", "+", "{", "}", ",", "0", "1", "2",
          "|", "#", " ", "\n", "a", "b", "(?x)", "(?i)", "P", "<", ">", "=", "!", ":", "i",
          "x", "s", "u", "L", "t", "(?", r"\d", r"\w", r"\b", r"\1", r"\0", r"\x4", "$",
          ".", "&", "~", "_", "(?P<", "(?P=", "(?(", "(?#", "(?<", "(?-", "\u00e9", "\\ "]


def lit():
    c = R.choice(ALPH)
    return "\\" + c if c in ".^$*+?{}[]\\|()" else c


def cls():
    parts = ["^"] if R.random() < 0.3 else []
    for _ in range(R.randint(1, 4)):
        r = R.random()
        if r < 0.4:
            c = lit()
            parts.append("\\" + c if c in "^]-[" else c)
        elif r < 0.65:
            a, b = sorted([R.choice("aAbBkKsSzZ09\u00e9/_"), R.choice("aAbBkKsSzZ09\u00e9/_\u1e9e\u017f")])
            parts.append(a + "-" + b)
        elif r < 0.85:
            parts.append(R.choice([r"\d", r"\D", r"\w", r"\W", r"\s", r"\S", r"\b", r"\n"]))
        else:
            parts.append(R.choice(["\u2100-\u2200", "\U00010400-\U00010428", "a-\U00010428", "-", "]", "[", ":"]))
    return "[" + "".join(parts) + "]"


def atom(d):
    r = R.random() * (0.5 if d > 3 else 1)
    if r < 0.3:
        return lit()
    if r < 0.42:
        return R.choice(ESC)
    if r < 0.5:
        return cls()
    kind = R.choice(GROUPS + ["(?P<n%d>" % R.randint(1, 3), "COND", "REF", "REF"])
    if kind == "COND":
        return "(?(%d)%s|%s)" % (R.randint(1, 3), seq(d + 1), seq(d + 1))
    if kind == "REF":
        return R.choice([r"\1", r"\2", "(?P=n1)", "(?P=n2)"])
    return kind + alt(d + 1) + ")"


def quant():
    if R.random() < 0.7:
        return ""
    return R.choice(QUANTS) + R.choice(["", "", "?", "+"])


def seq(d):
    return "".join(atom(d) + quant() for _ in range(R.randint(0, 4 if d < 3 else 2)))


def alt(d):
    s = seq(d)
    while R.random() < 0.25:
        s += "|" + seq(d)
    return s


def refatom(d):
    r = R.random() * (0.4 if d > 3 else 1)
    if r < 0.25:
        return R.choice("ab")
    if r < 0.32:
        return R.choice([".", "[ab]", r"\b", r"\B", "^", "$"])
    if r < 0.5:
        return R.choice([r"\1", r"\2", r"\3", "(?P=n1)"])
    if r < 0.6:
        return "(?(%d)%s|%s)" % (R.randint(1, 3), refseq(d + 1), refseq(d + 1))
    k = R.choice(["(", "(", "(", "(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?P<n1>"])
    return k + refalt(d + 1) + ")"


def refseq(d):
    quants = ["", "", "", "*", "+", "?", "*?", "+?", "??", "{2}", "{1,2}", "{0,2}?", "*+", "?+"]
    return "".join(refatom(d) + R.choice(quants) for _ in range(R.randint(0, 4)))


def refalt(d):
    s = refseq(d)
    while R.random() < 0.3:
        s += "|" + refseq(d)
    return s


def pattern():
    global ALPH
    if MODE == "refs":
        return R.choice(["", "", "^", "(?i)", "(?m)"]) + refalt(0) + R.choice(["", "", "$"])
    if MODE == "syntax":
        return "".join(R.choice(SYNTAX) for _ in range(R.randint(1, 10)))
    pre = "(?" + "".join(R.sample("imsxa", R.randint(1, 2))) + ")" if R.random() < 0.4 else ""
    ALPH = R.sample(WIDE, 4) if MODE == "small" else WIDE
    return pre + alt(0)


def candidates(p):
    if MODE == "refs":
        pool = ["a", "b"]
    else:
        pool = [c for c in p if c not in "\\()[]{}?*+|^$.:=!<>"] + R.sample(WIDE, 4)
    return ["".join(R.choice(pool) for _ in range(R.randint(0, 8))) for _ in range(80)]


def main():
    out = []
    for _ in range(COUNT):
        p = pattern()
        try:
            rx = re.compile(p)
        except Exception as e:  # re.error, OverflowError, ValueError
            out.append({"p": p, "in": [], "res": None, "err": "%s: %s" % (type(e).__name__, e)})
            continue
        got = [(s, bool(rx.search(s))) for s in candidates(p)]
        yes = [s for s, v in got if v][:6]
        no = [s for s, v in got if not v][:6]
        out.append({"p": p, "in": yes + no, "res": [True] * len(yes) + [False] * len(no), "err": None})
    with open(OUT, "w") as f:
        json.dump(out, f)


main()
