package postmaster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// Proc is one running postmaster, our child. Its children (backends, WAL
// senders, …) are found by ServerProcesses, not by process group.
type Proc struct {
	pid      int
	done     chan struct{}
	err      error
	stopping atomic.Bool
	dataDir  string
}

// Start starts "postgres -D dataDir" as o. The child gets SIGKILL from the
// kernel if this process dies (a parent-death signal, tied to a thread that
// lives exactly as long as the child), so no postmaster outlives its
// supervisor. Start blocks only until the process is created.
func Start(o pg.Owner, binDir, dataDir string) (*Proc, error) {
	cmd := pg.Command(context.Background(), o, binDir, "postgres", []string{"-D", dataDir})
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	p := &Proc{done: make(chan struct{}), dataDir: dataDir}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the forking thread exits, so
		// that thread must outlive the child: keep it locked to this
		// goroutine until Wait returns.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return p, nil
}

// PID returns the postmaster's pid.
func (p *Proc) PID() int { return p.pid }

// Done is closed when the postmaster has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the postmaster has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit status once Done is closed.
func (p *Proc) Err() error { return p.err }

// Expected reports whether the exit was asked for (Stop or Kill).
func (p *Proc) Expected() bool { return p.stopping.Load() }

// Signal sends sig to the postmaster alone.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	return syscall.Kill(p.pid, sig)
}

// Kill kills every server process of the data directory — the postmaster
// and each of its children, whatever their process group — and returns
// once none is alive (or after killWithin, logging nothing: the caller
// reports the error), so that no further write can be acknowledged. Done is
// closed soon after, when the postmaster has been reaped.
func (p *Proc) Kill() error {
	p.stopping.Store(true)
	_, err := KillServer(p.dataDir, p.pid, killWithin)
	return err
}

// killWithin bounds how long a kill waits for server processes to die.
const killWithin = 5 * time.Second

// Shutdown modes, as pg_ctl names them.
const (
	Smart     = syscall.SIGTERM
	Fast      = syscall.SIGINT
	Immediate = syscall.SIGQUIT
)

// Stop asks the postmaster to shut down in mode and waits up to timeout;
// then it escalates to an immediate shutdown for 5 s and finally kills
// every server process. It returns once the postmaster and its group are gone or
// ctx is done.
func (p *Proc) Stop(ctx context.Context, mode syscall.Signal, timeout time.Duration) error {
	p.stopping.Store(true)
	steps := []struct {
		sig syscall.Signal
		d   time.Duration
	}{{mode, timeout}, {Immediate, 5 * time.Second}}
	for _, s := range steps {
		if err := p.Signal(s.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal postmaster %d: %w", p.pid, err)
		}
		t := time.NewTimer(s.d)
		select {
		case <-p.done:
			t.Stop()
			_, _ = KillServer(p.dataDir, 0, killWithin) // children that outlived it
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	_ = p.Kill()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Promote asks a standby to promote, as pg_ctl promote does: a promote file
// in the data directory and SIGUSR1 to the postmaster. It does not wait.
func (p *Proc) Promote(o pg.Owner) error {
	path := filepath.Join(p.dataDir, "promote")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return fmt.Errorf("write promote file: %w", err)
	}
	if os.Geteuid() == 0 {
		_ = os.Chown(path, int(o.UID), int(o.GID))
	}
	return p.Signal(syscall.SIGUSR1)
}

// Reload sends SIGHUP so that PostgreSQL rereads its configuration.
func (p *Proc) Reload() error { return p.Signal(syscall.SIGHUP) }
