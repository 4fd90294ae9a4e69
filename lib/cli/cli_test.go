package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for the signal goroutine and the test.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// A habitual kill -HUP must neither stop the program nor cancel run's
// context; it is logged once per signal.
func TestMainSurvivesSIGHUP(t *testing.T) {
	for _, withLogger := range []bool{false, true} {
		logs, stderr := newSyncBuffer(), newSyncBuffer()
		if withLogger {
			l := zerolog.New(logs)
			root.Store(&l)
		} else {
			root.Store(nil)
		}
		code := Main("pg-test", stderr, func(ctx context.Context) error {
			for i := range 2 { // one at a time: pending signals coalesce
				if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
					return err
				}
				deadline := time.Now().Add(5 * time.Second)
				for strings.Count(logs.String()+stderr.String(), "SIGHUP ignored") <= i && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			return ctx.Err()
		})
		root.Store(nil)
		if code != ExitOK {
			t.Fatalf("withLogger=%v: exit code %d after SIGHUP, want 0 (stderr %q)", withLogger, code, stderr.String())
		}
		out := stderr.String()
		if withLogger {
			out = logs.String()
			if !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, `"signal":"SIGHUP"`) {
				t.Errorf("log %q: want a warning with signal=SIGHUP", out)
			}
		}
		if n := strings.Count(out, "SIGHUP ignored"); n != 2 {
			t.Errorf("withLogger=%v: %d SIGHUP lines in %q, want 2", withLogger, n, out)
		}
	}
}

func TestDefaultRuntimeDir(t *testing.T) {
	uid := os.Getuid()
	// No way into the system directory: it sits under a regular file.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer func(sys, tmp string) { systemRuntimeDir, tempRuntimeBase = sys, tmp }(systemRuntimeDir, tempRuntimeBase)

	t.Run("system directory when it can be created", func(t *testing.T) {
		systemRuntimeDir = filepath.Join(t.TempDir(), "run", "pg-ha")
		tempRuntimeBase = t.TempDir()
		d, skipped, err := defaultDir("main-node1", "", uid)
		if err != nil || d != filepath.Join(systemRuntimeDir, "main-node1") || len(skipped) != 0 {
			t.Fatalf("defaultDir = %q %q %v", d, skipped, err)
		}
	})

	systemRuntimeDir = filepath.Join(blocker, "pg-ha")
	t.Run("XDG_RUNTIME_DIR of this user", func(t *testing.T) {
		xdg := t.TempDir()
		if err := os.Chmod(xdg, 0o700); err != nil {
			t.Fatal(err)
		}
		d, skipped, err := defaultDir("main-node1", xdg, uid)
		if err != nil || d != filepath.Join(xdg, "pg-ha", "main-node1") || len(skipped) != 1 {
			t.Fatalf("defaultDir = %q %q %v", d, skipped, err)
		}
	})

	t.Run("XDG_RUNTIME_DIR of another user is skipped", func(t *testing.T) {
		tmp := t.TempDir()
		tempRuntimeBase = tmp
		xdg := t.TempDir()
		d, skipped, err := defaultDir("main-node1", xdg, uid+1)
		if err != nil {
			// As another uid the /tmp fallback is not ours either.
			if !strings.Contains(err.Error(), "not owned by uid") {
				t.Fatalf("defaultDir = %q %q %v", d, skipped, err)
			}
		}
		if len(skipped) != 2 || !strings.Contains(skipped[1], "XDG_RUNTIME_DIR") {
			t.Fatalf("skipped = %q; want the system dir and $XDG_RUNTIME_DIR skipped", skipped)
		}
	})

	t.Run("per-user directory under the temporary directory", func(t *testing.T) {
		tmp := t.TempDir()
		tempRuntimeBase = tmp
		d1, _, err := defaultDir("main-node1", "", uid)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(tmp, "pg-ha-"+strconv.Itoa(uid))
		if d1 != filepath.Join(base, "main-node1") {
			t.Fatalf("dir %q, want under %s", d1, base)
		}
		if st, err := os.Stat(base); err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v; want mode 0700", base, st.Mode(), err)
		}
		again, _, err := defaultDir("main-node1", "", uid)
		if err != nil || again != d1 {
			t.Fatalf("second call: %q %v; want the same %q", again, err, d1)
		}
		d2, _, err := defaultDir("main-node2", "", uid)
		if err != nil || d2 == d1 {
			t.Fatalf("second node: %q %v; want a directory of its own", d2, err)
		}
	})

	for name, prepare := range map[string]func(base string) error{
		"pre-created readable by others": func(base string) error { return os.Mkdir(base, 0o755) },
		"pre-created by another user": func(base string) error {
			if err := os.Mkdir(base, 0o700); err != nil {
				return err
			}
			return os.Chown(base, uid+1000, -1)
		},
		"a symbolic link": func(base string) error { return os.Symlink(t.TempDir(), base) },
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			tmp := t.TempDir()
			tempRuntimeBase = tmp
			if err := prepare(filepath.Join(tmp, "pg-ha-"+strconv.Itoa(uid))); err != nil {
				t.Fatal(err)
			}
			d, _, err := defaultDir("main-node1", "", uid)
			if err == nil || !strings.Contains(err.Error(), "remove it") {
				t.Fatalf("defaultDir = %q, %v; want a refusal naming the directory", d, err)
			}
		})
	}
}

func TestReloadOnHangup(t *testing.T) {
	defer hangup.Store(nil)
	path := filepath.Join(t.TempDir(), "node.yml")
	c := &Common{Config: path}
	var got *config.Config
	c.ReloadOnHangup(zerolog.Nop(), config.Need{}, func(cfg *config.Config) { got = cfg })
	if err := os.WriteFile(path, []byte("scope: [unterminated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	(*hangup.Load())()
	if got != nil {
		t.Fatal("a YAML that does not load was applied")
	}
	if err := os.WriteFile(path, []byte("scope: demo\nname: node1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	(*hangup.Load())()
	if got == nil || got.Name != "node1" {
		t.Fatalf("valid YAML: applied %+v", got)
	}
}
