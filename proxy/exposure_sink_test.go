package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flagproxy/flagproxy/engine"
)

// testEvent is an event for user id i.
func testEvent(i int) exposureEvent {
	return exposureEvent{time: testNow(), kind: engine.KindFlag, name: "exp",
		decision: engine.Decision{On: true, Reason: engine.ReasonEveryone}, userID: strconv.Itoa(i), snapshot: "v1", path: "/", status: 200}
}

// userOf returns the user_id of a JSON line, failing on anything else.
func userOf(t *testing.T, line []byte) string {
	t.Helper()
	var l exposureLine
	if err := json.Unmarshal(line, &l); err != nil || l.UserID == nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return *l.UserID
}

// shortSocketDir is a directory for sockets whose paths fit sun_path
// (t.TempDir() paths can be too long).
func shortSocketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fpx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// waitLine reads lines from sc until one has user id want, within a
// generous deadline (a hang, not a duration, is what fails).
func waitLine(t *testing.T, conn net.Conn, sc *bufio.Scanner, want string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for sc.Scan() {
		if userOf(t, sc.Bytes()) == want {
			return
		}
	}
	t.Fatalf("no event for user %s: %v", want, sc.Err())
}

func TestExposureUnixStreamReconnects(t *testing.T) {
	path := filepath.Join(shortSocketDir(t), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	x := startExposure(t, ExposureConfig{Patterns: []string{"*"}, Sink: "unix://" + path})
	x.out.enqueue(testEvent(1))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	waitLine(t, conn, bufio.NewScanner(conn), "1")
	// The reader goes away and comes back on the same path.
	conn.Close()
	ln.Close()
	ln, err = net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	// Events written into the dead connection are lost (and counted); the
	// writer then dials again. Keep sending until one arrives.
	var c2 net.Conn
	for i := 2; c2 == nil; i++ {
		x.out.enqueue(testEvent(i))
		select {
		case c2 = <-accepted:
			defer c2.Close()
			x.out.enqueue(testEvent(1000))
		case <-time.After(50 * time.Millisecond):
		}
		if i > 2000 {
			t.Fatal("the writer never reconnected")
		}
	}
	waitLine(t, c2, bufio.NewScanner(c2), "1000")
}

func TestExposureUnixDatagram(t *testing.T) {
	path := filepath.Join(shortSocketDir(t), "d.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	x := startExposure(t, ExposureConfig{Patterns: []string{"*"}, Sink: "unixgram://" + path})
	for i := range 3 {
		x.out.enqueue(testEvent(i))
	}
	_ = pc.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 64<<10)
	for i := range 3 {
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsRune(buf[:n], '\n') {
			t.Errorf("datagram %q holds a newline", buf[:n])
		}
		if got := userOf(t, buf[:n]); got != strconv.Itoa(i) {
			t.Errorf("datagram %d is user %s", i, got)
		}
	}
}

func TestExposureFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exposure.log")
	x := startExposure(t, ExposureConfig{Patterns: []string{"*"}, Sink: path})
	x.out.enqueue(testEvent(1))
	waitFile(t, path, 1)
	// logrotate: rename, then signal.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	x.Reopen()
	x.out.enqueue(testEvent(2))
	x.stop()
	for file, want := range map[string]string{path + ".1": "1", path: "2"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
		if len(lines) != 1 || userOf(t, lines[0]) != want {
			t.Errorf("%s holds %q, want the event of user %s", filepath.Base(file), raw, want)
		}
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("new log file mode %v (%v), want 0640", st.Mode(), err)
	}
}

// waitFile waits until path holds n lines.
func waitFile(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, _ := os.ReadFile(path)
		if bytes.Count(raw, []byte("\n")) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want %d lines", path, raw, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExposureStdout(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, err := newExposureWriter(sinkTarget{network: "-"}, 4, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w.stdout = &out
	w.enqueue(testEvent(5))
	ctx, cancel := contextDone()
	defer cancel()
	_ = w.run(ctx) // drains what is queued, then returns
	if lines := bytes.Count(out.Bytes(), []byte("\n")); lines != 1 || userOf(t, bytes.TrimSpace(out.Bytes())) != "5" {
		t.Errorf("stdout got %q", out.String())
	}
}

// TestExposureBackPressure fills the queue of a writer whose sink never
// reads: requests go on, and the events beyond the queue are counted.
func TestExposureBackPressure(t *testing.T) {
	path := filepath.Join(shortSocketDir(t), "slow.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept, never read
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	const queue = 8
	x := startExposure(t, ExposureConfig{Patterns: []string{"*"}, Sink: "unix://" + path, Queue: queue})
	const sent = 100_000 // far more than the socket buffers and the queue hold
	for i := range sent {
		x.out.enqueue(testEvent(i))
	}
	dropped := testutil.ToFloat64(x.out.dropped.WithLabelValues(dropQueueFull))
	if dropped == 0 {
		t.Fatal("nothing was dropped for a sink that never reads")
	}
	x.stop()
	var lost float64
	for _, r := range []string{dropQueueFull, dropWriteError, dropShutdown} {
		lost += testutil.ToFloat64(x.out.dropped.WithLabelValues(r))
	}
	if got := lost + testutil.ToFloat64(x.out.events); got != sent {
		t.Errorf("written %v + dropped %v = %v, want every one of %d events accounted for", testutil.ToFloat64(x.out.events), lost, got, sent)
	}
}

func TestExposureMetricsLint(t *testing.T) {
	x := startExposure(t, ExposureConfig{Patterns: []string{"*"}, Sink: "-"})
	problems, err := testutil.GatherAndLint(x.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	n, err := testutil.GatherAndCount(x.reg, "flagproxy_exposure_events_total", "flagproxy_exposure_events_dropped_total",
		"flagproxy_exposure_duplicates_total", "flagproxy_exposure_dedup_evictions_total")
	if err != nil || n != 6 {
		t.Errorf("exposure series = %d (%v), want 6", n, err)
	}
}

// contextDone returns a context that has already ended.
func contextDone() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx, cancel
}
