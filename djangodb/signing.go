package djangodb

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"strings"
	"time"
)

// This file is django.core.signing as the session machinery uses it
// (spec/django-sessions.md §1): salted_hmac, Signer, TimestampSigner with
// base62 timestamps, dumps/loads with optional zlib compression, and the
// pre-3.1 session encoding that Django 3.1 and 3.2 still read.

// Reason says why a session was not accepted. The values are bounded, so
// they can label metrics.
type Reason string

// The reasons a session cookie leaves the visitor anonymous.
const (
	ReasonNoCookie         Reason = "no_session_cookie"
	ReasonShortKey         Reason = "session_key_too_short"
	ReasonNoRow            Reason = "no_session_row"
	ReasonBadSignature     Reason = "bad_signature"
	ReasonExpired          Reason = "signature_expired"
	ReasonMalformed        Reason = "malformed_session"
	ReasonNoAuth           Reason = "no_auth_keys_in_session"
	ReasonBackend          Reason = "backend_not_configured"
	ReasonUserNotFound     Reason = "user_not_found"
	ReasonUserInactive     Reason = "user_inactive"
	ReasonHashMissing      Reason = "auth_hash_missing"
	ReasonHashMismatch     Reason = "auth_hash_mismatch"
	ReasonLookupsLimited   Reason = "lookups_rate_limited"
	ReasonImplausible      Reason = "implausible_session_value"
	ReasonDatabaseError    Reason = "database_error"
	ReasonAuthenticated    Reason = "authenticated"
	ReasonAnonymousSession Reason = "anonymous_session"
)

// rejected is an error carrying a Reason.
type rejected struct {
	reason Reason
	err    error
}

func (r *rejected) Error() string {
	if r.err != nil {
		return string(r.reason) + ": " + r.err.Error()
	}
	return string(r.reason)
}

func (r *rejected) Unwrap() error { return r.err }

func reject(reason Reason, err error) error { return &rejected{reason: reason, err: err} }

// ReasonOf returns the Reason of an error from session resolution, or
// ReasonDatabaseError for any other error.
func ReasonOf(err error) Reason {
	var r *rejected
	if errors.As(err, &r) {
		return r.reason
	}
	return ReasonDatabaseError
}

// algorithm is a hash Django's salted_hmac may use.
type algorithm int

const (
	sha256Alg algorithm = iota
	sha1Alg
)

func (a algorithm) new() func() hash.Hash {
	if a == sha1Alg {
		return sha1.New
	}
	return sha256.New
}

// saltedHMAC is django.utils.crypto.salted_hmac: HMAC-H(H(keySalt ||
// secret), value).
func saltedHMAC(keySalt string, value []byte, secret string, a algorithm) []byte {
	h := a.new()()
	h.Write([]byte(keySalt))
	h.Write([]byte(secret))
	m := hmac.New(a.new(), h.Sum(nil))
	m.Write(value)
	return m.Sum(nil)
}

// signer verifies Django signatures with every accepted key and algorithm.
type signer struct {
	keys []string    // SECRET_KEY, then the fallbacks the version honours
	algs []algorithm // accepted signature algorithms
}

// unsign is Signer.unsign with salt: it returns the signed text.
func (s signer) unsign(value, salt string) (string, error) {
	i := strings.LastIndexByte(value, ':')
	if i < 0 {
		return "", reject(ReasonBadSignature, errors.New("no signature"))
	}
	text, sig := value[:i], []byte(value[i+1:])
	for _, k := range s.keys {
		for _, a := range s.algs {
			want := base64.RawURLEncoding.EncodeToString(saltedHMAC(salt+"signer", []byte(text), k, a))
			if subtle.ConstantTimeCompare(sig, []byte(want)) == 1 {
				return text, nil
			}
		}
	}
	return "", reject(ReasonBadSignature, nil)
}

// maxSessionBytes bounds a decoded (and decompressed) session.
const maxSessionBytes = 1 << 20

// noMaxAge is the maxAge of loads without a limit (db-backed sessions).
const noMaxAge = time.Duration(-1)

// loads is signing.loads(value, salt, max_age) with the JSON serializer and
// TimestampSigner; maxAge noMaxAge means no limit. The result must be a
// JSON object.
func (s signer) loads(value, salt string, maxAge time.Duration, now time.Time) (map[string]any, error) {
	m, _, err := s.loadsAt(value, salt, maxAge, now)
	return m, err
}

// loadsAt is loads that also returns the signing time.
func (s signer) loadsAt(value, salt string, maxAge time.Duration, now time.Time) (map[string]any, time.Time, error) {
	text, err := s.unsign(value, salt)
	if err != nil {
		return nil, time.Time{}, err
	}
	i := strings.LastIndexByte(text, ':')
	if i < 0 {
		return nil, time.Time{}, reject(ReasonMalformed, errors.New("no timestamp"))
	}
	payload, stamp := text[:i], text[i+1:]
	ts, ok := base62Decode(stamp)
	if !ok {
		return nil, time.Time{}, reject(ReasonMalformed, errors.New("bad timestamp"))
	}
	// Django: age = now - timestamp (float seconds); expired only if age > max_age.
	if maxAge >= 0 {
		age := float64(now.UnixNano())/1e9 - float64(ts)
		if age > maxAge.Seconds() {
			return nil, time.Time{}, reject(ReasonExpired, nil)
		}
	}
	compressed := strings.HasPrefix(payload, ".")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(payload, "."))
	if err != nil {
		return nil, time.Time{}, reject(ReasonMalformed, err)
	}
	if compressed {
		if raw, err = inflate(raw); err != nil {
			return nil, time.Time{}, reject(ReasonMalformed, err)
		}
	}
	m, err := decodeSession(raw)
	return m, time.Unix(ts, 0), err
}

// decodeSession parses session JSON. Django decodes the bytes as latin-1;
// Django's own sessions are ASCII, so UTF-8 reading is equivalent for them.
// Python writes NaN and Infinity for non-finite floats, which this parser
// refuses: such a session is treated as malformed (anonymous).
func decodeSession(raw []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, reject(ReasonMalformed, err)
	}
	if m == nil {
		return nil, reject(ReasonMalformed, errors.New("session is not a JSON object"))
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, reject(ReasonMalformed, errors.New("trailing data"))
	}
	return m, nil
}

// legacyLoads decodes the pre-3.1 session format that Django 3.1 and 3.2
// still read: base64(hexhash ":" json), hexhash = salted_hmac(
// "django.contrib.sessions" + class name, json, SECRET_KEY, sha1).
func legacyLoads(data, className, secret string) (map[string]any, error) {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		// Python's b64decode is lenient about missing padding and stray
		// characters; Django-written legacy data is always well formed.
		return nil, reject(ReasonBadSignature, err)
	}
	h, serialized, ok := bytes.Cut(raw, []byte(":"))
	if !ok {
		return nil, reject(ReasonBadSignature, errors.New("no hash"))
	}
	want := hex.EncodeToString(saltedHMAC("django.contrib.sessions"+className, serialized, secret, sha1Alg))
	if subtle.ConstantTimeCompare(h, []byte(want)) != 1 {
		return nil, reject(ReasonBadSignature, nil)
	}
	return decodeSession(serialized)
}

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62Decode is django.utils.baseconv.base62.decode for timestamps.
func base62Decode(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(base62Alphabet, s[i])
		if d < 0 {
			return 0, false
		}
		n = n*62 + int64(d)
	}
	if neg {
		n = -n
	}
	return n, true
}
