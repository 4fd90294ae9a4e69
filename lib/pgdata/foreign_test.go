package pgdata

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// The files in testdata/patroni are what Patroni 3.0.2 (Debian's) left in
// the data directories of a PostgreSQL 15 cluster it ran: postgresql.conf
// of its leader and of a replica (with Patroni's recovery settings),
// postgresql.base.conf (initdb's postgresql.conf, which Patroni moved
// aside and includes) and Patroni's copy of it.

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "patroni", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testOwner() pg.Owner { return pg.Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())} }

// patroniDataDir makes a data directory as Patroni leaves it: its own
// postgresql.conf (the leader's or a replica's) including
// postgresql.base.conf, Patroni's backups, and on a replica standby.signal.
func patroniDataDir(t *testing.T, replica bool) string {
	dir := t.TempDir()
	conf := "postgresql.conf.leader"
	if replica {
		conf = "postgresql.conf.replica"
		writeFile(t, dir, "standby.signal", nil)
	}
	writeFile(t, dir, "postgresql.conf", readTestdata(t, conf))
	writeFile(t, dir, BaseConf, readTestdata(t, BaseConf))
	writeFile(t, dir, BaseConf+backupSuffix, readTestdata(t, BaseConf))
	writeFile(t, dir, "postgresql.conf.backup", readTestdata(t, conf))
	writeFile(t, dir, "patroni.dynamic.json", []byte(`{"ttl": 8, "loop_wait": 1}`))
	return dir
}

// TestTestdataIsPatronis: the fixtures are what the tests take them for.
func TestTestdataIsPatronis(t *testing.T) {
	for _, name := range []string{"postgresql.conf.leader", "postgresql.conf.replica"} {
		b := readTestdata(t, name)
		if !WrittenByPatroni(b) {
			t.Errorf("%s: no Patroni header", name)
		}
		if got := confIncludes(filepath.Join("/d", "postgresql.conf"), b); !slices.Equal(got, []string{"/d/" + BaseConf}) {
			t.Errorf("%s includes %v, want only %s", name, got, BaseConf)
		}
	}
	if !strings.Contains(string(readTestdata(t, "postgresql.conf.replica")), "primary_conninfo") {
		t.Error("the replica's postgresql.conf has no recovery settings")
	}
	if b := readTestdata(t, BaseConf); WrittenByPatroni(b) || len(confIncludes("/d/x", b)) != 0 {
		t.Errorf("%s is not initdb's file", BaseConf)
	}
}

// TestWriteConfTakesOverPatroni: Patroni's generated postgresql.conf is
// dropped (its recovery settings with it), postgresql.base.conf is kept
// byte for byte, and the result includes no file twice over. Patroni
// coming back finds postgresql.base.conf and, as its
// write_postgresql_conf does, writes its own postgresql.conf around it: the
// round trip works any number of times.
func TestWriteConfTakesOverPatroni(t *testing.T) {
	for _, replica := range []bool{false, true} {
		dir := patroniDataDir(t, replica)
		base := readTestdata(t, BaseConf)
		for round := range 3 {
			var sb *Standby
			if replica {
				sb = &Standby{PrimaryConnInfo: "host=127.0.0.1 port=5433", SlotName: "node2"}
			}
			if err := WriteConf(dir, testOwner(), map[string]string{"port": "5432"}, sb); err != nil {
				t.Fatalf("replica %v, round %d: %v", replica, round, err)
			}
			got := readFile(t, dir, "postgresql.conf")
			if !strings.HasPrefix(got, confHeader) || !strings.Contains(got, "include_if_exists = '"+BaseConf+"'\n") {
				t.Fatalf("replica %v, round %d: postgresql.conf is not pg-ha's including %s:\n%s", replica, round, BaseConf, got)
			}
			if strings.Contains(got, "passfile") || strings.Contains(got, "hba_file") {
				t.Errorf("replica %v, round %d: Patroni's settings survived:\n%s", replica, round, got)
			}
			if b := readFile(t, dir, BaseConf); b != string(base) {
				t.Fatalf("replica %v, round %d: %s changed:\n%s", replica, round, BaseConf, b)
			}
			if c := includeCycle(filepath.Join(dir, "postgresql.conf"), filepath.Join(dir, "postgresql.conf")); c != nil {
				t.Fatalf("replica %v, round %d: recursion %v", replica, round, c)
			}
			if IsStandby(dir) != replica {
				t.Errorf("replica %v, round %d: standby.signal %v", replica, round, IsStandby(dir))
			}
			if readFile(t, dir, "patroni.dynamic.json") == "" {
				t.Error("patroni.dynamic.json was emptied")
			}
			// Patroni again: it moves postgresql.conf aside only when
			// postgresql.base.conf is missing, which it is not.
			if _, err := os.Stat(filepath.Join(dir, BaseConf)); err != nil {
				t.Fatalf("Patroni would move pg-ha's postgresql.conf to %s: %v", BaseConf, err)
			}
			conf := "postgresql.conf.leader"
			if replica {
				conf = "postgresql.conf.replica"
			}
			writeFile(t, dir, "postgresql.conf", readTestdata(t, conf))
		}
	}
}

// TestWriteConfRepairsSelfInclude: a node an older pg-ha left with
// Patroni's postgresql.conf moved over postgresql.base.conf (which then
// includes itself) gets the original back from Patroni's copy; without a
// copy WriteConf fails and writes nothing, rather than start a server that
// would refuse to.
func TestWriteConfRepairsSelfInclude(t *testing.T) {
	dir := patroniDataDir(t, true)
	writeFile(t, dir, BaseConf, readTestdata(t, "postgresql.conf.replica"))
	if err := WriteConf(dir, testOwner(), map[string]string{"port": "5432"}, &Standby{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dir, BaseConf); got != string(readTestdata(t, BaseConf)) {
		t.Fatalf("%s not restored from %s:\n%s", BaseConf, BaseConf+backupSuffix, got)
	}

	dir = patroniDataDir(t, true)
	writeFile(t, dir, BaseConf, readTestdata(t, "postgresql.conf.replica"))
	os.Remove(filepath.Join(dir, BaseConf+backupSuffix))
	err := WriteConf(dir, testOwner(), map[string]string{"port": "5432"}, &Standby{})
	if err == nil || !strings.Contains(err.Error(), BaseConf) {
		t.Fatalf("WriteConf with a self-including %s and no copy: %v, want an error naming it", BaseConf, err)
	}
	if !WrittenByPatroni([]byte(readFile(t, dir, "postgresql.conf"))) {
		t.Error("postgresql.conf was replaced although the configuration cannot work")
	}
}

// TestWriteConfPatroniWithoutBase: Patroni's postgresql.conf with its
// postgresql.base.conf lost is repaired from Patroni's copy, as Patroni's
// restore_configuration_files does; with no copy it is an error.
func TestWriteConfPatroniWithoutBase(t *testing.T) {
	dir := patroniDataDir(t, false)
	os.Remove(filepath.Join(dir, BaseConf))
	if err := WriteConf(dir, testOwner(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dir, BaseConf); got != string(readTestdata(t, BaseConf)) {
		t.Fatalf("%s not restored:\n%s", BaseConf, got)
	}
	dir = patroniDataDir(t, false)
	os.Remove(filepath.Join(dir, BaseConf))
	os.Remove(filepath.Join(dir, BaseConf+backupSuffix))
	if err := WriteConf(dir, testOwner(), nil, nil); err == nil {
		t.Fatal("WriteConf dropped Patroni's postgresql.conf with nothing left to include")
	}
}

// TestWriteConfForeign: a postgresql.conf neither pg-ha nor Patroni wrote
// becomes postgresql.base.conf when there is none, and is otherwise left
// alone with an error: postgresql.base.conf is never overwritten, and no
// file is kept where it would include itself.
func TestWriteConfForeign(t *testing.T) {
	initdb := readTestdata(t, BaseConf)
	dir := t.TempDir()
	writeFile(t, dir, "postgresql.conf", initdb)
	writeFile(t, dir, "recovery.signal", nil)
	if err := WriteConf(dir, testOwner(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dir, BaseConf); got != string(initdb) {
		t.Fatalf("initdb's postgresql.conf not kept as %s", BaseConf)
	}
	if _, err := os.Stat(filepath.Join(dir, "recovery.signal")); err == nil {
		t.Error("recovery.signal left behind")
	}

	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"base exists", map[string]string{"postgresql.conf": "work_mem = '8MB'\n", BaseConf: "shared_buffers = '1GB'\n"}},
		{"includes base", map[string]string{"postgresql.conf": "include_if_exists 'postgresql.base.conf'\nwork_mem = 8MB\n"}},
		{"includes itself through a directory", map[string]string{"postgresql.conf": "include_dir = 'conf.d'\n",
			"conf.d/10-local.conf": "include = '../postgresql.conf'\n"}},
	} {
		dir := t.TempDir()
		for name, data := range tc.files {
			writeFile(t, dir, name, []byte(data))
		}
		if err := WriteConf(dir, testOwner(), nil, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		for name, data := range tc.files {
			if got := readFile(t, dir, name); got != data {
				t.Errorf("%s: %s changed to %q", tc.name, name, got)
			}
		}
	}
}

// TestWriteConfBaseRecursion: a postgresql.base.conf that leads back to
// postgresql.conf or to itself, through any chain of includes PostgreSQL
// follows, is refused before PostgreSQL would refuse to start.
func TestWriteConfBaseRecursion(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"itself":       {BaseConf: "include 'postgresql.base.conf'\n"},
		"conf":         {BaseConf: "include_if_exists = 'postgresql.conf'\n"},
		"absolute":     {BaseConf: "include '@/postgresql.conf'\n"},
		"through dir":  {BaseConf: "include_dir 'conf.d'\n", "conf.d/a.conf": "x = 1\n", "conf.d/b.conf": "INCLUDE '../extra.conf'\n", "extra.conf": "include 'postgresql.base.conf' # again\n"},
		"deep nesting": {BaseConf: "include 'a1'\n", "a1": "include 'a2'\n", "a2": "include 'a3'\n", "a3": "include 'a4'\n", "a4": "include 'a5'\n", "a5": "include 'a6'\n", "a6": "include 'a7'\n", "a7": "include 'a8'\n", "a8": "include 'a9'\n", "a9": "include 'a10'\n", "a10": "include 'a11'\n", "a11": "x = 1\n"},
	} {
		dir := t.TempDir()
		for f, data := range files {
			writeFile(t, dir, f, []byte(strings.ReplaceAll(data, "@", dir)))
		}
		if err := WriteConf(dir, testOwner(), nil, nil); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "recursion") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Hidden and non-.conf files in an include_dir are not read, as in
	// PostgreSQL; a missing include_if_exists target is fine.
	dir := t.TempDir()
	writeFile(t, dir, BaseConf, []byte("include_dir 'conf.d'\ninclude_if_exists 'nowhere.conf'\n"))
	writeFile(t, dir, "conf.d/.hidden.conf", []byte("include '../postgresql.conf'\n"))
	writeFile(t, dir, "conf.d/notes.txt", []byte("include '../postgresql.conf'\n"))
	if err := WriteConf(dir, testOwner(), nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConfLine(t *testing.T) {
	for _, tc := range []struct {
		line, name, value string
		ok                bool
	}{
		{"include 'postgresql.base.conf'", "include", "postgresql.base.conf", true},
		{"  include_if_exists = 'a''b.conf'   # note", "include_if_exists", "a'b.conf", true},
		{"include_dir=conf.d", "include_dir", "conf.d", true},
		{"include_dir\tconf.d # x", "include_dir", "conf.d", true},
		{`include 'a\\b'`, "include", `a\b`, true},
		{"# include 'x'", "", "", false},
		{"include 'unterminated", "", "", false},
		{"", "", "", false},
	} {
		name, value, ok := confLine(tc.line)
		if name != tc.name || value != tc.value || ok != tc.ok {
			t.Errorf("confLine(%q) = %q, %q, %v; want %q, %q, %v", tc.line, name, value, ok, tc.name, tc.value, tc.ok)
		}
	}
}
