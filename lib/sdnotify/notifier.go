// Package sdnotify tells systemd how a daemon is doing: READY=1 once it
// serves, STATUS= on every change of role, STOPPING=1 on the way out, and
// WATCHDOG=1 from the main loop (sd_notify(3)).
//
// A Notifier reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID once, when
// it is made. Without NOTIFY_SOCKET (not started by systemd, or not
// Type=notify) every method is a no-op that returns nil, so daemons call
// them unconditionally.
//
// Watchdog pings belong in the daemon's main loop, at WatchdogInterval,
// never in a goroutine of their own: the point of the watchdog is that a
// hung main loop stops the pings and systemd kills the daemon.
//
// Children must not inherit the notification socket or socket-activation
// variables (PostgreSQL's postmaster, built with systemd support, would
// send READY=1 of its own): start them with CleanEnv(os.Environ()).
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// sendTimeout bounds one notification. The socket belongs to PID 1; a
// manager too busy to read it must not stall a daemon's main loop.
const sendTimeout = 500 * time.Millisecond

// Notifier speaks sd_notify. With no NOTIFY_SOCKET every method is a no-op
// returning nil. Its methods are safe for concurrent use.
type Notifier struct {
	socket   string        // NOTIFY_SOCKET; empty: disabled
	watchdog time.Duration // WATCHDOG_USEC for this process; 0: disabled

	mu     sync.Mutex
	status string // last STATUS= sent successfully
}

// New reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the watchdog is
// enabled only if WATCHDOG_PID is unset or names this process). It does not
// change the environment and never fails: a malformed WATCHDOG_USEC
// disables the watchdog.
func New() *Notifier {
	n := &Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	if n.socket == "" {
		return n
	}
	if d, err := daemon.SdWatchdogEnabled(false); err == nil {
		n.watchdog = d
	}
	return n
}

// Enabled reports whether NOTIFY_SOCKET was set, that is whether the
// methods send anything.
func (n *Notifier) Enabled() bool { return n.socket != "" }

// Ready sends READY=1: the daemon serves. It blocks for at most half a
// second; an error means the notification was not delivered.
func (n *Notifier) Ready() error { return n.send(daemon.SdNotifyReady) }

// Stopping sends STOPPING=1: the daemon is shutting down. It blocks for at
// most half a second.
func (n *Notifier) Stopping() error { return n.send(daemon.SdNotifyStopping) }

// Watchdog sends WATCHDOG=1. Call it from the main loop every
// WatchdogInterval. It blocks for at most half a second.
func (n *Notifier) Watchdog() error { return n.send(daemon.SdNotifyWatchdog) }

// Status sends STATUS=s, shown by `systemctl status`, if s differs from the
// last status sent. Line breaks in s become spaces. It blocks for at most
// half a second; after an error the next call sends again.
func (n *Notifier) Status(s string) error {
	if n.socket == "" {
		return nil
	}
	s = oneLine(s)
	n.mu.Lock()
	defer n.mu.Unlock()
	if s == n.status {
		return nil
	}
	if err := n.send("STATUS=" + s); err != nil {
		return err
	}
	n.status = s
	return nil
}

// WatchdogInterval returns how often to call Watchdog: half of
// WATCHDOG_USEC, or 0 when the watchdog is disabled.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog / 2 }

func (n *Notifier) send(state string) error {
	if n.socket == "" {
		return nil
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstField(state), err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstField(state), err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstField(state), err)
	}
	return nil
}

// oneLine replaces line breaks, which would end the STATUS= assignment,
// with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// firstField names a message in errors without repeating a whole status.
func firstField(state string) string {
	if i := strings.IndexByte(state, '='); i > 0 {
		return state[:i]
	}
	return state
}

// Daemon is what a daemon's main loop uses of a Notifier; tests hand the
// loops a fake instead. *Notifier satisfies it, and its zero value sends
// nothing.
type Daemon interface {
	Ready() error
	Status(string) error
	Stopping() error
	Watchdog() error
	WatchdogInterval() time.Duration
}

var _ Daemon = (*Notifier)(nil)
