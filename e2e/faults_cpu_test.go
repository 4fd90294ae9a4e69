package e2e

import (
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestCPUSaturated: other programs keep every core busy (two busy loops
// per core) for a minute while the workload writes. pg-ha must neither
// fail over nor fence: the leader key never moves, no pg-supervise fences,
// and nothing acknowledged is lost.
func TestCPUSaturated(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	stop := make(chan struct{})
	seen := leaderWatch(c, stop)

	n := 2 * runtime.NumCPU()
	busy := w.Mark("start " + itoa(n) + " busy loops")
	var loops []*exec.Cmd
	t.Cleanup(func() {
		for _, cmd := range loops {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	})
	for range n {
		cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start a busy loop: %v", err)
		}
		loops = append(loops, cmd)
	}
	time.Sleep(time.Minute)
	for _, cmd := range loops {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
	loops = nil
	idle := w.Mark("busy loops killed")
	w.WaitAck(t, testcluster.MultiWriter, p.Name, idle, 10*time.Second)
	close(stop)
	leaders := <-seen

	for _, l := range leaders {
		if l != p.Name && l != "?" {
			t.Errorf("leader key changed while every core was busy: %v", leaders)
			break
		}
	}
	for _, n := range c.Nodes {
		if n.LogContains(testcluster.Supervise, "fenced") {
			t.Errorf("%s pg-supervise fenced while every core was busy", n.Name)
		}
	}
	h := w.Snapshot()
	t.Logf("%d busy loops for %s: leader key values seen %v; %s writer's longest gap %s, %s's %s",
		n, idle.Sub(busy).Round(time.Millisecond), leaders, testcluster.MultiWriter,
		testcluster.MaxGapSince(h, testcluster.MultiWriter, busy).Round(time.Millisecond),
		"pin-"+p.Name, testcluster.MaxGapSince(h, "pin-"+p.Name, busy).Round(time.Millisecond))
	finish(t, c, w)
}

func itoa(i int) string { return strconv.Itoa(i) }
