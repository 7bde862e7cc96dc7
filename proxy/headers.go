// Package proxy is flagproxy's HTTP face: a reverse proxy that strips every
// inbound header in its namespace, evaluates the current flag snapshot for
// the request, passes the decisions to the upstream Django site in one
// request header, and writes django-waffle's cookies on the response.
//
// # The flags header
//
// The decisions travel in the request header X-Flagproxy-Flags. Its value is
// one JSON object (RFC 8259) made only of printable ASCII: every character
// outside U+0020–U+007E, and also '<', '>' and '&', is written as a \uXXXX
// escape with lower-case hex digits (a character above U+FFFF as a UTF-16
// surrogate pair; newline, carriage return and tab as \n, \r and \t), so the
// value never holds a line break. Members come in this order:
//
//	"flags"     object: every flag name of the snapshot -> true or false
//	"switches"  object: every waffle switch name -> true or false
//	"sources"   object: flag name -> where its decision came from, one of
//	            "url", "session", "query", "header", "cookie", or "roll"
//	            (a waffle percentage rolled afresh for this request); only
//	            flags decided by something the request carried, or by a
//	            fresh roll, are listed
//	"conflicts" object: flag name -> array of the source names ("waffle",
//	            "featureflipper", "featureflag") that define it; present only
//	            when the snapshot has conflicts (the name is still in "flags")
//	"identity"  string: "stale" when the visitor's identity was served from
//	            cache past its lifetime because the database could not be
//	            read; absent otherwise
//	"version"   string: the snapshot version, "" when there is none
//	"state"     string: "ok"; "stale" when the snapshot's last successful load
//	            is older than Config.StaleAfter (or its time is unknown);
//	            "unavailable" when there is no snapshot (flags, switches,
//	            samples and sources are then empty) or the value could not
//	            be encoded within the limits
//	"samples"   object: every waffle sample name -> true or false
//
// The samples come last because waffle draws them afresh on every request:
// everything before them is the same for every request of a visitor, and
// a large value's start is compressed and hashed once (see below).
// Within each object the names are in the snapshot's sorted (byte-wise)
// order. For example:
//
//	{"flags":{"beta":true,"new_ui":false},"switches":{"maint":false},"sources":{"beta":"url"},"version":"3f2a9c0d11e4b7a8","state":"ok","samples":{}}
//
// Flag names are text: a name that is not valid UTF-8 is sent with each
// invalid byte replaced by U+FFFD.
//
// # Large values
//
// When the JSON above is longer than MaxInlineSize (4096) bytes, it is sent
// in parts instead, sized for the limits of the servers Django runs under
// (gunicorn: 8190 bytes a header line and 100 header fields; runserver: 100
// header fields):
//
//  1. compress the JSON with gzip (RFC 1952, a single member);
//  2. encode the compressed bytes with unpadded base64url (RFC 4648 §5);
//  3. cut the text into N consecutive pieces of at most PartSize (8000)
//     bytes and send piece i (1-based) as the header X-Flagproxy-Flags-<i>;
//  4. set X-Flagproxy-Flags to the pointer object
//     {"encoding":"gzip+base64url","parts":N,"sha256":"<hex>","version":"…","state":"…"}
//     where sha256 is the lower-case hex SHA-256 of the uncompressed JSON
//     and version and state repeat the JSON's members.
//
// The member's deflate stream may mix compressed and stored blocks: flagproxy
// compresses the start of a large JSON (the flags and switches) once, the
// middle (the sources to the state) stored the first time it is seen and
// compressed once it comes back, as a returning visitor's does, and sends
// the samples, which change with every request, stored.
//
// A reader that finds an "encoding" member concatenates parts 1 to N, decodes
// and decompresses them, checks the digest and then reads the JSON as above.
// More than MaxParts (16) parts are never sent, leaving most of the 100
// header fields to the client; the request then carries the
// "unavailable" state (with the snapshot version) and the event is logged
// and counted. [Decode] is the Go reader.
//
// # Signature
//
// With Config.SigningKey set, X-Flagproxy-Signature carries
// "t=<unix seconds>,v1=<hex>", where hex is the lower-case hex
// HMAC-SHA256(key, "<t>.<X-Flagproxy-Flags value>"). In the large form the
// signed value is the pointer object, whose digest covers the parts.
//
// # Stripping
//
// Before anything else, every inbound header whose name, lower-cased with '_'
// turned into '-', starts with "x-flagproxy-" is deleted, whatever its
// spelling, because WSGI servers map '-' and '_' to the same environ key.
// Every response header (and trailer of a buffered response) in the same
// namespace is deleted before the client sees the response, after the
// upstream's reads report is taken from it (see reads.go).
package proxy

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/flagproxy/flagproxy/engine"
)

// Header names and limits of the flags header contract.
const (
	// FlagsHeader carries the decisions (or the pointer to their parts).
	FlagsHeader = "X-Flagproxy-Flags"
	// SignatureHeader carries the optional HMAC signature.
	SignatureHeader = "X-Flagproxy-Signature"
	// MaxInlineSize is the longest JSON sent directly in FlagsHeader.
	MaxInlineSize = 4096
	// PartSize is the longest part of a large value.
	PartSize = 8000
	// MaxParts is the largest number of parts ever sent.
	MaxParts = 16
	// Encoding names the large-value encoding in the pointer object.
	Encoding = "gzip+base64url"

	namespace = "x-flagproxy-"
)

// The states a flags header can report.
const (
	StateOK          = "ok"
	StateStale       = "stale"
	StateUnavailable = "unavailable"
)

// unavailableJSON is the whole value sent when there is no snapshot.
const unavailableJSON = `{"flags":{},"switches":{},"samples":{},"sources":{},"version":"","state":"unavailable"}`

// inNamespace reports whether a header name, lower-cased with '_' turned
// into '-', starts with "x-flagproxy-".
func inNamespace(name string) bool {
	if len(name) < len(namespace) {
		return false
	}
	for i := range len(namespace) {
		if engine.HeaderNameByte(name[i]) != namespace[i] {
			return false
		}
	}
	return true
}

// isForwarding reports whether a header name, normalised as in inNamespace,
// is a forwarding header: Forwarded, X-Real-Ip or any X-Forwarded-* (Django
// reads X-Forwarded-Host and -Port, SECURE_PROXY_SSL_HEADER often names
// X-Forwarded-Proto or -Ssl, django-ipware reads X-Real-Ip). Rewrite decides
// these itself; only a trusted proxy's are kept.
func isForwarding(name string) bool {
	const prefix = "x-forwarded-"
	if len(name) > len(prefix) && equalNormalized(name[:len(prefix)], prefix) {
		return true
	}
	for _, f := range [...]string{"forwarded", "x-real-ip"} {
		if len(name) == len(f) && equalNormalized(name, f) {
			return true
		}
	}
	return false
}

func equalNormalized(name, lower string) bool {
	for i := range len(lower) {
		if engine.HeaderNameByte(name[i]) != lower[i] {
			return false
		}
	}
	return true
}

// stripInbound deletes, by raw map key, every header in our namespace and
// every forwarding header, whatever its spelling.
func stripInbound(h map[string][]string) {
	for k := range h {
		if inNamespace(k) || isForwarding(k) {
			delete(h, k)
		}
	}
}

// encoder writes the flags JSON for one snapshot. Everything that depends
// only on the snapshot is escaped once, when the snapshot is first seen.
type encoder struct {
	snap       *engine.Snapshot
	flagKeys   []string // `"name":` for each flag, in snapshot order
	switchKeys []string
	sampleKeys []string
	// sampleParts are each sample's member as writeSamples writes it,
	// false then true: `"name":false`, with a leading comma after the
	// first. A memoized decision set has only its samples written anew.
	sampleParts [][2]string
	conflicts   string // `,"conflicts":{…}` or ""
	versionTail string // `,"version":"…","state":"`
	fixed       int    // bytes of everything but values, sources and state
	bound       int    // the most bytes of any value
	tooLarge    bool   // no value of this snapshot fits the header limits
}

func newEncoder(snap *engine.Snapshot) *encoder {
	e := &encoder{snap: snap}
	var b []byte
	key := func(name string) string {
		b = append(appendString(b[:0], name), ':')
		e.fixed += len(b) + 1 // the key and a comma
		return string(b)
	}
	e.flagKeys = make([]string, snap.NumFlags())
	for i := range e.flagKeys {
		e.flagKeys[i] = key(snap.FlagName(i))
	}
	e.switchKeys = make([]string, snap.NumSwitches())
	for i := range e.switchKeys {
		e.switchKeys[i] = key(snap.SwitchName(i))
	}
	e.sampleKeys = make([]string, snap.NumSamples())
	e.sampleParts = make([][2]string, len(e.sampleKeys))
	for i := range e.sampleKeys {
		e.sampleKeys[i] = key(snap.SampleName(i))
		member := e.sampleKeys[i]
		if i > 0 {
			member = "," + member
		}
		e.sampleParts[i] = [2]string{member + "false", member + "true"}
	}
	if cs := snap.Conflicts(); len(cs) > 0 {
		b = append(b[:0], `,"conflicts":{`...)
		for i, c := range cs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, c.Name), ':', '[')
			for j, src := range c.Sources {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, string(src))
			}
			b = append(b, ']')
		}
		e.conflicts = string(append(b, '}'))
	}
	b = append(b[:0], `,"version":`...)
	e.versionTail = string(append(appendString(b, snap.Version()), `,"state":"`...))
	e.fixed += len(`{"flags":{},"switches":{},"samples":{},"sources":{}"}`) +
		len(e.conflicts) + len(e.versionTail)
	e.bound = e.fixed + 5*(len(e.flagKeys)+len(e.switchKeys)+len(e.sampleKeys)) + len(identityStale) + len(StateUnavailable)
	for _, k := range e.flagKeys {
		e.bound += len(k) + len(`"session",`)
	}
	return e
}

// identityStale is the member written when the visitor's identity is
// stale.
const identityStale = `,"identity":"stale"`

// encode returns the flags JSON for d, which must come from e.snap;
// staleIdentity adds "identity":"stale".
func (e *encoder) encode(d *engine.Decisions, state string, staleIdentity bool) string {
	n := e.fixed + len(state) + 5*(len(d.Flags)+len(d.Switches)+len(d.Samples)) + len(identityStale)
	for i := range d.Flags {
		if o := d.Flags[i].Reason.Origin(); o != "" && i < len(e.flagKeys) {
			n += len(e.flagKeys[i]) + len(o) + 3
		}
	}
	var b strings.Builder
	b.Grow(n)
	e.writeHead(&b, d)
	e.writeRest(&b, d, state, staleIdentity)
	return b.String()
}

// samplesBound is the most bytes writeSamples can write for e.snap.
func (e *encoder) samplesBound() int {
	n := len(`}}`)
	for _, k := range e.sampleKeys {
		n += len(k) + len("false,")
	}
	return n
}

// headBound is the most bytes writeHead can write for e.snap.
func (e *encoder) headBound() int {
	n := len(`{"flags":{},"switches":{},"sources":{`)
	for _, keys := range [...][]string{e.flagKeys, e.switchKeys} {
		for _, k := range keys {
			n += len(k) + len("false,")
		}
	}
	return n
}

// writeHead writes the start of the JSON, which only the flags' and
// switches' states change: up to the sources' members.
func (e *encoder) writeHead(b *strings.Builder, d *engine.Decisions) {
	b.WriteString(`{"flags":{`)
	writeBools(b, e.flagKeys, d.Flags)
	b.WriteString(`},"switches":{`)
	writeBools(b, e.switchKeys, d.Switches)
	b.WriteString(`},"sources":{`)
}

// writeRest writes the rest of the JSON after writeHead's.
func (e *encoder) writeRest(b *strings.Builder, d *engine.Decisions, state string, staleIdentity bool) {
	e.writeTail(b, d, state, staleIdentity)
	e.writeSamples(b, d)
}

// writeTail writes the JSON after writeHead's up to the samples' members:
// the sources to the state, the same for every request of a visitor.
func (e *encoder) writeTail(b *strings.Builder, d *engine.Decisions, state string, staleIdentity bool) {
	first := true
	for i := range min(len(d.Flags), len(e.flagKeys)) {
		o := d.Flags[i].Reason.Origin()
		if o == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(e.flagKeys[i])
		b.WriteByte('"')
		b.WriteString(o) // origins are fixed lower-case ASCII words
		b.WriteByte('"')
	}
	b.WriteByte('}')
	b.WriteString(e.conflicts)
	if staleIdentity {
		b.WriteString(identityStale)
	}
	b.WriteString(e.versionTail)
	b.WriteString(state)
	b.WriteString(`","samples":{`)
}

// writeSamples writes the samples and the end of the JSON, after
// writeTail's part.
func (e *encoder) writeSamples(b *strings.Builder, d *engine.Decisions) {
	for i := range min(len(e.sampleParts), len(d.Samples)) {
		b.WriteString(e.sampleParts[i][onByte(d.Samples[i].On)])
	}
	b.WriteString(`}}`)
}

// unavailable returns the value for a snapshot whose decisions cannot be
// sent.
func (e *encoder) unavailable() string {
	return `{"flags":{},"switches":{},"samples":{},"sources":{}` + e.versionTail + StateUnavailable + `"}`
}

func writeBools(b *strings.Builder, keys []string, ds []engine.Decision) {
	for i := range min(len(keys), len(ds)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(keys[i])
		if ds[i].On {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	}
}

// appendString appends s as a JSON string of printable ASCII only.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7F || c == '<' || c == '>' || c == '&':
				dst = u(dst, rune(c))
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:]) // invalid bytes: U+FFFD, 1
		if r > 0xFFFF {
			r1, r2 := utf16.EncodeRune(r)
			dst = u(u(dst, r1), r2)
		} else {
			dst = u(dst, r)
		}
		i += size
	}
	return append(dst, '"')
}
