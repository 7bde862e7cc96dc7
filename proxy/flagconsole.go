package proxy

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// The flags console's paths under the console prefix (DESIGN.md §7).
const (
	consolePagePath = ""
	consoleJSONPath = "me.json"
	maxConsoleForm  = 64 << 10
)

// flagConsole is the flags console on the proxied site: for a visitor
// allowed to flip, every flag, switch and sample with its state for this
// visitor, why, its rule, note and last change, and forms that flip a flag
// for the session (POST, protected by csrf) or for one request (a POST
// that redirects to the page with ?enable_x). Anyone else gets the
// console's 404, exactly as for a path that does not exist, unless the
// console is public (then read-only for them).
type flagConsole struct {
	pipe    *Pipeline
	prefix  string
	public  bool
	csrf    *csrf
	browser *browser // writes a decision's cookies
	logger  *slog.Logger
}

// register adds the console's paths to c.
func (fc *flagConsole) register(c *console) {
	c.handle(consolePagePath, http.HandlerFunc(fc.serveRoot))
	c.handle(consoleJSONPath, http.HandlerFunc(fc.serveJSON))
}

// consoleView is what the console shows one visitor.
type consoleView struct {
	Visitor  ExplainVisitor           `json:"visitor"`
	MayFlip  bool                     `json:"may_flip"`
	Page     string                   `json:"page"`
	Version  string                   `json:"version,omitempty"`
	State    string                   `json:"state"`
	Flags    map[string]*consoleEntry `json:"flags"`
	Switches map[string]*consoleEntry `json:"switches"`
	Samples  map[string]*consoleEntry `json:"samples"`
	// Overrides are those the visitor's request carried.
	Overrides engine.Overrides `json:"overrides"`

	entries []*consoleEntry // in page order
	query   string          // the search
	token   string
	notice  string
}

// consoleEntry is one name as the console shows it.
type consoleEntry struct {
	Kind     engine.Kind   `json:"kind"`
	Name     string        `json:"-"`
	On       bool          `json:"on"`
	Reason   engine.Reason `json:"reason"`
	Because  string        `json:"because"`
	Source   engine.Source `json:"source,omitempty"`
	Rule     string        `json:"rule"`
	Note     string        `json:"note,omitempty"`
	Modified time.Time     `json:"modified,omitzero"`
	// Override is "session" or "url" when an override decided.
	Override string `json:"override,omitempty"`
	Hidden   bool   `json:"-"` // filtered out by the search
	Search   string `json:"-"` // what the search looks in, lower-cased
}

// Flippable reports whether the entry is a flag (switches and samples
// have no overrides).
func (e *consoleEntry) Flippable() bool { return e.Kind == engine.KindFlag }

// decide decides for r as a request for page would be, and explains
// every decision. It reports false when r's visitor may not see the
// console.
func (fc *flagConsole) decide(r *http.Request, page string) (Result, *consoleView, bool) {
	u, _ := url.Parse(page)
	x := &Explain{All: true}
	res := fc.pipe.Decide(r.Context(), Input{Path: u.EscapedPath(), RawQuery: u.RawQuery,
		Cookie: strings.Join(r.Header["Cookie"], "; "), Header: r.Header, NoURLOverrides: crossSite(r), Explain: x})
	if !res.Overrides.Allowed && !fc.public {
		return res, nil, false
	}
	v := &consoleView{MayFlip: res.Overrides.Allowed, Page: page, State: res.State, Overrides: res.Overrides,
		Flags: map[string]*consoleEntry{}, Switches: map[string]*consoleEntry{}, Samples: map[string]*consoleEntry{}}
	s := res.Subject
	v.Visitor = ExplainVisitor{Identity: identityOf(s.UserID, s), UserID: s.UserID, Username: s.Username,
		Authenticated: s.Authenticated, Staff: s.Staff, Superuser: s.Superuser, Groups: s.Groups, Stale: s.Stale}
	if res.Snapshot != nil {
		v.Version = res.Snapshot.Version()
	}
	byKind := map[engine.Kind]map[string]*consoleEntry{engine.KindFlag: v.Flags, engine.KindSwitch: v.Switches, engine.KindSample: v.Samples}
	for i := range x.Explanations {
		e := &x.Explanations[i]
		ce := &consoleEntry{Kind: e.Kind, Name: e.Name, On: e.Decision.On, Reason: e.Decision.Reason, Because: e.Because(),
			Source: e.Source, Rule: e.Rule, Note: e.Info.Note, Modified: e.Info.Modified}
		if o := e.Decision.Reason.Origin(); o == "url" || o == "session" {
			ce.Override = o
		}
		byKind[e.Kind][e.Name] = ce
		v.entries = append(v.entries, ce)
	}
	return res, v, true
}

// pageOf reads the page a console request is about: a local path (and
// query) as a browser sends it, default "/".
func pageOf(raw string) string {
	if raw == "" || !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\#\r\n") {
		return "/"
	}
	if _, err := url.Parse(raw); err != nil {
		return "/"
	}
	return raw
}

func (fc *flagConsole) serveRoot(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		fc.flip(w, r)
		return
	}
	if !onlyGetOrPost(w, r) {
		return
	}
	q := r.URL.Query()
	res, v, ok := fc.decide(r, pageOf(q.Get("page")))
	if !ok {
		notFound(w, r)
		return
	}
	v.query = q.Get("q")
	v.notice = notice(q)
	nonce, set := fc.csrf.nonce(r)
	v.token = fc.csrf.token(v.Visitor.UserID, nonce)
	lines := fc.browser.setCookies(r, &res)
	if set != nil {
		lines = append(lines, set.String())
	}
	fc.render(w, r, v, lines)
}

// notice is the message after a flip, from the redirect's query.
func notice(q url.Values) string {
	switch q.Get("done") {
	case "session-on", "session-off":
		return q.Get("flag") + " is " + strings.TrimPrefix(q.Get("done"), "session-") + " for this session"
	case "clear":
		return "every override of this session was cleared"
	}
	return ""
}

func (fc *flagConsole) serveJSON(w http.ResponseWriter, r *http.Request) {
	if !onlyGet(w, r) {
		return
	}
	res, v, ok := fc.decide(r, pageOf(r.URL.Query().Get("page")))
	if !ok {
		notFound(w, r)
		return
	}
	if lines := fc.browser.setCookies(r, &res); len(lines) > 0 {
		w.Header()["Set-Cookie"] = lines
	}
	w.Header().Set("Cache-Control", "private, no-store")
	writeJSON(w, http.StatusOK, v)
}

// flip handles the console's forms: action session-on, session-off
// (stored for the session), once-on, once-off (a redirect to the page
// with ?enable_x or ?disable_x) and clear (session_clear_features).
func (fc *flagConsole) flip(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxConsoleForm)
	if err := r.ParseForm(); err != nil {
		plainError(w, http.StatusBadRequest, "bad form")
		return
	}
	page := pageOf(r.PostForm.Get("page"))
	res, v, ok := fc.decide(r, page)
	if !ok {
		notFound(w, r)
		return
	}
	if !v.MayFlip {
		plainError(w, http.StatusForbidden, "you may not flip flags")
		return
	}
	if err := fc.csrf.check(r, v.Visitor.UserID, r.PostForm.Get("token")); err != nil {
		fc.logger.LogAttrs(r.Context(), slog.LevelInfo, "console form refused", slog.String("user_id", cmpOr(res.Subject.UserID, "anonymous")), slog.Any("error", err))
		plainError(w, http.StatusForbidden, "cross-site request or expired form refused: reload the console")
		return
	}
	name, action := r.PostForm.Get("flag"), r.PostForm.Get("action")
	param := map[string]string{"session-on": "session_enable_", "session-off": "session_disable_",
		"once-on": "enable_", "once-off": "disable_", "clear": "session_clear_features"}[action]
	switch {
	case param == "" || (action != "clear" && !engine.OverrideName(name)):
		plainError(w, http.StatusBadRequest, "bad form")
	case strings.HasPrefix(action, "once-"):
		sep := "?"
		if strings.Contains(page, "?") {
			sep = "&"
		}
		http.Redirect(w, r, page+sep+param+url.QueryEscape(name), http.StatusSeeOther)
	default:
		fc.store(w, r, page, param, name, action)
	}
}

// store applies a session override through the pipeline, sets the cookie
// it makes, and sends the browser back to the console.
func (fc *flagConsole) store(w http.ResponseWriter, r *http.Request, page, param, name, action string) {
	q := param
	if action != "clear" {
		q += url.QueryEscape(name)
	}
	res := fc.pipe.Decide(r.Context(), Input{Path: fc.prefix, RawQuery: q,
		Cookie: strings.Join(r.Header["Cookie"], "; "), Header: r.Header})
	if res.Override != nil {
		if v := res.Override.String(); v != "" {
			w.Header().Add("Set-Cookie", v)
		}
	}
	back := url.Values{"page": {page}, "done": {action}, "flag": {name}}
	http.Redirect(w, r, fc.prefix+"?"+back.Encode(), http.StatusSeeOther)
}

// onlyGetOrPost answers 405 for methods other than GET, HEAD and POST.
func onlyGetOrPost(w http.ResponseWriter, r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		return true
	}
	w.Header().Set("Allow", "GET, HEAD, POST")
	plainError(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

//go:embed console.html
var consoleHTML string

var consolePage = template.Must(template.New("console").Funcs(pageFuncs).Parse(consoleHTML))

// render writes the console page with a fresh CSP nonce.
func (fc *flagConsole) render(w http.ResponseWriter, r *http.Request, v *consoleView, cookies []string) {
	var nb [16]byte
	_, _ = rand.Read(nb[:])
	nonce := base64.RawStdEncoding.EncodeToString(nb[:])
	q := strings.ToLower(v.query)
	for _, e := range v.entries {
		e.Search = strings.ToLower(e.Name + " " + e.Rule + " " + e.Note + " " + string(e.Source))
		e.Hidden = q != "" && !strings.Contains(e.Search, q)
	}
	var b bytes.Buffer
	err := consolePage.Execute(&b, map[string]any{"V": v, "Entries": v.entries, "Prefix": fc.prefix, "Query": v.query,
		"Token": v.token, "Notice": v.notice, "Nonce": nonce})
	if err != nil {
		fc.logger.LogAttrs(r.Context(), slog.LevelError, "console page failed", slog.Any("error", err))
		plainError(w, http.StatusInternalServerError, "internal error")
		return
	}
	h := w.Header()
	if len(cookies) > 0 {
		h["Set-Cookie"] = cookies
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b.Bytes())
}
