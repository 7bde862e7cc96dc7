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
	// Params lists the override parameters read, in query order (each
	// name once per kind), with the flag each names: what a refusal
	// reports.
	Params []engine.Refusal
	// TooMany lists the override parameters left unread, past the bounds.
	TooMany []engine.Refusal
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
// (engine.ParseQueryKeys). A name is any text engine.OverrideName accepts
// ('-', '.', spaces included); whether a flag has it is for the caller to
// check. Each list keeps the first 64 distinct names in query order, then
// is sorted; the others, and every override parameter of a query of more
// than 1,000 fields, go to TooMany.
func FromQuery(keys []string) Query {
	if len(keys) == 0 {
		return Query{} // most requests; out below lives on the heap
	}
	var out Query
	if len(keys) > maxQueryKeys {
		for _, key := range keys {
			if _, _, ok := parseKey(key); ok {
				out.TooMany = append(out.TooMany, engine.Refusal{Param: key, Reason: engine.RefusedTooMany})
				if len(out.TooMany) == maxNames {
					break // one query is refused whole; a sample names it
				}
			}
		}
		return out
	}
	for _, key := range keys {
		list, name, ok := parseKey(key)
		switch {
		case !ok:
		case list == nil:
			if !out.SessionClear {
				out.Params = append(out.Params, engine.Refusal{Param: paramSessionClear})
			}
			out.SessionClear = true
		default:
			out.add(list, strings.TrimSuffix(key, "\n"), name)
		}
	}
	for _, l := range []*[]string{&out.Enable, &out.Disable, &out.SessionEnable, &out.SessionDisable} {
		slices.Sort(*l)
	}
	return out
}

// add appends name to the list kind of q, once, within the bound.
func (q *Query) add(kind func(*Query) *[]string, param, name string) {
	list := kind(q)
	switch {
	case slices.Contains(*list, name):
	case len(*list) >= maxNames:
		q.TooMany = append(q.TooMany, engine.Refusal{Param: param, Name: name, Reason: engine.RefusedTooMany})
	default:
		*list = append(*list, name)
		q.Params = append(q.Params, engine.Refusal{Param: param, Name: name})
	}
}

// parseKey says which list an override parameter adds to (nil for
// session_clear_features) and the name it names; ok is false for any
// other field, or a name engine.OverrideName refuses.
func parseKey(key string) (list func(*Query) *[]string, name string, ok bool) {
	key = strings.TrimSuffix(key, "\n")
	if key == paramSessionClear {
		return nil, "", true
	}
	for _, p := range []struct {
		prefix string
		list   func(*Query) *[]string
	}{
		{prefixSessionEnable, func(q *Query) *[]string { return &q.SessionEnable }},
		{prefixSessionDisable, func(q *Query) *[]string { return &q.SessionDisable }},
		{prefixEnable, func(q *Query) *[]string { return &q.Enable }},
		{prefixDisable, func(q *Query) *[]string { return &q.Disable }},
	} {
		if name, found := strings.CutPrefix(key, p.prefix); found {
			return p.list, name, engine.OverrideName(name)
		}
	}
	return nil, "", false
}

// keep removes from q every name for which drop reports true, and
// returns the parameters it removed.
func (q *Query) keep(drop func(name string) bool) []engine.Refusal {
	var gone []engine.Refusal
	q.Params = slices.DeleteFunc(q.Params, func(p engine.Refusal) bool {
		if p.Param != paramSessionClear && drop(p.Name) {
			gone = append(gone, p)
			return true
		}
		return false
	})
	for _, l := range []*[]string{&q.Enable, &q.Disable, &q.SessionEnable, &q.SessionDisable} {
		*l = slices.DeleteFunc(*l, drop)
	}
	return gone
}
