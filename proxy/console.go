package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultConsolePath is the default Config.ConsolePath (DESIGN.md §7).
const DefaultConsolePath = "/_flagproxy/"

// CheckConsolePath reports whether p can be a Config.ConsolePath: an
// absolute path that ends with '/', longer than "/", of printable ASCII
// without '%', '?', '#' or "//" (it is compared with the decoded path).
func CheckConsolePath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || len(p) < 2:
		return fmt.Errorf("console path %q: want a path that begins and ends with '/', such as %q", p, DefaultConsolePath)
	case strings.ContainsAny(p, "%?#") || strings.Contains(p, "//"):
		return fmt.Errorf("console path %q: must not contain '%%', '?', '#' or '//'", p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return fmt.Errorf("console path %q: only printable ASCII without spaces", p)
		}
	}
	return nil
}

// console answers the requests under the console prefix on the proxied
// site, which never reach the upstream. It is a small mux: each feature
// registers the sub-paths it serves (handle), in New; any other path under
// the prefix, and the prefix without its trailing slash, answers 404.
//
// The browser endpoint (browser.go) registers flags.json and waffle.js; the
// flags console registers "" (the prefix itself) and me.json beside them.
type console struct {
	prefix   string
	routes   map[string]http.Handler // by the path after the prefix
	requests *prometheus.CounterVec
}

// newConsole returns a console for prefix ("" means DefaultConsolePath)
// whose counter goes to reg.
func newConsole(prefix string, reg prometheus.Registerer) (*console, error) {
	if prefix == "" {
		prefix = DefaultConsolePath
	}
	if err := CheckConsolePath(prefix); err != nil {
		return nil, err
	}
	c := &console{prefix: prefix, routes: map[string]http.Handler{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagproxy_console_requests_total",
			Help: "Requests answered by flagproxy itself under the console path, by the path served (other: no such path) and status code.",
		}, []string{"path", "code"})}
	if err := reg.Register(c.requests); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

// handle serves sub (the path after the prefix, "" for the prefix itself)
// with h. It must be called before the proxy serves.
func (c *console) handle(sub string, h http.Handler) {
	if _, dup := c.routes[sub]; dup {
		panic("proxy: console path registered twice: " + sub)
	}
	c.routes[sub] = h
}

// under reports whether the decoded request path is under the prefix (or
// is the prefix without its trailing slash), as Django would route it.
func (c *console) under(path string) bool {
	return strings.HasPrefix(path, c.prefix) || path == c.prefix[:len(c.prefix)-1]
}

// intercept sends the requests under the prefix to the console and every
// other request to next.
func (c *console) intercept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.under(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		c.ServeHTTP(w, r)
	})
}

// ServeHTTP answers a request under the prefix.
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sub, ok := strings.CutPrefix(r.URL.Path, c.prefix)
	h := c.routes[sub]
	label := sub
	if !ok || h == nil {
		label, h = "other", http.HandlerFunc(notFound)
	}
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	h.ServeHTTP(rec, r)
	if rec.code == http.StatusNotFound {
		label = "other" // a path answered as if it did not exist
	}
	c.requests.WithLabelValues(label, fmt.Sprint(rec.code)).Inc()
}

// notFound answers 404 in plain text; its answer is the same for everyone.
func notFound(w http.ResponseWriter, _ *http.Request) {
	plainError(w, http.StatusNotFound, "not found")
}

// plainError writes a short plain-text error that no cache keeps.
func plainError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// onlyGet answers 405 for methods other than GET and HEAD, and reports
// whether the request may go on.
func onlyGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	plainError(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the writer underneath.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// errNoPatterns is returned by newNameMatcher for an empty pattern.
var errNoPatterns = errors.New("empty pattern")
