package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loadResult is one load run.
type loadResult struct {
	Requests int64
	Duration time.Duration
	P50, P99 time.Duration
	Errors   int64 // connection errors, timeouts and non-2xx answers
}

func (r loadResult) RPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// traffic is what every request carries: a session cookie (one of
// sessions, in turn), a CSRF cookie, Accept-Language in French (the site
// has LocaleMiddleware) and a browser's Accept. A returning visitor also
// sends back the cookies its first visit got (back, parallel to sessions).
type traffic struct {
	id       string // the scenario's, naming wrk's cookie file
	sessions []string
	back     []string // "; name=value…" for each session, or nil
}

const (
	csrfCookie     = "csrftoken=Zt3kRxqLhV9yWb2mNc8pQs4dFg7jHa1eUo6iTr5wYx0vBn3mKl2jHg9fDs8aPq7w"
	acceptLanguage = "fr-CA,fr;q=0.9,en;q=0.8"
	acceptHeader   = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	userAgent      = "flagproxy-bench/1"
)

func (t traffic) cookie(i uint64) string {
	i %= uint64(len(t.sessions))
	c := "sessionid=" + t.sessions[i] + "; " + csrfCookie
	if t.back != nil {
		c += t.back[i]
	}
	return c
}

// wrkScript rotates the session cookie per request when there is more
// than one session, and prints the summary in a form parseWrk reads.
const wrkScript = `
local cookies = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do cookies[#cookies + 1] = line end
  wrk.headers["Accept-Language"] = "` + acceptLanguage + `"
  wrk.headers["Accept"] = "` + acceptHeader + `"
  wrk.headers["User-Agent"] = "` + userAgent + `"
  wrk.headers["Cookie"] = cookies[1]
  if #cookies > 1 then
    request = function()
      n = n + 1
      wrk.headers["Cookie"] = cookies[(n % #cookies) + 1]
      return wrk.format()
    end
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
`

// wrkRunner drives saturation load with wrk.
type wrkRunner struct {
	path   string
	script string
	files  map[string]string // cookie files by scenario
	dir    string
}

func newWrkRunner(path, dir string) (*wrkRunner, error) {
	script := filepath.Join(dir, "bench.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return nil, err
	}
	return &wrkRunner{path: path, script: script, files: map[string]string{}, dir: dir}, nil
}

func (w *wrkRunner) cookieFile(t traffic) (string, error) {
	if f, ok := w.files[t.id]; ok {
		return f, nil
	}
	var b strings.Builder
	for i := range t.sessions {
		b.WriteString(t.cookie(uint64(i)) + "\n")
	}
	f := filepath.Join(w.dir, "cookies-"+t.id+".txt")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		return "", err
	}
	w.files[t.id] = f
	return f, nil
}

// run is one wrk run of d with conns connections, on cpus.
func (w *wrkRunner) run(ctx context.Context, cpus, url string, t traffic, conns int, d time.Duration) (loadResult, error) {
	f, err := w.cookieFile(t)
	if err != nil {
		return loadResult{}, err
	}
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--timeout", "10s", "-s", w.script, url, "--", f}
	prog := w.path
	if cpus != "" {
		args = append([]string{"-c", cpus, prog}, args...)
		prog = "taskset"
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out))
}

// parseWrk reads the line the script's done() prints.
func parseWrk(out string) (loadResult, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "BENCH ")
		if !ok {
			continue
		}
		v := map[string]int64{}
		for _, kv := range strings.Fields(line) {
			k, s, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return loadResult{}, fmt.Errorf("wrk output %q: %v", line, err)
			}
			v[k] = n
		}
		return loadResult{
			Requests: v["requests"],
			Duration: time.Duration(v["duration_us"]) * time.Microsecond,
			P50:      time.Duration(v["p50_us"]) * time.Microsecond,
			P99:      time.Duration(v["p99_us"]) * time.Microsecond,
			Errors:   v["errors"],
		}, nil
	}
	return loadResult{}, fmt.Errorf("no summary in wrk's output:\n%s", out)
}

// goClient is the Go load generator: a closed loop (conns workers, each
// sending its next request when the last answer is read) or an open loop
// at a fixed rate.
type goClient struct {
	client *http.Client
}

func newGoClient(conns int) *goClient {
	t := &http.Transport{
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &goClient{client: &http.Client{Transport: t, Timeout: 10 * time.Second}}
}

func (g *goClient) close() { g.client.CloseIdleConnections() }

// one sends one request and reads the whole answer.
func (g *goClient) one(ctx context.Context, url, cookie string) bool {
	resp, err := g.get(ctx, url, cookie)
	if err != nil {
		return false
	}
	return resp.StatusCode == http.StatusOK
}

// get sends one request as the traffic does and reads the whole answer.
func (g *goClient) get(ctx context.Context, url, cookie string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header["Cookie"] = []string{cookie}
	req.Header["Accept-Language"] = []string{acceptLanguage}
	req.Header["Accept"] = []string{acceptHeader}
	req.Header["User-Agent"] = []string{userAgent}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// firstVisits sends each session of t to flagproxy at url until an
// answer sets no more cookies (at most maxVisits times), keeping the
// cookies as a browser's jar does, and returns, for each session, the
// cookies a returning visitor sends back ("; name=value…").
func (g *goClient) firstVisits(ctx context.Context, url string, t traffic) ([]string, error) {
	back := make([]string, len(t.sessions))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make([]error, visitors)
	for w := range visitors {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(back) && errs[w] == nil; i = int(next.Add(1) - 1) {
				back[i], errs[w] = g.firstVisitsOf(ctx, url, t.cookie(uint64(i)))
			}
		})
	}
	wg.Wait()
	return back, errors.Join(errs...)
}

// visitors is how many sessions firstVisits visits at once.
const visitors = 16

// firstVisitsOf makes one session's first visits, sending cookie and what
// the responses set, and returns the cookies the browser would then send.
func (g *goClient) firstVisitsOf(ctx context.Context, url, cookie string) (string, error) {
	var jar []*http.Cookie
	for range maxVisits {
		resp, err := g.get(ctx, url, cookie+jarCookie(jar))
		if err != nil {
			return "", fmt.Errorf("first visits: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("first visits: %s", resp.Status)
		}
		set := resp.Cookies()
		if len(set) == 0 {
			break
		}
		jar = keep(jar, set)
	}
	return jarCookie(jar), nil
}

// maxVisits bounds the visits firstVisits makes of one session: the
// first sets the dwf_ cookies, the second renews them and notes when.
const maxVisits = 3

// keep stores set in jar by name, dropping a cookie set to expire.
func keep(jar, set []*http.Cookie) []*http.Cookie {
	for _, c := range set {
		jar = slices.DeleteFunc(jar, func(old *http.Cookie) bool { return old.Name == c.Name })
		if c.MaxAge >= 0 {
			jar = append(jar, c)
		}
	}
	return jar
}

// jarCookie is what the jar adds to a Cookie line.
func jarCookie(jar []*http.Cookie) string {
	var b strings.Builder
	for _, c := range jar {
		b.WriteString("; " + c.Name + "=" + c.Value)
	}
	return b.String()
}

// maxSamples bounds the latencies kept by one run.
const maxSamples = 2_000_000

// closedLoop runs conns workers for d.
func (g *goClient) closedLoop(ctx context.Context, url string, t traffic, conns int, d time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Uint64
	var errs atomic.Int64
	lat := make([][]time.Duration, conns)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			for ctx.Err() == nil && len(lat[w]) < maxSamples/conns {
				t0 := time.Now()
				ok := g.one(ctx, url, t.cookie(next.Add(1)-1))
				if ctx.Err() != nil {
					return // cut off by the deadline: not a real answer
				}
				if !ok {
					errs.Add(1)
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	r := loadResult{Requests: int64(len(all)), Duration: elapsed, Errors: errs.Load()}
	r.P50, r.P99 = percentile(all, 50), percentile(all, 99)
	return r
}

// fixedRate sends rate requests a second for d, each at its scheduled
// time, whatever the answers do (an open loop); a latency counts from the
// scheduled time, so a stall is not hidden by requests not sent.
func (g *goClient) fixedRate(ctx context.Context, url string, t traffic, rate int, d time.Duration) loadResult {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	ctx, cancel := context.WithTimeout(ctx, d+15*time.Second)
	defer cancel()
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	// A bounded pool of senders: more than the rate needs while answers
	// are fast; a backlog shows as latency.
	const senders = 64
	jobs := make(chan int, n)
	start := time.Now()
	for range senders {
		wg.Go(func() {
			for i := range jobs {
				at := start.Add(time.Duration(i) * interval)
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				}
				ok := g.one(ctx, url, t.cookie(uint64(i)))
				lat[i] = time.Since(at)
				if !ok {
					errs.Add(1)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r := loadResult{Requests: int64(n), Duration: time.Since(start), Errors: errs.Load()}
	r.P50, r.P99 = percentile(lat, 50), percentile(lat, 99)
	return r
}

// percentile is the nearest-rank percentile of s (sorted in place).
func percentile(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
