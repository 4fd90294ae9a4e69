package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// requireTool returns the path of an external program the test needs. A
// missing program skips the test, or fails it with PGHA_TEST_DISALLOW_SKIP
// set (as in CI).
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("PGHA_TEST_DISALLOW_SKIP") != "" {
		t.Fatalf("%s is required (PGHA_TEST_DISALLOW_SKIP is set): %v", name, err)
	}
	t.Skipf("%s not found: %v", name, err)
	return ""
}

// sharedTempDir makes a directory that other users may traverse (the
// daemons run as postgres; t.TempDir's parent is private to root), removed
// when t ends.
func sharedTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgha-systemd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stubPrograms creates executable stand-ins for the programs the units run
// (systemd-analyze verify only checks that ExecStart= is executable).
func stubPrograms(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pg-lockd", "pg-supervise", "pg-healthd", "pg-bootstrap", "pg-failover"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// runMake runs make with install.mk and the given variables.
func runMake(t testing.TB, args ...string) (string, error) {
	t.Helper()
	mk := requireTool(t, "make")
	cmd := exec.Command(mk, append([]string{"--no-print-directory", "-f", "install.mk"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// installUnits installs the units with install.mk under PREFIX=root, so
// that ExecStart= names root/bin/pg-*, where stub programs are put. This
// is exactly what `make install PREFIX=…` produces: the units are verified
// as they are installed, only the prefix differs.
func installUnits(t testing.TB) (unitDir string) {
	t.Helper()
	root := sharedTempDir(t)
	if out, err := runMake(t, "install-units", "PREFIX="+root); err != nil {
		t.Fatalf("make install-units: %v\n%s", err, out)
	}
	stubPrograms(t, filepath.Join(root, "bin"))
	return filepath.Join(root, "lib", "systemd", "system")
}

var (
	buildOnce sync.Once
	buildDir  string
	buildOut  string
	buildErr  error
)

// buildPrograms builds the real programs from cmd/ once per test binary
// and returns the directory holding them, which other users (postgres) may
// read. With PGHA_BIN_DIR set it returns that directory and builds nothing.
func buildPrograms(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PGHA_BIN_DIR"); d != "" {
		return d
	}
	if testing.Short() {
		t.Skip("-short: not building the programs")
	}
	goTool := requireTool(t, "go")
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "pgha-programs-")
		if buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		cmd := exec.Command(goTool, "build", "-tags=grpcnotrace", "-o", buildDir+"/", "../cmd/...")
		var out []byte
		out, buildErr = cmd.CombinedOutput()
		buildOut = strings.TrimSpace(string(out))
	})
	if buildErr != nil {
		t.Fatalf("go build ../cmd/...: %v\n%s", buildErr, buildOut)
	}
	return buildDir
}
