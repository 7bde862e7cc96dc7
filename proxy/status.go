package proxy

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// StatusPaths are the admin listener's paths NewStatus serves.
var StatusPaths = []string{"/flags", "/flags.json", "/explain", historyPattern}

// historyPattern is the path of one name's change history.
const historyPattern = "/flags/{name}/history.json"

// ChangeHistory returns the changes kept for a name, newest first;
// *History is one.
type ChangeHistory interface {
	History(name string) []ChangeRecord
}

// PollerState is what the poller has seen (djangodb.Poller.Status), for
// the status page.
type PollerState struct {
	LastSuccess  time.Time `json:"last_success,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Version      string    `json:"version,omitempty"`
}

// StatusConfig configures the status pages.
type StatusConfig struct {
	// Pipeline decides explanations and counts decisions; required.
	Pipeline *Pipeline
	// Poller reports the poller's state; nil leaves it out.
	Poller func() PollerState
	// History, if set, gives each name's recent changes, shown on /flags
	// and /flags.json and served as /flags/{name}/history.json.
	History ChangeHistory
	// SessionCookie is Django's SESSION_COOKIE_NAME, for /explain's
	// session parameter (default "sessionid").
	SessionCookie string
	// StaleAfter is how long a flag may stay uniform or unread before the
	// stale section calls it stale; zero means DefaultStaleAfterDays.
	StaleAfter time.Duration
	Logger     *slog.Logger
}

// status serves /flags, /flags.json and /explain on the admin listener.
type status struct {
	pipe       *Pipeline
	poller     func() PollerState
	history    ChangeHistory
	session    string
	staleAfter time.Duration
	logger     *slog.Logger
	started    time.Time
}

// NewStatus returns the handler of StatusPaths:
//   - /flags (HTML) and /flags.json: every flag, switch and sample of the
//     current snapshot with its rule in words, note, dates, conflicts and
//     how often it was decided on and off since start; the snapshot's
//     version, age and state, and the poller's;
//   - /explain?flag=NAME&user=ID|session=KEY&url=PATH_AND_QUERY[&cookie=LINE][&language=ACCEPT_LANGUAGE]:
//     the explanation of one decision (ExplainAnswer), decided by the
//     pipeline exactly as that web request would be;
//   - /flags/{name}/history.json[?kind=flag|switch|sample]: the changes
//     kept for the name (historyReport).
func NewStatus(cfg StatusConfig) (http.Handler, error) {
	if cfg.Pipeline == nil {
		return nil, errors.New("status: no pipeline")
	}
	return &status{pipe: cfg.Pipeline, poller: cfg.Poller, history: cfg.History,
		session:    cmp.Or(cfg.SessionCookie, defaultSessionCookie),
		staleAfter: cmp.Or(cfg.StaleAfter, DefaultStaleAfterDays*24*time.Hour),
		logger:     cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), started: cfg.Pipeline.now()}, nil
}

func (s *status) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !onlyGet(w, r) {
		return
	}
	switch r.URL.Path {
	case "/flags":
		s.page(w, r)
	case "/flags.json":
		writeJSON(w, http.StatusOK, s.report(r.URL.Query().Get("q")))
	case "/explain":
		s.explain(w, r)
	default:
		if name := r.PathValue("name"); name != "" {
			s.historyOf(w, r, name)
			return
		}
		notFound(w, r)
	}
}

// explain answers /explain.
func (s *status) explain(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := ExplainQuery{Flag: v.Get("flag"), User: v.Get("user"), Session: v.Get("session"), URL: v.Get("url"),
		Cookie: v.Get("cookie"), Language: v.Get("language")}
	a, err := ExplainFor(r.Context(), s.pipe, q, s.session)
	switch {
	case errors.Is(err, errBadQuery):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, a)
	}
}

// statusEntry is one flag, switch or sample on the status page.
type statusEntry struct {
	Kind     engine.Kind     `json:"kind"`
	Name     string          `json:"name"`
	Source   engine.Source   `json:"source,omitempty"`
	Rule     string          `json:"rule"`
	Note     string          `json:"note,omitempty"`
	Created  time.Time       `json:"created,omitzero"`
	Modified time.Time       `json:"modified,omitzero"`
	Conflict []engine.Source `json:"conflict,omitempty"`
	On       uint64          `json:"decided_on"`
	Off      uint64          `json:"decided_off"`
	// History holds the entry's recent changes, newest first.
	History []ChangeRecord `json:"history,omitempty"`
	// LastRead is when the app last read the name (ReadsHeader).
	LastRead time.Time `json:"last_read,omitzero"`
}

// statusReport is /flags.json.
type statusReport struct {
	Ready      bool              `json:"ready"`
	Version    string            `json:"version,omitempty"`
	State      string            `json:"state"`
	LoadedAt   time.Time         `json:"loaded_at,omitzero"`
	AgeSeconds float64           `json:"age_seconds"`
	Restored   bool              `json:"restored,omitempty"`
	Poller     *PollerState      `json:"poller,omitempty"`
	Sources    []engine.Source   `json:"sources"`
	Conflicts  []engine.Conflict `json:"conflicts"`
	Problems   []engine.Problem  `json:"problems"`
	Since      time.Time         `json:"counted_since"`
	Query      string            `json:"query,omitempty"`
	Flags      []statusEntry     `json:"flags"`
	Switches   []statusEntry     `json:"switches"`
	Samples    []statusEntry     `json:"samples"`
	// Stale is the stale and missing flags, as `flagproxy stale` reports
	// them.
	Stale StaleReport `json:"stale"`
}

// report builds the status of the current snapshot; q, if set, keeps the
// names, rules and notes that contain it (case-insensitively).
func (s *status) report(q string) statusReport {
	p := s.pipe
	snap := p.snaps.Load()
	rep := statusReport{State: StateUnavailable, AgeSeconds: -1, Since: s.started, Query: q, Sources: []engine.Source{},
		Conflicts: []engine.Conflict{}, Problems: []engine.Problem{}, Flags: []statusEntry{}, Switches: []statusEntry{}, Samples: []statusEntry{}}
	if s.poller != nil {
		ps := s.poller()
		rep.Poller = &ps
	}
	reads := ReadsInfo{}
	if p.reads != nil {
		reads = p.reads.info(snap)
	}
	rep.Stale = NewStaleReport(snap, reads, p.now(), s.staleAfter)
	if snap == nil {
		return rep
	}
	rep.Ready, rep.Version, rep.State = true, snap.Version(), StateOK
	if at := p.snaps.LoadedAt(); at.IsZero() {
		rep.Restored, rep.State = true, StateStale
	} else {
		rep.LoadedAt, rep.AgeSeconds = at.UTC(), p.now().Sub(at).Seconds()
		if p.now().Sub(at) > p.staleAfter {
			rep.State = StateStale
		}
	}
	rep.Sources, rep.Conflicts, rep.Problems = snap.Sources(), snap.Conflicts(), snap.Problems()
	var counts map[nameKey]onTotal
	if p.tally != nil {
		counts, _ = p.tally.read()
	}
	conflicts := map[string][]engine.Source{}
	for _, c := range rep.Conflicts {
		conflicts[c.Name] = c.Sources
	}
	q = strings.ToLower(q)
	add := func(list *[]statusEntry, e statusEntry, info engine.Info) {
		e.Note, e.Created, e.Modified = info.Note, info.Created.UTC(), info.Modified.UTC()
		if info.Created.IsZero() {
			e.Created = time.Time{}
		}
		if info.Modified.IsZero() {
			e.Modified = time.Time{}
		}
		c := counts[nameKey{e.Kind, e.Name}]
		e.On, e.Off = c.on, c.total-c.on
		e.History = s.changes(e.Kind, e.Name)
		if reads.LastRead != nil {
			e.LastRead = reads.LastRead(e.Kind, e.Name).UTC()
		}
		if q == "" || strings.Contains(strings.ToLower(e.Name+"\x00"+e.Rule+"\x00"+e.Note), q) {
			*list = append(*list, e)
		}
	}
	lists := map[engine.Kind]*[]statusEntry{engine.KindFlag: &rep.Flags, engine.KindSwitch: &rep.Switches, engine.KindSample: &rep.Samples}
	eachName(snap, func(n namedEntry) {
		e := statusEntry{Kind: n.kind, Name: n.name, Source: n.source, Rule: n.rule()}
		if n.kind == engine.KindFlag {
			e.Conflict = conflicts[n.name]
		}
		add(lists[n.kind], e, n.info)
	})
	return rep
}

// changes returns the recent changes of one kind of name, or nil.
func (s *status) changes(kind engine.Kind, name string) []ChangeRecord {
	if s.history == nil {
		return nil
	}
	return slices.DeleteFunc(s.history.History(name), func(r ChangeRecord) bool { return r.Kind != kind })
}

// historyReport is /flags/{name}/history.json.
type historyReport struct {
	Name    string         `json:"name"`
	Changes []ChangeRecord `json:"changes"`
}

// historyOf answers /flags/{name}/history.json: 404 for a name that is
// neither in the current snapshot nor in the history.
func (s *status) historyOf(w http.ResponseWriter, r *http.Request, name string) {
	kind, filter := engine.Kind(0), r.URL.Query().Has("kind")
	if filter {
		if err := kind.UnmarshalText([]byte(r.URL.Query().Get("kind"))); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "kind: want flag, switch or sample"})
			return
		}
	}
	rep := historyReport{Name: name, Changes: []ChangeRecord{}}
	if s.history != nil {
		rep.Changes = append(rep.Changes, s.history.History(name)...)
	}
	if filter {
		rep.Changes = slices.DeleteFunc(rep.Changes, func(c ChangeRecord) bool { return c.Kind != kind })
	}
	if len(rep.Changes) == 0 && !s.known(name, kind, filter) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no flag, switch or sample of that name"})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// known says whether the current snapshot has name (of kind, if filter).
func (s *status) known(name string, kind engine.Kind, filter bool) bool {
	snap := s.pipe.snaps.Load()
	if snap == nil {
		return false
	}
	_, flag := snap.FlagIndex(name)
	_, sw := findName(snap.NumSwitches(), snap.SwitchName, name)
	_, sample := findName(snap.NumSamples(), snap.SampleName, name)
	if !filter {
		return flag || sw || sample
	}
	return map[engine.Kind]bool{engine.KindFlag: flag, engine.KindSwitch: sw, engine.KindSample: sample}[kind]
}

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Funcs(pageFuncs).Parse(statusHTML))

// page serves /flags.
func (s *status) page(w http.ResponseWriter, r *http.Request) {
	rep := s.report(r.URL.Query().Get("q"))
	var b bytes.Buffer
	if err := statusPage.Execute(&b, rep); err != nil {
		s.logger.LogAttrs(r.Context(), slog.LevelError, "status page failed", slog.Any("error", err))
		plainError(w, http.StatusInternalServerError, "internal error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	_, _ = w.Write(b.Bytes())
}

// pageFuncs are the template functions of the HTML pages.
var pageFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 MST")
	},
	"ago": func(secs float64) string {
		if secs < 0 {
			return "never"
		}
		return (time.Duration(secs*float64(time.Second)) / time.Millisecond * time.Millisecond).String() + " ago"
	},
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"pathEscape": url.PathEscape,
	"join": func(xs []engine.Source) string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = string(x)
		}
		return strings.Join(out, ", ")
	},
}
