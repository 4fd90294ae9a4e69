package systemd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pg-ha/pg-ha/lib/sdnotify"
)

// The stand-ins take the places of pg-lockd and pg-supervise in
// TestRolePipe, the fast role-pipe test that follows every line through the
// FIFO; TestRolePipeRealPrograms runs the real programs. TestMain runs this
// test binary as one of them when it is started under that name. They take
// the real programs' flags and open the pipe the way the real programs do:
//
//   - pg-lockd writes a line every 5 ms to --output, opened
//     O_WRONLY|O_NONBLOCK; a full pipe (EAGAIN) drops the line, never blocks.
//     A line is "writer=<pid> seq=<n> t=<unix ns> pad=…", 1 KiB long, so
//     that a stopped reader fills the pipe within a third of a second.
//   - pg-supervise opens --input O_RDWR, so it never sees end-of-input, and
//     appends "reader=<pid> <line without pad>" to $RUNTIME_DIRECTORY/received
//     for every line; on end-of-input it appends "reader=<pid> EOF" and
//     exits 1.
//
// Both send READY=1 once they have opened the pipe, WATCHDOG=1 from their
// main loop, and STOPPING=1 on SIGTERM, through lib/sdnotify.

const standInLinePeriod = 5 * time.Millisecond

type standInFlags struct {
	config, pipe, runtimeDir string
}

// parseStandInFlags accepts what the real programs accept of the flags the
// units use; anything else is a usage error, as with kong.
func parseStandInFlags(args []string, pipeFlag string) (standInFlags, error) {
	f := standInFlags{runtimeDir: os.Getenv("RUNTIME_DIRECTORY")}
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(args[i], "=")
		if !hasVal && strings.HasPrefix(name, "-") {
			if i+1 == len(args) {
				return f, fmt.Errorf("%s: missing value", name)
			}
			i++
			val = args[i]
		}
		switch name {
		case "--config", "-c":
			f.config = val
		case "--" + pipeFlag:
			f.pipe = val
		case "--runtime-dir":
			f.runtimeDir = val
		case "--log.level", "--log.format":
		default:
			return f, fmt.Errorf("unknown flag %s", name)
		}
	}
	if f.config == "" || f.pipe == "" {
		return f, fmt.Errorf("--config and --%s are required", pipeFlag)
	}
	if _, err := os.ReadFile(f.config); err != nil {
		return f, fmt.Errorf("--config: %w", err)
	}
	return f, nil
}

func standInFail(prog string, code int, err error) int {
	fmt.Fprintf(os.Stderr, "%s (stand-in): %v\n", prog, err)
	return code
}

// standInWriter is pg-lockd's stand-in.
func standInWriter(args []string) int {
	const prog = "pg-lockd"
	f, err := parseStandInFlags(args, "output")
	if err != nil {
		return standInFail(prog, 2, err)
	}
	fd, err := unix.Open(f.pipe, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return standInFail(prog, 1, fmt.Errorf("open --output %s: %w", f.pipe, err))
	}
	defer unix.Close(fd)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	n := sdnotify.New()
	if err := n.Ready(); err != nil {
		return standInFail(prog, 1, err)
	}
	pad := strings.Repeat("x", 1000)
	pid := os.Getpid()
	tick := time.NewTicker(standInLinePeriod)
	defer tick.Stop()
	var lastPing time.Time
	var lastErr error
	for seq := 1; ; seq++ {
		line := fmt.Sprintf("writer=%d seq=%d t=%d pad=%s\n", pid, seq, time.Now().UnixNano(), pad)
		if _, err := unix.Write(fd, []byte(line)); err != nil && !errors.Is(err, unix.EAGAIN) {
			if lastErr == nil || err.Error() != lastErr.Error() {
				fmt.Fprintf(os.Stderr, "%s (stand-in): write: %v\n", prog, err)
			}
			lastErr = err
		}
		if iv := n.WatchdogInterval(); iv > 0 && time.Since(lastPing) >= iv {
			n.Watchdog()
			lastPing = time.Now()
		}
		select {
		case <-ctx.Done():
			n.Stopping()
			return 0
		case <-tick.C:
		}
	}
}

// standInReader is pg-supervise's stand-in.
func standInReader(args []string) int {
	const prog = "pg-supervise"
	f, err := parseStandInFlags(args, "input")
	if err != nil {
		return standInFail(prog, 2, err)
	}
	if f.runtimeDir == "" {
		return standInFail(prog, 2, errors.New("no --runtime-dir and no $RUNTIME_DIRECTORY"))
	}
	in, err := os.OpenFile(f.pipe, os.O_RDWR, 0)
	if err != nil {
		return standInFail(prog, 1, fmt.Errorf("open --input %s: %w", f.pipe, err))
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(f.runtimeDir, "received"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return standInFail(prog, 1, err)
	}
	defer out.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	n := sdnotify.New()
	if err := n.Ready(); err != nil {
		return standInFail(prog, 1, err)
	}
	pid := os.Getpid()
	watchdog := time.NewTicker(time.Hour)
	defer watchdog.Stop()
	if iv := n.WatchdogInterval(); iv > 0 {
		watchdog.Reset(iv)
		n.Watchdog()
	}
	for {
		select {
		case <-ctx.Done():
			n.Stopping()
			return 0
		case <-watchdog.C:
			n.Watchdog()
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintf(out, "reader=%d EOF\n", pid)
				return standInFail(prog, 1, errors.New("end of input"))
			}
			l, _, _ = strings.Cut(l, " pad=")
			if _, err := fmt.Fprintf(out, "reader=%d %s\n", pid, l); err != nil {
				return standInFail(prog, 1, err)
			}
		}
	}
}
