package pg

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgpassfile"
)

func currentOwner(t *testing.T) Owner {
	t.Helper()
	return Owner{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
}

func TestWritePgpass(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pgpass")
	o := currentOwner(t)
	entries := []PassEntry{
		{Host: "10.0.0.1", Port: "5432", Database: "*", User: "replicator", Password: `pa:ss\word`},
		{Host: "*", Port: "*", Database: "*", User: "postgres", Password: "plain"},
		{Host: "localhost", User: `we:ird\`, Password: "x"},
	}
	if err := WritePgpass(path, o, entries); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "10.0.0.1:5432:*:replicator:pa\\:ss\\\\word\n" +
		"*:*:*:postgres:plain\n" +
		"localhost:*:*:we\\:ird\\\\:x\n"
	if string(got) != want {
		t.Errorf("file content =\n%s\nwant\n%s", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != o.UID || st.Gid != o.GID {
		t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, o.UID, o.GID)
	}

	// A libpq-compatible reader finds the passwords back.
	pf, err := pgpassfile.ReadPassfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pw := pf.FindPassword("10.0.0.1", "5432", "postgres", "replicator"); pw != `pa:ss\word` {
		t.Errorf("password for replicator = %q", pw)
	}
	if pw := pf.FindPassword("anything", "1", "db", "postgres"); pw != "plain" {
		t.Errorf("password for postgres = %q", pw)
	}
	if pw := pf.FindPassword("localhost", "5432", "db", `we:ird\`); pw != "x" {
		t.Errorf("password for we:ird\\ = %q", pw)
	}

	// Replacing keeps no temporary files behind.
	if err := WritePgpass(path, o, entries[:1]); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 1 {
		t.Errorf("directory holds %d files after rewrite, want 1", len(names))
	}
	if got, _ := os.ReadFile(path); strings.Count(string(got), "\n") != 1 {
		t.Errorf("rewritten file = %q, want one line", got)
	}
}

func TestWritePgpassChown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	o := Owner{UID: 4242, GID: 4343}
	path := filepath.Join(t.TempDir(), "pgpass")
	if err := WritePgpass(path, o, []PassEntry{{User: "u", Password: "p"}}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4242 || st.Gid != 4343 {
		t.Errorf("owner %d:%d, want 4242:4343", st.Uid, st.Gid)
	}
}

func TestWritePgpassRejectsLineBreaks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WritePgpass(path, currentOwner(t), []PassEntry{{User: "u", Password: "p\nq"}})
	if err == nil {
		t.Fatal("WritePgpass accepted a password with a newline")
	}
	if got, _ := os.ReadFile(path); string(got) != "old\n" {
		t.Errorf("file changed to %q after a failed write", got)
	}
}
