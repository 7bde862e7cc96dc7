// Package procs holds what the benchmark harnesses (bench, bench/fleet)
// share about their child processes: the set still running, stopping a
// child's process group, the tail of its output, and where the module is.
package procs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Live is the set of children still running, so that every one of them is
// stopped at the end, also after an interrupt. The zero value is empty.
type Live[T comparable] struct {
	mu sync.Mutex
	m  map[T]bool
}

// Add records a started child.
func (l *Live[T]) Add(c T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[T]bool{}
	}
	l.m[c] = true
}

// Remove forgets a child that is being stopped.
func (l *Live[T]) Remove(c T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, c)
}

// StopAll calls stop for every child still running, in parallel, and waits.
func (l *Live[T]) StopAll(stop func(T)) {
	l.mu.Lock()
	all := make([]T, 0, len(l.m))
	for c := range l.m {
		all = append(all, c)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() { stop(c) })
	}
	wg.Wait()
}

// StopGroup ends the process group pgid of a child started with Setpgid:
// SIGTERM, SIGKILL if done has not closed within grace, and SIGKILL again
// for whatever is left in the group (an nginx worker whose master died).
func StopGroup(pgid int, done <-chan struct{}, grace time.Duration) {
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// Tail keeps the last Max bytes written to it.
type Tail struct {
	Max int
	mu  sync.Mutex
	b   []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = t.b[len(t.b)-t.Max:]
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// ModuleRoot returns the directory of the flagproxy module; command is how
// the harness is run, for the error outside it.
func ModuleRoot(command string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the harness inside the flagproxy module (%s)", command)
	}
	return filepath.Dir(mod), nil
}
