package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestServerSentEventsStream(t *testing.T) {
	finish := make(chan struct{})
	hs := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, ev := range []string{"data: one\n\n", "data: two\n\n"} {
			_, _ = io.WriteString(w, ev)
			if err := rc.Flush(); err != nil {
				t.Errorf("backend flush: %v", err)
			}
		}
		select {
		case <-finish:
		case <-r.Context().Done():
		}
	})
	res, err := hs.frontend.Client().Get(hs.frontend.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got := make(chan []string, 1)
	go func() {
		br := bufio.NewReader(res.Body)
		var lines []string
		for len(lines) < 2 {
			l, err := br.ReadString('\n')
			if err != nil {
				break
			}
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		got <- lines
	}()
	select {
	case lines := <-got:
		if strings.Join(lines, "|") != "data: one|data: two" {
			t.Errorf("events = %q", lines)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events did not arrive while the backend was still streaming")
	}
	close(finish)
}

func TestWebSocketUpgrade(t *testing.T) {
	hs := newHarness(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get(FlagsHeader) == "" {
			http.Error(w, "want a websocket upgrade with flags", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("backend hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		for {
			l, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString("echo " + l)
			_ = brw.Flush()
		}
	})
	conn, err := net.Dial("tcp", hs.frontend.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: django.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Flagproxy-Flags: evil\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %d, want 101", res.StatusCode)
	}
	if got := testutil.ToFloat64(hs.proxy.metrics.inFlight); got != 1 {
		t.Errorf("in-flight = %v during the upgraded connection, want 1", got)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l != "echo "+msg {
			t.Errorf("read %q, want %q", l, "echo "+msg)
		}
	}
	if v := hs.backend.last(t).Header.Get(FlagsHeader); v != unavailableJSON {
		t.Errorf("upgrade request carried %q, want our header", v)
	}
}
