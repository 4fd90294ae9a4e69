package sdnotify_test

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/sdnotify"
	"github.com/pg-ha/pg-ha/lib/sdnotify/sdnotifytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// unsetNotifyEnv clears the variables New reads for the duration of t.
func unsetNotifyEnv(t *testing.T) {
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		t.Setenv(k, "") // registers the restore
		os.Unsetenv(k)
	}
}

func next(t *testing.T, msgs <-chan string) string {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no notification within 5s")
		return ""
	}
}

func expectNone(t *testing.T, msgs <-chan string) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Fatalf("unexpected notification %q", m)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestMessagesArrive(t *testing.T) {
	unsetNotifyEnv(t)
	sock, msgs := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	n := sdnotify.New()
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}

	steps := []struct {
		name string
		call func() error
		want string // "" means: nothing is sent
	}{
		{"ready", n.Ready, "READY=1"},
		{"status", func() error { return n.Status("replica, following node1") }, "STATUS=replica, following node1"},
		{"same status again", func() error { return n.Status("replica, following node1") }, ""},
		{"changed status", func() error { return n.Status("primary") }, "STATUS=primary"},
		{"status with line breaks", func() error { return n.Status("fenced:\nvalidity\r\nran out") }, "STATUS=fenced: validity  ran out"},
		{"watchdog", n.Watchdog, "WATCHDOG=1"},
		{"stopping", n.Stopping, "STOPPING=1"},
	}
	for _, s := range steps {
		if err := s.call(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.want == "" {
			expectNone(t, msgs)
			continue
		}
		if got := next(t, msgs); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
}

func TestStatusResentAfterFailure(t *testing.T) {
	unsetNotifyEnv(t)
	sock, msgs := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	n := sdnotify.New()

	// The manager's socket is gone for a moment: the send fails...
	if err := os.Rename(sock, sock+".away"); err != nil {
		t.Fatal(err)
	}
	if err := n.Status("primary"); err == nil {
		t.Fatal("Status with the socket gone: want an error")
	}
	if err := n.Ready(); err == nil {
		t.Fatal("Ready with the socket gone: want an error")
	}
	if err := os.Rename(sock+".away", sock); err != nil {
		t.Fatal(err)
	}
	// ... so the same status is sent again, not suppressed as unchanged.
	if err := n.Status("primary"); err != nil {
		t.Fatal(err)
	}
	if got := next(t, msgs); got != "STATUS=primary" {
		t.Fatalf("got %q", got)
	}
}

func TestNoSocketIsNoOp(t *testing.T) {
	unsetNotifyEnv(t)
	t.Setenv("WATCHDOG_USEC", "1000000")
	n := sdnotify.New()
	if n.Enabled() {
		t.Fatal("Enabled() = true without NOTIFY_SOCKET")
	}
	for name, call := range map[string]func() error{
		"Ready": n.Ready, "Stopping": n.Stopping, "Watchdog": n.Watchdog,
		"Status": func() error { return n.Status("x") },
	} {
		if err := call(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET: %v, want nil", name, err)
		}
	}
	if d := n.WatchdogInterval(); d != 0 {
		t.Errorf("WatchdogInterval without NOTIFY_SOCKET = %v, want 0", d)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name       string
		usec, pid  string
		wantPeriod time.Duration
	}{
		{"disabled", "", "", 0},
		{"enabled for any pid", "10000000", "", 5 * time.Second},
		{"enabled for this pid", "4000000", self, 2 * time.Second},
		{"meant for another process", "4000000", "1", 0},
		{"malformed", "soon", "", 0},
		{"negative", "-5", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsetNotifyEnv(t)
			sock, _ := sdnotifytest.Listen(t)
			t.Setenv("NOTIFY_SOCKET", sock)
			if tc.usec != "" {
				t.Setenv("WATCHDOG_USEC", tc.usec)
			}
			if tc.pid != "" {
				t.Setenv("WATCHDOG_PID", tc.pid)
			}
			if got := sdnotify.New().WatchdogInterval(); got != tc.wantPeriod {
				t.Fatalf("WatchdogInterval() = %v, want %v", got, tc.wantPeriod)
			}
		})
	}
}

func TestCleanEnv(t *testing.T) {
	env := []string{
		"PATH=/usr/bin",
		"NOTIFY_SOCKET=/run/systemd/notify",
		"WATCHDOG_USEC=5000000",
		"WATCHDOG_PID=42",
		"LISTEN_FDS=1",
		"LISTEN_PID=42",
		"LISTEN_FDNAMES=role",
		"RUNTIME_DIRECTORY=/run/pg-ha/main",
		"NOTIFY_SOCKET_EXTRA=kept", // only exact names go
		"LISTEN_FDS",               // malformed entries are judged by name too
		"PGDATA=/var/lib/postgresql/15/pg-ha",
	}
	orig := slices.Clone(env)
	got := sdnotify.CleanEnv(env)
	want := []string{
		"PATH=/usr/bin",
		"RUNTIME_DIRECTORY=/run/pg-ha/main",
		"NOTIFY_SOCKET_EXTRA=kept",
		"PGDATA=/var/lib/postgresql/15/pg-ha",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("CleanEnv =\n%q\nwant\n%q", got, want)
	}
	if !slices.Equal(env, orig) {
		t.Fatalf("CleanEnv modified its argument: %q", env)
	}
	if got := sdnotify.CleanEnv(nil); len(got) != 0 {
		t.Fatalf("CleanEnv(nil) = %q", got)
	}
}
