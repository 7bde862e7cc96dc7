package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash/maphash"
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

// setFlags sets FlagsHeader (and its parts, for a large value) on h. value
// is the JSON from e; on errTooLarge nothing is set. A large value seen
// recently is not compressed again: visitors come back with the same
// decisions, and compression is most of the cost of a large value.
func (p *Pipeline) setFlags(h http.Header, e *encoder, value, state string) error {
	if len(value) <= p.limits.inline {
		h[FlagsHeader] = []string{value}
		return nil
	}
	key := maphash.String(p.seed, value)
	if c, ok := p.large.Get(key); ok && c.value == value {
		setLarge(h, c)
		return nil
	}
	parts, sum, err := p.split(value)
	if err != nil {
		return err
	}
	c := &largeValue{value: value, parts: parts, pointer: pointerJSON(e, len(parts), sum, state)}
	p.large.Add(key, c)
	setLarge(h, c)
	return nil
}

// largeValue is a value's large form, as setFlags sends it.
type largeValue struct {
	value   string // the JSON (the cache checks it on every hit)
	pointer string
	parts   []string
}

// largeValueCache is how many large values setFlags remembers; each costs
// its JSON and its compressed parts.
const largeValueCache = 128

func setLarge(h http.Header, c *largeValue) {
	h[FlagsHeader] = []string{c.pointer}
	for i, part := range c.parts {
		h[partHeader(i+1)] = []string{part}
	}
}

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
func partHeader(i int) string { return FlagsHeader + "-" + strconv.Itoa(i) }

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
