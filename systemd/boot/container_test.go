package boot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// container is a systemd booted by systemd-nspawn on a cached tree
// (rootfs) with a tmpfs overlay, sharing the host's network.
type container struct {
	nspawn *exec.Cmd
	exited chan struct{}
	// pid is the container's systemd (PID 1 inside), as the host sees it.
	pid int
	log string
}

// boot starts systemd-nspawn and waits until the container's systemd has
// finished booting. Teardown, in t's Cleanup, powers the container off
// and kills what is left by the PIDs started here.
func boot(t *testing.T, root string, extra ...string) *container {
	t.Helper()
	c := &container{exited: make(chan struct{}), log: filepath.Join(t.TempDir(), "nspawn.log")}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{
		"--directory=" + root,
		// The cached tree stays read-only; every change goes to a tmpfs.
		"--volatile=overlay",
		"--keep-unit", "--register=no",
		"--console=pipe",
		"--boot",
	}, extra...)
	c.nspawn = exec.Command("systemd-nspawn", args...)
	c.nspawn.Stdout, c.nspawn.Stderr = logf, logf
	// If the test process dies without its Cleanup (a timeout's panic),
	// SIGTERM makes systemd-nspawn power the container off (its
	// --kill-signal, SIGRTMIN+3 with --boot); SIGKILL would leave the
	// container's systemd running without it.
	c.nspawn.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	began := time.Now()
	if err := c.nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.nspawn.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() { c.teardown(t) })

	// The container's systemd is the child of systemd-nspawn (its
	// intermediate process exits once PID 1 runs).
	deadline := time.Now().Add(30 * time.Second)
	for c.pid == 0 {
		select {
		case <-c.exited:
			b, _ := os.ReadFile(c.log)
			t.Fatalf("systemd-nspawn exited: %v\n%s", c.nspawn.ProcessState, tail(string(b), 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no systemd in the container within 30 s")
		}
		for _, p := range children(c.nspawn.Process.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "systemd" {
				c.pid = p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// systemctl answers "offline", then fails to connect, until systemd
	// has set itself up and listens on its private socket.
	var state string
	for {
		out, err := c.run(60*time.Second, nil, "systemctl", "is-system-running", "--wait")
		state = strings.TrimSpace(out)
		if state != "offline" && !strings.Contains(state, "Failed to connect to bus") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container's systemd: %q (%v)", state, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if state != "running" {
		failed, _ := c.run(10*time.Second, nil, "systemctl", "--failed", "--no-legend")
		if state != "degraded" {
			t.Fatalf("container's systemd: %q; failed units:\n%s", state, failed)
		}
		t.Logf("container's systemd is degraded; failed units:\n%s", failed)
	}
	t.Logf("container booted in %s (systemd PID %d on the host)", time.Since(began).Round(time.Millisecond), c.pid)
	return c
}

// children returns the PIDs of pid's children.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(s); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func (c *container) teardown(t *testing.T) {
	if t.Failed() {
		if out, err := c.run(10*time.Second, nil, "systemctl", "list-jobs", "--no-legend"); err == nil || out != "" {
			t.Logf("systemd's jobs:\n%s", out)
		}
		if out, err := c.run(20*time.Second, nil, "journalctl", "--no-pager", "-o", "short-precise", "-u", "pg-ha*", "-n", "400"); err == nil || out != "" {
			t.Logf("journal of the pg-ha units (last 400 lines):\n%s", out)
		}
	}
	began := time.Now()
	if c.pid != 0 {
		_, _ = c.run(5*time.Second, nil, "systemctl", "--no-block", "poweroff")
	}
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		t.Logf("container did not power off within 15 s: killing it")
		if c.pid != 0 {
			// PID 1 of the container's PID namespace: everything in it dies.
			_ = syscall.Kill(c.pid, syscall.SIGKILL)
		}
		_ = c.nspawn.Process.Kill()
		<-c.exited
	}
	t.Logf("container stopped in %s", time.Since(began).Round(time.Millisecond))
}

// run runs a command inside the container (all its namespaces) and
// returns its combined output. stdin may be nil.
func (c *container) run(timeout time.Duration, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(c.pid), "-a", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "HOME=/root", "TERM=dumb"}
	// nsenter forks the command into the container's PID namespace: after
	// a timeout kills nsenter, the command may still hold the output open.
	cmd.WaitDelay = 2 * time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %s)", err, timeout)
	}
	return string(out), err
}

// must is run that fails t on an error.
func (c *container) must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.run(120*time.Second, nil, args...)
	if err != nil {
		t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// sh runs a shell script inside the container, failing t on an error.
func (c *container) sh(t testing.TB, script string) string {
	t.Helper()
	return c.must(t, "sh", "-ec", script)
}

// writeFile replaces the contents of path inside the container, keeping
// an existing file's owner and mode (as an editor would).
func (c *container) writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	out, err := c.run(30*time.Second, data, "sh", "-ec", `cat > "$1"`, "sh", path)
	if err != nil {
		t.Fatalf("write %s in the container: %v\n%s", path, err, out)
	}
}

// show returns a unit's property (systemctl show -p NAME --value).
func (c *container) show(t testing.TB, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(c.must(t, "systemctl", "show", "-p", prop, "--value", unit))
}

// mainPID returns a unit's MainPID (as the container sees it), 0 if none.
func (c *container) mainPID(t testing.TB, unit string) int {
	t.Helper()
	p, err := strconv.Atoi(c.show(t, unit, "MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
