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

// TestStandbyRecoverySettings: postgresql.recovery_conf reaches a
// standby's postgresql.conf, without recovery targets (all written empty,
// so that none from an included file makes the standby stop, pause or
// promote) and without pg-ha's own primary_conninfo and slot; a primary
// gets none of it.
func TestStandbyRecoverySettings(t *testing.T) {
	rc := map[string]any{
		"restore_command":          "cp /archive/%f %p",
		"archive_cleanup_command":  "pg_archivecleanup /archive %r",
		"recovery_min_apply_delay": "5min",
		"recovery_target_timeline": 3,
		"recovery_target_time":     "2026-12-04 01:00:00+00",
		"recovery_target_action":   "promote",
		"primary_conninfo":         "host=elsewhere",
		"primary_slot_name":        "other",
		"standby_mode":             "on",
		"trigger_file":             "/tmp/promote-me",
		"hot_standby_feedback":     true,
	}
	got := StandbyRecovery(rc)
	want := map[string]string{
		"restore_command":          "cp /archive/%f %p",
		"archive_cleanup_command":  "pg_archivecleanup /archive %r",
		"recovery_min_apply_delay": "5min",
		"promote_trigger_file":     "/tmp/promote-me",
		"hot_standby_feedback":     "on",
	}
	if len(got) != len(want) {
		t.Errorf("StandbyRecovery = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("StandbyRecovery[%s] = %q, want %q", k, got[k], v)
		}
	}
	if StandbyRecovery(map[string]any{"recovery_target_time": "x"}) != nil {
		t.Error("StandbyRecovery of targets alone is not nil")
	}
	if p := RecoveryParams(rc); p["recovery_target_time"] != "2026-12-04 01:00:00+00" || p["recovery_target_action"] != "promote" ||
		p["recovery_target_timeline"] != "3" || p["standby_mode"] != "" {
		t.Errorf("RecoveryParams keeps the targets and drops standby_mode; got %v", p)
	}

	dir := t.TempDir()
	params := map[string]string{"port": "5432"}
	conf := string(RenderConf(dir, params, &Standby{PrimaryConnInfo: "host=10.0.0.1", SlotName: "node2", Recovery: got}))
	for _, line := range []string{
		"restore_command = 'cp /archive/%f %p'\n",
		"archive_cleanup_command = 'pg_archivecleanup /archive %r'\n",
		"recovery_min_apply_delay = '5min'\n",
		"recovery_target_timeline = 'latest'\n",
		"recovery_target_time = ''\n",
		"recovery_target_lsn = ''\n",
		"recovery_target = ''\n",
		"primary_conninfo = 'host=10.0.0.1'\n",
		"primary_slot_name = 'node2'\n",
		"port = '5432'\n",
	} {
		if !strings.Contains(conf, line) {
			t.Errorf("standby postgresql.conf lacks %q:\n%s", line, conf)
		}
	}
	if strings.Contains(conf, "recovery_target_action") || strings.Contains(conf, "elsewhere") {
		t.Errorf("standby postgresql.conf has a recovery target or another primary_conninfo:\n%s", conf)
	}
	primary := string(RenderConf(dir, params, nil))
	for _, k := range []string{"restore_command", "archive_cleanup_command", "recovery_min_apply_delay"} {
		if strings.Contains(primary, k) {
			t.Errorf("primary postgresql.conf has %s:\n%s", k, primary)
		}
	}
	// The server-start-only recovery settings are the same on both sides,
	// so that a promotion leaves nothing pending a restart.
	for _, line := range []string{"recovery_target = ''\n", "recovery_target_time = ''\n", "recovery_target_timeline = 'latest'\n"} {
		if !strings.Contains(primary, line) {
			t.Errorf("primary postgresql.conf lacks %q:\n%s", line, primary)
		}
	}
}
