package postmaster

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startGroup starts a process group of two sleeping processes.
func startGroup(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { KillGroup(cmd.Process.Pid); _ = cmd.Wait() })
	return cmd, cmd.Process.Pid
}

// groupAlive reports whether a live (not zombie) process is in group pgid.
func groupAlive(pgid int) bool {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		data, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

func TestFencerKillsGroupAtDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := NewFencer(clock.System{}, zerolog.Nop())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	cmd, pgid := startGroup(t)
	deadline := clock.Now().Add(300 * time.Millisecond)
	f.Arm(pgid, 7, deadline)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		t.Fatal("the fencer did not fence")
	}
	late := clock.Now().Sub(deadline)
	if late < 0 {
		t.Fatalf("fenced %v before the deadline", -late)
	}
	if late > 150*time.Millisecond {
		t.Errorf("fenced %v after the deadline", late)
	}
	if !f.FiredFor(pgid) {
		t.Error("FiredFor is false after a fence")
	}
	for i := 0; i < 50 && groupAlive(pgid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if groupAlive(pgid) {
		t.Error("a member of the process group survived the fence")
	}
}

func TestFencerExtendAndDisarm(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := NewFencer(clock.System{}, zerolog.Nop())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	_, pgid := startGroup(t)
	f.Arm(pgid, 7, clock.Now().Add(200*time.Millisecond))
	// Lines for the armed token extend the deadline; another token does not.
	for i := 0; i < 5; i++ {
		time.Sleep(100 * time.Millisecond)
		f.Extend(7, clock.Now().Add(200*time.Millisecond))
		f.Extend(8, clock.Now().Add(-time.Second))
	}
	if !groupAlive(pgid) {
		t.Fatal("fenced although the deadline kept being extended")
	}
	f.Disarm()
	time.Sleep(400 * time.Millisecond)
	if !groupAlive(pgid) {
		t.Fatal("fenced after Disarm")
	}
	f.Arm(pgid, 9, clock.Now().Add(-time.Millisecond))
	deadline := time.Now().Add(2 * time.Second)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if groupAlive(pgid) {
		t.Fatal("an expired arming did not fence")
	}
}
