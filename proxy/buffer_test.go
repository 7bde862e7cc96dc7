package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// echoBody is an upstream that answers with the length and digest of the
// request body it got, and its Content-Length and Transfer-Encoding.
func echoBody(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	fmt.Fprintf(w, "%d %x cl=%d te=%v", len(b), sha256.Sum256(b), r.ContentLength, r.TransferEncoding)
}

// post sends body through the proxy with the given length (-1: chunked).
func (hs *harness) post(t *testing.T, body io.Reader, length int64) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hs.frontend.URL+"/upload", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	res, err := hs.frontend.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestRequestBodiesAreBuffered: a body reaches Django whole, with a
// Content-Length even when the client sent it chunked, from memory or from
// a temporary file that is removed afterwards.
func TestRequestBodiesAreBuffered(t *testing.T) {
	dir := t.TempDir()
	hs := newHarness(t, Config{BufferMemory: 1 << 10, BufferDir: dir}, echoBody)
	for _, n := range []int{1, 1 << 10, 1<<10 + 1, 3 << 20} {
		for _, chunked := range []bool{false, true} {
			body := bytes.Repeat([]byte("flagproxy"), n)[:n]
			length := int64(n)
			if chunked {
				length = -1
			}
			res, got := hs.post(t, bytes.NewReader(body), length)
			want := fmt.Sprintf("%d %x cl=%d te=[]", n, sha256.Sum256(body), n)
			if res.StatusCode != 200 || got != want {
				t.Errorf("%d bytes (chunked %v): %d %q, want %q", n, chunked, res.StatusCode, got, want)
			}
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestOversizeBodyIs413: beyond MaxBodySize the client gets 413 and the
// upstream nothing, whether the length was announced or not.
func TestOversizeBodyIs413(t *testing.T) {
	hs := newHarness(t, Config{MaxBodySize: 1000, BufferMemory: 100, BufferDir: t.TempDir()}, echoBody)
	for _, length := range []int64{1001, -1} {
		res, _ := hs.post(t, bytes.NewReader(make([]byte, 1001)), length)
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("length %d: status %d, want 413", length, res.StatusCode)
		}
	}
	if res, _ := hs.post(t, bytes.NewReader(make([]byte, 1000)), -1); res.StatusCode != 200 {
		t.Errorf("a body of exactly the limit: status %d", res.StatusCode)
	}
	hs.backend.mu.Lock()
	n := len(hs.backend.reqs)
	hs.backend.mu.Unlock()
	if n != 1 {
		t.Errorf("upstream saw %d requests, want only the one within the limit", n)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.bodiesRefused.WithLabelValues("413")); got != 2 {
		t.Errorf("bodies refused with 413 = %v, want 2", got)
	}
}

// TestStalledBodyIs408: a client that stops sending its body is answered
// 408 after BodyReadTimeout, and Django never sees the request.
func TestStalledBodyIs408(t *testing.T) {
	hs := newHarness(t, Config{BodyReadTimeout: 200 * time.Millisecond}, echoBody)
	conn, err := net.Dial("tcp", hs.frontend.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "POST /upload HTTP/1.1\r\nHost: django.test\r\nContent-Length: 100\r\n\r\nonly part of it")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", res.StatusCode)
	}
	hs.backend.mu.Lock()
	defer hs.backend.mu.Unlock()
	if len(hs.backend.reqs) != 0 {
		t.Errorf("upstream saw %d requests", len(hs.backend.reqs))
	}
}

// TestResponseIsBufferedForSlowReaders: the upstream's handler finishes
// (its worker is free) while the client has not read a byte of the
// response, chunked or of known length, small or large; the client then
// gets it whole. (A small body of known length is not spooled: net/http
// holds it; see TestSmallBodiesNotSpooled.)
func TestResponseIsBufferedForSlowReaders(t *testing.T) {
	for _, c := range []struct {
		size  int
		sized bool // with a Content-Length; else chunked
	}{{4 << 20, false}, {100, true}, {heldByServerMax, true}, {heldByServerMax + 1, true}, {4 << 20, true}} {
		t.Run(fmt.Sprintf("%d-sized-%v", c.size, c.sized), func(t *testing.T) {
			done := make(chan struct{})
			hs := newHarness(t, Config{BufferMemory: 64 << 10, BufferDir: t.TempDir()}, func(w http.ResponseWriter, r *http.Request) {
				defer close(done)
				if c.sized {
					w.Header().Set("Content-Length", strconv.Itoa(c.size))
				}
				_, _ = w.Write(bytes.Repeat([]byte("x"), c.size))
			})
			conn, err := net.Dial("tcp", hs.frontend.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprint(conn, rawRequest("/big"))
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream is still writing to a client that does not read")
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			if err != nil || len(b) != c.size || res.ContentLength != int64(c.size) {
				t.Errorf("got %d bytes (Content-Length %d), %v; want %d", len(b), res.ContentLength, err, c.size)
			}
		})
	}
}

// TestSmallBodiesNotSpooled: a body of known length that net/http's buffer
// holds is left as it came; a longer one, or one of unknown length, is
// spooled.
func TestSmallBodiesNotSpooled(t *testing.T) {
	hs := newHarness(t, Config{BufferMemory: 64 << 10, BufferDir: t.TempDir()}, nil)
	for _, c := range []struct {
		length  int64
		spooled bool
	}{{0, false}, {100, false}, {heldByServerMax, false}, {heldByServerMax + 1, true}, {-1, true}} {
		n := max(c.length, 10)
		body := io.NopCloser(strings.NewReader(strings.Repeat("x", int(n))))
		res := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body, ContentLength: c.length}
		if err := hs.proxy.bufferResponse(res); err != nil {
			t.Fatal(err)
		}
		if spooled := res.Body != body; spooled != c.spooled {
			t.Errorf("Content-Length %d: spooled %v, want %v", c.length, spooled, c.spooled)
		}
		res.Body.Close()
	}
}

// TestSendTimeoutFreesTheBuffer: a client that stops reading a buffered
// response is cut off after SendTimeout, and its buffer file goes; a
// server-sent event stream has no such limit.
func TestSendTimeoutFreesTheBuffer(t *testing.T) {
	dir := t.TempDir()
	hs := newHarness(t, Config{BufferMemory: 1 << 10, BufferDir: dir, SendTimeout: 200 * time.Millisecond},
		func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(bytes.Repeat([]byte("x"), 16<<20))
		})
	conn, err := net.Dial("tcp", hs.frontend.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, rawRequest("/big"))
	files := func() []string {
		f, _ := filepath.Glob(filepath.Join(dir, "flagproxy-body-*"))
		return f
	}
	waitUntil(t, "the response is buffered in a file", func() bool { return len(files()) == 1 })
	waitUntil(t, "the buffer file is removed after the send timeout", func() bool { return len(files()) == 0 })
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
	}
}

// TestNoBufferingWhenAsked: X-Accel-Buffering: no streams the response, as
// behind nginx, and the header does not reach the client.
func TestNoBufferingWhenAsked(t *testing.T) {
	finish := make(chan struct{})
	hs := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Buffering", "no")
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		<-finish
	})
	defer close(finish)
	res, err := hs.frontend.Client().Get(hs.frontend.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("X-Accel-Buffering") != "" {
		t.Error("X-Accel-Buffering reached the client")
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(res.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "first\n" {
			t.Errorf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first chunk did not arrive while the upstream was still writing")
	}
}

// TestOnlyWebSocketUpgradesPass: an h2c upgrade (and HTTP2-Settings)
// never reaches the upstream; a WebSocket one does (see stream_test.go).
func TestOnlyWebSocketUpgradesPass(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	for _, lines := range [][]string{
		{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"},
		{"Connection: upgrade", "Upgrade: h2c, websocket"},
		{"Connection: upgrade", "Upgrade: H2C"},
		{"Upgrade: h2c", "HTTP2-Settings: x"},
	} {
		hs.raw(t, rawRequest("/", lines...))
		h := hs.backend.last(t).Header
		for _, k := range []string{"Upgrade", "Http2-Settings"} {
			if v, ok := h[k]; ok {
				t.Errorf("%q: upstream got %s: %q", lines, k, v)
			}
		}
		if c := strings.ToLower(h.Get("Connection")); strings.Contains(c, "upgrade") {
			t.Errorf("%q: upstream got Connection: %s", lines, c)
		}
	}
}

// TestHTTP2PrefaceIsRefused: "PRI * HTTP/2.0" is answered 505 and never
// reaches the upstream.
func TestHTTP2PrefaceIsRefused(t *testing.T) {
	hs := newHarness(t, Config{}, nil)
	res := hs.raw(t, "PRI * HTTP/2.0\r\nHost: django.test\r\n\r\nSM\r\n\r\n")
	if res.StatusCode != http.StatusHTTPVersionNotSupported {
		t.Errorf("status %d, want 505", res.StatusCode)
	}
	hs.backend.mu.Lock()
	defer hs.backend.mu.Unlock()
	if len(hs.backend.reqs) != 0 {
		t.Errorf("upstream saw %d requests", len(hs.backend.reqs))
	}
}

// TestUnusedUpstreamConnectionsClose: a connection nothing was written on
// closes after the grace period, one that carried a request does not.
func TestUnusedUpstreamConnectionsClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() (*reapedConn, net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return newReapedConn(c, 50*time.Millisecond), <-accepted
	}
	unused, unusedPeer := dial()
	used, usedPeer := dial()
	defer used.Close()
	if _, err := used.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	_ = unusedPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := unusedPeer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the server's side of an unused connection read %d, %v; want EOF", n, err)
	}
	_ = usedPeer.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := io.ReadFull(usedPeer, make([]byte, 3)); n != 3 {
		t.Errorf("the used connection delivered %d bytes", n)
	}
	if _, err := usedPeer.Read(make([]byte, 1)); !os.IsTimeout(err) {
		t.Errorf("the used connection was closed: %v", err)
	}
	unused.Close()
}

// FuzzBufferedBody checks the spool whatever the sizes: the bytes come back
// exactly, "over" is right, and no file is left behind.
func FuzzBufferedBody(f *testing.F) {
	f.Add(uint16(0), uint16(10), uint16(100), int16(-1))
	f.Add(uint16(11), uint16(10), uint16(100), int16(50))
	f.Add(uint16(500), uint16(1), uint16(3), int16(499))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, n, memory, chunk uint16, limit int16) {
		b := &buffering{memory: int64(memory), dir: dir}
		data := bytes.Repeat([]byte{0, 1, 2, 3, 255}, int(n)/5+1)[:n]
		src := &chunkReader{r: bytes.NewReader(data), n: int(chunk)%64 + 1}
		s, over, err := b.spool(src, int64(limit))
		if err != nil {
			t.Fatal(err)
		}
		want := data
		if limit >= 0 && int(limit) < len(data) {
			want = data[:limit]
		}
		if over != (limit >= 0 && int(limit) < len(data)) {
			t.Errorf("over = %v for %d bytes, limit %d", over, n, limit)
		}
		got, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("read back %d bytes, %v; want %d", len(got), err, len(want))
		}
		s.Close()
		if left, _ := filepath.Glob(filepath.Join(dir, "flagproxy-body-*")); len(left) != 0 {
			t.Errorf("files left: %v", left)
		}
	})
}

// chunkReader returns at most n bytes a read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}
