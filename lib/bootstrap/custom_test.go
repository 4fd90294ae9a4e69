package bootstrap

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pg-ha/pg-ha/lib/config"
)

// TestMethodArgs: --scope and --datadir unless no_params, then the
// section's options in file order; a scope or datadir option never
// contradicts them.
func TestMethodArgs(t *testing.T) {
	opts := []config.Option{{Key: "backup", Value: "/b/base.tar"}, {Key: "datadir", Value: "/elsewhere"},
		{Key: "jobs", Value: 4}, {Key: "scope", Value: "other"}, {Key: "verify", Value: true}}
	tests := []struct {
		name string
		m    config.Method
		want []string
	}{
		{"params", config.Method{Command: "restore", Options: opts},
			[]string{"--scope=batman", "--datadir=/data/pg", "--backup=/b/base.tar", "--jobs=4", "--verify=on"}},
		{"no_params", config.Method{Command: "restore", NoParams: true, Options: opts},
			[]string{"--backup=/b/base.tar", "--jobs=4", "--verify=on"}},
		{"no options", config.Method{Command: "restore"}, []string{"--scope=batman", "--datadir=/data/pg"}},
	}
	for _, tt := range tests {
		got := methodArgs(&tt.m, "batman", "/data/pg")
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: methodArgs = %q, want %q", tt.name, got, tt.want)
		}
	}
	if len(opts) != 5 {
		t.Error("methodArgs changed the method's options")
	}
}

// TestRecoveryPlan: recovery_conf always means a recovery with its
// settings; keep_existing_recovery_conf means one with the command's own
// settings only when the command left a signal file; otherwise none.
func TestRecoveryPlan(t *testing.T) {
	rc := map[string]any{"restore_command": "cp /a/%f %p", "recovery_target_time": "2026-12-04 01:00:00+00", "standby_mode": "on"}
	tests := []struct {
		name        string
		m           config.Method
		signalLeft  bool
		wantRecover bool
		wantKeys    []string
	}{
		{"recovery_conf", config.Method{RecoveryConf: rc}, false, true, []string{"recovery_target_time", "restore_command"}},
		{"recovery_conf wins over keep", config.Method{RecoveryConf: rc, KeepExistingRecoveryConf: true}, true, true, []string{"recovery_target_time", "restore_command"}},
		{"keep with a signal", config.Method{KeepExistingRecoveryConf: true}, true, true, nil},
		{"keep without a signal", config.Method{KeepExistingRecoveryConf: true}, false, false, nil},
		{"signal removed", config.Method{}, true, false, nil},
		{"nothing", config.Method{}, false, false, nil},
	}
	for _, tt := range tests {
		settings, recover := recoveryPlan(&tt.m, tt.signalLeft)
		var keys []string
		for k := range settings {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if recover != tt.wantRecover || !slices.Equal(keys, tt.wantKeys) {
			t.Errorf("%s: recoveryPlan = %v, %v; want recover %v with %v", tt.name, settings, recover, tt.wantRecover, tt.wantKeys)
		}
	}
}

// TestRecoveryArgs: the private recovery run listens on no TCP address,
// and each recovery setting is one -c argument (no shell is involved, so
// spaces and quotes need no escaping).
func TestRecoveryArgs(t *testing.T) {
	got := recoveryArgs("/data/pg", "/run/pg-ha", 5433, map[string]string{
		"restore_command": "cp '/my archive/%f' %p", "recovery_target_action": "promote"})
	want := []string{"-D", "/data/pg", "-c", "listen_addresses=", "-c", "unix_socket_directories=/run/pg-ha",
		"-c", "port=5433", "-c", "hot_standby=on", "-c", "logging_collector=off",
		"-c", "recovery_target=", "-c", "recovery_target_lsn=", "-c", "recovery_target_name=",
		"-c", "recovery_target_time=", "-c", "recovery_target_xid=",
		"-c", "recovery_target_action=promote", "-c", "restore_command=cp '/my archive/%f' %p"}
	if !slices.Equal(got, want) {
		t.Errorf("recoveryArgs = %q\nwant %q", got, want)
	}
}

// TestServerError: the last FATAL line of the server's log explains a
// failed recovery.
func TestServerError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	log := "LOG:  starting archive recovery\nFATAL:  recovery ended before configured recovery target was reached\nLOG:  startup process (PID 1) exited with exit code 1\nLOG:  database system is shut down\n"
	if err := os.WriteFile(p, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := serverError(p), "FATAL:  recovery ended before configured recovery target was reached"; got != want {
		t.Errorf("serverError = %q, want %q", got, want)
	}
	if got := serverError(filepath.Join(t.TempDir(), "missing")); got != "no output" {
		t.Errorf("serverError of a missing log = %q", got)
	}
}
