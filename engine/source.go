package engine

import "slices"

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
	// SourceDjangoFlags is django-flags (cfpb): flags_flagstate and the
	// FLAGS setting.
	SourceDjangoFlags Source = "django-flags"
)

// sources is the one list of the flag libraries the engine knows, in the
// order their flags are built. Adding a library is adding its files (rows,
// rule, builder) and one entry here.
var sources = []sourceDef{
	{SourceWaffle, buildWaffle},
	{SourceFeatureFlipper, buildFeatureFlipper},
	{SourceFeatureFlag, buildFeatureFlag},
	{SourceDjangoFlags, buildDjangoFlags},
}

// sourceDef ties a source's name to the function that turns its part of
// Data into one rule per flag name.
type sourceDef struct {
	name  Source
	build func(d *Data) (built, error)
}

// built is what one source contributes to a snapshot.
type built struct {
	rules    []namedRule
	problems []Problem
	// cookies is how many of the rules may write a cookie on every
	// request, tests how many only when the request asks (a testing
	// parameter or header); Evaluate sizes its cookie list with them.
	cookies, tests int
}

// namedRule is one flag a source defines.
type namedRule struct {
	name string
	rule rule
}

// rule decides one flag the way its library does. Implementations are
// immutable once built.
type rule interface {
	// decide returns the library's decision for r. Cookies the library
	// would write go to e.
	decide(r *Request, e *evaluation) Decision
	// digest feeds everything that can change a decision into h.
	digest(h *digester)
	// inputs reports the request inputs decide reads.
	inputs() Inputs
	// explain walks the library's checks for r again, in order, into x,
	// up to the one that decides (see explainer).
	explain(r *Request, x *explainer)
	// words describes the rule ("staff, groups: beta-testers, 25 %").
	words(s *Snapshot) string
	// uniform reports whether the rule decides the same way for every
	// visitor, and which way (see uniform.go).
	uniform() (on, ok bool)
}

// KnownSources returns every source the engine can build flags from.
func KnownSources() []Source {
	out := make([]Source, len(sources))
	for i, s := range sources {
		out[i] = s.name
	}
	return out
}

// IsKnownSource reports whether s is one of KnownSources.
func IsKnownSource(s Source) bool {
	return slices.ContainsFunc(sources, func(d sourceDef) bool { return d.name == s })
}

// Inputs is a set of request inputs that rules read, so that a caller can
// leave the others unparsed.
type Inputs uint8

// The request inputs a rule can read.
const (
	InputQuery    Inputs = 1 << iota // Request.Query (and RawQuery)
	InputCookies                     // Request.Cookies
	InputHeader                      // Request.Header
	InputLanguage                    // Request.Language
	InputPath                        // Request.Path
	InputTime                        // Request.Now
)

// Has reports whether every input of x is in i.
func (i Inputs) Has(x Inputs) bool { return i&x == x }

// Problem is something in a source's rows or settings worth reporting once
// per snapshot. When Raises is true the library itself would raise when the
// flag is checked: the flag is then off (ReasonError).
type Problem struct {
	Source Source `json:"source"`
	Flag   string `json:"flag"`
	// Error is the exception the library would raise, as "Class: message",
	// or, when Raises is false, what flagproxy noticed (an unknown
	// condition, which the library counts as false).
	Error  string `json:"error"`
	Raises bool   `json:"raises"`
}
