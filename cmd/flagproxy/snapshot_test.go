package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flagproxy/flagproxy/djangodb"
)

// startServe runs serve with args in front of an upstream that answers
// with the flags header it got, and returns the proxy's and admin's URLs;
// it stops when the test ends.
func startServe(t *testing.T, args ...string) (proxyURL, adminURL string) {
	t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Flagproxy-Flags"))
	}))
	t.Cleanup(upstream.Close)
	args = append([]string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--upstream", upstream.URL,
		"--poll-interval", "100ms"}, args...)
	c, err := parseConfig("serve", args, env(nil), io.Discard)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	c.shutdownGrace = 100 * time.Millisecond
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addrs := make(chan [2]net.Addr, 1)
	go func() {
		done <- serve(ctx, c, slog.New(slog.NewTextHandler(&logs, nil)), func(p, a net.Addr) { addrs <- [2]net.Addr{p, a} })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	select {
	case a := <-addrs:
		return "http://" + a[0].String(), "http://" + a[1].String()
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs.String())
	}
	return "", ""
}

// eventually polls url until its body contains want, for up to 5 s.
func eventually(t *testing.T, url, want string) string {
	t.Helper()
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = string(b); strings.Contains(body, want) {
			return body
		}
	}
	t.Fatalf("%s never answered with %s; last: %s", url, want, body)
	return ""
}

// TestSnapshotFileLifecycle: "flagproxy snapshot" writes a site's flags; a
// proxy whose database is unreachable serves them from --snapshot-file as
// stale; --database file:// serves them with no database; and a proxy with
// its database persists each new snapshot.
func TestSnapshotFileLifecycle(t *testing.T) {
	dbURL := siteDBWith(t, `INSERT INTO waffle_switch (name, active, note, created, modified) VALUES ('s', 1, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);`)
	file := filepath.Join(t.TempDir(), "flags.json")
	var stdout, stderr bytes.Buffer
	if code := snapshotCommand(t.Context(), []string{"--database", dbURL, "-o", file}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("flagproxy snapshot exited %d: %s", code, stderr.String())
	}
	if code := snapshotCommand(t.Context(), []string{"--database", dbURL}, env(nil), io.Discard, &stderr); code != 2 {
		t.Errorf("flagproxy snapshot without -o exited %d, want 2", code)
	}

	t.Run("database down", func(t *testing.T) {
		proxyURL, adminURL := startServe(t, "--database", "postgres://postgres@127.0.0.1:1/nope?sslmode=disable&connect_timeout=1",
			"--snapshot-file", file)
		body := eventually(t, proxyURL+"/", `"switches":{"s":true}`)
		if !strings.Contains(body, `"state":"stale"`) {
			t.Errorf("restored flags not stale: %s", body)
		}
		eventually(t, adminURL+"/readyz", `"restored":true`)
	})
	t.Run("file source", func(t *testing.T) {
		proxyURL, _ := startServe(t, "--database", "file://"+file)
		eventually(t, proxyURL+"/", `"switches":{"s":true},"sources":{},"version":`)
		eventually(t, proxyURL+"/", `"state":"ok"`)
	})
	t.Run("persisted", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "persisted.json")
		proxyURL, _ := startServe(t, "--database", dbURL, "--snapshot-file", out)
		eventually(t, proxyURL+"/", `"state":"ok"`)
		var snapVersion string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && snapVersion == ""; time.Sleep(20 * time.Millisecond) {
			if s, _, err := djangodb.ReadSnapshotFile(out); err == nil {
				snapVersion = s.Version()
			}
		}
		want, _, _ := djangodb.ReadSnapshotFile(file)
		if snapVersion == "" || snapVersion != want.Version() {
			t.Errorf("persisted version %q, want %q", snapVersion, want.Version())
		}
	})
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
}
