package procs

import (
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestTailKeepsTheEnd(t *testing.T) {
	tl := &Tail{Max: 5}
	for _, s := range []string{"abc", "defg", "h"} {
		tl.Write([]byte(s))
	}
	if got := tl.String(); got != "defgh" {
		t.Errorf("tail = %q, want %q", got, "defgh")
	}
}

func TestLiveStopAll(t *testing.T) {
	var l Live[int]
	for i := range 5 {
		l.Add(i)
	}
	l.Remove(2)
	var mu sync.Mutex
	var stopped []int
	l.StopAll(func(i int) { mu.Lock(); stopped = append(stopped, i); mu.Unlock() })
	slices.Sort(stopped)
	if want := []int{0, 1, 3, 4}; !slices.Equal(stopped, want) {
		t.Errorf("stopped %v, want %v", stopped, want)
	}
}

// TestStopGroupKillsWhatIgnoresTerm: a child that ignores SIGTERM is killed
// after the grace period, and so is its own child in the group.
func TestStopGroupKillsWhatIgnoresTerm(t *testing.T) {
	cmd := exec.Command("sh", "-c", `trap "" TERM; sleep 60 & wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	time.Sleep(100 * time.Millisecond) // let the shell set its trap
	StopGroup(cmd.Process.Pid, done, 200*time.Millisecond)
	select {
	case <-done:
	default:
		t.Fatal("the child is still running")
	}
	// The shell's sleep, reparented, is reaped by init a moment later.
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(-cmd.Process.Pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("something of the group is still running")
		}
	}
}
