package proxy

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flagproxy/flagproxy/engine"
)

// OpenFeature Remote Evaluation Protocol (OFREP) v1, as the OpenAPI
// document of open-feature/protocol (service/openapi.yaml) defines it:
//
//	POST /ofrep/v1/evaluate/flags/{key}   one flag:   200, 400, 401, 404, 405, 500
//	POST /ofrep/v1/evaluate/flags         every name: 200, 304, 400, 401, 405, 500
//
// The request body is {"context": {…}}, empty meaning {}. The context:
//
//   - targetingKey: the Django user's primary key, as text; absent, null or
//     "" is an anonymous visitor. The user is looked up (UserResolver); an
//     unknown or inactive user, or one that cannot be looked up, is
//     anonymous, and the metadata says "identity":"unknown-user".
//   - path: the request path as a browser sends it (percent-encoded;
//     default "/"); query: the query string without '?'; language: the
//     Accept-Language header; cookies: an object of cookie name to value,
//     as Django's request.COOKIES holds them. A cookie named like Django's
//     session cookie is ignored: the targetingKey says who the user is.
//
// From these the pipeline decides exactly as for a web request with that
// path, query, Accept-Language header and Cookie line, made by that user
// (overrides included, the URL's ones too). Then every fresh random draw
// (a waffle percentage flag without its dwf_ cookie, a sample) is replaced
// by a deterministic one, splitDraw, so that OFREP never answers randomly.
//
// A key names a flag ("beta", or "flag:beta"), a switch ("switch:maint")
// or a sample ("sample:survey"). The bulk answer lists every flag, switch
// and sample under such keys, with an ETag (a digest of the answer, which
// includes the snapshot version) and 304 for an If-None-Match that has it.
//
// Errors: a body that is not a JSON object is PARSE_ERROR (400); a context
// that is not an object, or an attribute of the wrong type or form,
// INVALID_CONTEXT (400); an unknown key FLAG_NOT_FOUND (404); before the
// first snapshot, or while its header cannot fit (the web request then
// gets "unavailable"), GENERAL (500). TARGETING_KEY_MISSING is never
// returned: without a targetingKey the visitor is anonymous, as in Django.
// With keys configured, a request without one of them (Authorization:
// Bearer <key>, or X-API-Key) is answered 401 before anything else; without
// keys only loopback peers are served.

// OFREP error codes (OpenFeature's error codes).
const (
	ofrepParseError     = "PARSE_ERROR"
	ofrepInvalidContext = "INVALID_CONTEXT"
	ofrepFlagNotFound   = "FLAG_NOT_FOUND"
	ofrepGeneral        = "GENERAL"
)

// OFREP reasons (OpenFeature's resolution reasons).
const (
	ofrepStatic         = "STATIC"
	ofrepTargetingMatch = "TARGETING_MATCH"
	ofrepSplit          = "SPLIT"
	ofrepDisabled       = "DISABLED"
	ofrepDefault        = "DEFAULT"
	ofrepError          = "ERROR"
)

// The values of the "identity" metadata of an OFREP answer.
const (
	identityUser        = "user"         // the targetingKey named an active user
	identityAnonymous   = "anonymous"    // no targetingKey
	identityUnknownUser = "unknown-user" // a targetingKey that named no usable user: decided as anonymous
)

const (
	ofrepFlagsPath = "/ofrep/v1/evaluate/flags"
	// OFREPPrefix is the path prefix under which the handler answers.
	OFREPPrefix = "/ofrep/"
	// maxOFREPBody bounds a request body.
	maxOFREPBody = 1 << 20
	// defaultSessionCookie is Django's SESSION_COOKIE_NAME default.
	defaultSessionCookie = "sessionid"
)

// OFREPConfig configures the OFREP handler.
type OFREPConfig struct {
	// Pipeline decides; required.
	Pipeline *Pipeline
	// Keys are the API keys a caller must present. Without keys, only
	// peers on a loopback address are served (the others get 401).
	Keys []string
	// SessionCookie is Django's SESSION_COOKIE_NAME (default
	// "sessionid"); a context cookie of that name is ignored.
	SessionCookie string
	// Logger receives the handler's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives flagproxy_ofrep_requests_total; nil registers
	// it nowhere.
	Registerer prometheus.Registerer
}

// ofrep is the OFREP handler.
type ofrep struct {
	pipe     *Pipeline
	keys     [][sha256.Size]byte
	session  string
	logger   *slog.Logger
	requests *prometheus.CounterVec
}

// NewOFREP returns the handler of OFREP v1, to be mounted at OFREPPrefix.
func NewOFREP(cfg OFREPConfig) (http.Handler, error) {
	if cfg.Pipeline == nil {
		return nil, errors.New("ofrep: no pipeline")
	}
	o := &ofrep{pipe: cfg.Pipeline, session: cmp.Or(cfg.SessionCookie, defaultSessionCookie),
		logger: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))}
	for i, k := range cfg.Keys {
		if k == "" {
			return nil, fmt.Errorf("ofrep: key %d is empty", i+1)
		}
		o.keys = append(o.keys, sha256.Sum256([]byte(k)))
	}
	o.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagproxy_ofrep_requests_total",
		Help: "OFREP requests by endpoint (single, bulk, other) and status code.",
	}, []string{"endpoint", "code"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(o.requests); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return o, nil
}

// ofrepFailure is the body of an error answer: evaluationFailure and
// flagNotFound with a key, bulkEvaluationFailure without one, and
// generalErrorResponse (errorDetails).
type ofrepFailure struct {
	Key          *string `json:"key,omitempty"`
	ErrorCode    string  `json:"errorCode,omitempty"`
	ErrorDetails string  `json:"errorDetails"`
}

// ofrepSuccess is one evaluation: evaluationSuccess with a boolean value.
type ofrepSuccess struct {
	Key      string         `json:"key"`
	Value    bool           `json:"value"`
	Reason   string         `json:"reason"`
	Variant  string         `json:"variant"`
	Metadata map[string]any `json:"metadata"`
}

func (o *ofrep) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	endpoint := o.serve(rec, r)
	o.requests.WithLabelValues(endpoint, strconv.Itoa(rec.code)).Inc()
}

// serve answers r and returns the endpoint label.
func (o *ofrep) serve(w http.ResponseWriter, r *http.Request) string {
	w.Header().Set("Cache-Control", "no-store")
	path := r.URL.EscapedPath()
	endpoint, key := "other", ""
	switch {
	case path == ofrepFlagsPath:
		endpoint = "bulk"
	case strings.HasPrefix(path, ofrepFlagsPath+"/"):
		endpoint = "single"
		key, _ = url.PathUnescape(path[len(ofrepFlagsPath)+1:]) // the server refused invalid escapes
	}
	if !o.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flagproxy OFREP"`)
		writeJSON(w, http.StatusUnauthorized, ofrepFailure{ErrorDetails: "a valid API key is required (Authorization: Bearer <key>, or X-API-Key)"})
		return endpoint
	}
	if endpoint == "other" {
		writeJSON(w, http.StatusNotFound, ofrepFailure{ErrorDetails: "not found: OFREP v1 serves POST " + ofrepFlagsPath + " and " + ofrepFlagsPath + "/{key}"})
		return endpoint
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, ofrepFailure{ErrorDetails: "method not allowed: use POST"})
		return endpoint
	}
	var keyPtr *string
	if endpoint == "single" {
		keyPtr = &key
	}
	in, failure := o.input(w, r)
	if failure != nil {
		failure.Key = keyPtr
		writeJSON(w, http.StatusBadRequest, failure)
		return endpoint
	}
	res := o.pipe.Decide(r.Context(), in)
	if res.Snapshot == nil || !o.pipe.HeaderFits(res.Snapshot) {
		details := "no flags loaded yet"
		if res.Snapshot != nil {
			details = "the flags are unavailable: their header does not fit the header limits"
		}
		writeJSON(w, http.StatusInternalServerError, ofrepFailure{Key: keyPtr, ErrorCode: ofrepGeneral, ErrorDetails: details})
		return endpoint
	}
	res.Snapshot.Reroll(&res.Decisions, splitDraw(res.Subject.UserID))
	ev := evaluated{res: &res, identity: identityOf(in.UserID, res.Subject)}
	if endpoint == "single" {
		k, name := parseKey(key)
		i, ok := ev.find(k, name)
		if !ok {
			writeJSON(w, http.StatusNotFound, ofrepFailure{Key: keyPtr, ErrorCode: ofrepFlagNotFound,
				ErrorDetails: fmt.Sprintf("no %s %q (keys: name or flag:name for a flag, switch:name, sample:name)", k, name)})
			return endpoint
		}
		writeJSON(w, http.StatusOK, ev.success(k, i, key))
		return endpoint
	}
	o.bulk(w, r, &ev)
	return endpoint
}

// bulk answers with every flag, switch and sample, and an ETag.
func (o *ofrep) bulk(w http.ResponseWriter, r *http.Request, ev *evaluated) {
	snap := ev.res.Snapshot
	all := make([]ofrepSuccess, 0, snap.NumFlags()+snap.NumSwitches()+snap.NumSamples())
	for i := range snap.NumFlags() {
		all = append(all, ev.success(kindFlag, i, keyOf(kindFlag, snap.FlagName(i))))
	}
	for i := range snap.NumSwitches() {
		all = append(all, ev.success(kindSwitch, i, keyOf(kindSwitch, snap.SwitchName(i))))
	}
	for i := range snap.NumSamples() {
		all = append(all, ev.success(kindSample, i, keyOf(kindSample, snap.SampleName(i))))
	}
	body, err := json.Marshal(struct {
		Flags []ofrepSuccess `json:"flags"`
	}{all})
	if err != nil {
		o.logger.LogAttrs(r.Context(), slog.LevelError, "ofrep: encoding the bulk answer failed", slog.Any("error", err))
		writeJSON(w, http.StatusInternalServerError, ofrepFailure{ErrorCode: ofrepGeneral, ErrorDetails: "internal error"})
		return
	}
	etag := etagOf(body)
	w.Header().Set("ETag", etag)
	if etagMatches(r.Header, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// evaluated is one decision with what its answers share.
type evaluated struct {
	res      *Result
	identity string
}

// find returns the index of the name of kind k.
func (ev *evaluated) find(k kind, name string) (int, bool) {
	snap := ev.res.Snapshot
	switch k {
	case kindSwitch:
		return findName(snap.NumSwitches(), snap.SwitchName, name)
	case kindSample:
		return findName(snap.NumSamples(), snap.SampleName, name)
	}
	return snap.FlagIndex(name)
}

// findName searches the n names in name-sorted order (as the snapshot
// keeps switches and samples).
func findName(n int, nameOf func(int) string, name string) (int, bool) {
	i := sort.Search(n, func(i int) bool { return nameOf(i) >= name })
	return i, i < n && nameOf(i) == name
}

// success is the answer for the i-th name of kind k, under key.
func (ev *evaluated) success(k kind, i int, key string) ofrepSuccess {
	snap := ev.res.Snapshot
	var d engine.Decision
	md := map[string]any{"kind": k.String(), "version": snap.Version(), "state": ev.res.State, "identity": ev.identity}
	switch k {
	case kindFlag:
		d = ev.res.Decisions.Flags[i]
		if src := snap.FlagSource(i); src != "" {
			md["source"] = string(src)
		}
		if pct, ok := snap.FlagPercent(i); ok {
			md["percent"] = pct
		}
	case kindSwitch:
		d = ev.res.Decisions.Switches[i]
	case kindSample:
		d = ev.res.Decisions.Samples[i]
		md["percent"] = snap.SamplePercent(i)
	}
	md["flagproxyReason"] = d.Reason.String()
	if ev.res.Subject.Stale {
		md["identityStale"] = true
	}
	variant := "off"
	if d.On {
		variant = "on"
	}
	return ofrepSuccess{Key: key, Value: d.On, Reason: ofrepReason(d), Variant: variant, Metadata: md}
}

// ofrepReason maps a decision's reason to OpenFeature's: STATIC for a
// site-wide "on" (waffle everyone, an active switch or feature, a rollout
// of 100), DISABLED for a site-wide "off" (and a disabled FeatureFlag),
// SPLIT for a percentage (a waffle roll or dwf_ cookie, a sample, the
// FeatureFlag bucket), DEFAULT when no rule switched the flag on, ERROR
// for a conflict or a flag the library would raise on (decided off), and
// TARGETING_MATCH for everything decided from the user or the request
// (users, groups, staff, languages, testing mode, overrides, django-flags
// conditions).
func ofrepReason(d engine.Decision) string {
	switch d.Reason {
	case engine.ReasonEveryone, engine.ReasonActive:
		if d.On {
			return ofrepStatic
		}
		return ofrepDisabled
	case engine.ReasonRollout:
		return ofrepStatic
	case engine.ReasonDisabled:
		return ofrepDisabled
	case engine.ReasonPercentRoll, engine.ReasonPercentCookie, engine.ReasonSample, engine.ReasonBucket:
		return ofrepSplit
	case engine.ReasonNoMatch:
		return ofrepDefault
	case engine.ReasonConflict, engine.ReasonError:
		return ofrepError
	}
	return ofrepTargetingMatch
}

// identityOf says who the answer was decided for.
func identityOf(targetingKey string, s engine.Subject) string {
	switch {
	case targetingKey == "":
		return identityAnonymous
	case s.Authenticated:
		return identityUser
	}
	return identityUnknownUser
}

// splitDraw is the deterministic draw OFREP uses where waffle would draw
// at random: the first 8 bytes of SHA-256("flagproxy-split\x00" + kind +
// "\x00" + name + "\x00" + user), kind being "flag" or "sample" and user
// the primary key of the user decided for ("" when anonymous), read as a
// big-endian integer, shifted right by 11 and divided by 2^53: a number in
// [0, 1). It is compared with the percentage as waffle compares its roll
// (draw*100 <= percent).
func splitDraw(user string) engine.Draw {
	return func(name string, sample bool) float64 {
		k := "flag"
		if sample {
			k = "sample"
		}
		sum := sha256.Sum256([]byte("flagproxy-split\x00" + k + "\x00" + name + "\x00" + user))
		return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
	}
}

// authorized checks the caller's key in constant time against every key
// (the digests, so that the key's length leaks nothing either). Without
// keys only a loopback peer is served.
func (o *ofrep) authorized(r *http.Request) bool {
	if len(o.keys) == 0 {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			a, err := netip.ParseAddr(host)
			return err == nil && a.Unmap().IsLoopback()
		}
		return ap.Addr().Unmap().IsLoopback()
	}
	var presented []string
	if v := r.Header.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		presented = append(presented, strings.TrimSpace(v[7:]))
	}
	if v := r.Header.Get("X-API-Key"); v != "" {
		presented = append(presented, strings.TrimSpace(v))
	}
	ok := 0
	for _, p := range presented {
		d := sha256.Sum256([]byte(p))
		for _, k := range o.keys {
			ok |= subtle.ConstantTimeCompare(d[:], k[:])
		}
	}
	return ok == 1
}

// input reads the request body into the pipeline's Input, or a failure
// (PARSE_ERROR, INVALID_CONTEXT) to answer 400 with.
func (o *ofrep) input(w http.ResponseWriter, r *http.Request) (Input, *ofrepFailure) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOFREPBody))
	if err != nil {
		return Input{}, &ofrepFailure{ErrorCode: ofrepParseError, ErrorDetails: fmt.Sprintf("the request body could not be read (at most %d bytes)", maxOFREPBody)}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil || body == nil {
		return Input{}, &ofrepFailure{ErrorCode: ofrepParseError, ErrorDetails: "the request body must be a JSON object: {\"context\": {…}}"}
	}
	var attrs map[string]json.RawMessage
	if c, ok := body["context"]; ok && string(c) != "null" {
		if err := json.Unmarshal(c, &attrs); err != nil || attrs == nil {
			return Input{}, invalidContext("context must be an object")
		}
	}
	in := Input{Path: "/"}
	str := func(name string, dst *string) *ofrepFailure {
		v, ok := attrs[name]
		if !ok || string(v) == "null" {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return invalidContext(name + " must be a string")
		}
		return nil
	}
	var language string
	for _, a := range []struct {
		name string
		dst  *string
	}{{"targetingKey", &in.UserID}, {"path", &in.Path}, {"query", &in.RawQuery}, {"language", &language}} {
		if f := str(a.name, a.dst); f != nil {
			return Input{}, f
		}
	}
	if in.Path == "" {
		in.Path = "/"
	}
	if !strings.HasPrefix(in.Path, "/") || strings.ContainsAny(in.Path, "?#") {
		return Input{}, invalidContext(fmt.Sprintf("path %q must be an absolute path without query or fragment, as a browser sends it", in.Path))
	}
	if _, err := url.PathUnescape(in.Path); err != nil {
		return Input{}, invalidContext(fmt.Sprintf("path %q has an invalid percent-escape", in.Path))
	}
	in.RawQuery = strings.TrimPrefix(in.RawQuery, "?")
	if language != "" {
		in.Header = http.Header{"Accept-Language": {language}}
	}
	if c, ok := attrs["cookies"]; ok && string(c) != "null" {
		var cookies map[string]string
		if err := json.Unmarshal(c, &cookies); err != nil || cookies == nil {
			return Input{}, invalidContext("cookies must be an object of cookie names to string values")
		}
		line, err := cookieLine(cookies, o.session)
		if err != nil {
			return Input{}, invalidContext(err.Error())
		}
		in.Cookie = line
	}
	return in, nil
}

func invalidContext(details string) *ofrepFailure {
	return &ofrepFailure{ErrorCode: ofrepInvalidContext, ErrorDetails: details}
}

// cookieLine writes cookies as one Cookie line that Django (and
// engine.ParseCookies) parses back to exactly those names and values,
// quoting a value where it must; drop is left out. A name that cannot be
// written (empty, or with '=', ';' or surrounding spaces) is an error.
func cookieLine(cookies map[string]string, drop string) (string, error) {
	names := make([]string, 0, len(cookies))
	for n := range cookies {
		if n != drop {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		v := cookies[n]
		part := n + "=" + v
		if !parsesBack(part, n, v) {
			part = n + "=" + quoteCookie(v)
		}
		if !parsesBack(part, n, v) {
			return "", fmt.Errorf("cookie %q cannot be sent with that name and value", n)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; "), nil
}

func parsesBack(part, name, value string) bool {
	p := engine.ParseCookies(part)
	got, ok := p[name]
	return len(p) == 1 && ok && got == value
}

// quoteCookie quotes v for Python's http.cookies._unquote.
func quoteCookie(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case ';':
			b.WriteString(`\073`) // "\;" would still split the line
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// writeJSON answers code with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// IsLoopbackListen reports whether a listen address (host:port) binds
// loopback only: a loopback IP, or "localhost".
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
