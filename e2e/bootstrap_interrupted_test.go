package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// childOf reports whether process pid's parent is ppid.
func childOf(pid, ppid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ppid ...; comm may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 1 && f[1] == strconv.Itoa(ppid)
}

// procsMentioning lists the processes whose command line contains s.
func procsMentioning(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, pid)
		}
	}
	return out
}

// TestBootstrapInterrupted: pg-bootstrap is killed (SIGKILL, with its
// initdb) right after it won the initialize key. Started again normally,
// the nodes form the cluster without a manual step: the key, held on the
// dead bootstrap's lease, expires; the half-initialized data directory is
// moved aside, not used and not deleted.
func TestBootstrapInterrupted(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	// Make it a cluster that was never bootstrapped: no processes, no
	// data directories, no keys.
	for _, n := range c.Nodes {
		n.KillAll()
		if err := os.RemoveAll(n.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, c.Key(""), clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}

	n1 := c.Nodes[0]
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	logf, err := os.OpenFile(filepath.Join(n1.Dir, "pg-bootstrap.interrupted.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(testcluster.Binaries(t), "pg-bootstrap"), "--config", n1.ConfigPath,
		"--runtime-dir", n1.RuntimeDir, "--log.format", "json")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = n1.Dir, []string{"HOME=" + n1.Dir, "PATH=/usr/bin:/bin"}, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	deadline := time.Now().Add(30 * time.Second)
	killed := false
	for !killed {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("pg-bootstrap of %s never ran initdb", n1.Name)
		}
		for _, p := range procsMentioning(n1.DataDir) {
			exe, _ := os.Readlink("/proc/" + strconv.Itoa(p) + "/exe")
			if filepath.Base(exe) == "initdb" && childOf(p, pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				killed = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-waited
	// Its initdb and whatever initdb started die with it, as in a crash.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for _, p := range procsMentioning(n1.DataDir) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if v, err := c.Get(ctx, c.Key("initialize")); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("killed %s's pg-bootstrap during initdb; initialize key %q left behind", n1.Name, v)
	}

	began := time.Now()
	for _, n := range c.Nodes {
		n.Start(t)
	}
	p := c.WaitPrimary(t, 60*time.Second)
	c.WaitReplicasStreaming(t, 60*time.Second)
	t.Logf("cluster formed %s after the restart; primary %s", time.Since(began).Round(time.Millisecond), p.Name)
	aside, _ := filepath.Glob(n1.DataDir + ".incomplete-*")
	if len(aside) != 1 {
		t.Errorf("half-initialized data directory of %s not moved aside: %v", n1.Name, aside)
	}
	sysid, err := c.Get(ctx, c.Key("initialize"))
	if err != nil || sysid == "" {
		t.Errorf("initialize key %q (%v), want the system identifier", sysid, err)
	}
}
