package engine

import (
	"strconv"
)

// Source names the Django library (and so the table set) a flag came from.
type Source string

// The flag sources flagproxy reads.
const (
	// SourceWaffle is django-waffle: waffle_flag, waffle_switch, waffle_sample.
	SourceWaffle Source = "waffle"
	// SourceFeatureFlipper is django-feature-flipper: featureflipper_feature.
	SourceFeatureFlipper Source = "featureflipper"
	// SourceFeatureFlag is the tutorial FeatureFlag model: <app>_featureflag.
	SourceFeatureFlag Source = "featureflag"
)

// Tristate is a nullable boolean column such as waffle_flag.everyone.
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

// Percent is a decimal percentage with one fractional digit, as django-waffle
// stores it (numeric(3,1) for flags, numeric(4,1) for samples). Tenths holds
// the value times ten; Valid is false for SQL NULL.
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

// WaffleFlag is one row of waffle_flag (or of a swapped-in flag model's
// table) together with the ids linked to it through the M2M tables.
type WaffleFlag struct {
	Name          string
	Everyone      Tristate
	Percent       Percent
	Testing       bool
	Superusers    bool
	Staff         bool
	Authenticated bool
	Rollout       bool
	Languages     string
	// Users holds the primary keys of the linked users, as text (see
	// Subject.UserID).
	Users []string
	// Groups holds the ids of the linked auth_group rows.
	Groups []int64
}

// Switch is one row of waffle_switch.
type Switch struct {
	Name   string
	Active bool
}

// Sample is one row of waffle_sample.
type Sample struct {
	Name    string
	Percent Percent
}

// Feature is one row of django-feature-flipper's featureflipper_feature.
type Feature struct {
	Name    string
	Enabled bool
}

// FeatureFlag is one row of the FeatureFlag model's table with the primary
// keys (as text) of its allowed users.
type FeatureFlag struct {
	Key            string
	Enabled        bool
	RolloutPercent int64
	AllowedUsers   []string
}

// WaffleSettings holds the WAFFLE_* settings that change decisions or the
// cookies waffle writes. The zero value is not waffle's default: use
// DefaultWaffleSettings.
type WaffleSettings struct {
	FlagDefault   bool   // WAFFLE_FLAG_DEFAULT
	SwitchDefault bool   // WAFFLE_SWITCH_DEFAULT
	SampleDefault bool   // WAFFLE_SAMPLE_DEFAULT
	Override      bool   // WAFFLE_OVERRIDE
	Cookie        string // WAFFLE_COOKIE, a pattern with one %s
	TestCookie    string // WAFFLE_TEST_COOKIE, a pattern with one %s
	Secure        bool   // WAFFLE_SECURE
	MaxAge        int    // WAFFLE_MAX_AGE, seconds
}

// DefaultWaffleSettings returns django-waffle's defaults (waffle.defaults in
// 3.0 through 5.0).
func DefaultWaffleSettings() WaffleSettings {
	return WaffleSettings{
		Cookie:     "dwf_%s",
		TestCookie: "dwft_%s",
		Secure:     true,
		MaxAge:     2592000,
	}
}
