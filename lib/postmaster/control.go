package postmaster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/pgdata"
)

// ControlSocket is the name of pg-supervise's local control socket in the
// runtime directory. It carries requests that are not role decisions:
// "status" (the state as JSON) and "reinit" (rebuild this replica from its
// leader). Role decisions come only from the role lines.
const ControlSocket = "supervise.sock"

type request struct {
	cmd   string
	opts  ReinitOptions
	reply chan error
}

// ReinitOptions travel with a reinit request as JSON after the word:
// where to copy from and how many old copies to keep. Without them the
// leader of the role line is copied and one old copy kept.
type ReinitOptions struct {
	Sources []pgdata.Source `json:"sources,omitempty"`
	Keep    *int            `json:"keep,omitempty"`
	// Reserve is the free space, in bytes, the file system must keep after
	// the new copy.
	Reserve int64 `json:"reserve,omitempty"`
}

// serveControl accepts control requests until ctx is done.
func (s *Supervisor) serveControl(ctx context.Context) (func(), error) {
	path := filepath.Join(s.node.RuntimeDir, ControlSocket)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o600)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.handleControl(ctx, c)
		}
	}()
	return func() { ln.Close(); <-done; _ = os.Remove(path) }, nil
}

func (s *Supervisor) handleControl(ctx context.Context, c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch cmd {
	case "status":
		s.mu.Lock()
		st := s.published
		s.mu.Unlock()
		_ = json.NewEncoder(c).Encode(st)
	case "reinit":
		r := request{cmd: cmd, reply: make(chan error, 1)}
		if arg = strings.TrimSpace(arg); arg != "" {
			if err := json.Unmarshal([]byte(arg), &r.opts); err != nil {
				fmt.Fprintf(c, "error: reinit options are not valid JSON: %s\n", oneLine(err))
				return
			}
		}
		select {
		case s.requests <- r:
		case <-ctx.Done():
			return
		}
		select {
		case err := <-r.reply:
			if err != nil {
				fmt.Fprintf(c, "error: %s\n", oneLine(err))
				return
			}
			fmt.Fprintln(c, "ok")
		case <-ctx.Done():
		}
	case "reload":
		// The YAML is read here; the loop applies it within 500 ms.
		if err := s.reloadFromFile(); err != nil {
			fmt.Fprintf(c, "error: %s\n", oneLine(err))
			return
		}
		fmt.Fprintln(c, "ok")
	default:
		fmt.Fprintf(c, "error: unknown request %q (use status, reinit or reload)\n", cmd)
	}
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// Request sends one control request to the pg-supervise of runtimeDir and
// returns its one-line answer. It blocks until the answer or ctx's deadline.
func Request(ctx context.Context, runtimeDir, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join(runtimeDir, ControlSocket))
	if err != nil {
		return "", fmt.Errorf("reach pg-supervise: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintln(c, cmd); err != nil {
		return "", fmt.Errorf("send %s to pg-supervise: %w", cmd, err)
	}
	ans, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read pg-supervise's answer to %s: %w", cmd, err)
	}
	ans = strings.TrimSpace(ans)
	if msg, ok := strings.CutPrefix(ans, "error: "); ok {
		return "", errors.New(msg)
	}
	return ans, nil
}
