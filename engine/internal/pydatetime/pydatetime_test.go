package pydatetime

import (
	"testing"
	"time"
	"unicode"
)

// TestCompare checks After and Before for aware, naive and mixed values.
func TestCompare(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Skip(err)
	}
	instant := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	aware, naive := Now(instant, true, nil), Now(instant, false, chicago)
	mustParse := func(s string) Value {
		v, err := Parse(s, 3, 2)
		if err != nil || v.Kind == None {
			t.Fatalf("Parse(%q) = %v, %v", s, v, err)
		}
		return v
	}
	tests := []struct {
		value         string
		now           Value
		after, before bool
	}{
		{"2026-01-15T12:00:00Z", aware, false, false},
		{"2026-01-15T06:00:00-06:00", aware, false, false},
		{"2026-01-15T11:59:59.999999Z", aware, true, false},
		{"2026-01-15T17:30:00.000001+05:30", aware, false, true},
		{"2026-01-15T12:00", aware, false, false},
		{"2026-01-15T06:00", naive, false, false},
		{"2026-01-15T05:59:59.999999", naive, true, false},
		{"2026-01-15T06:00:00.000001", naive, false, true},
		{"2017-06-01T12:00Z", naive, false, false},
	}
	for _, tc := range tests {
		v := mustParse(tc.value)
		if got := After(v, tc.now); got != tc.after {
			t.Errorf("After(%s, %v) = %v", tc.value, tc.now, got)
		}
		if got := Before(v, tc.now); got != tc.before {
			t.Errorf("Before(%s, %v) = %v", tc.value, tc.now, got)
		}
	}
	if After(Value{}, aware) || Before(Value{}, aware) {
		t.Error("a None value compared")
	}
}

// TestMicrosecondResolution checks that nanoseconds are ignored.
func TestMicrosecondResolution(t *testing.T) {
	v, _ := Parse("2026-01-15T12:00:00.000001Z", 3, 2)
	now := Value{Kind: Aware, T: time.Date(2026, 1, 15, 12, 0, 0, 1999, time.UTC)}
	if After(v, now) || Before(v, now) {
		t.Errorf("nanoseconds below a microsecond were compared: %v vs %v", v, now)
	}
	if got := Now(now.T, true, nil).T.Nanosecond(); got != 1000 {
		t.Errorf("Now kept nanoseconds: %d", got)
	}
}

// TestDigitTable checks digitZeros against Go's Unicode tables.
func TestDigitTable(t *testing.T) {
	for _, z := range digitZeros {
		for d := rune(0); d < 10; d++ {
			if v, ok := digitValue(z + d); !ok || v != int(d) || !unicode.IsDigit(z+d) {
				t.Errorf("U+%04X: value %d, %v", z+d, v, ok)
			}
		}
	}
	for _, r := range []rune{'/', ':', 0x65F, 0x66A, 0x11F50, 0xFF} {
		if _, ok := digitValue(r); ok {
			t.Errorf("U+%04X counted as a digit", r)
		}
	}
}

// TestFromISO checks FromISO on isoformat() output.
func TestFromISO(t *testing.T) {
	v, err := FromISO("2017-06-01T12:00:00.500000+05:30")
	if err != nil || v.Kind != Aware || !v.T.Equal(time.Date(2017, 6, 1, 6, 30, 0, 5e8, time.UTC)) {
		t.Errorf("aware: %v, %v", v, err)
	}
	v, err = FromISO("2017-06-01T12:00:00")
	if err != nil || v.Kind != Naive || v.T != time.Date(2017, 6, 1, 12, 0, 0, 0, time.UTC) {
		t.Errorf("naive: %v, %v", v, err)
	}
	if _, err := FromISO("2017-06-01T12:00:00 junk"); err == nil {
		t.Error("junk accepted")
	}
}
