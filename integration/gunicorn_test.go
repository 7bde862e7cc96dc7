//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gunicornTestBinary, when not empty, is the flagproxy binary that
// TestGunicornSurvivesHostileClients runs instead of the one built from
// this tree: point it at a build of an older commit to watch the tests fail.
var gunicornTestBinary = ""

const (
	// probeLimit is how long any normal request may take while the site is
	// under attack; probeTimeout is when a probe gives up (a failure too).
	probeLimit   = time.Second
	probeTimeout = 3 * time.Second

	burstResetters = 200       // clients that reset in the middle of the response
	burstHangers   = 50        // clients that hang up right after the request
	burstPage      = 256 << 10 // the page they ask for
	burstRead      = 32 << 10  // how much of it a resetter reads first

	slowClients = 40 // slow senders
	// slowReaders is how many clients never read their page: more than
	// gunicorn has workers (and threads), far fewer than the 40 of the
	// original report, since each costs flagproxy a 16 MiB file.
	slowReaders  = 8
	slowFor      = 10 * time.Second       // how long they keep at it
	slowBody     = 64 << 10               // the body a slow sender announces
	slowChunk    = 128                    // bytes a slow sender writes ...
	slowInterval = 125 * time.Millisecond // ... this often (about 1 KB/s)
	// slowReadPage is the page a slow reader asks for and never reads. It
	// must be larger than what the kernel buffers between flagproxy and the
	// client and between gunicorn and flagproxy together (about 6.5 MiB on
	// loopback with tcp_rmem max 32 MiB, tcp_wmem max 4 MiB), or a
	// streaming proxy would free the worker as well.
	slowReadPage = 16 << 20
)

// TestGunicornSurvivesHostileClients puts the flagproxy binary in front of
// gunicorn with few workers (2 sync workers; 2 gthread workers of 2
// threads), where a connection that holds a worker for nothing starves
// the site, and checks that clients that drop connections, send slowly,
// read slowly or ask for an h2c upgrade do not reach or hold a worker:
// meanwhile every normal request completes within probeLimit.
//
// Every subtest has its own gunicorn and flagproxy, so that a stalled
// worker left by one cannot fail the next.
func TestGunicornSurvivesHostileClients(t *testing.T) {
	requireDjango(t, "gunicorn")
	db := newSQLiteSite(t)
	for _, wc := range []struct {
		name string
		args []string
	}{
		{"sync", []string{"--worker-class", "sync"}},
		{"gthread", []string{"--worker-class", "gthread", "--threads", "2"}},
	} {
		t.Run(wc.name, func(t *testing.T) {
			for _, st := range []struct {
				name string
				f    func(*testing.T, *gunicornSite)
			}{
				{"disconnect-burst", testDisconnectBurst},
				{"slow-request-bodies", testSlowRequestBodies},
				{"slow-readers", testSlowReaders},
				{"h2c", testH2CUpgradeRemoved},
			} {
				t.Run(st.name, func(t *testing.T) {
					began := time.Now()
					st.f(t, startGunicornSite(t, db.URL, wc.args))
					t.Logf("%s/%s: %v", wc.name, st.name, time.Since(began).Round(time.Millisecond))
				})
			}
		})
	}
}

// gunicornSite is the test site under gunicorn with flagproxy in front.
type gunicornSite struct {
	proxy, direct string // base URLs of flagproxy and of gunicorn itself
	spoolDir      string // flagproxy's TMPDIR, where it buffers bodies
	client        *http.Client
}

// startGunicornSite starts gunicorn with 2 workers of the given class and
// a 30 s worker timeout, and flagproxy in front of it, and warms both up.
// Both stop when t ends.
func startGunicornSite(t *testing.T, dbURL string, workerArgs []string) *gunicornSite {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"-m", "gunicorn", "--bind", addr, "--workers", "2", "--timeout", "30"}, workerArgs...)
	args = append(args, "testsite.wsgi")
	env := []string{"FLAGPROXY_DJANGO_DATABASE=" + dbURL, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"}
	start(t, "gunicorn "+strings.Join(workerArgs, " "), "django", env, python, args...)
	s := &gunicornSite{direct: "http://" + addr, spoolDir: t.TempDir()}
	waitHTTP(t, s.direct+"/echo/", 200, 30*time.Second)

	bin := gunicornTestBinary
	if bin == "" {
		bin = flagproxyBinary(t)
	}
	listen, admin := freeAddr(t), freeAddr(t)
	start(t, "flagproxy", ".", []string{"TMPDIR=" + s.spoolDir}, bin,
		"serve", "--listen", listen, "--admin-listen", admin, "--upstream", s.direct, "--database", dbURL)
	waitHTTP(t, "http://"+admin+"/readyz", 200, 15*time.Second)
	s.proxy = "http://" + listen

	// Every probe on a connection of its own, as a new visitor's would be.
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	s.client = &http.Client{Transport: tr, Timeout: probeTimeout}

	// Warm up: let every worker (and thread) load the URLconf, middleware
	// and views, so that the first probes do not pay for it.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		base := s.direct
		if i%2 == 1 {
			base = s.proxy
		}
		wg.Go(func() {
			if p := s.get(base + "/bigpage/"); p.err != nil {
				errs <- p.err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("warm-up: %v", err)
	}
	return s
}

// probe is one normal request and how long it took.
type probe struct {
	what string
	took time.Duration
	err  error
}

// get requests u and reads the whole response, which must be a 200.
func (s *gunicornSite) get(u string) probe {
	began := time.Now()
	p := probe{what: "GET " + u}
	resp, err := s.client.Get(u)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	p.took, p.err = time.Since(began), err
	return p
}

// upload posts body to the upload view, which must report it intact.
func (s *gunicornSite) upload(base string, body []byte) probe {
	began := time.Now()
	p := probe{what: fmt.Sprintf("POST %s/upload/ (%d bytes)", base, len(body))}
	resp, err := s.client.Post(base+"/upload/", "application/octet-stream", bytes.NewReader(body))
	if err == nil {
		var got struct {
			Length int    `json:"length"`
			SHA256 string `json:"sha256"`
		}
		var raw []byte
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		sum := sha256.Sum256(body)
		switch {
		case err != nil:
		case resp.StatusCode != http.StatusOK:
			err = fmt.Errorf("status %d: %.200s", resp.StatusCode, raw)
		case json.Unmarshal(raw, &got) != nil || got.Length != len(body) || got.SHA256 != hex.EncodeToString(sum[:]):
			err = fmt.Errorf("Django read another body: %.200s", raw)
		}
	}
	p.took, p.err = time.Since(began), err
	return p
}

// probeUntil makes normal requests one after another, gap apart, until
// end (at least one): next(i) makes the i-th. Each is bounded by
// probeTimeout, so the loop ends by end+probeTimeout.
func probeUntil(end time.Time, gap time.Duration, next func(i int) probe) []probe {
	var ps []probe
	for i := 0; i == 0 || time.Now().Before(end); i++ {
		ps = append(ps, next(i))
		time.Sleep(gap)
	}
	return ps
}

// checkProbes fails t for every probe that failed or took probeLimit or
// longer, and for fewer than min probes; it logs the slowest.
func checkProbes(t *testing.T, phase string, ps []probe, min int) {
	t.Helper()
	if len(ps) < min {
		t.Errorf("%s: %d requests made, want at least %d", phase, len(ps), min)
	}
	var slowest time.Duration
	bad := 0
	for _, p := range ps {
		slowest = max(slowest, p.took)
		switch {
		case p.err != nil:
			bad++
			t.Errorf("%s: %s failed after %v: %v", phase, p.what, p.took.Round(time.Millisecond), p.err)
		case p.took >= probeLimit:
			bad++
			t.Errorf("%s: %s took %v, want under %v", phase, p.what, p.took.Round(time.Millisecond), probeLimit)
		}
	}
	t.Logf("%s: %d requests, %d failed or slow, slowest %v", phase, len(ps), bad, slowest.Round(time.Millisecond))
}

// testDisconnectBurst: 200 clients ask for a 256 KiB page, read 32 KiB of
// it and reset the connection (SO_LINGER 0, then close: an RST), and 50
// close right after sending the request, all at once. Then 8 requests
// through flagproxy and 2 straight to gunicorn must each complete within
// probeLimit: neither flagproxy nor gunicorn's workers may be left waiting
// on a connection that never carries a request.
func testDisconnectBurst(t *testing.T, s *gunicornSite) {
	host := hostOf(t, s.proxy)
	req := fmt.Sprintf("GET /bigpage/?size=%d HTTP/1.1\r\nHost: %s\r\n\r\n", burstPage, host)
	deadline := time.Now().Add(15 * time.Second)
	var (
		wg                      sync.WaitGroup
		ready                   = make(chan struct{})
		partial, hungUp, failed atomic.Int32
	)
	every := (burstResetters + burstHangers) / burstHangers
	for i := range burstResetters + burstHangers {
		reset := i%every != 0 // the hangers spread among the resetters
		wg.Go(func() {
			<-ready
			c, err := net.DialTimeout("tcp", host, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			c.SetDeadline(deadline)
			if _, err := io.WriteString(c, req); err != nil {
				failed.Add(1)
				c.Close()
				return
			}
			if !reset {
				hungUp.Add(1)
				c.Close()
				return
			}
			buf := make([]byte, burstRead)
			if _, err := io.ReadFull(c, buf); err == nil && bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
				partial.Add(1)
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		})
	}
	began := time.Now()
	close(ready)
	wg.Wait()
	t.Logf("burst: %d of %d resetting clients got part of a 200 and reset, %d hung up, %d failed to send, in %v",
		partial.Load(), burstResetters, hungUp.Load(), failed.Load(), time.Since(began).Round(time.Millisecond))
	if int(partial.Load()) < burstResetters {
		t.Errorf("burst: only %d of %d resetting clients got the start of a 200 within 15 s", partial.Load(), burstResetters)
	}

	// Right after: normal visitors through flagproxy, and two straight to
	// gunicorn (whose workers flagproxy must not be holding either).
	var viaProxy, direct []probe
	for i := range 10 {
		if i == 3 || i == 7 {
			direct = append(direct, s.get(s.direct+"/echo/"))
		} else {
			viaProxy = append(viaProxy, s.get(s.proxy+"/echo/"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkProbes(t, "after the burst, through flagproxy", viaProxy, 8)
	checkProbes(t, "after the burst, straight to gunicorn", direct, 2)
}

// testSlowRequestBodies: 40 clients POST a 64 KiB body to a view that
// reads it, at about 1 KB/s, for 10 s (they never finish). Meanwhile
// normal GETs and full-speed 64 KiB POSTs (whose body Django must receive
// intact) through flagproxy complete within probeLimit: flagproxy must
// read a body before it involves a worker.
func testSlowRequestBodies(t *testing.T, s *gunicornSite) {
	host := hostOf(t, s.proxy)
	head := fmt.Sprintf("POST /upload/ HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", host, slowBody)
	chunk := bytes.Repeat([]byte("y"), slowChunk)
	stop := make(chan struct{})
	var (
		wg           sync.WaitGroup
		sent         atomic.Int64
		failed, shut atomic.Int32
	)
	for range slowClients {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", host, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(slowFor + 5*time.Second))
			if _, err := io.WriteString(c, head); err != nil {
				failed.Add(1)
				return
			}
			tick := time.NewTicker(slowInterval)
			defer tick.Stop()
			for n := 0; n < slowBody; n += len(chunk) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := c.Write(chunk); err != nil {
					shut.Add(1)
					return
				}
				sent.Add(int64(len(chunk)))
			}
		})
	}
	end := time.Now().Add(slowFor)
	time.Sleep(time.Second) // every slow client is in its body by now
	body := make([]byte, slowBody)
	rand.Read(body)
	ps := probeUntil(end, 200*time.Millisecond, func(i int) probe {
		if i%2 == 0 {
			return s.get(s.proxy + "/echo/")
		}
		return s.upload(s.proxy, body)
	})
	close(stop)
	wg.Wait()
	t.Logf("slow senders: %d sent %d bytes in all (%d could not connect or send the head, %d were cut off)",
		slowClients, sent.Load(), failed.Load(), shut.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d slow senders could not connect or send their request head", failed.Load(), slowClients)
	}
	checkProbes(t, "during slow request bodies", ps, 10)
}

// testSlowReaders: slowReaders clients ask for a 16 MiB page and never read it,
// keeping the connection open for 10 s. Meanwhile normal requests through
// flagproxy complete within probeLimit: flagproxy must take the response
// from the worker at once. Once the readers are gone, the files flagproxy
// buffered their pages in must be removed.
func testSlowReaders(t *testing.T, s *gunicornSite) {
	host := hostOf(t, s.proxy)
	req := fmt.Sprintf("GET /bigpage/?size=%d HTTP/1.1\r\nHost: %s\r\n\r\n", slowReadPage, host)
	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		failed atomic.Int32
	)
	for range slowReaders {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", host, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			if _, err := io.WriteString(c, req); err != nil {
				failed.Add(1)
				return
			}
			<-stop // never read
		})
	}
	end := time.Now().Add(slowFor)
	time.Sleep(time.Second)
	ps := probeUntil(end, 200*time.Millisecond, func(i int) probe {
		if i%2 == 0 {
			return s.get(s.proxy + "/echo/")
		}
		return s.get(s.proxy + "/bigpage/")
	})
	spooled := spoolFiles(t, s.spoolDir)
	close(stop)
	wg.Wait()
	t.Logf("slow readers: %d (%d could not connect or send); %d buffer files in flagproxy's TMPDIR while they were stalled",
		slowReaders, failed.Load(), len(spooled))
	if failed.Load() > 0 {
		t.Errorf("%d of %d slow readers could not connect or send their request", failed.Load(), slowReaders)
	}
	checkProbes(t, "during slow readers", ps, 10)

	// Their responses' buffers go with them.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left := spoolFiles(t, s.spoolDir)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("5 s after the slow readers left, flagproxy still has %d buffer files: %v", len(left), left)
			break
		}
	}
}

// spoolFiles lists the files in flagproxy's TMPDIR.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Join(dir, e.Name()))
	}
	return names
}

// testH2CUpgradeRemoved: an h2c upgrade request reaches Django as a plain
// request (no Upgrade, no HTTP2-Settings, no upgrade in Connection) and
// gets a normal 200, whether or not HTTP2-Settings is named in
// Connection. Controls: the same request straight to gunicorn shows the
// view reports Upgrade, and a WebSocket upgrade still passes flagproxy.
func testH2CUpgradeRemoved(t *testing.T, s *gunicornSite) {
	const settings = "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"
	for _, c := range []struct {
		name  string
		lines []string
	}{
		{"settings in Connection", []string{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", settings}},
		{"settings not in Connection", []string{"Connection: Upgrade", "Upgrade: h2c", settings}},
		{"upper case", []string{"Connection: UPGRADE, HTTP2-SETTINGS", "Upgrade: H2C", settings}},
	} {
		status, hdr, meta := rawMeta(t, s.proxy, c.lines...)
		if status != http.StatusOK || hdr.Get("Upgrade") != "" {
			t.Errorf("%s: status %d, Upgrade %q; want a plain 200", c.name, status, hdr.Get("Upgrade"))
		}
		for _, k := range []string{"HTTP_UPGRADE", "HTTP_HTTP2_SETTINGS"} {
			if v, ok := meta[k]; ok {
				t.Errorf("%s: Django saw %s=%q", c.name, k, v)
			}
		}
		if v := meta["HTTP_CONNECTION"]; strings.Contains(strings.ToLower(v), "upgrade") || strings.Contains(strings.ToLower(v), "http2") {
			t.Errorf("%s: Django saw HTTP_CONNECTION=%q", c.name, v)
		}
		if _, ok := meta["HTTP_X_FLAGPROXY_FLAGS"]; !ok {
			t.Errorf("%s: Django saw no flags header, so the request did not come through flagproxy: %v", c.name, meta)
		}
	}

	// Controls: the view does report an upgrade, and flagproxy does not
	// remove a WebSocket one.
	if _, _, meta := rawMeta(t, s.direct, "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", settings); meta["HTTP_UPGRADE"] != "h2c" {
		t.Errorf("straight to gunicorn: Django saw HTTP_UPGRADE=%q, want h2c (the view cannot show an upgrade?)", meta["HTTP_UPGRADE"])
	}
	status, _, meta := rawMeta(t, s.proxy, "Connection: Upgrade", "Upgrade: websocket",
		"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
	if status != http.StatusOK || !strings.EqualFold(meta["HTTP_UPGRADE"], "websocket") {
		t.Errorf("WebSocket upgrade through flagproxy: status %d, Django saw HTTP_UPGRADE=%q; want 200 and websocket",
			status, meta["HTTP_UPGRADE"])
	}
}

// rawMeta sends GET /meta/ with the header lines written byte for byte (and
// no Connection of its own) and returns the status, the response header
// and the HTTP_* keys Django saw.
func rawMeta(t *testing.T, base string, headerLines ...string) (int, http.Header, map[string]string) {
	t.Helper()
	host := hostOf(t, base)
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /meta/ HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(headerLines, "\r\n") + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", base, headerLines, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %q: body: %v", base, headerLines, err)
	}
	meta := map[string]string{}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &meta); err != nil {
			t.Fatalf("%s %q: body %.200q: %v", base, headerLines, body, err)
		}
	}
	return resp.StatusCode, resp.Header, meta
}

func hostOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
