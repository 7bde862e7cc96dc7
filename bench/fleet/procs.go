package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flagproxy/flagproxy/bench/internal/procs"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
const clockTicks = 100

// proxy is one flagproxy child.
type proxy struct {
	id           int
	listen       string // host:port of proxied requests
	admin        string // host:port of /readyz and /metrics
	cmd          *exec.Cmd
	done         chan struct{}
	tail         *procs.Tail
	mu           sync.Mutex
	loaded       map[string]time.Time // snapshot version -> time of its "snapshot loaded" line
	warnings     []string             // WARN and ERROR messages, deduplicated
	warnSeen     map[string]bool
	onNewVersion func(version string, at time.Time)
}

// fleet is the running proxies of one cell.
type fleet struct {
	proxies []*proxy
}

// registry tracks every child so that all are stopped at the end, also after an
// interrupt.
type registry struct {
	live procs.Live[*proxy]
}

func newRegistry() *registry { return &registry{} }

// childEnv is the environment of a child: ours without FLAGPROXY_*
// variables (which flagproxy would read as options) and GOMAXPROCS=1.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "FLAGPROXY_") || strings.HasPrefix(kv, "GOMAXPROCS=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOMAXPROCS=1")
}

// start runs one flagproxy with args (listen and admin addresses are
// added), reading its JSON log.
func (r *registry) start(bin string, id int, args []string, onNewVersion func(string, time.Time)) (*proxy, error) {
	listen, err := listenPort()
	if err != nil {
		return nil, err
	}
	admin, err := listenPort()
	if err != nil {
		return nil, err
	}
	all := append([]string{"serve", "--listen", listen, "--admin-listen", admin}, args...)
	cmd := exec.Command(bin, all...)
	cmd.Env = childEnv()
	// Own process group, so a terminal's Ctrl-C reaches the harness only,
	// which then stops each child; Pdeathsig covers a harness killed hard.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &proxy{id: id, listen: listen, admin: admin, cmd: cmd, done: make(chan struct{}),
		tail: &procs.Tail{Max: 16 << 10}, loaded: map[string]time.Time{}, warnSeen: map[string]bool{},
		onNewVersion: onNewVersion}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start flagproxy: %w", err)
	}
	r.live.Add(p)
	go func() {
		p.readLog(stderr)
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// logLine is what the harness reads from flagproxy's JSON log.
type logLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Msg     string    `json:"msg"`
	Version string    `json:"snapshot_version"`
	Reason  string    `json:"reason"`
	Error   string    `json:"error"`
}

// readLog records the time of each "snapshot loaded" line (logged right
// after the new snapshot is published, so the time the header changes)
// and the warnings.
func (p *proxy) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		p.tail.Write(append(line, '\n'))
		var l logLine
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		switch {
		case l.Msg == "snapshot loaded" && l.Version != "":
			p.mu.Lock()
			if _, ok := p.loaded[l.Version]; !ok {
				p.loaded[l.Version] = l.Time
			}
			p.mu.Unlock()
			if p.onNewVersion != nil {
				p.onNewVersion(l.Version, l.Time)
			}
		case l.Level == "WARN" || l.Level == "ERROR":
			w := l.Level + " " + l.Msg
			if l.Reason != "" {
				w += ": " + l.Reason
			} else if l.Error != "" {
				w += ": " + l.Error
			}
			p.mu.Lock()
			if !p.warnSeen[w] && len(p.warnings) < 20 {
				p.warnSeen[w] = true
				p.warnings = append(p.warnings, w)
			}
			p.mu.Unlock()
		}
	}
	io.Copy(io.Discard, r)
}

// newVersion returns a version the proxy logged that is not in old, or "".
func (p *proxy) newVersion(old map[string]bool) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for v := range p.loaded {
		if !old[v] {
			return v
		}
	}
	return ""
}

// loadedAt returns when the proxy logged version, if it did.
func (p *proxy) loadedAt(version string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.loaded[version]
	return t, ok
}

// stop ends the child: SIGTERM, SIGKILL after 5 s.
func (r *registry) stop(p *proxy) {
	r.live.Remove(p)
	procs.StopGroup(p.cmd.Process.Pid, p.done, 5*time.Second)
}

// stopAll stops every child still running, in parallel.
func (r *registry) stopAll() { r.live.StopAll(r.stop) }

// bindFailed reports whether p exited because one of its addresses was
// taken meanwhile.
func (p *proxy) bindFailed() bool {
	select {
	case <-p.done:
		return strings.Contains(p.tail.String(), "address already in use")
	default:
		return false
	}
}

// waitReady polls every proxy's /readyz until it answers 200.
func (f *fleet) waitReady(ctx context.Context, client *http.Client, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	errs := make(chan error, len(f.proxies))
	for _, p := range f.proxies {
		go func() {
			for {
				select {
				case <-p.done:
					errs <- fmt.Errorf("flagproxy %d exited:\n%s", p.id, p.tail)
					return
				default:
				}
				if code, _, err := get(ctx, client, "http://"+p.admin+"/readyz"); err == nil && code == 200 {
					errs <- nil
					return
				}
				select {
				case <-ctx.Done():
					errs <- fmt.Errorf("flagproxy %d not ready within %v:\n%s", p.id, limit, p.tail)
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	var all []error
	for range f.proxies {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// versions returns each proxy's /readyz version.
func (f *fleet) versions(ctx context.Context, client *http.Client) []string {
	out := make([]string, len(f.proxies))
	var wg sync.WaitGroup
	for i, p := range f.proxies {
		wg.Go(func() {
			_, body, err := get(ctx, client, "http://"+p.admin+"/readyz")
			if err != nil {
				return
			}
			var r struct {
				Version string `json:"version"`
			}
			json.Unmarshal(body, &r)
			out[i] = r.Version
		})
	}
	wg.Wait()
	return out
}

// metrics sums the counters the report uses over the fleet's /metrics.
func (f *fleet) metrics(ctx context.Context, client *http.Client) map[string]float64 {
	names := []string{
		"flagproxy_snapshot_loads_total",
		"flagproxy_snapshot_load_errors_total",
		"flagproxy_snapshot_notifications_total",
		"flagproxy_snapshot_notify_active",
		`flagproxy_snapshot_change_checks_total{result="unchanged"}`,
		`flagproxy_snapshot_change_checks_total{result="changed"}`,
		`flagproxy_snapshot_change_checks_total{result="error"}`,
	}
	var mu sync.Mutex
	sum := map[string]float64{}
	var wg sync.WaitGroup
	for _, p := range f.proxies {
		wg.Go(func() {
			_, body, err := get(ctx, client, "http://"+p.admin+"/metrics")
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(body), "\n") {
				for _, n := range names {
					if v, ok := strings.CutPrefix(line, n+" "); ok {
						x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
						mu.Lock()
						sum[n] += x
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	return sum
}

func get(ctx context.Context, client *http.Client, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// --- /proc ---

// cpuTicks is utime + stime of a process, in clock ticks.
func cpuTicks(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st, true
}

// cpuNanos is the CPU time of a single-threaded process (a PostgreSQL
// backend) in nanoseconds, from /proc/<pid>/schedstat, which is exact
// where /proc/<pid>/stat counts 10 ms ticks; stat's ticks otherwise.
func cpuNanos(pid int) (int64, bool) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid)); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return v, true
			}
		}
	}
	t, ok := cpuTicks(pid)
	return t * (int64(time.Second) / clockTicks), ok
}

// rssBytes is VmRSS of a process.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// machineCPU reads /proc/stat's first line: busy and total ticks of all
// CPUs.
func machineCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, s := range f[1:] {
		v, _ := strconv.ParseInt(s, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return "?"
	}
	return f[0]
}

// freePort returns a loopback address nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// listenPort returns a free loopback address for a child to listen on,
// below the kernel's ephemeral port range: a port from that range, free
// when checked, may be taken by any outgoing connection (the relay's, the
// probes') before the child binds it.
func listenPort() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low > 12000 {
		for range 200 {
			port := 10000 + mrand.IntN(low-11000)
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err == nil {
				addr := ln.Addr().String()
				ln.Close()
				return addr, nil
			}
		}
	}
	return freePort()
}
