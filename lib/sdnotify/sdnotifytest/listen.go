// Package sdnotifytest stands in for systemd in tests of code that sends
// sd_notify(3) notifications: Listen is a notification socket for a daemon
// that reads NOTIFY_SOCKET, and Recorder an sdnotify.Daemon that records
// the calls of a main loop handed a fake, with helpers to wait for a call
// and to measure the gaps between watchdog pings.
package sdnotifytest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Listen opens a unixgram socket in a new temporary directory and returns
// its path, to be passed as NOTIFY_SOCKET, and a channel that receives every
// datagram sent to it ("READY=1", "STATUS=…", possibly several
// newline-separated assignments in one message). The socket accepts
// datagrams from any user, so daemons a test starts as postgres can notify
// it. Everything is closed and removed in t.Cleanup, after which the
// channel is closed; the channel buffers 4096 messages, beyond that senders
// wait.
func Listen(t testing.TB) (socketPath string, msgs <-chan string) {
	t.Helper()
	// os.MkdirTemp rather than t.TempDir: a socket path must stay under 108
	// bytes and be reachable by other users.
	dir, err := os.MkdirTemp("", "sdnotify-")
	if err != nil {
		t.Fatalf("sdnotifytest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("sdnotifytest: %v", err)
	}
	socketPath = filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socketPath, Net: "unixgram"})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("sdnotifytest: listen %s: %v", socketPath, err)
	}
	if err := os.Chmod(socketPath, 0o666); err != nil {
		conn.Close()
		os.RemoveAll(dir)
		t.Fatalf("sdnotifytest: %v", err)
	}
	ch := make(chan string, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		buf := make([]byte, 64<<10)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Logf("sdnotifytest: read %s: %v", socketPath, err)
				}
				return
			}
			ch <- string(buf[:n])
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		// Unblock a reader stuck on a full channel, then wait for it.
		for {
			select {
			case <-done:
				os.RemoveAll(dir)
				return
			case <-ch:
			}
		}
	})
	return socketPath, ch
}
