package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flagproxy/flagproxy/engine"
)

// AdminConfig configures the admin handler.
type AdminConfig struct {
	// Snapshots is the source /readyz reports on; nil is never ready.
	Snapshots SnapshotSource
	// Gatherer is what /metrics exposes; nil answers 404 there.
	Gatherer prometheus.Gatherer
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
	// Header says whether a snapshot's flags header fits the limits; nil
	// leaves it out of /readyz. *Pipeline is one.
	Header HeaderChecker
	// MaxStaleness, when positive, makes /readyz fail while the last
	// successful load is older (or there has been none, even with a
	// restored snapshot), so that an orchestrator stops routing to a
	// proxy that lost its database. Zero keeps it ready on stale flags.
	MaxStaleness time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OFREP, when set, serves OpenFeature's Remote Evaluation Protocol
	// under OFREPPrefix (see NewOFREP).
	OFREP http.Handler
	// Status, when set, serves StatusPaths (/flags, /flags.json,
	// /explain; see NewStatus).
	Status http.Handler
	// Profiling serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/. They show the program's internals and cost CPU while
	// taken: only for an admin listener no stranger reaches.
	Profiling bool
}

// HeaderChecker says whether a snapshot's flags header fits the header
// limits.
type HeaderChecker interface {
	HeaderFits(snap *engine.Snapshot) bool
}

// NewAdmin returns the handler of the admin listener:
//   - /healthz answers 200 "ok" while the process runs;
//   - /readyz answers 503 {"ready":false} before the first snapshot and 200
//     with a JSON summary of the current snapshot after it;
//   - /metrics serves cfg.Gatherer in the Prometheus exposition formats;
//   - /ofrep/ is cfg.OFREP's, when set (POST; see NewOFREP);
//   - /flags, /flags.json and /explain are cfg.Status's, when set;
//   - /debug/pprof/ serves Go's profiles, when cfg.Profiling is set.
//
// Other paths answer 404, and methods other than GET and HEAD 405.
func NewAdmin(cfg AdminConfig) http.Handler {
	a := &admin{snaps: cfg.Snapshots, header: cfg.Header, maxStale: cfg.MaxStaleness, logger: cfg.Logger, now: cfg.Now}
	if a.logger == nil {
		a.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.now == nil {
		a.now = time.Now
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", a.handle(a.healthz))
	mux.Handle("/readyz", a.handle(a.readyz))
	if cfg.Gatherer != nil {
		h := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(a.logger.Handler(), slog.LevelError),
			ErrorHandling: promhttp.ContinueOnError,
		})
		mux.Handle("/metrics", a.handle(func(w http.ResponseWriter, r *http.Request) error {
			h.ServeHTTP(w, r)
			return nil
		}))
	}
	if cfg.OFREP != nil {
		mux.Handle(OFREPPrefix, cfg.OFREP)
	}
	if cfg.Status != nil {
		for _, path := range StatusPaths {
			mux.Handle(path, cfg.Status)
		}
	}
	if cfg.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", a.handle(func(http.ResponseWriter, *http.Request) error {
		return httpError{Code: http.StatusNotFound, Msg: "not found"}
	}))
	return mux
}

// httpError is an error with the status and the message the client gets;
// Err, if any, is only logged.
type httpError struct {
	Code int
	Msg  string
	Err  error
}

func (e httpError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Msg)
}

func (e httpError) Unwrap() error { return e.Err }

type admin struct {
	snaps    SnapshotSource
	header   HeaderChecker
	maxStale time.Duration
	logger   *slog.Logger
	now      func() time.Time
}

// handle adapts an error-returning handler: it answers only GET and HEAD,
// and turns a returned error into a plain-text response.
func (a *admin) handle(f func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var err error
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			err = f(w, r)
		} else {
			err = httpError{Code: http.StatusMethodNotAllowed, Msg: "method not allowed"}
		}
		if err == nil {
			return
		}
		var he httpError
		if !errors.As(err, &he) {
			he = httpError{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
		}
		if he.Code >= 500 {
			a.logger.LogAttrs(r.Context(), slog.LevelError, "admin request failed",
				slog.String("path", r.URL.Path), slog.Int("status", he.Code), slog.Any("error", err))
		}
		if he.Code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, HEAD")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(he.Code)
		_, _ = io.WriteString(w, he.Msg+"\n")
	})
}

func (a *admin) healthz(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := io.WriteString(w, "ok\n")
	return err
}

// readiness is the /readyz body once a snapshot is loaded.
type readiness struct {
	Ready      bool    `json:"ready"`
	Version    string  `json:"version"`
	AgeSeconds float64 `json:"age_seconds"`
	LoadedAt   string  `json:"loaded_at,omitempty"`
	// Restored is set while the snapshot is the persisted one read at
	// start, and no load from the database has succeeded yet.
	Restored  bool            `json:"restored,omitempty"`
	Flags     int             `json:"flags"`
	Switches  int             `json:"switches"`
	Samples   int             `json:"samples"`
	Sources   []engine.Source `json:"sources"`
	Conflicts []string        `json:"conflicts"`
	// HeaderTooLarge is set when no flags header of this snapshot fits
	// the header limits: every request then carries state unavailable.
	HeaderTooLarge bool `json:"header_too_large,omitempty"`
}

func (a *admin) readyz(w http.ResponseWriter, _ *http.Request) error {
	var snap *engine.Snapshot
	if a.snaps != nil {
		snap = a.snaps.Load()
	}
	w.Header().Set("Content-Type", "application/json")
	if snap == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, err := io.WriteString(w, `{"ready":false}`+"\n")
		return err
	}
	at := a.snaps.LoadedAt()
	body := readiness{
		Ready:      true,
		Version:    snap.Version(),
		AgeSeconds: -1,
		Flags:      snap.NumFlags(),
		Switches:   snap.NumSwitches(),
		Samples:    snap.NumSamples(),
		Sources:    append([]engine.Source{}, snap.Sources()...),
		Conflicts:  []string{},
	}
	for _, c := range snap.Conflicts() {
		body.Conflicts = append(body.Conflicts, c.Name)
	}
	body.HeaderTooLarge = a.header != nil && !a.header.HeaderFits(snap)
	if at.IsZero() {
		body.Restored = true // from a snapshot file; nothing loaded yet
	} else {
		body.AgeSeconds, body.LoadedAt = a.now().Sub(at).Seconds(), at.UTC().Format(time.RFC3339)
	}
	if a.maxStale > 0 && (at.IsZero() || a.now().Sub(at) > a.maxStale) {
		body.Ready = false
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
