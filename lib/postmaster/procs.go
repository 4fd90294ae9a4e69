package postmaster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// A server process of a data directory is the postmaster or any process it
// started: backends, WAL senders, the checkpointer, parallel workers, … .
// PostgreSQL puts most of them in process groups of their own, and a
// backend whose postmaster died keeps running its statement (and can commit
// it), so they are found here without relying on process groups or on the
// postmaster being alive:
//
//   - its executable is named postgres and its working directory is the
//     data directory (the postmaster changes into it at start, and every
//     child inherits it), or
//   - its parent is the postmaster.
//
// Zombies are not server processes: they run nothing and have released
// their memory, shared memory included.

// procRoot is where the process table is read; tests may point it
// elsewhere.
var procRoot = "/proc"

// ServerProcesses returns the pids of every live server process of
// dataDir, the postmaster (if postmaster > 1 and alive) included. It reads
// the process table once and does not block.
func ServerProcesses(dataDir string, postmaster int) ([]int, error) {
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = filepath.Clean(dataDir)
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || pid == self {
			continue
		}
		if isServerProcess(pid, want, postmaster) {
			out = append(out, pid)
		}
	}
	return out, nil
}

func isServerProcess(pid int, dataDir string, postmaster int) bool {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	exe, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		return false // gone, a zombie, a kernel thread, or not ours to see
	}
	postgres := isPostgresExe(exe)
	if pid == postmaster && postgres {
		return true
	}
	if ppid, state, ok := procStat(dir); ok && state != 'Z' && postmaster > 1 && ppid == postmaster {
		return true
	}
	if !postgres {
		return false
	}
	cwd, err := os.Readlink(filepath.Join(dir, "cwd"))
	return err == nil && cwd == dataDir
}

func isPostgresExe(exe string) bool {
	return filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "postgres"
}

// isPostgres reports whether pid is alive and runs the postgres executable.
func isPostgres(pid int) bool {
	exe, err := os.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "exe"))
	return err == nil && isPostgresExe(exe)
}

// procStat returns the parent pid and the state letter from
// /proc/<pid>/stat.
func procStat(dir string) (ppid int, state byte, ok bool) {
	data, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid …; comm may contain spaces and parentheses.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	p, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	return p, f[0][0], true
}

// ErrSurvivors means some server process was still alive when KillServer
// gave up (a process in uninterruptible sleep cannot die until its I/O
// ends).
var ErrSurvivors = errors.New("server processes survived SIGKILL")

// KillServer kills every server process of dataDir so that none of them can
// acknowledge another write. The postmaster (if postmaster > 1) is stopped
// first so that it cannot start new children while they are killed; then
// every server process gets SIGKILL, and the process table is read again
// until none is left alive, or within has passed (ErrSurvivors, naming
// them). It returns how many processes it signalled. It blocks for as long
// as the processes take to die; a killed process normally dies within
// microseconds. Once none is left, the server's System V shared memory
// segment is removed (pg.RemoveSegment).
func KillServer(dataDir string, postmaster int, within time.Duration) (int, error) {
	if postmaster > 1 && isPostgres(postmaster) {
		_ = syscall.Kill(postmaster, syscall.SIGSTOP)
	} else {
		postmaster = 0 // gone, or its pid now names another program
	}
	deadline := time.Now().Add(within)
	signalled := map[int]bool{}
	for {
		pids, err := ServerProcesses(dataDir, postmaster)
		if err != nil {
			// Without the process table, fall back on what we know.
			if postmaster > 1 {
				_ = syscall.Kill(postmaster, syscall.SIGKILL)
				_ = syscall.Kill(-postmaster, syscall.SIGKILL)
			}
			return len(signalled), err
		}
		if len(pids) == 0 {
			// Best effort: the next start in this data directory removes
			// it too, but a data directory re-cloned after a fence is
			// never started again.
			_, _ = pg.RemoveSegment(dataDir)
			return len(signalled), nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			signalled[pid] = true
		}
		if time.Now().After(deadline) {
			return len(signalled), fmt.Errorf("%w: %v", ErrSurvivors, pids)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
