package pgdata

import (
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/config"
)

const nodeYAML = `
scope: demo
name: node1
etcd3: {hosts: ["127.0.0.1:2379"]}
bootstrap:
  dcs:
    postgresql:
      parameters: {work_mem: 4MB, max_connections: 100}
postgresql:
  listen: 127.0.0.1:5433
  data_dir: /tmp/pgha-params-test
  use_pg_rewind: true
  parameters:
    unix_socket_directories: /run/node1
    shared_buffers: 64MB
`

// merged is what pg-lockd and pg-supervise both derive: the YAML's dynamic
// settings with the config key on top, local parameters last.
func merged(t *testing.T, key string) (*Node, config.Dynamic) {
	t.Helper()
	cfg, _, err := config.Parse([]byte(nodeYAML), []string{})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Dynamic()
	if key != "" {
		if d, err = d.WithJSON([]byte(key), cfg); err != nil {
			t.Fatal(err)
		}
	}
	return &Node{Cfg: cfg, RuntimeDir: "/run/pg-ha/demo-node1"}, d
}

func TestServerParameters(t *testing.T) {
	for _, tc := range []struct {
		name      string
		key       string
		want      map[string]string // settings written
		absent    []string          // settings not written
		overrides []string          // names of the overridden parameters
	}{
		{
			name: "yaml only",
			want: map[string]string{"work_mem": "4MB", "max_connections": "100", "shared_buffers": "64MB",
				"listen_addresses": "127.0.0.1", "port": "5433", "cluster_name": "demo", "unix_socket_directories": "/run/node1",
				"hot_standby": "on", "wal_level": "replica", "wal_log_hints": "on"},
		},
		{
			name: "the config key wins over bootstrap.dcs, the local YAML over the config key",
			key:  `{"postgresql":{"parameters":{"work_mem":"16MB","shared_buffers":"1GB","log_min_duration_statement":250}}}`,
			want: map[string]string{"work_mem": "16MB", "shared_buffers": "64MB", "log_min_duration_statement": "250"},
		},
		{
			name:      "the node's own address, port, sockets and cluster name",
			key:       `{"postgresql":{"parameters":{"listen_addresses":"*","port":6000,"unix_socket_directories":"/tmp","cluster_name":"other"}}}`,
			want:      map[string]string{"listen_addresses": "127.0.0.1", "port": "5433", "unix_socket_directories": "/run/node1", "cluster_name": "demo"},
			overrides: []string{"cluster_name", "listen_addresses", "port"}, // the local socket directory already won the merge
		},
		{
			name:      "logical permanent slots: wal_level logical, hot_standby_feedback on",
			key:       `{"slots":{"cdc":{"type":"logical","database":"app","plugin":"pgoutput"}},"postgresql":{"parameters":{"wal_level":"replica","hot_standby_feedback":"off"}}}`,
			want:      map[string]string{"wal_level": "logical", "hot_standby_feedback": "on"},
			overrides: []string{"hot_standby_feedback", "wal_level"},
		},
		{
			name:      "hot_standby stays on, wal_level at least replica",
			key:       `{"postgresql":{"parameters":{"hot_standby":"off","wal_level":"minimal"}}}`,
			want:      map[string]string{"hot_standby": "on", "wal_level": "replica"},
			overrides: []string{"hot_standby", "wal_level"},
		},
		{
			name: "wal_level logical and the old name hot_standby are fine",
			key:  `{"postgresql":{"parameters":{"wal_level":"hot_standby","hot_standby":true}}}`,
			want: map[string]string{"wal_level": "replica", "hot_standby": "on"},
		},
		{
			name:      "replication limits keep Patroni's minimums",
			key:       `{"postgresql":{"parameters":{"max_connections":10,"max_wal_senders":2,"max_locks_per_transaction":"lots","max_replication_slots":4,"wal_keep_size":"8MB","max_worker_processes":2}}}`,
			want:      map[string]string{"max_connections": "100", "max_wal_senders": "10", "max_locks_per_transaction": "64", "max_replication_slots": "4", "wal_keep_size": "128MB", "max_worker_processes": "2"},
			overrides: []string{"max_connections", "max_locks_per_transaction", "max_wal_senders", "wal_keep_size"},
		},
		{
			name: "sizes with units",
			key:  `{"postgresql":{"parameters":{"wal_keep_size":"1GB","max_locks_per_transaction":128}}}`,
			want: map[string]string{"wal_keep_size": "1GB", "max_locks_per_transaction": "128"},
		},
		{
			name:      "wal_keep_segments becomes wal_keep_size",
			key:       `{"postgresql":{"parameters":{"wal_keep_segments":20}}}`,
			want:      map[string]string{"wal_keep_size": "320MB"},
			absent:    []string{"wal_keep_segments"},
			overrides: []string{"wal_keep_segments"},
		},
		{
			name:      "use_pg_rewind keeps wal_log_hints on",
			key:       `{"postgresql":{"parameters":{"wal_log_hints":"off"}}}`,
			want:      map[string]string{"wal_log_hints": "on"},
			overrides: []string{"wal_log_hints"},
		},
		{
			name:      "recovery settings follow the role",
			key:       `{"postgresql":{"parameters":{"primary_conninfo":"host=elsewhere","primary_slot_name":"x","data_directory":"/x"}}}`,
			absent:    []string{"primary_conninfo", "primary_slot_name", "data_directory"},
			overrides: []string{"data_directory", "primary_conninfo", "primary_slot_name"},
		},
		{
			name: "synchronous_standby_names from the configuration when synchronous_mode is off",
			key:  `{"postgresql":{"parameters":{"synchronous_standby_names":"*"}}}`,
			want: map[string]string{"synchronous_standby_names": "*"},
		},
		{
			name:      "never from the configuration when synchronous_mode is on",
			key:       `{"synchronous_mode":true,"postgresql":{"parameters":{"synchronous_standby_names":"*"}}}`,
			absent:    []string{"synchronous_standby_names"},
			overrides: []string{"synchronous_standby_names"},
		},
		{
			name: "parameter names are case-insensitive",
			key:  `{"postgresql":{"parameters":{"Hot_Standby":"off"}}}`,
			want: map[string]string{"hot_standby": "on"}, absent: []string{"Hot_Standby"},
			overrides: []string{"hot_standby"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, d := merged(t, tc.key)
			p, ov := n.ServerParameters(d)
			for k, v := range tc.want {
				if p[k] != v {
					t.Errorf("%s = %q, want %q", k, p[k], v)
				}
			}
			for _, k := range tc.absent {
				if v, ok := p[k]; ok {
					t.Errorf("%s = %q written, want it left out", k, v)
				}
			}
			var names []string
			for _, o := range ov {
				names = append(names, o.Name)
				if o.String() == "" || o.Why == "" {
					t.Errorf("override %+v says nothing", o)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.overrides, ",") {
				t.Errorf("overrides %v, want %v", ov, tc.overrides)
			}
		})
	}
}

func TestServerParametersSocketWithoutLocalSetting(t *testing.T) {
	cfg, _, err := config.Parse([]byte(strings.Replace(nodeYAML, "unix_socket_directories: /run/node1", "max_connections: 200", 1)), []string{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cfg.Dynamic().WithJSON([]byte(`{"postgresql":{"parameters":{"unix_socket_directories":"/tmp"}}}`), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Cfg: cfg, RuntimeDir: "/run/pg-ha/demo-node1"}
	p, ov := n.ServerParameters(d)
	if p["unix_socket_directories"] != n.RuntimeDir || len(ov) != 1 || ov[0].Name != "unix_socket_directories" || ov[0].Asked != "/tmp" {
		t.Errorf("unix_socket_directories = %q, overrides %v; want the runtime directory, overridden", p["unix_socket_directories"], ov)
	}
}

func TestLocalHBAWinsOverTheConfigKey(t *testing.T) {
	cfg, _, err := config.Parse([]byte(nodeYAML+"  pg_hba: [\"host all all 127.0.0.1/32 trust\"]\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cfg.Dynamic().WithJSON([]byte(`{"postgresql":{"pg_hba":["host all all 0.0.0.0/0 md5"]}}`), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.PgHBA) != 1 || d.PgHBA[0] != "host all all 127.0.0.1/32 trust" {
		t.Errorf("pg_hba = %v, want the local YAML's", d.PgHBA)
	}
}

func TestServerParametersUseSlotsAndRewindFromKey(t *testing.T) {
	_, d := merged(t, `{"postgresql":{"use_slots":false,"use_pg_rewind":false,"pg_hba":["host all all 10.0.0.0/8 md5"],"pg_ident":["m a b"]}}`)
	if d.UseSlots {
		t.Error("use_slots false in the config key: still on")
	}
	if !d.UsePgRewind {
		t.Error("use_pg_rewind true in the local YAML: the config key turned it off")
	}
	if len(d.PgHBA) != 1 || d.PgHBA[0] != "host all all 10.0.0.0/8 md5" {
		t.Errorf("pg_hba = %v", d.PgHBA)
	}
	if len(d.PgIdent) != 1 || d.PgIdent[0] != "m a b" {
		t.Errorf("pg_ident = %v", d.PgIdent)
	}
}

// TestWalLogHintsWithoutRewind: wal_log_hints is on by default even with
// use_pg_rewind off (pg_rewind's dry run still tells a diverged replica),
// and then an explicit off is kept.
func TestWalLogHintsWithoutRewind(t *testing.T) {
	n, d := merged(t, "")
	d.UsePgRewind = false
	if p := n.Parameters(d); p["wal_log_hints"] != "on" {
		t.Errorf("wal_log_hints %q without use_pg_rewind, want on", p["wal_log_hints"])
	}
	d.Parameters = map[string]string{"wal_log_hints": "off"}
	if p := n.Parameters(d); p["wal_log_hints"] != "off" {
		t.Errorf("wal_log_hints %q when set off without use_pg_rewind, want off kept", p["wal_log_hints"])
	}
}
