package pyre

import (
	"strconv"
	"strings"
	"sync"

	"golang.org/x/text/unicode/runenames"
)

// lookupName is unicodedata.lookup for one code point's name, as \N{...}
// uses it: case-insensitive, with the algorithmic names of CJK unified
// ideographs and Hangul syllables. ok is false for a name the table does not
// hold, which may still be one of Python's aliases or named sequences.
func lookupName(name string) (r rune, ok bool) {
	name = strings.ToUpper(name)
	if hex, found := strings.CutPrefix(name, "CJK UNIFIED IDEOGRAPH-"); found && (len(hex) == 4 || len(hex) == 5) {
		v, err := strconv.ParseUint(hex, 16, 32)
		if err == nil && runenames.Name(rune(v)) == "<CJK Ideograph>" {
			return rune(v), true
		}
		return 0, false
	}
	if syl, found := strings.CutPrefix(name, "HANGUL SYLLABLE "); found {
		return hangulSyllable(syl)
	}
	r, ok = characterNames()[name]
	return r, ok
}

// characterNames is the reverse of runenames.Name, built the first time a
// pattern names a character.
var characterNames = sync.OnceValue(func() map[string]rune {
	m := make(map[string]rune, 1<<15)
	for r := rune(0); r <= 0x10FFFF; r++ {
		if s := runenames.Name(r); s != "" && s[0] != '<' {
			m[s] = r
		}
	}
	return m
})

// The jamo short names of Unicode's Hangul syllable name rule (§3.12).
var (
	jamoL = strings.Split("G GG N D DD R M B BB S SS  J JJ C K T P H", " ")
	jamoV = strings.Split("A AE YA YAE EO E YEO YE O WA WAE OE YO U WEO WE WI YU EU YI I", " ")
	jamoT = strings.Split(" G GG GS N NJ NH D L LG LM LB LS LT LP LH M B BS S SS NG J C K T P H", " ")
)

// hangulSyllable finds the syllable whose name is "HANGUL SYLLABLE "+syl.
func hangulSyllable(syl string) (rune, bool) {
	for l, ls := range jamoL {
		rest, ok := strings.CutPrefix(syl, ls)
		if !ok {
			continue
		}
		for v, vs := range jamoV {
			tail, ok := strings.CutPrefix(rest, vs)
			if !ok {
				continue
			}
			for t, ts := range jamoT {
				if tail == ts {
					return rune(0xAC00 + (l*21+v)*28 + t), true
				}
			}
		}
	}
	return 0, false
}
