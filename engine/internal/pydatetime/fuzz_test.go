package pydatetime

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that errors are always
// *ValueError with no value, that parsed fields are in range, and that
// Django 4.2 returns the same result as Django 3.2 wherever 3.2 parses.
func FuzzParse(f *testing.F) {
	for _, tc := range parseTable {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v32, err32 := Parse(s, 3, 2)
		checkResult(t, s, v32, err32)
		v42, err42 := Parse(s, 4, 2)
		checkResult(t, s, v42, err42)
		if v32.Kind != None || err32 != nil {
			if a, b := encode(v32, err32), encode(v42, err42); a != b {
				t.Errorf("%q: Django 3.2 gives %s but 4.2 gives %s", s, a, b)
			}
		}
		if v, err := FromISO(s); err == nil {
			checkResult(t, s, v, nil)
		}
	})
}

// checkResult checks one Parse result for internal consistency: errors
// are *ValueError without a value, and a value has microsecond resolution,
// an offset strictly inside ±24h, a local year in 1..9999, and survives a
// round trip through its isoformat() text.
func checkResult(t *testing.T, s string, v Value, err error) {
	t.Helper()
	if err != nil {
		var ve *ValueError
		if !errors.As(err, &ve) || !errors.Is(err, ErrImpossible) || v.Kind != None {
			t.Errorf("%q: error %v with value %v", s, err, v)
		}
		return
	}
	if v.Kind == None {
		return
	}
	if v.T.Nanosecond()%1000 != 0 {
		t.Errorf("%q: %v is finer than a microsecond", s, v)
	}
	if v.Kind == Naive && v.T.Location() != time.UTC {
		t.Errorf("%q: naive value %v not in UTC", s, v)
	}
	if v.Kind == Aware && v.T.Location() == time.UTC {
		return // a sub-second offset: only the instant is kept
	}
	if _, off := v.T.Zone(); off <= -86400 || off >= 86400 {
		t.Errorf("%q: offset %ds out of range", s, off)
	}
	if y := v.T.Year(); y < 1 || y > 9999 {
		t.Errorf("%q: year %d out of range in %v", s, y, v)
	}
	layout := "2006-01-02T15:04:05.000000"
	if v.Kind == Aware {
		layout += "-07:00:00"
	}
	if back, err := FromISO(v.T.Format(layout)); err != nil || back.Kind != v.Kind || !back.T.Equal(v.T) {
		t.Errorf("%q: %v does not round-trip: %v, %v", s, v, back, err)
	}
}
