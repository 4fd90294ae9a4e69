package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// waitDelay bounds how long Wait keeps reading a child's output after the
// child exited or was killed; a grandchild that inherited the pipe (a
// postmaster started by pg_ctl without -l) cannot make Run hang.
const waitDelay = 5 * time.Second

// droppedEnv lists the parent's variables a child never inherits: systemd's
// notification, watchdog and socket-activation variables belong to the
// parent alone.
var droppedEnv = map[string]bool{
	"NOTIFY_SOCKET":  true,
	"WATCHDOG_USEC":  true,
	"WATCHDOG_PID":   true,
	"LISTEN_FDS":     true,
	"LISTEN_PID":     true,
	"LISTEN_FDNAMES": true,
}

// Command builds, but does not start, an exec.Cmd that runs the PostgreSQL
// binary binDir/name with args as o:
//
//   - SysProcAttr is o.SysProcAttr(0): its own process group, o's
//     credentials when needed, no parent-death signal (set
//     cmd.SysProcAttr.Pdeathsig for long-lived children).
//   - Dir is "/", which every account can read, so relative paths in args
//     are not supported: pass absolute ones.
//   - Env is the parent's environment without NOTIFY_SOCKET, WATCHDOG_*,
//     LISTEN_* and every PG* variable, with LC_ALL=C (untranslated,
//     parseable output), HOME=o.Home ("/" if unknown), USER and LOGNAME
//     set to o.Name (left out if unknown), then extraEnv ("K=V"; a later value for a
//     key replaces an earlier one, so extraEnv can override LC_ALL).
//   - When ctx is done, the whole process group is killed with SIGKILL, and
//     Wait stops reading output 5 s after the child exits or is killed.
//     Use a context that is never done (context.WithoutCancel) for a
//     postmaster that must outlive the caller's request.
//
// It does no I/O beyond the group database lookup of SysProcAttr.
func Command(ctx context.Context, o Owner, binDir, name string, args []string, extraEnv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.SysProcAttr = o.SysProcAttr(0)
	cmd.Dir = "/"
	cmd.Env = childEnv(os.Environ(), o, extraEnv)
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		// The child leads its own process group (Setpgid): kill all of it,
		// so that a postmaster's backends die with it.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	return cmd
}

// childEnv builds a child's environment from the parent's.
func childEnv(parent []string, o Owner, extra []string) []string {
	home := o.Home
	if home == "" {
		home = "/"
	}
	set := []string{"LC_ALL=C", "HOME=" + home}
	if o.Name != "" {
		set = append(set, "USER="+o.Name, "LOGNAME="+o.Name)
	}
	set = append(set, extra...)

	override := make(map[string]bool, len(set))
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		override[k] = true
	}
	env := make([]string, 0, len(parent)+len(set))
	for _, kv := range parent {
		k, _, _ := strings.Cut(kv, "=")
		// The parent's USER and LOGNAME name the wrong account.
		if droppedEnv[k] || strings.HasPrefix(k, "PG") || override[k] || k == "USER" || k == "LOGNAME" {
			continue
		}
		env = append(env, kv)
	}
	// Later entries win: keep only the last value given for each key.
	last := make(map[string]int, len(set))
	for i, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	for i, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		if last[k] == i {
			env = append(env, kv)
		}
	}
	return env
}

// Run runs Command(ctx, o, binDir, name, args, extraEnv...) to completion
// and returns its combined stdout and stderr. It blocks until the child
// exits (and at most 5 s longer if a grandchild keeps its output open).
// Cancelling ctx kills the child's process group; the error then wraps
// ctx.Err() as well as the exit error. A non-zero exit returns the output
// and an error, wrapping the *exec.ExitError, that names the binary, the
// exit status and the last lines of output joined into one line. A binary
// that cannot be started returns the start error.
func Run(ctx context.Context, o Owner, binDir, name string, args []string, extraEnv ...string) ([]byte, error) {
	cmd := Command(ctx, o, binDir, name, args, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), runError(ctx, name, err, out.Bytes())
	}
	return out.Bytes(), nil
}

// runError describes a failed run of name in one line.
func runError(ctx context.Context, name string, err error, output []byte) error {
	tail := lastLines(output, 3, 600)
	if cause := firstFatal(output); cause != "" && !strings.Contains(tail, cause) {
		// PostgreSQL's reason comes before its hints and clean-up lines.
		tail = cause + " | … | " + tail
	}
	if ctx.Err() != nil {
		if tail == "" {
			return fmt.Errorf("%s: %w (%w)", name, ctx.Err(), err)
		}
		return fmt.Errorf("%s: %w (%w): %s", name, ctx.Err(), err, tail)
	}
	if tail == "" {
		return fmt.Errorf("%s: %w", name, err)
	}
	return fmt.Errorf("%s: %w: %s", name, err, tail)
}

// lastLines returns the last n non-blank lines of out, trimmed and joined
// with " | ", keeping at most max bytes from the end.
func lastLines(out []byte, n, max int) string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, " | ")
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return strings.ToValidUTF8(s, "")
}

// firstFatal returns the first line of out that reports PostgreSQL's reason
// for failing (FATAL, PANIC, or a server program's "could not …"), trimmed
// to 300 bytes; "" if there is none.
func firstFatal(out []byte) string {
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "FATAL:") || strings.Contains(l, "PANIC:") {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			return strings.ToValidUTF8(l, "")
		}
	}
	return ""
}
