package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
)

// errTooLarge reports a value that would need more than the allowed parts.
var errTooLarge = errors.New("flags header too large")

// limits are the size limits of the header encoding; tests lower them.
type limits struct {
	inline, part, maxParts int
}

func defaultLimits() limits { return limits{MaxInlineSize, PartSize, MaxParts} }

// form makes the header values of value, the JSON from e: the value
// itself, or for a large value the pointer object and its parts. On
// errTooLarge there is none.
func (p *Pipeline) form(e *encoder, value, state string) (*encoded, error) {
	if len(value) <= p.limits.inline {
		return &encoded{enc: e, flags: []string{value}}, nil
	}
	parts, sum, err := p.split(value)
	if err != nil {
		return nil, err
	}
	c := &encoded{enc: e, flags: []string{pointerJSON(e, len(parts), sum, state)}, parts: make([][]string, len(parts))}
	for i, part := range parts {
		c.parts[i] = []string{part}
	}
	return c, nil
}

// encoded is the header values of one decision set. Its slices are shared
// by every request that sends it: they are never modified.
type encoded struct {
	enc   *encoder
	fp    string     // the decision set, see fingerprint
	flags []string   // FlagsHeader
	parts [][]string // the parts of a large value
}

// set sets FlagsHeader and the parts on h.
func (c *encoded) set(h http.Header) {
	h[FlagsHeader] = c.flags
	for i, part := range c.parts {
		h[partHeader(i+1)] = part
	}
}

// encodedCache is how many decision sets' header values encode remembers;
// each costs its fingerprint and its value (compressed when large).
const encodedCache = 128

// pointerJSON is the FlagsHeader value of the large form.
func pointerJSON(e *encoder, parts int, sum [sha256.Size]byte, state string) string {
	b := make([]byte, 0, 128+len(e.versionTail))
	b = append(b, `{"encoding":"`+Encoding+`","parts":`...)
	b = strconv.AppendInt(b, int64(parts), 10)
	b = append(b, `,"sha256":"`...)
	b = hex.AppendEncode(b, sum[:])
	b = append(b, '"')
	b = append(b, e.versionTail...)
	b = append(b, state...)
	b = append(b, `"}`...)
	return string(b)
}

// partHeader returns the canonical name of part i (1-based).
func partHeader(i int) string {
	if 1 <= i && i <= MaxParts {
		return partHeaders[i-1]
	}
	return FlagsHeader + "-" + strconv.Itoa(i)
}

// partHeaders are the names of parts 1 to MaxParts.
var partHeaders = func() (names [MaxParts]string) {
	for i := range names {
		names[i] = FlagsHeader + "-" + strconv.Itoa(i+1)
	}
	return names
}()

// split compresses and encodes value and cuts it into parts.
func (p *Pipeline) split(value string) ([]string, [sha256.Size]byte, error) {
	sum := sha256.Sum256([]byte(value))
	var buf bytes.Buffer
	zw, _ := p.gzip.Get().(*gzip.Writer)
	if zw == nil {
		// The fastest level: most of a large value is names it repeats
		// from the keys, which even level 1 finds.
		zw, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed)
	}
	zw.Reset(&buf)
	_, err := zw.Write([]byte(value))
	if err == nil {
		err = zw.Close()
	}
	p.gzip.Put(zw)
	if err != nil {
		return nil, sum, err
	}
	text := base64.RawURLEncoding.EncodeToString(buf.Bytes())
	n := (len(text) + p.limits.part - 1) / p.limits.part
	if n > p.limits.maxParts {
		return nil, sum, errTooLarge
	}
	parts := make([]string, 0, n)
	for len(text) > p.limits.part {
		parts = append(parts, text[:p.limits.part])
		text = text[p.limits.part:]
	}
	return append(parts, text), sum, nil
}

// sign returns the SignatureHeader value for a FlagsHeader value at unix
// time t.
func sign(key []byte, t int64, value string) string {
	m := hmac.New(sha256.New, key)
	ts := strconv.AppendInt(nil, t, 10)
	m.Write(ts)
	m.Write([]byte{'.'})
	m.Write([]byte(value))
	b := make([]byte, 0, 2+len(ts)+4+2*sha256.Size)
	b = append(append(append(b, "t="...), ts...), ",v1="...)
	return string(hex.AppendEncode(b, m.Sum(nil)))
}
