package callback

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// droppedEnv are the parent's variables a script never inherits: systemd's
// notification, watchdog and socket-activation variables belong to
// pg-supervise alone.
var droppedEnv = map[string]bool{
	"NOTIFY_SOCKET": true, "WATCHDOG_USEC": true, "WATCHDOG_PID": true,
	"LISTEN_FDS": true, "LISTEN_PID": true, "LISTEN_FDNAMES": true,
}

// env is parent without systemd's variables and, when the script runs as
// another user, with that user's HOME, USER and LOGNAME.
func env(parent []string, o pg.Owner) []string {
	var set []string
	if o.NeedCredential() {
		if o.Home != "" {
			set = append(set, "HOME="+o.Home)
		}
		if o.Name != "" {
			set = append(set, "USER="+o.Name, "LOGNAME="+o.Name)
		}
	}
	out := make([]string, 0, len(parent)+len(set))
	for _, kv := range parent {
		k, _, _ := strings.Cut(kv, "=")
		if droppedEnv[k] {
			continue
		}
		if o.NeedCredential() && (k == "HOME" || k == "USER" || k == "LOGNAME") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, set...)
}

// command builds argv as o in a process group of its own, in pg-supervise's
// working directory (as Patroni runs its scripts in its own), with output
// to pg-supervise's stderr. When ctx is done the whole group is killed.
func command(ctx context.Context, o pg.Owner, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = o.SysProcAttr(0)
	cmd.Env = env(os.Environ(), o)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = time.Second
	return cmd
}

// Run runs argv as o and waits for it. It blocks until the script exits or
// ctx is done; then the script's process group is killed and the error
// wraps ctx.Err(). What a script that exited on its own left running in the
// background is left alone, as Patroni does. It returns nil for exit status 0, an *exec.ExitError for
// another status, or the error that kept the script from starting.
func Run(ctx context.Context, o pg.Owner, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	cmd := command(ctx, o, argv)
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		return errors.Join(ctx.Err(), err)
	}
	return err
}
