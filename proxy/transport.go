package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// newTransport clones http.DefaultTransport (never changing it) and sets
// the timeouts and the idle pool of a reverse proxy to one upstream.
func newTransport(responseHeaderTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = responseHeaderTimeout
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	// Forward Accept-Encoding as the client sent it: Django must not see a
	// gzip preference the client never stated.
	t.DisableCompression = true
	return t
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
// allocated (32 KiB) for every response body.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		b.pool.Put(&buf)
	}
}
