// Command upstream is the benchmark's stand-in for Django: it answers every
// request with the same small page, and counts how many requests arrived
// with flagproxy's header for a logged-in visitor.
//
// Every -sample-th request's X-Flagproxy-Flags is decoded with proxy.Decode
// and the flag named by -logged-in-flag (on only for authenticated
// visitors) tells a logged-in visitor from an anonymous one. Decoding
// 1,000 flags costs the upstream, which shares its CPU with the load
// generator, far more than answering: every 64th request keeps that from
// throttling the load (one in 8 cost the upstream 90 us a request in
// scenario (b), twice what it spent answering). The size of the last
// request's X-Flagproxy-* headers tells the harness how many bytes
// flagproxy adds to a request. GET /__bench/stats returns the counts (and
// that size) since the last POST /__bench/reset.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flagproxy/flagproxy/proxy"
)

// page is the body every proxied request gets: a small HTML page.
var page = []byte("<!doctype html><html><head><title>bench</title></head><body>" +
	strings.Repeat("<p>flagproxy benchmark page</p>", 8) + "</body></html>\n")

// Stats are the counts /__bench/stats reports.
type Stats struct {
	Requests  int64 `json:"requests"`
	Sampled   int64 `json:"sampled"`
	LoggedIn  int64 `json:"logged_in"`
	Anonymous int64 `json:"anonymous"`
	NoHeader  int64 `json:"no_header"`
	Malformed int64 `json:"malformed"`
	// FlagsBytes is the size on the wire of the X-Flagproxy-* headers of
	// the most recent sampled request.
	FlagsBytes int64 `json:"flags_bytes"`
}

type server struct {
	flag   string
	sample int64

	requests, sampled, loggedIn, anonymous, noHeader, malformed, flagsBytes atomic.Int64
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/__bench/") {
		s.admin(w, r)
		return
	}
	n := s.requests.Add(1)
	s.flagsBytes.Store(flagsBytes(r.Header))
	if n%s.sample == 0 {
		s.sampled.Add(1)
		p, err := proxy.Decode(r.Header)
		switch {
		case errors.Is(err, proxy.ErrNoFlagsHeader):
			s.noHeader.Add(1)
		case err != nil:
			s.malformed.Add(1)
		case p.Flags[s.flag]:
			s.loggedIn.Add(1)
		default:
			s.anonymous.Add(1)
		}
	}
	h := w.Header()
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(page))}
	w.Write(page)
}

// flagsBytes is the size of h's X-Flagproxy-* headers as they were
// written: each line is the name, ": ", the value and CRLF.
func flagsBytes(h http.Header) int64 {
	var n int64
	for name, values := range h {
		if !strings.HasPrefix(name, "X-Flagproxy-") {
			continue
		}
		for _, v := range values {
			n += int64(len(name) + len(v) + 4)
		}
	}
	return n
}

func (s *server) admin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/__bench/stats":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Stats{
			Requests: s.requests.Load(), Sampled: s.sampled.Load(), LoggedIn: s.loggedIn.Load(),
			Anonymous: s.anonymous.Load(), NoHeader: s.noHeader.Load(), Malformed: s.malformed.Load(),
			FlagsBytes: s.flagsBytes.Load(),
		})
	case "/__bench/reset":
		for _, c := range []*atomic.Int64{&s.requests, &s.sampled, &s.loggedIn, &s.anonymous, &s.noHeader, &s.malformed, &s.flagsBytes} {
			c.Store(0)
		}
	default:
		http.NotFound(w, r)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`address` to listen on")
	flagName := flag.String("logged-in-flag", "bench_logged_in", "waffle flag that is on only for logged-in visitors")
	sample := flag.Int64("sample", 64, "decode the flags header of every `n`th request")
	flag.Parse()
	if *sample < 1 {
		log.Fatal("-sample must be at least 1")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           &server{flag: *flagName, sample: *sample},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
	// The parent reads the bound address from the first line.
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
