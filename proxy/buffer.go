package proxy

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the buffering fields of Config.
const (
	// DefaultMaxBodySize bounds a request body; a larger one is answered
	// 413 without reaching Django.
	DefaultMaxBodySize = 100 << 20
	// DefaultBodyReadTimeout is how long a client may leave the request
	// body idle between two reads (nginx's client_body_timeout).
	DefaultBodyReadTimeout = 60 * time.Second
	// DefaultBufferMemory is how much of one body (request or response)
	// is held in memory before the rest goes to a temporary file.
	DefaultBufferMemory = 256 << 10
	// DefaultSendTimeout is how long one write of a buffered response to
	// the client may take (nginx's send_timeout).
	DefaultSendTimeout = 60 * time.Second
	// DefaultMaxResponseFile bounds the temporary file of one response
	// (nginx's proxy_max_temp_file_size); the rest of a larger response
	// streams from the upstream at the client's pace.
	DefaultMaxResponseFile = 1 << 30
)

// buffering holds how bodies are buffered; see Config.
type buffering struct {
	maxBody         int64
	bodyReadTimeout time.Duration
	memory          int64
	maxFile         int64
	sendTimeout     time.Duration
	dir             string
	pool            sync.Pool // *bytes.Buffer
}

// spool reads src into memory up to b.memory bytes, then into a temporary
// file, up to limit bytes in all (limit < 0: no limit). It returns the
// bytes as a body that removes its file when closed, and whether src held
// more than limit (the rest is then still in src).
func (b *buffering) spool(src io.Reader, limit int64) (*spooled, bool, error) {
	s := &spooled{owner: b}
	buf, _ := b.pool.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	s.buf = buf
	memLimit := b.memory
	if limit >= 0 && limit < memLimit {
		memLimit = limit
	}
	n, err := buf.ReadFrom(io.LimitReader(src, memLimit+1))
	if err != nil {
		s.Close()
		return nil, false, err
	}
	if n <= memLimit {
		s.size = n
		s.rewind()
		return s, false, nil
	}
	return s.toFile(src, limit)
}

// toFile moves what is in memory to a temporary file and copies the rest of
// src after it.
func (s *spooled) toFile(src io.Reader, limit int64) (*spooled, bool, error) {
	f, err := os.CreateTemp(s.owner.dir, "flagproxy-body-*")
	if err != nil {
		s.Close()
		return nil, false, err
	}
	s.file = f
	n, err := s.buf.WriteTo(f)
	if err == nil {
		rest := src
		if limit >= 0 {
			rest = io.LimitReader(src, limit-n+1)
		}
		var m int64
		m, err = io.Copy(f, rest)
		n += m
	}
	if err != nil {
		s.Close()
		return nil, false, err
	}
	over := limit >= 0 && n > limit
	if over {
		n = limit
		err = f.Truncate(n)
	}
	s.size = n
	if err == nil {
		err = s.rewind()
	}
	if err != nil {
		s.Close()
		return nil, false, err
	}
	return s, over, nil
}

// spooled is a buffered body: in memory, or in a temporary file that
// Close removes.
type spooled struct {
	owner *buffering
	buf   *bytes.Buffer
	file  *os.File
	size  int64
	r     io.Reader
	mem   bytes.Reader // r when the body is in memory
}

// rewind makes the body readable from its start.
func (s *spooled) rewind() error {
	if s.file == nil {
		s.mem.Reset(s.buf.Bytes()[:s.size])
		s.r = &s.mem
		return nil
	}
	_, err := s.file.Seek(0, io.SeekStart)
	s.r = io.LimitReader(s.file, s.size)
	return err
}

func (s *spooled) Read(p []byte) (int, error) { return s.r.Read(p) }

// Close releases the memory and removes the file. It may be called more
// than once.
func (s *spooled) Close() error {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
	if s.buf != nil && s.owner != nil {
		if s.buf.Cap() <= int(2*s.owner.memory) {
			s.owner.pool.Put(s.buf)
		}
		s.buf = nil
	}
	s.r = eofReader{}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// reopen returns a new reader of the same bytes, for a retried request
// (Request.GetBody); the spooled body stays owned by the handler.
func (s *spooled) reopen() (io.ReadCloser, error) {
	if s.file == nil {
		if s.buf == nil {
			return nil, errors.New("body already released")
		}
		return io.NopCloser(bytes.NewReader(s.buf.Bytes()[:s.size])), nil
	}
	f, err := os.Open(s.file.Name())
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, s.size), f}, nil
}

// bufferRequest reads the request body from the client before the upstream
// is involved, so that a slow client holds a goroutine of flagproxy and
// never a worker of Django: at most maxBody bytes (413 beyond), with at
// most bodyReadTimeout between two reads (408), in memory up to memory
// bytes and then in a temporary file.
func (p *Proxy) bufferRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PRI" {
			// An HTTP/2 connection preface sent to an HTTP/1 server: never
			// Django's to answer.
			http.Error(w, http.StatusText(http.StatusHTTPVersionNotSupported), http.StatusHTTPVersionNotSupported)
			return
		}
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > p.buf.maxBody {
			p.refuseBody(w, r, http.StatusRequestEntityTooLarge, nil)
			return
		}
		body, status, err := p.readBody(w, r)
		if body == nil {
			p.refuseBody(w, r, status, err)
			return
		}
		defer body.Close()
		r.Body, r.ContentLength, r.TransferEncoding = body, body.size, nil
		r.GetBody = body.reopen
		next.ServeHTTP(w, r)
	})
}

// readBody spools r's body with the idle deadline; on failure it returns
// the status to answer.
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request) (*spooled, int, error) {
	rc := http.NewResponseController(w)
	src := &idleDeadline{r: r.Body, rc: rc, timeout: p.buf.bodyReadTimeout}
	body, over, err := p.buf.spool(src, p.buf.maxBody)
	_ = rc.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case err == nil && over:
		body.Close()
		return nil, http.StatusRequestEntityTooLarge, nil
	case errors.As(err, &ne) && ne.Timeout():
		return nil, http.StatusRequestTimeout, err
	case err != nil:
		return nil, http.StatusBadRequest, err
	}
	return body, 0, nil
}

// refuseBody answers a request whose body flagproxy would not buffer, and
// closes the connection (the rest of the body is not read).
func (p *Proxy) refuseBody(w http.ResponseWriter, r *http.Request, status int, err error) {
	p.metrics.bodiesRefused.WithLabelValues(strconv.Itoa(status)).Inc()
	p.logger.LogAttrs(r.Context(), slog.LevelDebug, "request body refused",
		slog.Int("status", status), slog.Any("error", err))
	w.Header().Set("Connection", "close")
	http.Error(w, http.StatusText(status), status)
}

// idleDeadline moves the connection's read deadline before every read, so
// that a client may take as long as it likes in all but may not stall.
type idleDeadline struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *idleDeadline) Read(p []byte) (int, error) {
	// Not every ResponseWriter supports deadlines (tests' recorders); the
	// body is then read without one.
	_ = d.rc.SetReadDeadline(time.Now().Add(d.timeout))
	return d.r.Read(p)
}

// streams reports whether a response must reach the client as it comes:
// a protocol switch, server-sent events, a response without a body, or one
// whose upstream asked for no buffering with X-Accel-Buffering: no (which
// is removed, as nginx removes it).
func streams(res *http.Response) bool {
	if v := firstValue(res.Header, "X-Accel-Buffering"); v != "" {
		res.Header.Del("X-Accel-Buffering")
		if v == "no" {
			return true
		}
	}
	if res.StatusCode == http.StatusSwitchingProtocols || res.Body == nil || res.Body == http.NoBody ||
		res.ContentLength == 0 || res.Request != nil && res.Request.Method == http.MethodHead {
		return true
	}
	return isEventStream(firstValue(res.Header, "Content-Type"))
}

// isEventStream reports whether a Content-Type is text/event-stream, with
// or without parameters (mime.ParseMediaType's answer, without its
// allocations).
func isEventStream(ct string) bool {
	const es = "text/event-stream"
	if len(ct) < len(es) || !strings.EqualFold(ct[:len(es)], es) {
		return false
	}
	rest := strings.TrimLeft(ct[len(es):], " \t")
	return rest == "" || rest[0] == ';'
}

// heldByServerMax is the most body net/http's server keeps in its buffer
// before it writes to the client: a handler's writes go to a 2 KiB buffer,
// sent when the handler returns (ReverseProxy flushes sooner only for
// streams, which are not buffered).
const heldByServerMax = 2 << 10

// heldByServer reports whether a response is small enough, by its
// Content-Length, that its whole body is read from the upstream (which is
// then free) before a byte of it goes to the client: spooling it would
// only copy it once more (about 1.4 µs a request, measured with perf on
// the bench harness's scenario a).
func heldByServer(res *http.Response) bool {
	return res.ContentLength >= 0 && res.ContentLength <= heldByServerMax
}

// bufferResponse reads the response body from the upstream at once, into
// memory and then a temporary file of at most maxFile bytes, so that the
// upstream connection (and the Django worker behind it) is free however
// slowly the client reads. A body larger than maxFile streams its rest.
func (p *Proxy) bufferResponse(res *http.Response) error {
	if streams(res) || heldByServer(res) {
		return nil
	}
	limit := p.buf.memory + p.buf.maxFile
	body, over, err := p.buf.spool(res.Body, limit)
	if err != nil {
		return err
	}
	if over {
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(body, res.Body), closeBoth{body, res.Body}}
		return nil
	}
	res.Body.Close()
	res.Body = body
	if res.Request != nil {
		if ex := exchangeOf(res.Request.Context()); ex != nil {
			ex.sendTimeout = p.buf.sendTimeout
		}
	}
	if res.ContentLength < 0 && len(res.Trailer) == 0 {
		res.ContentLength = body.size
		res.Header.Set("Content-Length", strconv.FormatInt(body.size, 10))
		res.TransferEncoding = nil
	}
	return nil
}

type closeBoth [2]io.Closer

func (c closeBoth) Close() error {
	c[0].Close()
	return c[1].Close()
}
