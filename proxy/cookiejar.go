package proxy

import (
	"slices"

	"github.com/flagproxy/flagproxy/engine"
)

// cookieJar is the request's Cookie header, parsed only when a rule reads
// cookies and the decisions are not memoized. Until then the identity, the
// overrides and the language look up the few cookies they need: the first
// lookup picks, in one pass over the header (engine.PickCookies), every
// name the pipeline has been asked for before parsing (cookieNames).
type cookieJar struct {
	raw    string
	params engine.Params // nil until parse
	p      *Pipeline
	picked bool
	// recalled is set when the picks came from a memo entry.
	recalled bool
	names    []string // picked, read-only
	values   [maxPicked]string
	found    [maxPicked]bool
}

// maxPicked bounds the names a cookieJar picks in one pass.
const maxPicked = 8

// Get returns the value of the cookie name.
func (j *cookieJar) Get(name string) (string, bool) {
	if j.params != nil {
		return j.params.Get(name)
	}
	if !j.picked {
		j.names = j.p.cookieName(name)
		engine.PickCookies(j.raw, j.names, j.values[:len(j.names)], j.found[:len(j.names)])
		j.picked = true
	}
	for i, n := range j.names {
		if n == name {
			return j.values[i], j.found[i]
		}
	}
	j.p.cookieName(name) // picked with the others from the next request on
	return engine.CookieValue(j.raw, name)
}

// recall gives j the cookies e picked from the same header, unless the
// names to pick changed since.
func (j *cookieJar) recall(e *memoEntry) {
	names := j.p.cookieNames.Load()
	if names == nil || !e.picked || len(e.names) != len(*names) || len(e.names) > 0 && &e.names[0] != &(*names)[0] {
		return
	}
	j.names, j.values, j.found, j.picked, j.recalled = e.names, e.values, e.found, true, true
}

// parse parses the header, once, into a map from p's pool.
func (j *cookieJar) parse() engine.Params {
	if j.params == nil {
		j.params = j.p.parse(engine.ParseCookiesInto, j.raw)
	}
	return j.params
}

// cookieName returns the names of the cookies looked up before parsing,
// adding name unless maxPicked are known.
func (p *Pipeline) cookieName(name string) []string {
	for {
		old := p.cookieNames.Load()
		var names []string
		if old != nil {
			names = *old
		}
		if slices.Contains(names, name) || len(names) == maxPicked {
			return names
		}
		grown := append(slices.Clip(names), name)
		if p.cookieNames.CompareAndSwap(old, &grown) {
			return grown
		}
	}
}
