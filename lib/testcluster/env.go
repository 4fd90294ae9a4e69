package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Paths of the external programs the harness needs. PGHA_PG_BIN_DIR
// overrides PGBinDir. PatroniBinary (Debian's package) is needed only with
// Options.Patroni.
const (
	EtcdBinary    = "/usr/bin/etcd"
	PGBinDir      = "/usr/lib/postgresql/15/bin"
	PatroniBinary = "/usr/bin/patroni"
)

// DisallowSkipEnv, set to 1, turns every skip for a missing requirement
// into a failure (as in CI).
const DisallowSkipEnv = "PGHA_TEST_DISALLOW_SKIP"

// pgBinDir returns the PostgreSQL binaries directory in use.
func pgBinDir() string {
	if d := os.Getenv("PGHA_PG_BIN_DIR"); d != "" {
		return d
	}
	return PGBinDir
}

// SkipUnlessAvailable skips t — or fails it when PGHA_TEST_DISALLOW_SKIP=1 —
// unless etcd, PostgreSQL, the postgres OS user and root privileges are
// there. It never blocks.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	if err := available(); err != nil {
		if os.Getenv(DisallowSkipEnv) == "1" {
			t.Fatalf("integration test requirements missing (%s=1): %v", DisallowSkipEnv, err)
		}
		t.Skipf("integration test requirements missing: %v (set %s=1 to fail instead)", err, DisallowSkipEnv)
	}
}

// skipUnlessPatroni is SkipUnlessAvailable for PatroniBinary.
func skipUnlessPatroni(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(PatroniBinary); err != nil {
		if os.Getenv(DisallowSkipEnv) == "1" {
			t.Fatalf("Patroni missing (%s=1): %v (apt-get install patroni)", DisallowSkipEnv, err)
		}
		t.Skipf("Patroni missing: %v (apt-get install patroni; set %s=1 to fail instead)", err, DisallowSkipEnv)
	}
}

func available() error {
	var problems []string
	if _, err := os.Stat(EtcdBinary); err != nil {
		problems = append(problems, "etcd: "+err.Error()+" (apt-get install etcd-server)")
	}
	for _, b := range []string{"postgres", "initdb", "pg_basebackup", "pg_rewind"} {
		if _, err := os.Stat(filepath.Join(pgBinDir(), b)); err != nil {
			problems = append(problems, "PostgreSQL: "+err.Error())
		}
	}
	if _, err := postgresUser(); err != nil {
		problems = append(problems, err.Error())
	}
	if os.Geteuid() != 0 {
		problems = append(problems, "must run as root to start node processes as the postgres user")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// ids is an OS user's numeric identity.
type ids struct{ uid, gid uint32 }

var (
	pgUserOnce sync.Once
	pgUser     ids
	pgUserErr  error
)

// postgresUser looks up the postgres OS user by name.
func postgresUser() (ids, error) {
	pgUserOnce.Do(func() {
		u, err := user.Lookup("postgres")
		if err != nil {
			pgUserErr = fmt.Errorf("look up OS user postgres: %w", err)
			return
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			pgUserErr = fmt.Errorf("OS user postgres: bad uid %q or gid %q", u.Uid, u.Gid)
			return
		}
		pgUser = ids{uint32(uid), uint32(gid)}
	})
	return pgUser, pgUserErr
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// Binaries builds ./cmd/... of this module once per test process and returns
// the directory holding the binaries (readable and executable by the
// postgres user). With PGHA_BIN_DIR set it returns that directory and builds
// nothing. A failed build fails t (and every later caller) with the
// compiler's output. It blocks for the duration of the build.
func Binaries(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PGHA_BIN_DIR"); d != "" {
		return d
	}
	binOnce.Do(func() { binDir, binErr = build() })
	if binErr != nil {
		t.Fatalf("build pg-ha binaries: %v", binErr)
	}
	return binDir
}

// RemoveBinaries deletes the directory Binaries built into, if any. Call it
// from TestMain after m.Run.
func RemoveBinaries() {
	if binDir != "" && os.Getenv("PGHA_BIN_DIR") == "" {
		os.RemoveAll(binDir)
	}
}

func build() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	dir, err := os.MkdirTemp(shortTempDir(), "pgha-bin-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	// Built as the Makefile builds what is installed (static, no symbol
	// tables), so the memory the benchmarks measure is what a node runs.
	cmd := exec.Command("go", "build", "-trimpath", "-tags=grpcnotrace", "-ldflags=-s -w", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./cmd/... in %s: %w\n%s", cmd.Dir, err, buf.String())
	}
	return dir, nil
}

// shortTempDir is the directory for the harness's temporary directories:
// $TMPDIR unless it is long (Unix socket paths are limited to 107 bytes),
// else /tmp.
func shortTempDir() string {
	d := os.TempDir()
	if len(d) > 40 {
		return "/tmp"
	}
	return d
}
