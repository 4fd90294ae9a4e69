package pgdata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// TestSetParameterKeepsTheRest: one parameter changes; the standby
// settings, the include and standby.signal stay as they were.
func TestSetParameterKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	o := pg.Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if err := os.WriteFile(filepath.Join(dir, BaseConf), []byte("# theirs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sb := &Standby{PrimaryConnInfo: "host=10.0.0.1 port=5432", SlotName: "node2"}
	if err := WriteConf(dir, o, map[string]string{"port": "5432", "synchronous_standby_names": ""}, sb); err != nil {
		t.Fatal(err)
	}
	if err := SetParameter(dir, o, "synchronous_standby_names", `FIRST 1 ("node 3")`); err != nil {
		t.Fatal(err)
	}
	if err := SetParameter(dir, o, "work_mem", "8MB"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "postgresql.conf"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{confHeader, "include_if_exists = '" + BaseConf + "'\n", "port = '5432'\n",
		"primary_conninfo = 'host=10.0.0.1 port=5432'\n", "primary_slot_name = 'node2'\n", "recovery_target_timeline = 'latest'\n",
		`synchronous_standby_names = 'FIRST 1 ("node 3")'` + "\n", "work_mem = '8MB'\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("postgresql.conf lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "synchronous_standby_names") != 1 {
		t.Errorf("synchronous_standby_names more than once:\n%s", got)
	}
	if !IsStandby(dir) {
		t.Error("standby.signal was removed")
	}
	if err := os.WriteFile(filepath.Join(dir, "postgresql.conf"), []byte("port = 5432\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SetParameter(dir, o, "work_mem", "8MB"); err == nil {
		t.Error("SetParameter changed a postgresql.conf pg-ha did not write")
	}
}
