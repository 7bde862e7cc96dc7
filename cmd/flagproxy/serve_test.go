package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/djangodb"
)

// TestServeRunsAndShutsDown runs serve against a Django-schema SQLite
// database and an upstream that streams forever: the flags header arrives,
// /readyz turns ready, and cancelling the context stops everything within
// the grace period, with a nil error, although the stream never ends.
func TestServeRunsAndShutsDown(t *testing.T) {
	dbURL := siteDBWith(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ('s', 1, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);`)
	streaming := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: hello\n\n")
			w.(http.Flusher).Flush()
			close(streaming)
			<-r.Context().Done()
			return
		}
		io.WriteString(w, r.Header.Get("X-Flagproxy-Flags"))
	}))
	defer upstream.Close()

	c, err := parseConfig("serve", []string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--upstream", upstream.URL, "--database", dbURL, "--poll-interval", "100ms"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.shutdownGrace = 200 * time.Millisecond
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, log, func(p, a net.Addr) { addrs <- [2]net.Addr{p, a} }) }()
	a := <-addrs
	proxyURL, adminURL := "http://"+a[0].String(), "http://"+a[1].String()

	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(adminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within 5s; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(proxyURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"switches":{"s":true}`) || !strings.Contains(string(body), `"state":"ok"`) {
		t.Errorf("upstream saw flags %s", body)
	}

	stream, err := http.Get(proxyURL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	line, _ := bufio.NewReader(stream.Body).ReadString('\n')
	if line != "data: hello\n" {
		t.Errorf("stream line %q", line)
	}
	<-streaming

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v, want nil", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("shutdown took %v with a 200ms grace", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	if n := strings.Count(logs.String(), "flagproxy stopped"); n != 1 {
		t.Errorf("%q logged %d times", "flagproxy stopped", n)
	}
	if !strings.Contains(logs.String(), "closing their connections") {
		t.Errorf("no warning about the stream cut at shutdown; logs:\n%s", logs.String())
	}
}

// siteDBWith creates a Django database file with seed rows and returns its URL.
func siteDBWith(t *testing.T, seed string) string {
	t.Helper()
	path := t.TempDir() + "/db.sqlite3"
	if err := djangodb.CreateSQLite(t.Context(), path, seed); err != nil {
		t.Fatal(err)
	}
	return "sqlite:///" + path
}
