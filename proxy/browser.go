package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// The browser endpoint's paths under the console prefix (DESIGN.md §7).
const (
	browserJSONPath = "flags.json"
	browserJSPath   = "waffle.js"
)

// browser serves the visitor's decisions to the page's JavaScript, under
// the console prefix: flags.json in the shape of django-waffle's
// waffle_status view, waffle.js as its wafflejs view. Only the names that
// match the --browser-flags patterns are served; without patterns both
// answer 404. Each request is decided by the pipeline as a proxied request
// would be (its own path, query, cookies and headers, the visitor from the
// session cookie, the visitor's overrides), from memory: no database query
// beyond the identity cache. The waffle cookies and the override cookie the
// decision asks for are written as on a proxied response, so the page and
// the next request agree on every rolled percentage.
type browser struct {
	pipe    *Pipeline
	names   *nameMatcher
	metrics *metrics
	logger  *slog.Logger
	now     func() time.Time
}

// register adds the browser endpoint's paths to c.
func (b *browser) register(c *console) {
	c.handle(browserJSONPath, http.HandlerFunc(b.serveJSON))
	c.handle(browserJSPath, http.HandlerFunc(b.serveJS))
}

// browserView is what the browser endpoint serves of one decision.
type browserView struct {
	Flags, Switches, Samples map[string]bool
	// The WAFFLE_*_DEFAULT settings, for names not served.
	FlagDefault, SwitchDefault, SampleDefault bool
}

// waffleStatus is one entry of waffle_status: flagproxy does not read the
// rows' modified column, so last_modified is null.
type waffleStatus struct {
	IsActive     bool    `json:"is_active"`
	LastModified *string `json:"last_modified"`
}

func (b *browser) serveJSON(w http.ResponseWriter, r *http.Request) {
	b.serve(w, r, "application/json", func(v *browserView) []byte {
		status := func(m map[string]bool) map[string]waffleStatus {
			out := make(map[string]waffleStatus, len(m))
			for k, on := range m {
				out[k] = waffleStatus{IsActive: on}
			}
			return out
		}
		body, _ := json.Marshal(map[string]map[string]waffleStatus{
			"flags": status(v.Flags), "switches": status(v.Switches), "samples": status(v.Samples)})
		return append(body, '\n')
	})
}

// wafflejsTemplate is the script of waffle's wafflejs view, with the
// objects and defaults filled in by serveJS.
const wafflejsTemplate = `(function(){
  var FLAGS = {{flags}},
    SWITCHES = {{switches}},
    SAMPLES = {{samples}};
  function lookup(values, name, fallback) {
    return values[name] === undefined ? fallback : !!values[name];
  }
  window.waffle = {
    "flag_is_active": function waffle_flag(flag_name) {
      return lookup(FLAGS, flag_name, {{flag_default}});
    },
    "switch_is_active": function waffle_switch(switch_name) {
      return lookup(SWITCHES, switch_name, {{switch_default}});
    },
    "sample_is_active": function waffle_sample(sample_name) {
      return lookup(SAMPLES, sample_name, {{sample_default}});
    },
    "FLAGS": FLAGS,
    "SWITCHES": SWITCHES,
    "SAMPLES": SAMPLES
  };
})();
`

func (b *browser) serveJS(w http.ResponseWriter, r *http.Request) {
	b.serve(w, r, "text/javascript; charset=utf-8", func(v *browserView) []byte {
		// encoding/json escapes <, >, &, U+2028 and U+2029: no name can
		// end a script or a line of it.
		obj := func(m map[string]bool) string {
			s, _ := json.Marshal(m)
			return string(s)
		}
		return []byte(strings.NewReplacer(
			"{{flags}}", obj(v.Flags), "{{switches}}", obj(v.Switches), "{{samples}}", obj(v.Samples),
			"{{flag_default}}", strconv.FormatBool(v.FlagDefault),
			"{{switch_default}}", strconv.FormatBool(v.SwitchDefault),
			"{{sample_default}}", strconv.FormatBool(v.SampleDefault),
		).Replace(wafflejsTemplate))
	})
}

// serve decides for r and answers with render's body, its ETag (304 when
// If-None-Match has it), and the cookies of the decision.
func (b *browser) serve(w http.ResponseWriter, r *http.Request, contentType string, render func(*browserView) []byte) {
	if !onlyGet(w, r) {
		return
	}
	if b.names == nil {
		notFound(w, r)
		return
	}
	res := b.pipe.Decide(r.Context(), Input{
		Path:           r.URL.EscapedPath(),
		RawQuery:       r.URL.RawQuery,
		Cookie:         strings.Join(r.Header["Cookie"], "; "),
		Header:         r.Header,
		NoURLOverrides: crossSite(r),
	})
	body := render(b.view(&res))
	h := w.Header()
	if lines := b.setCookies(r, &res); len(lines) > 0 {
		h["Set-Cookie"] = lines
	}
	etag := etagOf(body)
	h.Set("ETag", etag)
	// Any flag may be decided for this visitor alone (identity, cookies,
	// overrides): never kept by a cache.
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if etagMatches(r.Header, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// view keeps the names the patterns match. Before the first snapshot, or
// when the header of the snapshot cannot fit (Django then gets
// "unavailable" and uses its defaults), nothing is served, so the page
// uses the defaults too.
func (b *browser) view(res *Result) *browserView {
	v := &browserView{Flags: map[string]bool{}, Switches: map[string]bool{}, Samples: map[string]bool{}}
	snap := res.Snapshot
	if snap == nil || !b.pipe.HeaderFits(snap) {
		ws := engine.DefaultWaffleSettings()
		if snap != nil {
			ws = snap.WaffleSettings()
		}
		v.FlagDefault, v.SwitchDefault, v.SampleDefault = ws.FlagDefault, ws.SwitchDefault, ws.SampleDefault
		return v
	}
	ws := snap.WaffleSettings()
	v.FlagDefault, v.SwitchDefault, v.SampleDefault = ws.FlagDefault, ws.SwitchDefault, ws.SampleDefault
	for i, d := range res.Decisions.Flags {
		if name := snap.FlagName(i); b.names.match(kindFlag, name) {
			v.Flags[name] = d.On
		}
	}
	for i, d := range res.Decisions.Switches {
		if name := snap.SwitchName(i); b.names.match(kindSwitch, name) {
			v.Switches[name] = d.On
		}
	}
	for i, d := range res.Decisions.Samples {
		if name := snap.SampleName(i); b.names.match(kindSample, name) {
			v.Samples[name] = d.On
		}
	}
	return v
}

// setCookies returns the Set-Cookie lines of res, written as on a proxied
// response: the override cookie, then waffle's cookies.
func (b *browser) setCookies(r *http.Request, res *Result) []string {
	var lines []string
	if res.Override != nil {
		if v := res.Override.String(); v != "" {
			lines = append(lines, v)
		}
	}
	now := b.now()
	var exp expiry
	for _, c := range res.Waffle {
		if !pythonAccepts(c) {
			b.metrics.cookiesSkipped.Inc()
			b.logger.LogAttrs(r.Context(), slog.LevelDebug, "skipped a waffle cookie Python would refuse", slog.String("cookie", c.Name))
			continue
		}
		var sb strings.Builder
		writeSetCookie(&sb, c, now, &exp)
		lines = append(lines, sb.String())
	}
	return lines
}

// etagOf is a strong entity tag of body.
func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// etagMatches reports whether an If-None-Match header of h lists etag (or
// is "*"), compared weakly as RFC 9110 §13.1.2 asks.
func etagMatches(h http.Header, etag string) bool {
	for _, line := range h.Values("If-None-Match") {
		for _, t := range strings.Split(line, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}
