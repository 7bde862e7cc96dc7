package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// The console's protection against cross-site requests: a POST must pass
// net/http's CrossOriginProtection (Sec-Fetch-Site, else Origin against
// Host) AND carry a token that only a page of the console served to this
// browser holds. The token is an HMAC, with the console key, of the user,
// a random nonce kept in a cookie of the console's own (HttpOnly,
// SameSite=Strict, on the console path only), and the time it was made;
// it is good for tokenLifetime.
const (
	consoleNonceCookie = "flagproxy_console"
	tokenLifetime      = 12 * time.Hour
	tokenMACSize       = 16
)

// errToken is returned for a missing, forged or expired token.
var errToken = errors.New("missing, invalid or expired form token; reload the console")

// csrf makes and checks the console's form tokens.
type csrf struct {
	key    []byte
	path   string // the cookie's path
	secure bool
	now    func() time.Time
}

// nonce returns the browser's nonce, and the cookie to set when it has
// none yet.
func (c *csrf) nonce(r *http.Request) (string, *http.Cookie) {
	if ck, err := r.Cookie(consoleNonceCookie); err == nil && len(ck.Value) >= 16 {
		return ck.Value, nil
	}
	var b [18]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	return v, &http.Cookie{Name: consoleNonceCookie, Value: v, Path: c.path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.secure}
}

// token makes a token for user and nonce.
func (c *csrf) token(user, nonce string) string {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(c.now().Unix()))
	return base64.RawURLEncoding.EncodeToString(append(ts[:], c.mac(user, nonce, ts[:])...))
}

func (c *csrf) mac(user, nonce string, ts []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("flagproxy console\x00" + user + "\x00" + nonce + "\x00"))
	m.Write(ts)
	return m.Sum(nil)[:tokenMACSize]
}

// check verifies a POST: same origin, then the token for user.
func (c *csrf) check(r *http.Request, user, token string) error {
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		return err
	}
	ck, err := r.Cookie(consoleNonceCookie)
	raw, derr := base64.RawURLEncoding.DecodeString(token)
	if err != nil || derr != nil || len(raw) != 8+tokenMACSize {
		return errToken
	}
	made := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	if age := c.now().Sub(made); age < -time.Minute || age > tokenLifetime {
		return errToken
	}
	if !hmac.Equal(raw[8:], c.mac(user, ck.Value, raw[:8])) {
		return errToken
	}
	return nil
}
