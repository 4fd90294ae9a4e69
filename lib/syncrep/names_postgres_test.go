package syncrep

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// postgresAccepts asks PostgreSQL's own parser (postgres -C, which runs the
// setting's check hook without starting a server) whether it accepts value
// for synchronous_standby_names.
func postgresAccepts(t *testing.T, dir, value string) bool {
	t.Helper()
	bin := filepath.Join(pgBin(), "postgres")
	cmd := exec.Command(bin, "-D", dir, "-C", "synchronous_standby_names", "-c", "synchronous_standby_names="+value)
	cmd.Dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("PostgreSQL refuses to run as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	out, err := cmd.CombinedOutput()
	rejected := strings.Contains(string(out), `invalid value for parameter "synchronous_standby_names"`) ||
		strings.Contains(string(out), "number of synchronous standbys")
	if err != nil && !rejected {
		t.Fatalf("postgres -C: %v: %s", err, out)
	}
	return err == nil
}

func pgBin() string {
	if b := os.Getenv("PGHA_PG_BIN"); b != "" {
		return b
	}
	return "/usr/lib/postgresql/15/bin"
}

// TestStandbyNamesAgreeWithPostgreSQL: what pg-ha writes, PostgreSQL
// accepts, and pg-ha reads what PostgreSQL accepts.
func TestStandbyNamesAgreeWithPostgreSQL(t *testing.T) {
	if _, err := os.Stat(filepath.Join(pgBin(), "postgres")); err != nil {
		if os.Getenv("PGHA_TEST_DISALLOW_SKIP") == "1" {
			t.Fatalf("no PostgreSQL: %v", err)
		}
		t.Skipf("no PostgreSQL: %v", err)
	}
	dir, err := os.MkdirTemp("", "pgha-ssn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "postgresql.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rendered := []StandbyNames{
		NewStandbyNames(false, 1, []string{"n1"}),
		NewStandbyNames(false, 2, []string{"n1", "n2"}),
		NewStandbyNames(true, 1, []string{"n1", "n2", "n3"}),
		NewStandbyNames(true, 2, []string{"node 3", "first", "Any", `we"ird`, "x$", "9lives", "a-b", "nöde", "UPPER"}),
		NewStandbyNames(false, 1, nil),
		NewStandbyNames(true, 1, nil),
		NewStandbyNames(false, 1, []string{"*"}),
	}
	for _, s := range rendered {
		if v := s.String(); !postgresAccepts(t, dir, v) {
			t.Errorf("PostgreSQL rejects %q, rendered from %+v", v, s)
		}
	}
	for _, v := range []string{
		"a", "a, b", "2 (a,b,c)", "FIRST 2 (a, b)", "first 1(a)", `ANY 1 (node2,"node 3")`, `ANY 4("a",*,b)`, "*",
		`"a""b", c$1`, "1", "1, 2", "nöde", "ANY 1 (1)", `""`, `ANY 1 ("", a)`,
		"a,", ",a", "a b", `ANY 4("a" b,"c c")`, `FIRST 4("a",)`, "2 (,)", "ANY 0 (a)", "FIRST (a)",
		"ANY 1 a", "a;b", `"a`, "ANY 1 ()", "2 (a", "a)",
	} {
		_, err := ParseStandbyNames(v)
		if pg := postgresAccepts(t, dir, v); pg != (err == nil) {
			t.Errorf("%q: PostgreSQL accepts: %v; ParseStandbyNames: %v", v, pg, err)
		}
	}
	// Patroni's leniency, kept: keywords as names.
	for _, v := range []string{"FiRsT", "any", "a, first"} {
		if _, err := ParseStandbyNames(v); err != nil || postgresAccepts(t, dir, v) {
			t.Errorf("%q: want PostgreSQL to reject it and ParseStandbyNames to accept it (%v)", v, err)
		}
	}
}
