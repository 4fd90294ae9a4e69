package pg

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestChildEnv(t *testing.T) {
	parent := []string{
		"PATH=/usr/bin:/bin", "HOME=/root", "USER=root", "LANG=de_DE.UTF-8", "LC_ALL=de_DE.UTF-8",
		"NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000", "WATCHDOG_PID=1",
		"LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=x",
		"PGPASSWORD=secret", "PGHOST=elsewhere", "PGDATA=/x", "PG_OOM_ADJUST_FILE=/y",
		"KEEP=1", "PATRONI_NAME=n1",
	}
	o := Owner{UID: 101, GID: 104, Name: "postgres", Home: "/var/lib/postgresql"}
	got := childEnv(parent, o, []string{"PGAPPNAME=mine", "LC_ALL=C.UTF-8", "X=1", "X=2"})
	want := []string{
		"PATH=/usr/bin:/bin", "LANG=de_DE.UTF-8", "KEEP=1", "PATRONI_NAME=n1",
		"HOME=/var/lib/postgresql", "USER=postgres", "LOGNAME=postgres",
		"PGAPPNAME=mine", "LC_ALL=C.UTF-8", "X=2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv =\n%q\nwant\n%q", got, want)
	}

	got = childEnv(parent, Owner{UID: 5}, nil)
	if !slices.Contains(got, "LC_ALL=C") || !slices.Contains(got, "HOME=/") || slices.Contains(got, "USER=root") {
		t.Errorf("childEnv for an unnamed owner = %q, want LC_ALL=C, HOME=/ and no USER", got)
	}
}

func TestSysProcAttr(t *testing.T) {
	o := Owner{UID: 12345, GID: 23456}
	a := o.SysProcAttr(syscall.SIGKILL)
	if !a.Setpgid || a.Pdeathsig != syscall.SIGKILL {
		t.Errorf("SysProcAttr = %+v, want Setpgid and Pdeathsig SIGKILL", a)
	}
	if !o.NeedCredential() {
		t.Fatal("NeedCredential false for a foreign uid")
	}
	if a.Credential == nil || a.Credential.Uid != 12345 || a.Credential.Gid != 23456 {
		t.Errorf("Credential = %+v, want 12345:23456", a.Credential)
	}
	if b := o.SysProcAttr(0); b.Pdeathsig != 0 {
		t.Errorf("Pdeathsig = %v, want none", b.Pdeathsig)
	}
	self := Owner{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	if want := os.Geteuid() == 0; self.NeedCredential() != want {
		t.Errorf("NeedCredential for the current user = %v, want %v (switch only away from root)", !want, want)
	}
}

func TestLookupOwner(t *testing.T) {
	cur, err := user.Current()
	if err != nil {
		t.Skip("no user database entry for the current user")
	}
	o, err := LookupOwner(cur.Username)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != cur.Username || o.Home != cur.HomeDir || int(o.UID) != os.Getuid() {
		t.Errorf("LookupOwner(%q) = %+v", cur.Username, o)
	}
	if _, err := LookupOwner("no-such-user-pgha"); err == nil {
		t.Error("LookupOwner found a user that does not exist")
	}

	dir := t.TempDir()
	d, err := DataDirOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d != o {
		t.Errorf("DataDirOwner(%s) = %+v, want %+v", dir, d, o)
	}
	if _, err := DataDirOwner(dir + "/missing"); err == nil {
		t.Error("DataDirOwner of a missing directory succeeded")
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 54321, 54322); err != nil {
			t.Fatal(err)
		}
		d, err := DataDirOwner(dir)
		if err != nil || d != (Owner{UID: 54321, GID: 54322}) {
			t.Errorf("DataDirOwner of a directory owned by an unknown uid = %+v, %v", d, err)
		}
	}
}

func selfOwner(t *testing.T) Owner {
	t.Helper()
	cur, err := user.Current()
	if err != nil {
		t.Skip("no user database entry for the current user")
	}
	o, err := LookupOwner(cur.Username)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestRun(t *testing.T) {
	o := selfOwner(t)
	t.Setenv("PGPASSWORD", "secret")
	t.Setenv("NOTIFY_SOCKET", "/nowhere")
	out, err := Run(t.Context(), o, "/bin", "sh", []string{"-c", `echo "$LC_ALL $PGPASSWORD $NOTIFY_SOCKET $EXTRA"; pwd`}, "EXTRA=e")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := string(out); got != "C   e\n/\n" {
		t.Errorf("output %q, want LC_ALL=C, no PG or systemd variables, the extra variable, and / as directory", got)
	}

	out, err = Run(t.Context(), o, "/bin", "sh", []string{"-c", "echo one; echo two; echo >&2; echo three >&2; echo four; exit 3"})
	if err == nil {
		t.Fatal("Run of a failing command succeeded")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("error %v does not wrap an exit status 3", err)
	}
	if want := "sh: exit status 3: two | three | four"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if !strings.Contains(string(out), "one") {
		t.Errorf("output %q lacks the first line", out)
	}

	if _, err := Run(t.Context(), o, "/nonexistent", "initdb", nil); err == nil || !strings.Contains(err.Error(), "initdb") {
		t.Errorf("missing binary: error %v, want one naming it", err)
	}
}

func TestRunCancelKillsProcessGroup(t *testing.T) {
	o := selfOwner(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The grandchild keeps the output pipe open; only a group kill ends it.
	_, err := Run(ctx, o, "/bin", "sh", []string{"-c", "sleep 30 & sleep 30; echo done"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error = %v, want one wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v after cancellation, want the process group killed at once", d)
	}
}

// TestRunErrorNamesTheFatalLine: a failed initdb prints PostgreSQL's reason
// and then hints and clean-up lines; the one-line error keeps the reason.
func TestRunErrorNamesTheFatalLine(t *testing.T) {
	out := []byte("running bootstrap script ... 2026-12-04 13:41:46.1 UTC [9] FATAL:  could not create shared memory segment: No space left on device\n" +
		"2026-12-04 13:41:46.1 UTC [9] DETAIL:  Failed system call was shmget(key=1, size=56, 03600).\n" +
		"2026-12-04 13:41:46.1 UTC [9] HINT:  This error does *not* mean that you have run out of disk space.\n" +
		"The PostgreSQL documentation contains more information about shared memory configuration.\n" +
		"child process exited with exit code 1\n" +
		"initdb: removing contents of data directory \"/tmp/x\"\n")
	err := runError(context.Background(), "initdb", errors.New("exit status 1"), out)
	if !strings.Contains(err.Error(), "FATAL:  could not create shared memory segment") || !strings.Contains(err.Error(), "removing contents") {
		t.Errorf("error %q lacks the FATAL line or the last lines", err)
	}
	if err := runError(context.Background(), "pg_ctl", errors.New("exit status 1"), []byte("a\nb\n")); strings.Contains(err.Error(), "…") {
		t.Errorf("error %q: nothing to prepend", err)
	}
}
