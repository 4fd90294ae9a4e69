package postmaster

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The tests of this file run a stand-in for PostgreSQL: this test binary,
// copied under the name "postgres" and started with fakeServerEnv set. As a
// postmaster it changes into the data directory, starts fakeChildren
// children of itself, each in a process group of its own as PostgreSQL's
// backends are, and sleeps; so do the children.

const (
	fakeServerEnv = "PGHA_TEST_FAKE_POSTGRES"
	fakeChildren  = 3
)

func TestMain(m *testing.M) {
	switch os.Getenv(fakeServerEnv) {
	case "postmaster":
		for i := 0; i < fakeChildren; i++ {
			c := exec.Command("/proc/self/exe")
			c.Env = append(os.Environ(), fakeServerEnv+"=child")
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := c.Start(); err != nil {
				os.Exit(3)
			}
		}
		time.Sleep(time.Hour)
		os.Exit(0)
	case "child":
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// fakeServer is a running stand-in server.
type fakeServer struct {
	dataDir string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startFakeServer starts a stand-in postmaster on a new data directory and
// waits until all its children run.
func startFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	dataDir := t.TempDir()
	exe := filepath.Join(t.TempDir(), "postgres")
	copyFile(t, "/proc/self/exe", exe)
	cmd := exec.Command(exe)
	cmd.Dir = dataDir
	cmd.Env = append(os.Environ(), fakeServerEnv+"=postmaster")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{dataDir: dataDir, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_, _ = KillServer(dataDir, cmd.Process.Pid, time.Second)
		<-s.exited
	})
	deadline := time.Now().Add(5 * time.Second)
	for len(s.procs(t)) < 1+fakeChildren {
		if time.Now().After(deadline) {
			t.Fatalf("stand-in server did not start its children: %v", s.procs(t))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func (s *fakeServer) pid() int { return s.cmd.Process.Pid }

func (s *fakeServer) procs(t *testing.T) []int {
	t.Helper()
	pids, err := ServerProcesses(s.dataDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// waitNone waits up to 2s until no server process of s is alive.
func (s *fakeServer) waitNone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for len(s.procs(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("server processes alive: %v", s.procs(t))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func alive(pid int) bool {
	ppid, state, ok := procStat(filepath.Join("/proc", strconv.Itoa(pid)))
	_ = ppid
	return ok && state != 'Z'
}

// TestServerProcessesFindsChildrenInOtherGroups: the postmaster and every
// child are found although each child leads a process group of its own.
func TestServerProcessesFindsChildrenInOtherGroups(t *testing.T) {
	s := startFakeServer(t)
	pids := s.procs(t)
	if len(pids) != 1+fakeChildren || !slices.Contains(pids, s.pid()) {
		t.Fatalf("found %v, want the postmaster %d and %d children", pids, s.pid(), fakeChildren)
	}
	for _, pid := range pids {
		if pid == s.pid() {
			continue
		}
		if g, _ := syscall.Getpgid(pid); g == s.pid() {
			t.Errorf("child %d is in the postmaster's process group; the test must model PostgreSQL", pid)
		}
	}
}

// TestKillServerKillsEveryChild: killing the postmaster's process group
// leaves the children alive; KillServer leaves none.
func TestKillServerKillsEveryChild(t *testing.T) {
	s := startFakeServer(t)
	children := slices.DeleteFunc(s.procs(t), func(p int) bool { return p == s.pid() })
	_ = syscall.Kill(-s.pid(), syscall.SIGKILL)
	<-s.exited
	time.Sleep(20 * time.Millisecond)
	for _, c := range children {
		if !alive(c) {
			t.Fatalf("child %d died with the postmaster's process group: the stand-in does not model PostgreSQL", c)
		}
	}
	// The postmaster is gone: the orphans are still found, by directory.
	if got := s.procs(t); len(got) != fakeChildren {
		t.Fatalf("orphans found %v, want %v", got, children)
	}
	n, err := KillServer(s.dataDir, 0, time.Second)
	if err != nil || n != fakeChildren {
		t.Fatalf("KillServer = %d, %v; want %d, nil", n, err, fakeChildren)
	}
	s.waitNone(t)
}

// TestKillServerWithPostmaster kills a live postmaster and its children.
func TestKillServerWithPostmaster(t *testing.T) {
	s := startFakeServer(t)
	if n, err := KillServer(s.dataDir, s.pid(), time.Second); err != nil || n != 1+fakeChildren {
		t.Fatalf("KillServer = %d, %v; want %d, nil", n, err, 1+fakeChildren)
	}
	select {
	case <-s.exited:
	case <-time.After(2 * time.Second):
		t.Fatal("postmaster not killed")
	}
	s.waitNone(t)
}

// TestServerProcessesIgnoresOthers: a postgres of another data directory,
// and another program in this one, are not server processes of it; a stale
// postmaster pid naming another program is neither stopped nor killed.
func TestServerProcessesIgnoresOthers(t *testing.T) {
	s := startFakeServer(t)
	other := startFakeServer(t)
	sleeper := exec.Command("sleep", "60")
	sleeper.Dir = s.dataDir
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })

	for _, pid := range s.procs(t) {
		if pid == sleeper.Process.Pid || slices.Contains(other.procs(t), pid) {
			t.Errorf("pid %d wrongly taken for a server process of %s", pid, s.dataDir)
		}
	}
	if _, err := KillServer(s.dataDir, sleeper.Process.Pid, time.Second); err != nil {
		t.Fatal(err)
	}
	s.waitNone(t)
	_, state, _ := procStat(filepath.Join("/proc", strconv.Itoa(sleeper.Process.Pid)))
	if state == 'T' || state == 'Z' || state == 0 {
		t.Errorf("the unrelated process was stopped or killed (state %q)", state)
	}
	if len(other.procs(t)) != 1+fakeChildren {
		t.Errorf("the other server lost processes: %v", other.procs(t))
	}
}
