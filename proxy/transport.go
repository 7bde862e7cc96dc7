package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultUpstreamIdleTimeout closes idle upstream connections before
// gunicorn's keep-alive (2 s) would, so flagproxy never sends a request on
// a connection the server is closing.
const DefaultUpstreamIdleTimeout = time.Second

// unusedConnTimeout closes an upstream connection that carried no request
// this long after it was dialled: net/http pools the connection it dialled
// for a request that was canceled meanwhile, and gunicorn's sync and
// gthread workers would wait on it for a request that never comes.
const unusedConnTimeout = 200 * time.Millisecond

// newTransport clones http.DefaultTransport (never changing it) and sets
// the timeouts and the idle pool of a reverse proxy to one upstream.
func newTransport(responseHeaderTimeout, idleTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newReapedConn(c, unusedConnTimeout), nil
	}
	t.ResponseHeaderTimeout = responseHeaderTimeout
	t.IdleConnTimeout = idleTimeout
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	// Forward Accept-Encoding as the client sent it: Django must not see a
	// gzip preference the client never stated.
	t.DisableCompression = true
	// A request goes out in one write when its header fits: the flags
	// header of a site with 1,000 flags is 5 to 10 KB, which the default
	// 4 KiB buffer sent in several writes (measured with the bench
	// harness: a bare proxy adding 10.6 KB of header served 20-25 % more
	// requests a second with a 32 KiB buffer). 16 KiB holds that and a
	// long Cookie header, at half the memory an idle connection keeps.
	t.WriteBufferSize = upstreamWriteBuffer
	return t
}

// upstreamWriteBuffer is the write buffer of an upstream connection.
const upstreamWriteBuffer = 16 << 10

// reapedConn is an upstream connection that closes itself when nothing is
// written on it within a grace period after the dial.
type reapedConn struct {
	net.Conn
	once  sync.Once
	timer *time.Timer
}

func newReapedConn(c net.Conn, grace time.Duration) *reapedConn {
	rc := &reapedConn{Conn: c}
	rc.timer = time.AfterFunc(grace, func() { rc.Conn.Close() })
	return rc
}

func (c *reapedConn) Write(p []byte) (int, error) {
	c.once.Do(func() { c.timer.Stop() })
	return c.Conn.Write(p)
}

func (c *reapedConn) Close() error {
	c.timer.Stop()
	return c.Conn.Close()
}

// responseRequest makes sure every response carries its request, which
// ModifyResponse reads the decisions' cookies from, whatever transport is
// configured.
type responseRequest struct{ rt http.RoundTripper }

func (t responseRequest) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.rt.RoundTrip(r)
	if res != nil && res.Request == nil {
		res.Request = r
	}
	return res, err
}

// bufferPool recycles ReverseProxy's copy buffers, which are otherwise
// allocated (32 KiB) for every response body. It pools array pointers, so
// that Put, which gets a slice back, allocates nothing.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[copyBufferSize]byte); ok {
		return p[:]
	}
	return new([copyBufferSize]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == copyBufferSize && cap(buf) == copyBufferSize {
		b.pool.Put((*[copyBufferSize]byte)(buf))
	}
}
