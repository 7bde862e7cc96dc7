package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flagproxy/flagproxy/bench/internal/procs"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// child is a process the harness started. Each runs in its own process
// group, so stopping it also stops what it started (nginx's worker).
type child struct {
	name string
	cmd  *exec.Cmd
	out  *procs.Tail
	done chan struct{}
}

// children tracks every child so that all of them are stopped at the end,
// also after an interrupt.
type children struct {
	live procs.Live[*child]
}

func newChildren() *children { return &children{} }

// start runs prog with args, pinned to cpus (a taskset list; "" for no
// pinning).
func (cs *children) start(name, cpus string, env []string, prog string, args ...string) (*child, error) {
	if cpus != "" {
		args = append([]string{"-c", cpus, prog}, args...)
		prog = "taskset"
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	// Own process group: the terminal's Ctrl-C reaches the harness only,
	// which then stops each group. Pdeathsig covers a harness killed hard.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, out: &procs.Tail{Max: 64 << 10}, done: make(chan struct{})}
	cmd.Stderr = c.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	cs.live.Add(c)
	return c, nil
}

// startReporting is start for a program that prints its bound address as
// the first line of its standard output.
func (cs *children) startReporting(name, cpus string, prog string, args ...string) (*child, string, error) {
	if cpus != "" {
		args = append([]string{"-c", cpus, prog}, args...)
		prog = "taskset"
	}
	cmd := exec.Command(prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	c := &child{name: name, cmd: cmd, out: &procs.Tail{Max: 64 << 10}, done: make(chan struct{})}
	cmd.Stderr = c.out
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	cs.live.Add(c)
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, r)
		cmd.Wait()
		close(c.done)
	}()
	select {
	case addr := <-lines:
		if addr == "" {
			cs.stop(c)
			return nil, "", fmt.Errorf("%s printed no address: %s", name, c.out)
		}
		return c, addr, nil
	case <-time.After(10 * time.Second):
		cs.stop(c)
		return nil, "", fmt.Errorf("%s did not report its address within 10s", name)
	}
}

// stop ends c's process group: SIGTERM, then SIGKILL after 5 s.
func (cs *children) stop(c *child) {
	cs.live.Remove(c)
	procs.StopGroup(c.cmd.Process.Pid, c.done, 5*time.Second)
}

// stopAll stops every child still running.
func (cs *children) stopAll() { cs.live.StopAll(cs.stop) }

// pids returns the child's process and its descendants (nginx's worker).
func (c *child) pids() []int {
	root := c.cmd.Process.Pid
	out := []int{root}
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			parent[pid] = st.ppid
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			for _, have := range out {
				if pp == have && !containsInt(out, pid) {
					out = append(out, pid)
					changed = true
				}
			}
		}
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// procStat is what the harness reads from /proc/<pid>/stat.
type procStat struct {
	ppid  int
	ticks int64 // utime + stime
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, errors.New("short stat")
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{ppid: ppid, ticks: ut + st}, nil
}

// cpuTicks is the CPU time used by the processes so far.
func cpuTicks(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil {
			n += st.ticks
		}
	}
	return n
}

// peakRSS is the sum of VmHWM over the processes, in bytes.
func peakRSS(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				n += kb << 10
			}
		}
	}
	return n
}

// cpuBusy reads /proc/stat: busy and total ticks per CPU.
func cpuBusy() map[string][2]int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	out := map[string][2]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var total, idle int64
		for i, s := range f[1:] {
			v, _ := strconv.ParseInt(s, 10, 64)
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		out[f[0]] = [2]int64{total - idle, total}
	}
	return out
}

// busyShare is the share of time cpu was busy between two cpuBusy reads.
func busyShare(a, b map[string][2]int64, cpu string) float64 {
	x, y := a["cpu"+cpu], b["cpu"+cpu]
	if y[1] <= x[1] {
		return 0
	}
	return float64(y[0]-x[0]) / float64(y[1]-x[1])
}

// waitHTTP polls u until it answers 200, for at most limit.
func waitHTTP(ctx context.Context, u string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v: %v", u, limit, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
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
