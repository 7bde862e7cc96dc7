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

// Bounds on what one query string may ask for: Django itself refuses more
// than 1,000 fields (DATA_UPLOAD_MAX_NUMBER_FIELDS).
const (
	maxQueryKeys = 1000
	maxNames     = 64
)

// FromQuery reads the override parameters of a query string from its field
// names in query order, decoded the way Django decodes them
// (engine.ParseQueryKeys). Each list keeps the first 64 distinct names in
// query order, then is sorted; a query of more than 1,000 fields asks for
// nothing.
func FromQuery(keys []string) Query {
	var out Query
	if len(keys) > maxQueryKeys {
		return out
	}
	for _, key := range keys {
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
	if len(list) < maxNames && engine.FlippableName(name) && !slices.Contains(list, name) {
		return append(list, name)
	}
	return list
}
