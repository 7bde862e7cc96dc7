package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// running is a started server under test.
type running struct {
	url   string // where clients send requests
	admin string // flagproxy's admin listener, "" for the others
	c     *child
	pids  []int
}

// startServer starts one server fresh for scenario s, pinned to the
// server CPU, and waits until it proxies.
func (e *env) startServer(ctx context.Context, name string, s scenario, st *site, settings string) (*running, error) {
	var r running
	var err error
	switch name {
	case "flagproxy":
		listen, lerr := freePort()
		admin, aerr := freePort()
		if lerr != nil || aerr != nil {
			return nil, fmt.Errorf("free ports: %v %v", lerr, aerr)
		}
		r.url, r.admin = "http://"+listen, "http://"+admin
		r.c, err = e.children.start("flagproxy", e.serverCPU, nil, e.bin["flagproxy"], "serve",
			"--listen", listen, "--admin-listen", admin, "--upstream", e.upstream,
			"--database", st.URL, "--django-settings", settings,
			"--override-cookie-secure=false", "--log-level", "warn", "--pprof="+strconv.FormatBool(e.o.profile != ""))
		if err == nil {
			err = waitHTTP(ctx, r.admin+"/readyz", 30*time.Second)
		}
	case "bare", "bare+header":
		r.c, r.url, err = e.startBare(name, s)
	case "nginx":
		var listen string
		listen, err = freePort()
		if err != nil {
			return nil, err
		}
		r.url = "http://" + listen
		var conf string
		conf, err = e.nginxConfig(listen)
		if err != nil {
			return nil, err
		}
		prefix := filepath.Dir(conf)
		r.c, err = e.children.start("nginx", e.serverCPU, nil, e.nginx, "-p", prefix, "-c", conf,
			"-e", filepath.Join(prefix, "error.log"), "-g", "daemon off;")
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	if err == nil {
		err = waitHTTP(ctx, r.url+"/", 30*time.Second)
	}
	if err != nil {
		if r.c != nil {
			e.children.stop(r.c)
			return nil, fmt.Errorf("%s: %w\n%s", name, err, r.c.out)
		}
		return nil, err
	}
	r.pids = r.c.pids()
	return &r, nil
}

// startBare starts the bare proxy, which for bare+header adds as many
// bytes of headers as flagproxy's flags header took in scenario s.
func (e *env) startBare(name string, s scenario) (*child, string, error) {
	args := []string{"-listen", "127.0.0.1:0", "-upstream", e.upstream}
	if name == "bare+header" {
		n := e.headerBytes[s.id]
		if n <= 0 {
			return nil, "", fmt.Errorf("no size of flagproxy's flags header in scenario %s", s.id)
		}
		args = append(args, "-header-bytes", strconv.FormatInt(n, 10))
	}
	c, addr, err := e.children.startReporting("bareproxy", e.serverCPU, e.bin["bareproxy"], args...)
	return c, "http://" + addr, err
}

// nginxConfig writes a configuration for one nginx worker proxying to the
// upstream with keep-alive connections, in its own directory.
func (e *env) nginxConfig(listen string) (string, error) {
	dir, err := os.MkdirTemp(e.dir, "nginx-")
	if err != nil {
		return "", err
	}
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	up := strings.TrimPrefix(e.upstream, "http://")
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  large_client_header_buffers 4 64k;
  upstream site { server %[2]s; keepalive 64; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://site;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`, dir, up, listen)
	path := filepath.Join(dir, "nginx.conf")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// saturate runs the saturation load for d.
func (e *env) saturate(ctx context.Context, url string, t traffic, d time.Duration) (loadResult, error) {
	if e.wrk != nil {
		return e.wrk.run(ctx, e.clientCPU, url, t, e.o.conns, d)
	}
	g := newGoClient(e.o.conns)
	defer g.close()
	return g.closedLoop(ctx, url, t, e.o.conns, d), ctx.Err()
}

// measure starts srv for scenario s, warms it up, measures it at
// saturation and at the fixed rate, and stops it. label names its CPU
// profile (-profile).
func (e *env) measure(ctx context.Context, srv string, s scenario, st *site, settings, label string) (measurement, error) {
	var m measurement
	r, err := e.startServer(ctx, srv, s, st, settings)
	if err != nil {
		return m, err
	}
	defer e.children.stop(r.c)
	t := traffic{id: s.id, sessions: st.Sessions[:s.sessions], back: e.back[s.id]}
	url := r.url + "/"
	if w := e.o.warmupOf(s); w > 0 {
		if _, err := e.saturate(ctx, url, t, w); err != nil {
			return m, fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := e.upstreamReset(ctx); err != nil {
		return m, err
	}
	before := e.metrics(ctx, r)
	up := []int{e.upstreamPID}
	profiled := e.profile(ctx, r, label+".pprof")
	ticks0, upTicks0, busy0 := cpuTicks(r.pids), cpuTicks(up), cpuBusy()
	m.sat, err = e.saturate(ctx, url, t, e.o.duration)
	if err != nil {
		return m, err
	}
	if err := <-profiled; err != nil {
		return m, fmt.Errorf("profile: %w", err)
	}
	ticks1, upTicks1, busy1 := cpuTicks(r.pids), cpuTicks(up), cpuBusy()
	after := e.metrics(ctx, r)
	if m.sat.Requests > 0 {
		m.cpuPerReq = float64(ticks1-ticks0) / clockTicks * 1e6 / float64(m.sat.Requests)
		m.upstreamCPUPerReq = float64(upTicks1-upTicks0) / clockTicks * 1e6 / float64(m.sat.Requests)
	}
	if e.serverCPU != "" {
		m.serverCPU, m.clientCPU = busyShare(busy0, busy1, e.serverCPU), busyShare(busy0, busy1, e.clientCPU)
	}
	if m.upstream, err = e.upstreamStats(ctx); err != nil {
		return m, err
	}
	m.queriesPerSec = -1
	if r.admin != "" {
		secs := m.sat.Duration.Seconds()
		m.lookupsPerSec = (after["flagproxy_identity_lookups_total"] - before["flagproxy_identity_lookups_total"]) / secs
		const memo = "flagproxy_decision_memo_total"
		if n := after[memo] - before[memo]; n > 0 {
			hits := memo + `{result="hit"}`
			m.memoHits = (after[hits] - before[hits]) / n
		}
		m.memoMiB = after["flagproxy_decision_memo_bytes"] / (1 << 20)
		if _, ok := after["flagproxy_identity_queries_total"]; ok {
			m.queriesPerSec = (after["flagproxy_identity_queries_total"] - before["flagproxy_identity_queries_total"]) / secs
		}
	}
	g := newGoClient(64)
	m.fixed = g.fixedRate(ctx, url, t, e.o.rate, e.o.rateFor)
	g.close()
	if err := ctx.Err(); err != nil {
		return m, err
	}
	m.rss = peakRSS(r.pids)
	e.logf("%s %s: %+v", s.id, srv, m)
	return m, nil
}

// profile takes a CPU profile of flagproxy for the saturation run, into
// name under -profile, and reports on the channel when it is written. It
// does nothing for the other servers or without -profile.
func (e *env) profile(ctx context.Context, r *running, name string) <-chan error {
	done := make(chan error, 1)
	if e.o.profile == "" || r.admin == "" {
		done <- nil
		return done
	}
	go func() {
		url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", r.admin, int(e.o.duration.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			done <- err
			return
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			done <- fmt.Errorf("%s: %s", url, res.Status)
			return
		}
		f, err := os.Create(filepath.Join(e.o.profile, name))
		if err == nil {
			_, err = io.Copy(f, res.Body)
			err = errors.Join(err, f.Close())
		}
		done <- err
	}()
	return done
}

// firstVisits makes the cookies of scenario s's returning visitors: each
// session's first visits to a fresh flagproxy, whose answers set the dwf_
// cookies that keep its percentage flags sticky (and, on the second, when
// they were renewed). Every server then gets the same requests. With
// headerBytes it also notes, for bare+header, the size of the flags
// header that flagproxy sends with the scenario's requests.
func (e *env) firstVisits(ctx context.Context, s scenario, st *site, settings string, headerBytes bool) error {
	if !s.returning && !headerBytes {
		return nil
	}
	r, err := e.startServer(ctx, "flagproxy", s, st, settings)
	if err != nil {
		return err
	}
	defer e.children.stop(r.c)
	g := newGoClient(visitors)
	defer g.close()
	t := traffic{id: s.id, sessions: st.Sessions[:s.sessions]}
	if s.returning {
		if t.back, err = g.firstVisits(ctx, r.url+"/", t); err != nil {
			return err
		}
		e.back[s.id] = t.back
	}
	if headerBytes {
		e.headerBytes[s.id], err = e.flagsBytes(ctx, g, r.url+"/", t)
	}
	return err
}

// headerSamples is how many requests flagsBytes takes the median of: now
// and then a request of (b) carries its large value's tail stored, as
// flagproxy sends a tail it has not seen before, at twice the usual size,
// which the measurements' thousands of requests hardly ever see.
const headerSamples = 5

// flagsBytes sends headerSamples of t's requests, as the measurements will
// (with the cookies of the first visits), to flagproxy at url, and returns
// the median size of their X-Flagproxy-* headers.
func (e *env) flagsBytes(ctx context.Context, g *goClient, url string, t traffic) (int64, error) {
	var sizes []int64
	for i := range headerSamples {
		u, err := e.visit(ctx, g, url, t.cookie(uint64(i)))
		if err != nil {
			return 0, fmt.Errorf("flags header size: %w", err)
		}
		if u.FlagsBytes == 0 {
			return 0, errors.New("flags header size: the upstream saw no X-Flagproxy-* header from flagproxy")
		}
		sizes = append(sizes, u.FlagsBytes)
	}
	slices.Sort(sizes)
	return sizes[len(sizes)/2], nil
}

// visit sends one request with cookie to url and returns the upstream's
// stats after it.
func (e *env) visit(ctx context.Context, g *goClient, url, cookie string) (upstreamStats, error) {
	resp, err := g.get(ctx, url, cookie)
	if err != nil {
		return upstreamStats{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return upstreamStats{}, errors.New(resp.Status)
	}
	return e.upstreamStats(ctx)
}

// upstreamStats is the upstream's /__bench/stats.
type upstreamStats struct {
	Requests  int64 `json:"requests"`
	Sampled   int64 `json:"sampled"`
	LoggedIn  int64 `json:"logged_in"`
	Anonymous int64 `json:"anonymous"`
	NoHeader  int64 `json:"no_header"`
	Malformed int64 `json:"malformed"`
	// FlagsBytes is the size of the last request's X-Flagproxy-*
	// headers.
	FlagsBytes int64 `json:"flags_bytes"`
}

// anonymousShare is the share of sampled requests whose flags header
// named no logged-in user.
func (u upstreamStats) anonymousShare() float64 {
	n := u.LoggedIn + u.Anonymous
	if n == 0 {
		return 0
	}
	return float64(u.Anonymous) / float64(n)
}

func (e *env) upstreamReset(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.upstream+"/__bench/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("upstream reset: %w", err)
	}
	resp.Body.Close()
	return nil
}

func (e *env) upstreamStats(ctx context.Context) (upstreamStats, error) {
	var s upstreamStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.upstream+"/__bench/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("upstream stats: %w", err)
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// metrics reads flagproxy's counters from /metrics, each name summed over
// its labels; nil for the other servers.
func (e *env) metrics(ctx context.Context, r *running) map[string]float64 {
	if r.admin == "" {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		series := name
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// The value follows the closing brace of the labels.
			j := strings.LastIndexByte(line, '}')
			series = line[:j+1]
			name, value = line[:i], strings.TrimSpace(line[j+1:])
		}
		if f, err := strconv.ParseFloat(strings.Fields(value + " 0")[0], 64); err == nil {
			out[name] += f // summed over the labels
			if series != name {
				out[series] = f
			}
		}
	}
	return out
}
