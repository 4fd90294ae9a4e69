package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestMethodSections: the sections named by create_replica_methods and
// bootstrap.method are read with Patroni's special keys and the rest kept in
// file order as --key=value options; a listed method without a section or a
// command is a one-line error naming the key.
func TestMethodSections(t *testing.T) {
	yml := baseYAML + `
bootstrap:
  method: pitr
  pitr:
    command: /usr/local/bin/restore --from 'backup dir'
    keep_existing_recovery_conf: true
    recovery_conf:
      recovery_target_time: '2026-12-04 01:00:00+00'
      recovery_target_action: promote
    target: latest
postgresql:
  create_replica_methods: [wal_g, basebackup]
  wal_g:
    command: /usr/bin/wal-g-restore
    no_leader: 1
    keep_data: "on"
    envdir: /etc/wal-g
    retries: 3
  basebackup:
    max-rate: 100M
`
	cfg, _, err := Parse([]byte(yml), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ReplicaMethods(); !reflect.DeepEqual(got, []string{"wal_g", "basebackup"}) {
		t.Errorf("ReplicaMethods = %v", got)
	}
	w := cfg.Postgres.Methods["wal_g"]
	if w.Command != "/usr/bin/wal-g-restore" || !w.NoLeader || !w.KeepData || w.NoParams {
		t.Errorf("wal_g = %+v", w)
	}
	if got := w.Args(); !reflect.DeepEqual(got, []string{"--envdir=/etc/wal-g", "--retries=3"}) {
		t.Errorf("wal_g args = %q", got)
	}
	b := cfg.Bootstrap.Custom
	if b == nil || b.Name != "pitr" || !b.KeepExistingRecoveryConf || b.RecoveryConf["recovery_target_action"] != "promote" {
		t.Fatalf("bootstrap method = %+v", b)
	}
	if got := b.Args(); !reflect.DeepEqual(got, []string{"--target=latest"}) {
		t.Errorf("pitr args = %q", got)
	}
	plain, _, err := Parse([]byte(baseYAML), []string{})
	if err != nil || plain.Bootstrap.Custom != nil || !reflect.DeepEqual(plain.ReplicaMethods(), []string{"basebackup"}) {
		t.Errorf("plain file: %v, custom %v, methods %v", err, plain.Bootstrap.Custom, plain.ReplicaMethods())
	}

	for _, tc := range []struct{ yml, want string }{
		{"postgresql:\n  create_replica_methods: [pgbackrest]\n", "postgresql.pgbackrest: missing"},
		{"postgresql:\n  create_replica_methods: [pgbackrest]\n  pgbackrest: {keep_data: true}\n", "postgresql.pgbackrest.command: missing"},
		{"postgresql:\n  create_replica_methods: [x]\n  x: {command: run, no_params: maybe}\n", `postgresql.x.no_params: "maybe" is not a boolean`},
		{"bootstrap:\n  method: pitr\n", "bootstrap.pitr: missing"},
		{"bootstrap:\n  method: pitr\n  pitr: {command: \"restore 'x\"}\n", "bootstrap.pitr.command:"},
	} {
		_, _, err := Parse([]byte(baseYAML+tc.yml), []string{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line with %q", tc.yml, err, tc.want)
		}
	}
}
