package testcluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
)

// TestConfigWALFilesystemAndExtraDCS: with Options.WALFilesystem the
// node's initdb options put pg_wal on the node's own filesystem, and
// Options.ExtraDCS reaches bootstrap.dcs.
func TestConfigWALFilesystemAndExtraDCS(t *testing.T) {
	dir := t.TempDir()
	c := &Cluster{Scope: "pgha-test", secrets: newSecrets(), Options: Options{
		WALFilesystem: 64 << 20, ExtraDCS: map[string]any{"primary_start_timeout": 12},
	}.withDefaults()}
	n := &Node{Name: "node1", PGPort: 5432, APIPort: 8008, Dir: filepath.Join(dir, "node1")}
	n.DataDir = filepath.Join(n.Dir, "data")
	b, err := nodeConfig(c, n, etcdHosts([]string{"http://127.0.0.1:2379"}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node1.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, warns, err := config.Load(path, nil)
	if err != nil || len(warns) > 0 {
		t.Fatalf("load: %v, warnings %v\n%s", err, warns, b)
	}
	if got := cfg.Dynamic().PrimaryStartTimeout; got != 12*time.Second {
		t.Errorf("primary_start_timeout %s, want 12s\n%s", got, b)
	}
	found := false
	for _, a := range cfg.Bootstrap.InitDB.Args() {
		found = found || a == "--waldir="+n.WALDir()
	}
	if !found {
		t.Errorf("initdb arguments %v lack --waldir=%s", cfg.Bootstrap.InitDB.Args(), n.WALDir())
	}
}
