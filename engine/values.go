package engine

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Tristate is a nullable boolean column such as waffle_flag.everyone. In
// JSON it is null, true or false.
type Tristate int8

// The values of a Tristate.
const (
	Unset Tristate = iota // SQL NULL
	Yes
	No
)

// TristateOf returns Yes or No for b.
func TristateOf(b bool) Tristate {
	if b {
		return Yes
	}
	return No
}

// MarshalJSON writes null, true or false.
func (t Tristate) MarshalJSON() ([]byte, error) {
	switch t {
	case Yes:
		return []byte("true"), nil
	case No:
		return []byte("false"), nil
	}
	return []byte("null"), nil
}

// UnmarshalJSON reads null, true or false.
func (t *Tristate) UnmarshalJSON(b []byte) error {
	var v *bool
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("tristate: %w", err)
	}
	*t = Unset
	if v != nil {
		*t = TristateOf(*v)
	}
	return nil
}

// Percent is a decimal percentage with one fractional digit, as django-waffle
// stores it (numeric(3,1) for flags, numeric(4,1) for samples). Tenths holds
// the value times ten; Valid is false for SQL NULL. In JSON it is the
// decimal as a string ("12.5") or null.
type Percent struct {
	Tenths int32
	Valid  bool
}

// PercentOf returns a valid Percent of tenths/10.
func PercentOf(tenths int32) Percent { return Percent{Tenths: tenths, Valid: true} }

// Float returns the float64 nearest to the decimal value, which is what
// waffle's comparison of a roll against the percentage amounts to.
func (p Percent) Float() float64 { return float64(p.Tenths) / 10 }

// String renders the percentage as Django does ("12.5", "50.0"), or "NULL".
func (p Percent) String() string {
	if !p.Valid {
		return "NULL"
	}
	return strconv.FormatFloat(p.Float(), 'f', 1, 64)
}

// MarshalJSON writes the decimal string, or null.
func (p Percent) MarshalJSON() ([]byte, error) {
	if !p.Valid {
		return []byte("null"), nil
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON reads a decimal string with at most one fractional digit
// ("12.5", "-5", "100.0"), or null.
func (p *Percent) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("percent: %w", err)
	}
	if s == nil {
		*p = Percent{}
		return nil
	}
	v, err := ParsePercent(*s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePercent reads a decimal with at most one fractional digit ("50",
// "12.5", "-5.0"), exactly.
func ParsePercent(s string) (Percent, error) {
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "" || len(frac) > 1 || strings.Trim(whole+frac, "0123456789") != "" {
		return Percent{}, fmt.Errorf("percent %q: want a decimal with at most one fractional digit", s)
	}
	w, err := strconv.ParseInt(whole, 10, 31)
	if err != nil || w > 1e8 {
		return Percent{}, fmt.Errorf("percent %q: out of range", s)
	}
	tenths := w * 10
	if frac != "" {
		tenths += int64(frac[0] - '0')
	}
	if neg {
		tenths = -tenths
	}
	return PercentOf(int32(tenths)), nil
}
