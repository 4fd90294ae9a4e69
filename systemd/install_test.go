package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func mode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestInstall runs `make install` into a DESTDIR, with the default prefix
// and with PREFIX=/usr/local.
func TestInstall(t *testing.T) {
	build := sharedTempDir(t)
	stubPrograms(t, build)
	example, err := os.ReadFile("pg-ha.example.yml")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("default prefix", func(t *testing.T) {
		dest := sharedTempDir(t)
		if out, err := runMake(t, "install", "DESTDIR="+dest, "PGHA_BUILD_DIR="+build); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		for _, p := range []string{"pg-lockd", "pg-supervise", "pg-healthd", "pg-bootstrap", "pg-failover"} {
			if m := mode(t, filepath.Join(dest, "usr/bin", p)); m != 0o755 {
				t.Errorf("usr/bin/%s: mode %v", p, m)
			}
		}
		// With PREFIX=/usr the installed units are the files in this
		// directory, byte for byte.
		for _, n := range templates {
			got, err := os.ReadFile(filepath.Join(dest, "usr/lib/systemd/system", n))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(n)
			if !bytes.Equal(got, want) {
				t.Errorf("installed %s differs from systemd/%s", n, n)
			}
		}
		if _, err := os.Stat(filepath.Join(dest, "usr/share/doc/pg-ha/systemd.md")); err != nil {
			t.Error(err)
		}
		cfg := filepath.Join(dest, "etc/pg-ha/example.yml")
		got, err := os.ReadFile(cfg)
		if err != nil || !bytes.Equal(got, example) {
			t.Fatalf("etc/pg-ha/example.yml: %v (equal to pg-ha.example.yml: %v)", err, bytes.Equal(got, example))
		}
		if m := mode(t, cfg); m != 0o640 {
			t.Errorf("example.yml: mode %v, want 0640 (it holds passwords)", m)
		}

		// A second install keeps an edited configuration.
		edited := append(bytes.Clone(example), "# edited\n"...)
		if err := os.WriteFile(cfg, edited, 0o640); err != nil {
			t.Fatal(err)
		}
		if out, err := runMake(t, "install", "DESTDIR="+dest, "PGHA_BUILD_DIR="+build); err != nil {
			t.Fatalf("second make install: %v\n%s", err, out)
		}
		if got, _ := os.ReadFile(cfg); !bytes.Equal(got, edited) {
			t.Error("a second make install overwrote etc/pg-ha/example.yml")
		}

		if out, err := runMake(t, "uninstall", "DESTDIR="+dest); err != nil {
			t.Fatalf("make uninstall: %v\n%s", err, out)
		}
		if left, _ := filepath.Glob(filepath.Join(dest, "usr/lib/systemd/system/*")); len(left) != 0 {
			t.Errorf("after uninstall: %q", left)
		}
		if _, err := os.Stat(cfg); err != nil {
			t.Errorf("uninstall removed the configuration: %v", err)
		}
	})

	t.Run("PREFIX=/usr/local", func(t *testing.T) {
		dest := sharedTempDir(t)
		if out, err := runMake(t, "install", "DESTDIR="+dest, "PREFIX=/usr/local", "PGHA_BUILD_DIR="+build); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dest, "usr/local/bin/pg-lockd")); err != nil {
			t.Error(err)
		}
		for _, n := range services() {
			u, err := parseUnit(filepath.Join(dest, "usr/local/lib/systemd/system", n))
			if err != nil {
				t.Fatal(err)
			}
			if args := execStart(t, u); !strings.HasPrefix(args[0], "/usr/local/bin/pg-") {
				t.Errorf("%s: ExecStart runs %s, want /usr/local/bin/pg-*", n, args[0])
			}
			if doc := u.must(t, "Unit", "Documentation"); doc != "file:/usr/local/share/doc/pg-ha/systemd.md" {
				t.Errorf("%s: Documentation=%s", n, doc)
			}
		}
		if _, err := os.Stat(filepath.Join(dest, "etc/pg-ha/example.yml")); err != nil {
			t.Errorf("the configuration stays in /etc whatever the prefix: %v", err)
		}
	})

	t.Run("programs not built", func(t *testing.T) {
		dest := sharedTempDir(t)
		out, err := runMake(t, "install", "DESTDIR="+dest, "PGHA_BUILD_DIR="+filepath.Join(dest, "nothing"))
		if err == nil || !strings.Contains(out, "build the programs first") {
			t.Fatalf("make install without programs: err %v, output:\n%s", err, out)
		}
	})

	t.Run("included by another Makefile", func(t *testing.T) {
		dir := sharedTempDir(t)
		abs, err := filepath.Abs("install.mk")
		if err != nil {
			t.Fatal(err)
		}
		mk := "include " + abs + "\n\nall:\n\t@echo main-default-goal\n"
		if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(requireTool(t, "make"), "--no-print-directory", "-C", dir).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "main-default-goal" {
			t.Fatalf("make in a Makefile including install.mk first: %v\n%s\n(install.mk must not take the default goal)", err, out)
		}
		dest := sharedTempDir(t)
		out, err = exec.Command(requireTool(t, "make"), "--no-print-directory", "-C", dir, "install-units", "DESTDIR="+dest).CombinedOutput()
		if err != nil {
			t.Fatalf("make install-units from another directory: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dest, "usr/lib/systemd/system/pg-ha@.target")); err != nil {
			t.Error(err)
		}
	})
}

// TestExampleConfig loads the example with every daemon's
// --validate-config: it must be valid Patroni YAML for pg-ha, with no
// warning (only the one line saying so).
func TestExampleConfig(t *testing.T) {
	bin := buildPrograms(t)
	for _, p := range []string{"pg-lockd", "pg-supervise", "pg-healthd", "pg-bootstrap"} {
		out, err := exec.Command(filepath.Join(bin, p), "--config", "pg-ha.example.yml", "--validate-config").CombinedOutput()
		if err != nil || string(out) != "pg-ha.example.yml: valid\n" {
			t.Errorf("%s --validate-config pg-ha.example.yml: %v\n%s", p, err, out)
		}
	}
}

// TestExecStartFlags checks every flag an ExecStart= passes against the
// program's --help.
func TestExecStartFlags(t *testing.T) {
	bin := buildPrograms(t)
	units := loadUnits(t)
	for _, n := range services() {
		args := execStart(t, units[n])
		prog := filepath.Base(args[0])
		help, err := exec.Command(filepath.Join(bin, prog), "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", prog, err, help)
		}
		for _, a := range args[1:] {
			if !strings.HasPrefix(a, "--") {
				continue
			}
			flag, _, _ := strings.Cut(a, "=")
			if !bytes.Contains(help, []byte(flag+"=")) && !bytes.Contains(help, []byte(flag+" ")) {
				t.Errorf("%s: %s has no flag %s", n, prog, flag)
			}
		}
	}
}
