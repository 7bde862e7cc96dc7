// Package overrides turns a request into engine.Overrides: django-feature-
// flipper's URL and session overrides, for visitors allowed to flip.
//
// The query parameters (only the name counts, never the value):
//
//	enable_<name>            on for this request
//	disable_<name>           off for this request (flagproxy's extension)
//	session_enable_<name>    on for the rest of the session
//	session_disable_<name>   off for the rest of the session (extension)
//	session_clear_features   forget every stored override (applied first)
//
// A name is what feature-flipper's ^enable_(\w+)$ captures with Python 2's
// ASCII \w: letters, digits and underscores (one trailing newline, which
// Python's $ tolerates, is dropped). Other names are ignored.
//
// Who may flip: a visitor whose Django user has the flip permission
// (featureflipper.can_flip_with_url by default, directly or through a
// group; active superusers have every permission), or everyone when
// FEATURE_FLIPPER_ANONYMOUS_URL_FLIPPING is on. This is stricter than
// feature-flipper's 2010 code, which let anyone use enable_<name>
// (DESIGN.md §3). Stored overrides live in flagproxy's own cookie (see
// Overrider) and are re-checked on every request.
//
// Precedence, lowest first: the flag's own rules (including waffle's
// testing mode and WAFFLE_OVERRIDE), the feature_status_<name> entries of
// the visitor's Django session, flagproxy's stored session overrides, then
// this request's URL overrides; within one layer, disable beats enable.
package overrides

import (
	"slices"
	"strings"

	"github.com/flagproxy/flagproxy/engine"
)

// Query is what a query string asks for.
type Query struct {
	Enable, Disable               []string // this request
	SessionEnable, SessionDisable []string // stored for the session
	SessionClear                  bool
}

// Empty reports whether the query asks for nothing.
func (q Query) Empty() bool {
	return !q.SessionClear && len(q.Enable)+len(q.Disable)+len(q.SessionEnable)+len(q.SessionDisable) == 0
}

// The parameter prefixes, longest first where one is a suffix of another's
// position: the ^ anchor makes session_enable_x no enable_ parameter.
const (
	prefixEnable         = "enable_"
	prefixDisable        = "disable_"
	prefixSessionEnable  = "session_enable_"
	prefixSessionDisable = "session_disable_"
	paramSessionClear    = "session_clear_features"
)

// FromQuery reads the override parameters of a query string parsed the
// way Django parses it (engine.ParseQuery). The result's lists are sorted
// and free of duplicates.
func FromQuery(q engine.Params) Query {
	var out Query
	for key := range q {
		key = strings.TrimSuffix(key, "\n")
		switch {
		case key == paramSessionClear:
			out.SessionClear = true
		case strings.HasPrefix(key, prefixSessionEnable):
			out.SessionEnable = appendName(out.SessionEnable, key[len(prefixSessionEnable):])
		case strings.HasPrefix(key, prefixSessionDisable):
			out.SessionDisable = appendName(out.SessionDisable, key[len(prefixSessionDisable):])
		case strings.HasPrefix(key, prefixEnable):
			out.Enable = appendName(out.Enable, key[len(prefixEnable):])
		case strings.HasPrefix(key, prefixDisable):
			out.Disable = appendName(out.Disable, key[len(prefixDisable):])
		}
	}
	for _, l := range []*[]string{&out.Enable, &out.Disable, &out.SessionEnable, &out.SessionDisable} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return out
}

func appendName(list []string, name string) []string {
	if engine.FlippableName(name) {
		return append(list, name)
	}
	return list
}
