package proxy

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// What the app reads: flagproxy_django reports on each response the names
// the app read while handling the request, in ReadsHeader (one ASCII JSON
// object):
//
//	{"flags":["beta"],"switches":["maintenance"],"samples":[],
//	 "missing":{"flags":["ghost"],"switches":[],"samples":[]},"truncated":true}
//
// "flags", "switches" and "samples" list names the request's flags header
// carried, "missing" those it did not; "truncated" (optional) says names
// were left out. With a signing key, ReadsSignatureHeader carries
// "t=<unix>,v1=<hex>[,v1=<hex>…]", each hex an HMAC-SHA256(key,
// "<t>.<value>") as in SignatureHeader; one v1 made with the proxy's key
// within MaxReadsSignatureAge of now is enough. Every response header in
// the X-Flagproxy- namespace is removed before the client sees the
// response, whatever it says.
const (
	// ReadsHeader is the response header that reports the names read.
	ReadsHeader = "X-Flagproxy-Reads"
	// ReadsSignatureHeader signs ReadsHeader.
	ReadsSignatureHeader = "X-Flagproxy-Reads-Signature"
	// MaxReadsSize is the longest ReadsHeader value read; a longer one is
	// rejected as malformed.
	MaxReadsSize = 16 << 10
	// MaxReadsSignatureAge is how far from now a reads signature's time
	// may lie, either way.
	MaxReadsSignatureAge = 5 * time.Minute
)

// The results of reading a response's reads report, the label values of
// flagproxy_reads_reports_total.
const (
	readsOK           = "ok"
	readsAbsent       = "absent"
	readsMalformed    = "malformed"
	readsUnsigned     = "unsigned"
	readsBadSignature = "bad_signature"
)

var readsResults = []string{readsOK, readsAbsent, readsMalformed, readsUnsigned, readsBadSignature}

// readNames are the names of one kind in a reads report.
type readNames struct {
	Flags    []string `json:"flags"`
	Switches []string `json:"switches"`
	Samples  []string `json:"samples"`
}

// readsReport is a decoded ReadsHeader.
type readsReport struct {
	readNames
	Missing   readNames `json:"missing"`
	Truncated bool      `json:"truncated"`
}

// has reports whether the app read the name of kind k (exposure events
// log only what the app read when it reports its reads).
func (r *readsReport) has(k engine.Kind, name string) bool {
	var names []string
	switch k {
	case engine.KindFlag:
		names = r.Flags
	case engine.KindSwitch:
		names = r.Switches
	case engine.KindSample:
		names = r.Samples
	}
	return slices.Contains(names, name)
}

// takeReads removes every header in the X-Flagproxy- namespace from h and
// returns the reads report they carried, and the result of reading it
// (readsOK when rep is usable). now is read only to check a signature.
func takeReads(h http.Header, key []byte, now func() time.Time) (rep *readsReport, result string) {
	var values, sigs []string
	for k, v := range h {
		if !inNamespace(k) {
			continue
		}
		switch k {
		case ReadsHeader:
			values = v
		case ReadsSignatureHeader:
			sigs = v
		}
		delete(h, k)
	}
	switch {
	case len(values) == 0:
		return nil, readsAbsent
	case len(values) > 1 || len(sigs) > 1 || len(values[0]) > MaxReadsSize:
		return nil, readsMalformed
	}
	if len(key) > 0 {
		if len(sigs) == 0 {
			return nil, readsUnsigned
		}
		if !verifyReads(key, values[0], sigs[0], now()) {
			return nil, readsBadSignature
		}
	}
	rep = new(readsReport)
	if err := json.Unmarshal([]byte(values[0]), rep); err != nil {
		return nil, readsMalformed
	}
	return rep, readsOK
}

// verifyReads checks a ReadsSignatureHeader value sig of value.
func verifyReads(key []byte, value, sig string, now time.Time) bool {
	t, macs, err := parseSignature(sig)
	if err != nil || now.Sub(time.Unix(t, 0)).Abs() > MaxReadsSignatureAge {
		return false
	}
	want := sign(key, t, value)
	want = want[strings.LastIndexByte(want, '=')+1:]
	ok := false
	for _, m := range macs {
		ok = hmac.Equal([]byte(m), []byte(want)) || ok
	}
	return ok
}

// parseSignature splits "t=<unix>,v1=<hex>[,v1=<hex>…]"; other fields are
// ignored.
func parseSignature(sig string) (t int64, macs []string, err error) {
	seen := false
	for field := range strings.SplitSeq(sig, ",") {
		name, value, ok := strings.Cut(field, "=")
		switch {
		case !ok:
			return 0, nil, errors.New("field without =")
		case name == "t" && !seen:
			if t, err = strconv.ParseInt(value, 10, 64); err != nil {
				return 0, nil, err
			}
			seen = true
		case name == "t":
			return 0, nil, errors.New("more than one t")
		case name == "v1" && len(macs) < 8:
			macs = append(macs, value)
		}
	}
	if !seen || len(macs) == 0 {
		return 0, nil, errors.New("no t or no v1")
	}
	return t, macs, nil
}

// readTracker reads the reports of proxied responses into a readLog.
type readTracker struct {
	log     *readLog
	key     []byte
	eager   bool // write every waffle cookie even when reads are reported
	now     func() time.Time
	reports *prometheus.CounterVec
	results map[string]prometheus.Counter // reports' series by result
	logger  *slog.Logger
}

func newReadTracker(reg prometheus.Registerer, log *readLog, key []byte, eager bool, now func() time.Time, logger *slog.Logger) (*readTracker, error) {
	t := &readTracker{log: log, key: key, eager: eager, now: now, logger: logger,
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_reads_reports_total",
			Help: "Upstream responses by what their X-Flagproxy-Reads report was: ok, absent, malformed, unsigned or bad_signature (the last three are ignored).",
		}, []string{"result"})}
	missing := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flagproxy_missing_names",
		Help: "Names the app read that no source defines, as kept for the status page (at most 1000).",
	}, func() float64 { return float64(log.missingCount()) })
	for _, c := range []prometheus.Collector{t.reports, missing} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	t.results = make(map[string]prometheus.Counter, len(readsResults))
	for _, r := range readsResults {
		t.results[r] = t.reports.WithLabelValues(r)
	}
	return t, nil
}

// take removes the X-Flagproxy- headers of res and returns the reads
// report they carried, recorded against the request's snapshot, or nil.
func (t *readTracker) take(res *http.Response, ex *exchange) *readsReport {
	rep, result := takeReads(res.Header, t.key, t.now)
	t.results[result].Inc() // not WithLabelValues: it hashes the label every time
	switch {
	case rep != nil && ex != nil:
		t.log.record(ex.snap, rep, t.now())
	case result != readsAbsent && res.Request != nil:
		t.logger.LogAttrs(res.Request.Context(), slog.LevelDebug, "ignored the upstream's reads report", slog.String("result", result))
	}
	return rep
}

// onlyRead keeps the waffle cookies of the flags rep says the app read, as
// waffle's middleware writes cookies only for the flags evaluated; the
// renewal marker (RefreshCookie) stays only if a renewal does, or if no
// cookie was a renewal (every one written afresh) and one is kept.
func onlyRead(cs []engine.Cookie, rep *readsReport) []engine.Cookie {
	read := make(map[string]bool, len(rep.Flags)+len(rep.Missing.Flags))
	for _, n := range rep.Flags {
		read[n] = true
	}
	for _, n := range rep.Missing.Flags {
		read[n] = true
	}
	out := make([]engine.Cookie, 0, len(cs))
	var marker []engine.Cookie
	renewed, anyRenewal := false, false
	for _, c := range cs {
		anyRenewal = anyRenewal || c.Refresh
		switch {
		case c.Flag == "":
			marker = append(marker, c)
		case read[c.Flag]:
			renewed = renewed || c.Refresh
			out = append(out, c)
		}
	}
	if renewed || !anyRenewal && len(out) > 0 {
		out = append(out, marker...)
	}
	return out
}

// stripNamespace deletes every header in the X-Flagproxy- namespace, by
// raw map key, whatever its spelling.
func stripNamespace(h map[string][]string) {
	for k := range h {
		if inNamespace(k) {
			delete(h, k)
		}
	}
}
