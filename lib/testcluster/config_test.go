package testcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
)

// TestConfigLoads checks that the YAML the harness writes is a valid node
// configuration for lib/config, with no unknown keys, and carries the
// options' timings, switches, tags and parameters.
func TestConfigLoads(t *testing.T) {
	dir := t.TempDir()
	c := &Cluster{
		Scope: "pgha-test",
		Options: Options{
			TTL: 10 * time.Second, LoopWait: 500 * time.Millisecond, RetryTimeout: 4 * time.Second,
			DisablePgRewind: true,
			Tags:            func(i int) map[string]any { return map[string]any{"nofailover": i == 1} },
			ExtraParameters: map[string]string{"work_mem": "8MB"},
		}.withDefaults(),
		secrets: newSecrets(),
	}
	for i := range 2 {
		name := fmt.Sprintf("node%d", i+1)
		n := &Node{Name: name, Index: i, PGPort: 5432 + i, APIPort: 8008 + i, Dir: filepath.Join(dir, name)}
		n.DataDir = filepath.Join(n.Dir, "data")
		b, err := nodeConfig(c, n, etcdHosts([]string{"http://127.0.0.1:2379"}))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, n.Name+".yml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, warns, err := config.Load(path, nil)
		if err != nil {
			t.Fatalf("load %s: %v\n%s", n.Name, err, b)
		}
		if len(warns) > 0 {
			t.Errorf("%s: warnings %v\n%s", n.Name, warns, b)
		}
		if problems := cfg.Validate(config.NeedAll); len(problems) > 0 {
			t.Errorf("%s: problems %v\n%s", n.Name, problems, b)
		}
		d := cfg.Dynamic()
		if d.TTL != 10*time.Second || d.LoopWait != 500*time.Millisecond || d.RetryTimeout != 4*time.Second {
			t.Errorf("%s: timings %s/%s/%s, want 10s/500ms/4s", n.Name, d.TTL, d.LoopWait, d.RetryTimeout)
		}
		if d.MaximumLagOnFailover != DefaultMaximumLagOnFailover || d.UsePgRewind || !d.UseSlots {
			t.Errorf("%s: lag %d, use_pg_rewind %v, use_slots %v; want %d, false, true",
				n.Name, d.MaximumLagOnFailover, d.UsePgRewind, d.UseSlots, DefaultMaximumLagOnFailover)
		}
		if err := d.CheckBudget(); err != nil {
			t.Errorf("%s: %v", n.Name, err)
		}
		if cfg.Name != n.Name || cfg.Scope != c.Scope || cfg.Postgres.DataDir != n.DataDir {
			t.Errorf("%s: name %q scope %q data_dir %q", n.Name, cfg.Name, cfg.Scope, cfg.Postgres.DataDir)
		}
		if got, want := cfg.Endpoints(), []string{"http://127.0.0.1:2379"}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("%s: etcd endpoints %v, want %v", n.Name, got, want)
		}
		if cfg.Tags.NoFailover() != (i == 1) {
			t.Errorf("%s: nofailover %v", n.Name, cfg.Tags.NoFailover())
		}
		if cfg.Postgres.Parameters["work_mem"] == nil || cfg.Postgres.Parameters["unix_socket_directories"] == nil {
			t.Errorf("%s: parameters %v lack work_mem or unix_socket_directories", n.Name, cfg.Postgres.Parameters)
		}
		if cfg.Postgres.Authentication.Superuser.Password != c.secrets.superuser {
			t.Errorf("%s: superuser password not the cluster's", n.Name)
		}
	}
}

// TestConfigPatroniUsesProxies checks that only a Patroni cluster behind etcd
// proxies has etcd3.use_proxies: without it Patroni talks to the etcd
// members it discovers, past the proxy that partitions it.
func TestConfigPatroniUsesProxies(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{{}, {EtcdProxy: true}, {Patroni: true}, {Patroni: true, EtcdProxy: true}} {
		c := &Cluster{Scope: "pgha-test", Options: o.withDefaults(), secrets: newSecrets()}
		n := &Node{Name: "node1", PGPort: 5432, APIPort: 8008, Dir: dir, DataDir: filepath.Join(dir, "data")}
		b, err := nodeConfig(c, n, []string{"127.0.0.1:2379"})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "node1.yml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.Load(path, nil)
		if err != nil {
			t.Fatalf("load: %v\n%s", err, b)
		}
		if want := o.Patroni && o.EtcdProxy; cfg.Etcd3 == nil || cfg.Etcd3.UseProxies != want {
			t.Errorf("Patroni %v, EtcdProxy %v: etcd3 %+v, want use_proxies %v", o.Patroni, o.EtcdProxy, cfg.Etcd3, want)
		}
	}
}

// TestConfigSync checks that the synchronous replication options reach
// bootstrap.dcs as lib/config reads them, that a member can be tagged
// nosync, and that an unknown mode is refused instead of written.
func TestConfigSync(t *testing.T) {
	tests := []struct {
		o      Options
		mode   config.SyncMode // "" when synchronous_mode must be absent
		strict bool
		count  int
	}{
		{o: Options{}},
		{o: Options{SyncMode: SyncOff}, mode: config.SyncOff},
		{o: Options{SyncMode: SyncOn}, mode: config.SyncOn},
		{o: Options{SyncMode: SyncOn, SyncStrict: true}, mode: config.SyncOn, strict: true},
		{o: Options{SyncMode: SyncQuorum, SyncNodeCount: 2}, mode: config.SyncQuorum, count: 2},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		tt.o.Tags = func(i int) map[string]any { return map[string]any{"nosync": i == 1} }
		c := &Cluster{Scope: "pgha-test", Options: tt.o.withDefaults(), secrets: newSecrets()}
		for j := range 2 {
			n := &Node{Name: fmt.Sprintf("node%d", j+1), Index: j, PGPort: 5432 + j, APIPort: 8008 + j, Dir: filepath.Join(dir, "n")}
			n.DataDir = filepath.Join(n.Dir, "data")
			b, err := nodeConfig(c, n, etcdHosts([]string{"http://127.0.0.1:2379"}))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, fmt.Sprintf("%d-%s.yml", i, n.Name))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := config.Load(path, nil)
			if err != nil {
				t.Fatalf("%+v: load: %v\n%s", tt.o, err, b)
			}
			d := cfg.Bootstrap.DCS
			var mode config.SyncMode
			if d.SynchronousMode != nil {
				mode = *d.SynchronousMode
			}
			strict := d.SynchronousModeStrict != nil && *d.SynchronousModeStrict
			count := 0
			if d.SynchronousNodeCount != nil {
				count = *d.SynchronousNodeCount
			}
			if mode != tt.mode || strict != tt.strict || count != tt.count {
				t.Errorf("SyncMode %q strict %v count %d: bootstrap.dcs has synchronous_mode %q, strict %v, node count %d\n%s",
					tt.o.SyncMode, tt.o.SyncStrict, tt.o.SyncNodeCount, mode, strict, count, b)
			}
			if cfg.Tags.NoSync() != (j == 1) {
				t.Errorf("%s: nosync %v", n.Name, cfg.Tags.NoSync())
			}
		}
	}
	c := &Cluster{Scope: "pgha-test", Options: Options{SyncMode: "true"}.withDefaults(), secrets: newSecrets()}
	if _, err := nodeConfig(c, &Node{Name: "node1", Dir: dir}, nil); err == nil || !strings.Contains(err.Error(), "SyncMode") {
		t.Errorf("SyncMode \"true\": error %v, want one naming Options.SyncMode", err)
	}
}

// TestConfigStandbyCluster: standby_cluster in ExtraDCS, and only a
// non-null one, makes a standby cluster.
func TestConfigStandbyCluster(t *testing.T) {
	for _, tc := range []struct {
		dcs  map[string]any
		want bool
	}{
		{nil, false},
		{map[string]any{"ttl": 10}, false},
		{map[string]any{"standby_cluster": nil}, false},
		{map[string]any{"standby_cluster": map[string]any{"host": "10.0.0.1", "port": 5432}}, true},
	} {
		if got := (Options{ExtraDCS: tc.dcs}).IsStandbyCluster(); got != tc.want {
			t.Errorf("ExtraDCS %v: IsStandbyCluster %v, want %v", tc.dcs, got, tc.want)
		}
	}
}
