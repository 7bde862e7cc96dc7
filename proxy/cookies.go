package proxy

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flagproxy/flagproxy/engine"
)

// modifyResponse takes the upstream's reads report (and every other
// X-Flagproxy- header) off the response, adds the decisions' cookies, logs
// its exposures and buffers its body (see bufferResponse).
func (p *Proxy) modifyResponse(res *http.Response) error {
	var ex *exchange
	if res.Request != nil {
		ex = exchangeOf(res.Request.Context())
	}
	rep := p.reads.take(res, ex)
	stripNamespace(res.Trailer)
	if err := p.setCookies(res, ex, rep); err != nil {
		return err
	}
	p.recordExposure(res, rep)
	err := p.bufferResponse(res)
	stripNamespace(res.Trailer) // those read with a buffered body
	if err == nil && ex != nil {
		ex.takeSetCookies(res.Header)
	}
	return err
}

// takeSetCookies moves the response's Set-Cookie lines to the client's
// header, in order after any it holds: ReverseProxy would copy them one by
// one, growing a slice at every power of two.
func (ex *exchange) takeSetCookies(h http.Header) {
	lines, ok := h["Set-Cookie"]
	if !ok {
		return
	}
	w := ex.Header()
	if prior := w["Set-Cookie"]; len(prior) > 0 {
		lines = append(prior, lines...)
	}
	w["Set-Cookie"] = lines
	delete(h, "Set-Cookie")
}

// setCookies appends the Set-Cookie lines django-waffle's middleware would
// write for the request's decisions: with a reads report rep, only those
// of the flags read (unless EagerWaffleCookies). All lines share one
// string.
func (p *Proxy) setCookies(res *http.Response, ex *exchange, rep *readsReport) error {
	if ex == nil {
		return nil
	}
	set := ex.cookies
	if set.override != nil {
		if v := set.override.String(); v != "" {
			res.Header["Set-Cookie"] = append(res.Header["Set-Cookie"], v)
		}
	}
	cookies := set.waffle
	if rep != nil && !p.reads.eager && len(cookies) > 0 {
		cookies = onlyRead(cookies, rep)
	}
	if len(cookies) == 0 {
		return nil
	}
	now := p.now()
	var b strings.Builder
	b.Grow(len(cookies) * 96)
	var endsBuf [32]int
	ends := endsBuf[:0]
	var exp expiry
	for _, c := range cookies {
		if !pythonAccepts(c) {
			p.metrics.cookiesSkipped.Inc()
			p.logger.LogAttrs(res.Request.Context(), slog.LevelDebug, "skipped a waffle cookie Python would refuse",
				slog.String("cookie", c.Name))
			continue
		}
		writeSetCookie(&b, c, now, &exp)
		ends = append(ends, b.Len())
	}
	all := b.String()
	prior := res.Header["Set-Cookie"]
	lines := make([]string, len(prior), len(prior)+len(ends))
	copy(lines, prior)
	start := 0
	for _, end := range ends {
		lines = append(lines, all[start:end])
		start = end
	}
	if len(lines) > 0 {
		res.Header["Set-Cookie"] = lines
	}
	return nil
}

// writeSetCookie writes the Set-Cookie value Django's
// HttpResponse.set_cookie writes for waffle, attributes in the sorted order
// Python's http.cookies uses:
//
//	dwf_x=True; expires=Mon, 21 Dec 2026 07:58:48 GMT; Max-Age=2592000; Path=/; Secure
//
// A cookie with MaxAge 0 is a browser-session cookie: no expires, no
// Max-Age. exp caches the attributes of the last MaxAge formatted.
func writeSetCookie(b *strings.Builder, c engine.Cookie, now time.Time, exp *expiry) {
	b.WriteString(c.Name)
	b.WriteByte('=')
	b.WriteString(c.Value)
	if c.MaxAge != 0 {
		if exp.n == 0 || exp.maxAge != c.MaxAge {
			t := now.Add(time.Duration(c.MaxAge) * time.Second).UTC()
			a := append(t.AppendFormat(append(exp.buf[:0], "; expires="...), http.TimeFormat), "; Max-Age="...)
			exp.n, exp.maxAge = len(strconv.AppendInt(a, int64(c.MaxAge), 10)), c.MaxAge
		}
		b.Write(exp.buf[:exp.n])
	}
	b.WriteString("; Path=/")
	if c.Secure {
		b.WriteString("; Secure")
	}
}

// expiry holds the formatted "; expires=…; Max-Age=…" for one MaxAge.
type expiry struct {
	maxAge int
	n      int
	buf    [64]byte
}

// pythonAccepts reports whether Python's http.cookies would write the
// cookie unquoted: a name of one or more legal characters that is not a
// reserved attribute name, and a value of legal characters (waffle's values
// are always True or False). Django answers 500 for a name it refuses.
func pythonAccepts(c engine.Cookie) bool {
	if c.Name == "" || c.Value == "" || !legalCookieText(c.Name) || !legalCookieText(c.Value) {
		return false
	}
	switch strings.ToLower(c.Name) {
	case "expires", "path", "comment", "domain", "max-age", "secure", "httponly", "version", "samesite":
		return false
	}
	return true
}

// legalCookieText reports whether s has only the characters of Python's
// http.cookies._LegalChars: ASCII letters, digits and !#$%&'*+-.^_`|~:.
func legalCookieText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~:", c) >= 0:
		default:
			return false
		}
	}
	return true
}
