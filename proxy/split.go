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

// setFlags sets FlagsHeader (and its parts, for a large value) on h. value
// is the JSON from e; on errTooLarge nothing is set.
func (p *Pipeline) setFlags(h http.Header, e *encoder, value, state string) error {
	if len(value) <= p.limits.inline {
		h[FlagsHeader] = []string{value}
		return nil
	}
	parts, sum, err := p.split(value)
	if err != nil {
		return err
	}
	b := make([]byte, 0, 128+len(e.versionTail))
	b = append(b, `{"encoding":"`+Encoding+`","parts":`...)
	b = strconv.AppendInt(b, int64(len(parts)), 10)
	b = append(b, `,"sha256":"`...)
	b = hex.AppendEncode(b, sum[:])
	b = append(b, '"')
	b = append(b, e.versionTail...)
	b = append(b, state...)
	b = append(b, `"}`...)
	h[FlagsHeader] = []string{string(b)}
	for i, part := range parts {
		h[partHeader(i+1)] = []string{part}
	}
	return nil
}

// partHeader returns the canonical name of part i (1-based).
func partHeader(i int) string { return FlagsHeader + "-" + strconv.Itoa(i) }

// split compresses and encodes value and cuts it into parts.
func (p *Pipeline) split(value string) ([]string, [sha256.Size]byte, error) {
	sum := sha256.Sum256([]byte(value))
	var buf bytes.Buffer
	zw, _ := p.gzip.Get().(*gzip.Writer)
	if zw == nil {
		zw = gzip.NewWriter(nil)
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
