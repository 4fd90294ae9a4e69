package postmaster

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// TestFencerKillsEveryServerProcessAtDeadline: at the deadline the
// postmaster and every child, each in a process group of its own, die.
func TestFencerKillsEveryServerProcessAtDeadline(t *testing.T) {
	s := startFakeServer(t)
	f := NewFencer(s.dataDir, clock.System{}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	pgid := s.pid()
	deadline := clock.Now().Add(300 * time.Millisecond)
	f.Arm(pgid, 7, deadline)
	select {
	case <-s.exited:
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
	if pids := s.procs(t); len(pids) > 0 {
		t.Errorf("server processes %v survived the fence", pids)
	}
}

func TestFencerExtendAndDisarm(t *testing.T) {
	s := startFakeServer(t)
	f := NewFencer(s.dataDir, clock.System{}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	pgid := s.pid()
	groupAlive := func(int) bool { return len(s.procs(t)) == 1+fakeChildren }
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
	for len(s.procs(t)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(s.procs(t)) > 0 {
		t.Fatal("an expired arming did not fence")
	}
}
