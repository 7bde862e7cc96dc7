package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The harness applies notify.py's own DDL: its literals must still parse.
func TestReadNotifyPy(t *testing.T) {
	sql, err := readNotifyPy(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct{ got, sub string }{
		"FUNCTION_SQL":      {sql.function, "pg_notify('flagproxy_flags'"},
		"TRIGGER_SQL":       {sql.trigger, "{table}"},
		"DROP_TRIGGER_SQL":  {sql.dropTrigger, "{table}"},
		"DROP_FUNCTION_SQL": {sql.dropFunction, "flagproxy_notify()"},
		"ANNOUNCE_SQL":      {sql.announce, "flagproxy-triggers"},
	} {
		if !strings.Contains(want.got, want.sub) {
			t.Errorf("%s = %q, want it to contain %q", name, want.got, want.sub)
		}
	}
}

// pgMessage is one typed frontend message.
func pgMessage(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// The relay counts what a client sends and passes every byte through.
func TestWireCounter(t *testing.T) {
	server, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := server.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	w, err := newWireCounter(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", server.Addr().String())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	startup := make([]byte, 8)
	binary.BigEndian.PutUint32(startup[0:], 8)
	binary.BigEndian.PutUint32(startup[4:], 196608) // protocol 3.0, no parameters
	var sent []byte
	sent = append(sent, startup...)
	for _, m := range [][]byte{
		pgMessage('Q', "SELECT 1\x00"),
		pgMessage('Q', "\x00"),
		pgMessage('Q', "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY\x00"),
		pgMessage('P', "\x00SELECT $1\x00\x00\x00"),
		pgMessage('E', "\x00\x00\x00\x00\x00"),
		pgMessage('S', ""),
		pgMessage('Q', "rollback\x00"),
		pgMessage('Q', "LISTEN flagproxy_flags\x00"),
		pgMessage('X', ""),
	} {
		sent = append(sent, m...)
	}
	c, err := net.Dial("tcp", w.addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(sent); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	select {
	case b := <-got:
		if string(b) != string(sent) {
			t.Errorf("the server got %d bytes, want the %d sent", len(b), len(sent))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the server")
	}
	c.Close()
	s := w.snapshot()
	want := wireSnapshot{Connects: 1, Simple: 1, Empty: 1, TxControl: 2, Listen: 1, Execute: 1, ToServer: int64(len(sent))}
	s.ToClient = 0
	if s != want {
		t.Errorf("counts %+v, want %+v", s, want)
	}
	if s.Statements() != 6 {
		t.Errorf("Statements() = %d, want 6", s.Statements())
	}
}

func TestPct(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 20; i++ {
		v = append(v, time.Duration(21-i)*time.Millisecond)
	}
	if got := pct(v, 0.5); got != 10*time.Millisecond {
		t.Errorf("p50 = %v, want 10ms (nearest rank)", got)
	}
	if got := pct(v, 0.99); got != 20*time.Millisecond {
		t.Errorf("p99 of 20 = %v, want the largest", got)
	}
	if got := pct(nil, 0.5); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}
