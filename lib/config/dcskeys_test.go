package config

import (
	"strings"
	"testing"
)

func TestParseStandbyCluster(t *testing.T) {
	tests := []struct {
		in      map[string]any
		conn    string
		slot    string
		wantErr string
	}{
		{nil, "", "", ""},
		{map[string]any{"host": ""}, "", "", ""},
		{map[string]any{"host": "10.1.0.1"}, "postgres://10.1.0.1:5432/postgres", "", ""},
		{map[string]any{"host": "dr-lb.example", "port": 6432, "primary_slot_name": "dr"}, "postgres://dr-lb.example:6432/postgres", "dr", ""},
		{map[string]any{"host": "10.1.0.1,10.1.0.2", "port": "5433"}, "postgres://10.1.0.1,10.1.0.2:5433/postgres", "", ""},
		{map[string]any{"host": "fd00::1", "port": 5432.0}, "postgres://[fd00::1]:5432/postgres", "", ""},
		{map[string]any{"restore_command": "cp /arch/%f %p"}, "", "", ""},
		{map[string]any{"host": "a b"}, "", "", "standby_cluster.host"},
		{map[string]any{"host": "h", "port": 70000}, "", "", "standby_cluster.port"},
		{map[string]any{"host": "h", "primary_slot_name": "DR-1"}, "", "", "standby_cluster.primary_slot_name"},
		{map[string]any{"port": 5432}, "", "", "neither a host nor a restore_command"},
	}
	for _, tt := range tests {
		sc, err := ParseStandbyCluster(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err %v, want one naming %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.in, err)
			continue
		}
		if !IsStandbyCluster(tt.in) {
			if sc != nil {
				t.Errorf("%v: %+v, want nil", tt.in, sc)
			}
			continue
		}
		if sc.ConnURL() != tt.conn || sc.PrimarySlotName != tt.slot {
			t.Errorf("%v: conn %q slot %q, want %q %q", tt.in, sc.ConnURL(), sc.PrimarySlotName, tt.conn, tt.slot)
		}
	}
}

// TestStandbyClusterKeyAuthority: once the config key exists, only its
// standby_cluster counts, so that removing it there promotes.
func TestStandbyClusterKeyAuthority(t *testing.T) {
	cfg, _, err := Parse([]byte("scope: dr\nname: n1\netcd3:\n  hosts: [127.0.0.1:2379]\nbootstrap:\n  dcs:\n    standby_cluster: {host: 10.1.0.1, port: 5432}\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Dynamic()
	if d.StandbyCluster == nil || d.StandbyCluster.Host != "10.1.0.1" {
		t.Fatalf("bootstrap.dcs: %+v", d.StandbyCluster)
	}
	with, err := d.WithJSON([]byte(`{"ttl":8,"standby_cluster":{"host":"10.2.0.1"}}`), cfg)
	if err != nil || with.StandbyCluster == nil || with.StandbyCluster.Host != "10.2.0.1" {
		t.Fatalf("key with standby_cluster: %+v, %v", with.StandbyCluster, err)
	}
	without, err := d.WithJSON([]byte(`{"ttl":8}`), cfg)
	if err != nil || without.StandbyCluster != nil {
		t.Fatalf("key without standby_cluster: %+v, %v", without.StandbyCluster, err)
	}
	bad, err := d.WithJSON([]byte(`{"standby_cluster":{"host":"10.2.0.1","port":"x"}}`), cfg)
	if err != nil || bad.StandbyCluster == nil || bad.StandbyCluster.Host != "10.1.0.1" || len(bad.Problems) == 0 {
		t.Fatalf("unusable standby_cluster in the key: %+v, problems %v, %v", bad.StandbyCluster, bad.Problems, err)
	}
}

func TestSlotIgnored(t *testing.T) {
	rules := []map[string]any{
		{"name": "node_9"},
		{"type": "logical", "database": "app"},
		{},
	}
	for _, tt := range []struct {
		name, typ, db, plugin string
		want                  bool
	}{
		{"node_9", "physical", "", "", true},
		{"node_2", "physical", "", "", false},
		{"cdc", "logical", "app", "pgoutput", true},
		{"cdc", "logical", "other", "pgoutput", false},
	} {
		if got := SlotIgnored(rules, tt.name, tt.typ, tt.db, tt.plugin); got != tt.want {
			t.Errorf("SlotIgnored(%s %s %s %s) = %v, want %v", tt.name, tt.typ, tt.db, tt.plugin, got, tt.want)
		}
	}
	if SlotIgnored(nil, "node_9", "physical", "", "") {
		t.Error("no rules ignore a slot")
	}
}

// TestHistoryAndStopKeys: max_timelines_history and primary_stop_timeout
// (and its old name) are read from the config key.
func TestHistoryAndStopKeys(t *testing.T) {
	d, err := (Dynamic{}).WithJSON([]byte(`{"max_timelines_history":3,"master_stop_timeout":20,"primary_stop_timeout":"45"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxTimelinesHistory != 3 || d.PrimaryStopTimeout.Seconds() != 45 || len(d.Warnings()) != 0 {
		t.Errorf("max_timelines_history %d, primary_stop_timeout %s, warnings %q", d.MaxTimelinesHistory, d.PrimaryStopTimeout, d.Warnings())
	}
}
