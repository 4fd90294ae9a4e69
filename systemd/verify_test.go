package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest acceptable `systemd-analyze security` score:
// up to 2.5 systemd rates a service "OK".
const maxExposure = 2.5

// analyze runs systemd-analyze and returns its combined output.
func analyze(t testing.TB, args ...string) (string, error) {
	t.Helper()
	sa := requireTool(t, "systemd-analyze")
	cmd := exec.Command(sa, args...)
	// Verification must not depend on the caller's pager, colors or units.
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestVerify runs `systemd-analyze verify` on an instance of every template,
// as installed. systemd-analyze exits 0 on unknown keys and bad values, so
// any output at all is a failure. Templates are verified through an
// instance path (…/pg-ha-supervise@main.service): systemd-analyze loads
// the template next to it and resolves %i, and the units it references
// from the same directory.
func TestVerify(t *testing.T) {
	unitDir := installUnits(t)
	for _, n := range templates {
		n := n
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			out, err := analyze(t, "verify", "--man=no", filepath.Join(unitDir, instanceName(n)))
			if err != nil || out != "" {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", instanceName(n), err, out)
			}
		})
	}
}

// TestVerifyCatchesMistakes shows that TestVerify's criterion fails on the
// mistakes systemd-analyze reports without failing: an unknown key, a bad
// value, a missing program.
func TestVerifyCatchesMistakes(t *testing.T) {
	unitDir := installUnits(t)
	orig, err := os.ReadFile(filepath.Join(unitDir, "pg-ha-lockd@.service"))
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(string) string{
		"unknown key":     func(s string) string { return s + "WatchdogSecs=5\n" },
		"bad value":       func(s string) string { return strings.Replace(s, "\nRestartSec=0\n", "\nRestartSec=soon\n", 1) },
		"missing program": func(s string) string { return strings.Replace(s, "/bin/pg-lockd", "/bin/pg-lockd-missing", 1) },
	} {
		t.Run(name, func(t *testing.T) {
			// All units but one, unchanged, next to each other.
			dir := sharedTempDir(t)
			for _, n := range templates {
				data, err := os.ReadFile(filepath.Join(unitDir, n))
				if err != nil {
					t.Fatal(err)
				}
				if n == "pg-ha-lockd@.service" {
					if data = []byte(edit(string(orig))); string(data) == string(orig) {
						t.Fatal("the edit changed nothing")
					}
				}
				if err := os.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := analyze(t, "verify", "--man=no", filepath.Join(dir, "pg-ha-lockd@main.service"))
			if err == nil && out == "" {
				t.Fatal("systemd-analyze verify reported nothing")
			}
			t.Logf("reported (exit %v): %s", err, strings.TrimSpace(out))
		})
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`)

// TestSecurityExposure checks that every service is sandboxed well enough
// that `systemd-analyze security --offline=yes` rates it at most 2.5.
func TestSecurityExposure(t *testing.T) {
	unitDir := installUnits(t)
	for _, n := range services() {
		n := n
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			out, err := analyze(t, "security", "--offline=yes", "--no-pager", filepath.Join(unitDir, instanceName(n)))
			m := exposureRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("systemd-analyze security %s: %v; no exposure level in:\n%s", instanceName(n), err, out)
			}
			score, perr := strconv.ParseFloat(m[1], 64)
			if perr != nil {
				t.Fatalf("exposure %q: %v", m[1], perr)
			}
			t.Logf("%s: exposure %.1f %s", instanceName(n), score, m[2])
			if score > maxExposure {
				var weak []string
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "✗") {
						weak = append(weak, l)
					}
				}
				t.Fatalf("%s: exposure %.1f > %.1f; not hardened:\n%s", instanceName(n), score, maxExposure, strings.Join(weak, "\n"))
			}
		})
	}
}
