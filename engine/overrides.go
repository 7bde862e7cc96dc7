package engine

import "unicode/utf8"

// MaxOverrideName bounds, in bytes, a flag name that a URL or session
// override may name: waffle's names are at most 100 characters of up to
// four bytes each.
const MaxOverrideName = 400

// OverrideName reports whether name can be read as the name of an
// override parameter (enable_<name>, session_enable_<name>, …) before it
// is looked up among the flags a snapshot knows: not empty, at most
// MaxOverrideName bytes, valid UTF-8. Any flag the snapshot knows can be
// flipped, whatever its characters ('-', '.', spaces); the
// feature_status_<name> keys of a Django session keep feature-flipper's
// own rule (FlippableName).
func OverrideName(name string) bool {
	return name != "" && len(name) <= MaxOverrideName && utf8.ValidString(name)
}

// RefusalReason says why an override parameter was not applied.
type RefusalReason string

// The reasons an override is refused.
const (
	// RefusedNotPermitted: the visitor may not flip.
	RefusedNotPermitted RefusalReason = "not_permitted"
	// RefusedUnknownFlag: no flag of the snapshot has that name.
	RefusedUnknownFlag RefusalReason = "unknown_flag"
	// RefusedCrossSite: the request came from another site.
	RefusedCrossSite RefusalReason = "cross_site"
	// RefusedTooMany: past the bounds on what one query may ask for.
	RefusedTooMany RefusalReason = "too_many"
)

// RefusalReasons lists every RefusalReason.
func RefusalReasons() []RefusalReason {
	return []RefusalReason{RefusedNotPermitted, RefusedUnknownFlag, RefusedCrossSite, RefusedTooMany}
}

// Refusal is one override parameter of a request that was not applied.
type Refusal struct {
	// Param is the parameter as decoded ("enable_beta",
	// "session_clear_features"); Name the flag it names ("" for
	// session_clear_features, or for a query refused as a whole).
	Param  string        `json:"param"`
	Name   string        `json:"name,omitempty"`
	Reason RefusalReason `json:"reason"`
}

// OverrideQuery is what one request offers the override rules (see
// proxy.Overrider): its query's field names, its cookies, the visitor,
// the snapshot whose flags may be flipped, and whether it came from
// another site.
type OverrideQuery struct {
	// Keys are the query string's field names in order
	// (ParseQueryKeys).
	Keys []string
	// Cookies is the parsed Cookie header; nil means none.
	Cookies Values
	Subject Subject
	// Snapshot names the flags that can be flipped; nil knows none.
	Snapshot *Snapshot
	// CrossSite is set for a request from another site: its override
	// parameters are refused (stored overrides still apply).
	CrossSite bool
}

// Knows reports whether the query's snapshot has a flag called name.
func (q *OverrideQuery) Knows(name string) bool {
	if q.Snapshot == nil {
		return false
	}
	_, ok := q.Snapshot.FlagIndex(name)
	return ok
}
