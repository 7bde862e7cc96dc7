package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// wireCounter relays PostgreSQL connections from a loopback port to the
// server and counts what the clients (the proxies) send: PostgreSQL has no
// statement counter of its own without pg_stat_statements in
// shared_preload_libraries, which the harness may not configure. Only the
// frontend-to-backend direction is parsed; the other is copied as is.
type wireCounter struct {
	ln     net.Listener
	dial   func(ctx context.Context) (net.Conn, error)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool

	c wireCounts
}

// wireCounts are the counters; read them with snapshot.
type wireCounts struct {
	connects  atomic.Int64 // connections accepted
	simple    atomic.Int64 // 'Q' messages with a statement
	empty     atomic.Int64 // 'Q' with an empty string: lib/pq's Listener.Ping
	txControl atomic.Int64 // 'Q' BEGIN / COMMIT / ROLLBACK / START / END
	listen    atomic.Int64 // 'Q' LISTEN / UNLISTEN
	execute   atomic.Int64 // 'E' messages (extended protocol: one per statement)
	toServer  atomic.Int64 // bytes
	toClient  atomic.Int64 // bytes
}

// wireSnapshot is a copy of the counters at one time.
type wireSnapshot struct {
	Connects, Simple, Empty, TxControl, Listen, Execute, ToServer, ToClient int64
}

func (w *wireCounter) snapshot() wireSnapshot {
	return wireSnapshot{
		Connects: w.c.connects.Load(), Simple: w.c.simple.Load(), Empty: w.c.empty.Load(),
		TxControl: w.c.txControl.Load(), Listen: w.c.listen.Load(), Execute: w.c.execute.Load(),
		ToServer: w.c.toServer.Load(), ToClient: w.c.toClient.Load(),
	}
}

func (a wireSnapshot) sub(b wireSnapshot) wireSnapshot {
	return wireSnapshot{a.Connects - b.Connects, a.Simple - b.Simple, a.Empty - b.Empty, a.TxControl - b.TxControl,
		a.Listen - b.Listen, a.Execute - b.Execute, a.ToServer - b.ToServer, a.ToClient - b.ToClient}
}

// Statements is every message that makes the server run something: simple
// queries (including BEGIN/COMMIT, LISTEN and the empty pings) and
// extended-protocol executions.
func (a wireSnapshot) Statements() int64 {
	return a.Simple + a.Empty + a.TxControl + a.Listen + a.Execute
}

// newWireCounter listens on a loopback port and relays to the server dial
// reaches.
func newWireCounter(dial func(ctx context.Context) (net.Conn, error)) (*wireCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w := &wireCounter{ln: ln, dial: dial, conns: map[net.Conn]bool{}}
	w.wg.Go(w.accept)
	return w, nil
}

func (w *wireCounter) addr() string { return w.ln.Addr().String() }

func (w *wireCounter) accept() {
	for {
		c, err := w.ln.Accept()
		if err != nil {
			return
		}
		w.c.connects.Add(1)
		w.wg.Go(func() { w.relay(c) })
	}
}

// track remembers c so that close can end it; false once closed.
func (w *wireCounter) track(c net.Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.conns[c] = true
	return true
}

func (w *wireCounter) untrack(c net.Conn) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
}

// close stops accepting, ends every relayed connection and waits.
func (w *wireCounter) close() {
	w.ln.Close()
	w.mu.Lock()
	w.closed = true
	for c := range w.conns {
		c.Close()
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *wireCounter) relay(client net.Conn) {
	defer client.Close()
	if !w.track(client) {
		return
	}
	defer w.untrack(client)
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	server, err := w.dial(ctx)
	cancel()
	if err != nil {
		return
	}
	defer server.Close()
	if !w.track(server) {
		return
	}
	defer w.untrack(server)
	done := make(chan struct{})
	go func() {
		io.Copy(countingWriter{client, &w.c.toClient}, server)
		// The server closed: end the client side too.
		client.Close()
		close(done)
	}()
	w.frontend(bufio.NewReaderSize(client, 32<<10), server)
	server.Close()
	<-done
}

// Codes of the untyped messages a connection may start with.
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

// frontend copies the client's messages to the server, counting them,
// until either side fails.
func (w *wireCounter) frontend(r *bufio.Reader, server net.Conn) {
	write := func(b []byte) error {
		_, err := server.Write(b)
		w.c.toServer.Add(int64(len(b)))
		return err
	}
	// The startup phase: untyped messages (length, then a code). An SSL or
	// GSS encryption request is answered by one byte the server sends us;
	// the harness connects with sslmode=disable, so any answer other than
	// "N" means the rest cannot be parsed: it is then copied as it is.
	for {
		msg, err := readUntyped(r)
		if err != nil {
			return
		}
		if err := write(msg); err != nil {
			return
		}
		code := binary.BigEndian.Uint32(msg[4:8])
		if code == cancelRequestCode {
			io.Copy(io.Discard, r)
			return
		}
		if code == sslRequestCode || code == gssEncRequestCode {
			// The server's one-byte answer is relayed by the other
			// goroutine; the client then sends its startup message, or
			// (on 'S'/'G') a TLS handshake, which we cannot parse.
			b, err := r.Peek(1)
			if err != nil {
				return
			}
			if b[0] == 0x16 { // a TLS record: copy blindly
				n, _ := io.Copy(server, r)
				w.c.toServer.Add(n)
				return
			}
			continue
		}
		break // the startup message
	}
	var hdr [5]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:5])) - 4
		if n < 0 || n > 1<<30 {
			return
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch hdr[0] {
		case 'Q':
			w.countQuery(body)
		case 'E':
			w.c.execute.Add(1)
		}
		if err := write(hdr[:]); err != nil {
			return
		}
		if err := write(body); err != nil {
			return
		}
	}
}

// countQuery classifies the text of one simple query.
func (w *wireCounter) countQuery(body []byte) {
	q := strings.TrimSpace(strings.TrimRight(string(body), "\x00"))
	word := strings.ToUpper(q)
	if i := strings.IndexAny(word, " \t\n;"); i >= 0 {
		word = word[:i]
	}
	switch word {
	case "":
		w.c.empty.Add(1)
	case "BEGIN", "START", "COMMIT", "END", "ROLLBACK":
		w.c.txControl.Add(1)
	case "LISTEN", "UNLISTEN":
		w.c.listen.Add(1)
	default:
		w.c.simple.Add(1)
	}
}

// readUntyped reads one startup-phase message: an int32 length that
// includes itself, then the rest.
func readUntyped(r *bufio.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(l[:]))
	if n < 8 || n > 10000 {
		return nil, errors.New("bad startup message length")
	}
	msg := make([]byte, n)
	copy(msg, l[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// countingWriter counts the bytes written through it as they go.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
