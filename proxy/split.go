package proxy

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/flagproxy/flagproxy/engine"
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
	return newLarge(e, parts, sum, state), nil
}

// newLarge returns the header values of a large value.
func newLarge(e *encoder, parts []string, sum [sha256.Size]byte, state string) *encoded {
	c := &encoded{enc: e, flags: []string{pointerJSON(e, len(parts), sum, state)}, parts: make([][]string, len(parts))}
	for i, part := range parts {
		c.parts[i] = []string{part}
	}
	return c
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
	// A view of value's bytes, not a copy (a large value is tens of KB):
	// Sum256 only reads its input, and an io.Writer must neither modify
	// nor retain what it is given.
	b := unsafe.Slice(unsafe.StringData(value), len(value))
	sum := sha256.Sum256(b)
	var buf bytes.Buffer
	zw, _ := p.gzip.Get().(*gzip.Writer)
	if zw == nil {
		// The fastest level: most of a large value is names it repeats
		// from the keys, which even level 1 finds.
		zw, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed)
	}
	zw.Reset(&buf)
	_, err := zw.Write(b)
	if err == nil {
		err = zw.Close()
	}
	p.gzip.Put(zw)
	if err != nil {
		return nil, sum, err
	}
	parts, err := p.cut(base64.RawURLEncoding.EncodeToString(buf.Bytes()))
	return parts, sum, err
}

// cut cuts the encoded text of a large value into parts.
func (p *Pipeline) cut(text string) ([]string, error) {
	n := (len(text) + p.limits.part - 1) / p.limits.part
	if n > p.limits.maxParts {
		return nil, errTooLarge
	}
	parts := make([]string, 0, n)
	for len(text) > p.limits.part {
		parts = append(parts, text[:p.limits.part])
		text = text[p.limits.part:]
	}
	return append(parts, text), nil
}

// largeHead is the start of the large values that share a JSON head
// (writeHead's), compressed once: waffle draws every sample afresh on
// every request, and the samples come after the head. The rest of such a
// value follows in stored (uncompressed) deflate blocks, which need no
// compressor: the gzip member is
//
//	gzip header | head, compressed, ended by a sync flush | empty stored
//	blocks up to a multiple of 3 bytes | the rest in stored blocks | trailer
//
// so the head's base64 text is cached, and the rest's appended to it. Once
// the rest's tail (the sources to the end) comes back, it is compressed on
// its own and cached too (see restText).
type largeHead struct {
	enc  *encoder
	fp   string // the head's part of the fingerprint
	text string // base64url of the member up to the rest
	size int    // JSON bytes in the head
	crc  uint32 // CRC-32 of the head
	sha  []byte // SHA-256 state after the head (encoding.BinaryMarshaler)
}

// largeHeadCache is how many heads largeHead remembers.
const largeHeadCache = 16

// largeHead returns the compressed head for the decisions d, whose head
// fingerprint is fp, or nil when the head can fit inline (then the value
// may too: it is encoded whole).
func (p *Pipeline) largeHead(e *encoder, d *engine.Decisions, fp []byte) *largeHead {
	if e.headBound() <= p.limits.inline {
		return nil
	}
	key := maphash.Bytes(p.seed, fp)
	if h, ok := p.heads.Get(key); ok && h.enc == e && h.fp == string(fp) {
		return h
	}
	var b strings.Builder
	e.writeHead(&b, d)
	if b.Len() <= p.limits.inline {
		return nil
	}
	h, err := p.compressHead(b.String())
	if err != nil {
		return nil
	}
	h.enc, h.fp = e, string(fp)
	p.heads.Add(key, h)
	return h
}

// gzipHeader is the 10-byte member header Go's gzip.Writer writes: no
// name, no time, unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// emptyStored is an empty, not final, stored deflate block that starts on
// a byte boundary.
var emptyStored = []byte{0, 0, 0, 0xff, 0xff}

// compressHead compresses head as the start of a gzip member.
func (p *Pipeline) compressHead(head string) (*largeHead, error) {
	buf := bytes.NewBuffer(append([]byte(nil), gzipHeader...))
	zw, _ := p.flate.Get().(*flate.Writer)
	if zw == nil {
		zw, _ = flate.NewWriter(nil, flate.BestSpeed)
	}
	zw.Reset(buf)
	_, err := zw.Write([]byte(head))
	if err == nil {
		err = zw.Flush() // ends on a byte boundary
	}
	p.flate.Put(zw)
	if err != nil {
		return nil, err
	}
	for buf.Len()%3 != 0 { // 5 bytes a block: two at most
		buf.Write(emptyStored)
	}
	sha := sha256.New()
	sha.Write([]byte(head))
	state, err := sha.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &largeHead{text: base64.RawURLEncoding.EncodeToString(buf.Bytes()), size: len(head),
		crc: crc32.ChecksumIEEE([]byte(head)), sha: state}, nil
}

// fromHead makes the header values of res's decisions, whose head h is
// and whose fingerprint without the samples is key: the value's prefix
// (head and tail, see prefix) and then the samples, in a final stored
// block, and the gzip trailer.
func (p *Pipeline) fromHead(e *encoder, h *largeHead, res *Result, key []byte) (*encoded, error) {
	pre, err := p.prefix(e, h, res, key)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	e.writeSamples(&b, &res.Decisions)
	samples := []byte(b.String())
	sha := sha256.New()
	if err := sha.(encoding.BinaryUnmarshaler).UnmarshalBinary(pre.sha); err != nil {
		return nil, err
	}
	sha.Write(samples)
	var sum [sha256.Size]byte
	sha.Sum(sum[:0])
	size := pre.size + len(samples)
	last := appendStored(make([]byte, 0, len(samples)+len(samples)/maxStored*5+13), samples, true)
	last = binary.LittleEndian.AppendUint32(last, crc32.Update(pre.crc, crc32.IEEETable, samples))
	last = binary.LittleEndian.AppendUint32(last, uint32(size))
	parts, err := p.cut(pre.text + base64.RawURLEncoding.EncodeToString(last))
	if err != nil {
		return nil, fmt.Errorf("%w (%d bytes)", err, size)
	}
	return newLarge(e, parts, sum, res.State), nil
}

// prefix is the start of a large value up to its samples: the head and
// the tail (writeTail's JSON, the same for every request of a visitor).
// Its text is whole deflate blocks (a multiple of 3 bytes, so that the
// samples' base64 text can follow), with the CRC-32 and the SHA-256 state
// of the JSON so far, so that a request of a visitor seen before hashes
// and encodes only its samples.
type prefix struct {
	enc  *encoder
	fp   string // the fingerprint without the samples
	text string
	size int
	crc  uint32
	sha  []byte
}

// prefixCache is how many prefixes are kept.
const prefixCache = 64

// prefix returns the prefix of res's value, whose head is h and whose
// fingerprint without the samples is key. It is cached once its tail is
// compressed (see tailText): until then the tail goes stored.
func (p *Pipeline) prefix(e *encoder, h *largeHead, res *Result, key []byte) (*prefix, error) {
	k := maphash.Bytes(p.seed, key)
	if c, ok := p.prefixes.Get(k); ok && c.enc == e && c.fp == string(key) {
		return c, nil
	}
	var b strings.Builder
	e.writeTail(&b, &res.Decisions, res.State, res.Subject.Stale)
	tail := []byte(b.String())
	pre := &prefix{enc: e, fp: string(key), size: h.size + len(tail), crc: crc32.Update(h.crc, crc32.IEEETable, tail)}
	sha := sha256.New()
	if err := sha.(encoding.BinaryUnmarshaler).UnmarshalBinary(h.sha); err != nil {
		return nil, err
	}
	sha.Write(tail)
	state, err := sha.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	pre.sha = state
	t := p.tailText(tail)
	if t == "" {
		pre.text = h.text + storedText(tail)
		return pre, nil
	}
	pre.text = h.text + t
	p.prefixes.Add(k, pre)
	return pre, nil
}

// storedText is the base64url text of data in stored blocks, not final,
// padded with empty stored blocks to a multiple of 3 bytes.
func storedText(data []byte) string {
	b := appendStored(make([]byte, 0, len(data)+len(data)/maxStored*5+15), data, false)
	for len(b)%3 != 0 { // 5 bytes a block: two at most
		b = append(b, emptyStored...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// compressedTail is a tail (see prefix) seen before; text is the
// base64url of its deflate blocks, once it has been seen twice.
type compressedTail struct {
	tail, text string
}

// Tails shorter than minCompressedTail are not worth a cache entry, and
// compressedTails is how many tails the cache holds.
const (
	minCompressedTail = 512
	compressedTails   = 32
)

// tailText returns the text of tail compressed on its own (ended by a sync
// flush, padded to a multiple of 3 bytes), or "" when it is to be sent
// stored: short, or seen for the first time (a tail that never comes back
// costs no compression).
func (p *Pipeline) tailText(tail []byte) string {
	if len(tail) < minCompressedTail {
		return ""
	}
	key := maphash.Bytes(p.seed, tail)
	c, ok := p.tails.Get(key)
	switch {
	case !ok || c.tail != string(tail):
		p.tails.Add(key, &compressedTail{tail: string(tail)})
		return ""
	case c.text != "":
		return c.text
	}
	text, err := p.compressTail(tail)
	if err != nil {
		return ""
	}
	p.tails.Add(key, &compressedTail{tail: c.tail, text: text})
	return text
}

// compressTail compresses tail as deflate blocks that refer to nothing
// before them, ended by a sync flush and empty stored blocks up to a
// multiple of 3 bytes.
func (p *Pipeline) compressTail(tail []byte) (string, error) {
	var buf bytes.Buffer
	zw, _ := p.flate.Get().(*flate.Writer)
	if zw == nil {
		zw, _ = flate.NewWriter(nil, flate.BestSpeed)
	}
	zw.Reset(&buf)
	_, err := zw.Write(tail)
	if err == nil {
		err = zw.Flush()
	}
	p.flate.Put(zw)
	if err != nil {
		return "", err
	}
	for buf.Len()%3 != 0 {
		buf.Write(emptyStored)
	}
	return base64.RawURLEncoding.EncodeToString(buf.Bytes()), nil
}

// maxStored is the most bytes one stored deflate block holds.
const maxStored = 0xffff

// appendStored appends data as stored deflate blocks starting on a byte
// boundary, the last one final when last is set.
func appendStored(b, data []byte, last bool) []byte {
	for {
		n := min(len(data), maxStored)
		final := byte(0)
		if n == len(data) && last {
			final = 1
		}
		b = append(b, final)
		b = binary.LittleEndian.AppendUint16(b, uint16(n))
		b = binary.LittleEndian.AppendUint16(b, ^uint16(n))
		b = append(b, data[:n]...)
		if data = data[n:]; len(data) == 0 {
			return b
		}
	}
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
