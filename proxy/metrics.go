package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The reasons of flagproxy_upstream_errors_total.
const (
	reasonTimeout  = "timeout"
	reasonCanceled = "canceled"
	reasonRefused  = "refused"
	reasonOther    = "other"
)

// metrics holds one Proxy's collectors. Every label has a bounded set of
// values: promhttp maps unknown methods to "unknown".
//
// Before the first snapshot load flagproxy_snapshot_age_seconds is -1,
// flagproxy_snapshot_last_success_timestamp_seconds and
// flagproxy_snapshot_conflicts are 0, and flagproxy_snapshot_flags has no
// series.
type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	inFlight       prometheus.Gauge
	upstreamErrors *prometheus.CounterVec
	identityErrors prometheus.Counter
	overrideErrors prometheus.Counter
	// overridesApplied counts flags decided by an override, by source
	// (url, session) and state (on, off).
	overridesApplied *prometheus.CounterVec
	cookiesSkipped   prometheus.Counter
	headerOversize   prometheus.Counter
	// decisionErrors counts flags decided off because their library would
	// have raised, by source.
	decisionErrors *prometheus.CounterVec
	// bodiesRefused counts request bodies answered 408, 413 or 400
	// without reaching the upstream, by status.
	bodiesRefused *prometheus.CounterVec
	// memo counts evaluations by what the decision memo did: hit (reused),
	// miss (evaluated and kept), rolled (evaluated, not kept: it drew a
	// random roll); memoHit and the others are its series.
	memo                          *prometheus.CounterVec
	memoHit, memoMiss, memoRolled prometheus.Counter
	served                        servedTable
}

func newMetrics(reg prometheus.Registerer, src SnapshotSource, now func() time.Time) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_requests_total",
			Help: "Proxied requests by response status code and method.",
		}, []string{"code", "method"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flagproxy_request_duration_seconds",
			Help:    "Time to serve a proxied request, upstream included.",
			Buckets: prometheus.DefBuckets,
		}, []string{"code", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flagproxy_requests_in_flight",
			Help: "Proxied requests being served.",
		}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_upstream_errors_total",
			Help: "Requests that got no response from the upstream, by reason (timeout, canceled, refused, other).",
		}, []string{"reason"}),
		identityErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flagproxy_identity_errors_total",
			Help: "Visitor identifications that failed and fell back to anonymous.",
		}),
		overrideErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flagproxy_override_errors_total",
			Help: "Override lookups that failed and fell back to no overrides.",
		}),
		overridesApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_overrides_applied_total",
			Help: "Flag decisions made by a URL or session override, by source and state.",
		}, []string{"source", "state"}),
		cookiesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flagproxy_cookies_skipped_total",
			Help: "Waffle cookies not written because Python would refuse their name or value.",
		}),
		headerOversize: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flagproxy_header_oversize_total",
			Help: "Requests whose flags did not fit the header limits and were sent as unavailable.",
		}),
		decisionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_decision_errors_total",
			Help: "Flag decisions made off because the flag's library would have raised an error, by source.",
		}, []string{"source"}),
		bodiesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_request_bodies_refused_total",
			Help: "Request bodies answered without reaching the upstream: too large (413), stalled (408) or broken (400), by status.",
		}, []string{"code"}),
		memo: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_decision_memo_total",
			Help: "Evaluations by what the decision memo did: hit (the decisions of the same inputs reused), miss (evaluated and kept), rolled (evaluated and not kept, as it drew a random waffle roll).",
		}, []string{"result"}),
	}
	m.memoHit, m.memoMiss, m.memoRolled = m.memo.WithLabelValues("hit"), m.memo.WithLabelValues("miss"), m.memo.WithLabelValues("rolled")
	for _, r := range [...]string{reasonTimeout, reasonCanceled, reasonRefused, reasonOther} {
		m.upstreamErrors.WithLabelValues(r)
	}
	loadedAt := func() (time.Time, bool) {
		at := src.LoadedAt()
		return at, !at.IsZero() && src.Load() != nil
	}
	collectors := []prometheus.Collector{
		m.requests, m.duration, m.inFlight, m.upstreamErrors, m.identityErrors,
		m.overrideErrors, m.overridesApplied, m.cookiesSkipped, m.headerOversize, m.decisionErrors, m.bodiesRefused, m.memo,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flagproxy_snapshot_age_seconds",
			Help: "Seconds since the last successful snapshot load, -1 before the first.",
		}, func() float64 {
			at, ok := loadedAt()
			if !ok {
				return -1
			}
			return now().Sub(at).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flagproxy_snapshot_last_success_timestamp_seconds",
			Help: "Unix time of the last successful snapshot load, 0 before the first.",
		}, func() float64 {
			at, ok := loadedAt()
			if !ok {
				return 0
			}
			return float64(at.UnixNano()) / 1e9
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flagproxy_snapshot_conflicts",
			Help: "Flag names of the current snapshot defined by more than one source.",
		}, func() float64 {
			if s := src.Load(); s != nil {
				return float64(len(s.Conflicts()))
			}
			return 0
		}),
		snapshotFlags{src: src, desc: prometheus.NewDesc("flagproxy_snapshot_flags",
			"Flags (waffle flags, feature-flipper features, FeatureFlag keys) of the current snapshot by source.", []string{"source"}, nil)},
	}
	var errs []error
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// instrument wraps the proxy handler in the request's exchange (one
// ResponseWriter wrapper instead of promhttp's three, which cost six
// allocations a request) and records the request counter, histogram and
// in-flight gauge. Labels are promhttp's: the method lower-cased among the
// standard ones, else "unknown"; the code as written, 200 when none was,
// "unknown" outside 100–599, and "aborted" for a response the handler
// abandoned by panicking (ReverseProxy does, with http.ErrAbortHandler,
// when the upstream's body breaks off after its status went out): net/http
// then cuts the connection, and the client may never see the status, or
// may retry the request on its own.
func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Inc()
		start := time.Now()
		ex, r := newExchange(w, r)
		completed := false
		defer func() {
			ex.done()
			m.inFlight.Dec()
			code := ex.code
			if !completed {
				code = codeAborted
			}
			s := m.series(code, r.Method)
			s.requests.Inc()
			s.duration.Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(ex, r)
		completed = true
	})
}

// codeAborted stands for a response abandoned by a panic (see instrument).
const codeAborted = -1

// served is the request counter and duration histogram of one status code
// and method.
type served struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// servedTable holds the served series, filled as codes and methods are
// first seen: WithLabelValues hashes and checks its labels on every call,
// about half a microsecond a request for the two (measured with perf on
// the bench harness's scenario a).
type servedTable [len(methodLabels)][len(statusLabels) + 2]atomic.Pointer[served]

// series returns the served series of a status code and method.
func (m *metrics) series(code int, method string) *served {
	c, mi := statusIndex(code), methodIndex(method)
	slot := &m.served[mi][c]
	if s := slot.Load(); s != nil {
		return s
	}
	status := "unknown"
	switch {
	case c < len(statusLabels):
		status = statusLabels[c]
	case c > len(statusLabels):
		status = "aborted"
	}
	s := &served{
		requests: m.requests.WithLabelValues(status, methodLabels[mi]),
		duration: m.duration.WithLabelValues(status, methodLabels[mi]),
	}
	slot.Store(s)
	return s
}

// statusIndex is a status code's index in statusLabels; 0 (nothing
// written) is 200, a code outside 100-599 is len(statusLabels), the
// "unknown" label, and codeAborted the one after it, "aborted".
func statusIndex(code int) int {
	switch {
	case code == codeAborted:
		return len(statusLabels) + 1
	case code == 0:
		return http.StatusOK - 100
	case code < 100 || code > 599:
		return len(statusLabels)
	}
	return code - 100
}

// statusLabels are the codes from 100 to 599 as text.
var statusLabels = func() (labels [500]string) {
	for i := range labels {
		labels[i] = strconv.Itoa(100 + i)
	}
	return labels
}()

// methodLabels are the method label's values; the last is for any other
// method.
var methodLabels = [...]string{"get", "put", "head", "post", "delete", "connect", "options", "notify", "trace", "patch", "unknown"}

// methodIndex is a method's index in methodLabels, as promhttp labels
// methods: the standard ones in upper or lower case, anything else
// "unknown".
func methodIndex(m string) int {
	for i, u := range [...]string{"GET", "PUT", "HEAD", "POST", "DELETE", "CONNECT", "OPTIONS", "NOTIFY", "TRACE", "PATCH"} {
		if m == u || m == methodLabels[i] {
			return i
		}
	}
	return len(methodLabels) - 1
}

// snapshotFlags exports flagproxy_snapshot_flags{source} for the current
// snapshot, one series for each source it was built from.
type snapshotFlags struct {
	src  SnapshotSource
	desc *prometheus.Desc
}

func (c snapshotFlags) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c snapshotFlags) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Load()
	if s == nil {
		return
	}
	for _, src := range s.Sources() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.Count(src)), string(src))
	}
}
