package pyre

import (
	"testing"
	"unicode"
)

// TestGoLowerMatchesPython checks the premise of case-insensitive back
// references: regexp2 compares unicode.ToLower of both sides, which must
// equal sre's lower() on every code point.
func TestGoLowerMatchesPython(t *testing.T) {
	bad := 0
	for c := rune(0); c <= maxRune; c++ {
		if got, want := unicode.ToLower(c), uniLowerMap.of(c); got != want {
			if bad++; bad < 10 {
				t.Errorf("unicode.ToLower(%U) = %U; Python lower() = %U", c, got, want)
			}
		}
	}
}

// TestLowerKeepsPlane checks the premise of inSet's BMP handling: lower()
// maps BMP characters into the BMP and others outside it.
func TestLowerKeepsPlane(t *testing.T) {
	for _, m := range []*caseMap{uniLowerMap, asciiLowerMap} {
		for c := rune(0); c <= maxRune; c++ {
			if (c <= 0xFFFF) != (m.of(c) <= 0xFFFF) {
				t.Fatalf("lower(%U) = %U crosses the BMP boundary", c, m.of(c))
			}
		}
	}
}

// TestTables spot-checks the generated tables against known Python facts.
func TestTables(t *testing.T) {
	checks := []struct {
		name string
		got  bool
	}{
		{"\\w has _", uniWordSet.contains('_')},
		{"\\w lacks U+0300 (combining grave)", !uniWordSet.contains(0x300)},
		{"\\w has U+00B2 (superscript two)", uniWordSet.contains(0xB2)},
		{"\\d has U+0663 (Arabic-Indic three)", uniDigitSet.contains(0x663)},
		{"\\d lacks U+00B2", !uniDigitSet.contains(0xB2)},
		{"\\s has U+001C", uniSpaceSet.contains(0x1C)},
		{"\\s has U+0085", uniSpaceSet.contains(0x85)},
		{"\\s lacks U+200B", !uniSpaceSet.contains(0x200B)},
		{"lower(KELVIN SIGN) = k", uniLowerMap.of(0x212A) == 'k'},
		{"lower(U+1E9E) = U+00DF", uniLowerMap.of(0x1E9E) == 0xDF},
		{"lower(U+0130) = i", uniLowerMap.of(0x130) == 'i'},
		{"upper(U+00DF) = S", uniUpperMap.of(0xDF) == 'S'},
		{"U+00DF is cased", uniCasedSet.contains(0xDF)},
		{"extra cases of s", len(uniExtraCases['s']) == 1 && uniExtraCases['s'][0] == 0x17F},
	}
	for _, c := range checks {
		if !c.got {
			t.Errorf("table check failed: %s", c.name)
		}
	}
	if pythonUnicodeVersion != "14.0.0" {
		t.Errorf("tables are for Unicode %s; Python 3.11 uses 14.0.0", pythonUnicodeVersion)
	}
}
