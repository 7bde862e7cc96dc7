// Command bareproxy is the benchmark's baseline: an httputil.ReverseProxy
// with nothing of flagproxy's, set up as flagproxy sets up its own (a
// cloned default transport with 64 idle connections to the upstream, a
// 16 KiB write buffer, so that a request whose header fits goes out in one
// write, and no Accept-Encoding of its own; X-Forwarded-* from
// SetXForwarded; pooled 32 KiB copy buffers), so the difference to
// flagproxy is what flagproxy adds.
//
// With -header-bytes N it also adds about N bytes of request headers to
// every proxied request, cut as flagproxy cuts a large flags value (values
// of at most 8000 bytes, as X-Bench-Pad-1, X-Bench-Pad-2, …): the harness
// sets N to the size of flagproxy's flags header, so that the difference
// to flagproxy is what deciding the flags costs, not carrying them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// bufferPool is httputil.BufferPool over sync.Pool.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// padPartSize is the longest pad value: flagproxy's PartSize.
const padPartSize = 8000

// padAlphabet is what pad values are made of: base64url letters, as in
// flagproxy's parts.
const padAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// pad is one extra request header. The value is a slice built once, so
// that adding it to a request allocates nothing.
type pad struct {
	name  string
	value []string
}

// pads cuts n bytes of header lines ("name: value\r\n") into headers
// X-Bench-Pad-1, X-Bench-Pad-2, … with values of at most padPartSize
// bytes. The last line is at least one byte of value long, so the total
// may pass n by a few bytes.
func pads(n int) []pad {
	var out []pad
	for i := 1; n > 0; i++ {
		name := "X-Bench-Pad-" + strconv.Itoa(i)
		size := max(1, min(padPartSize, n-len(name)-4))
		out = append(out, pad{name, []string{padValue(size)}})
		n -= len(name) + 4 + size
	}
	return out
}

func padValue(size int) string {
	s := strings.Repeat(padAlphabet, size/len(padAlphabet)+1)
	return s[:size]
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`address` to listen on")
	upstream := flag.String("upstream", "", "upstream `URL`")
	headerBytes := flag.Int("header-bytes", 0, "add about `n` bytes of request headers (X-Bench-Pad-*) to every proxied request")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		log.Fatalf("-upstream %q: want an absolute URL", *upstream)
	}
	if *headerBytes < 0 || *headerBytes > 1<<20 {
		log.Fatalf("-header-bytes %d: want 0 to 1 MiB", *headerBytes)
	}
	extra := pads(*headerBytes)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.WriteBufferSize = 16 << 10
	t.DisableCompression = true
	t.ResponseHeaderTimeout = 60 * time.Second
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
			for _, p := range extra {
				pr.Out.Header[p.name] = p.value
			}
		},
		Transport:  t,
		BufferPool: &bufferPool{},
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    128 << 10,
	}
	fmt.Println(ln.Addr().String())
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
