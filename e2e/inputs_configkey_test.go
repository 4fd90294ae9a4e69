package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	pgstate "github.com/pg-ha/pg-ha/lib/state"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestInputsConfigKeyForeignFields writes a config key the way another tool
// or Patroni 4 might: synchronous_mode "quorum", a string pause and a field
// of the wrong type, plus a key pg-ha does not act on yet. The other fields
// still apply (every node is paused, and the primary replicates in quorum
// mode), and pg-healthd names the bad field and the key it ignores.
func TestInputsConfigKeyForeignFields(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Nodes: 2, Healthd: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := c.Get(ctx, c.Key("config"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("config key %q: %v", raw, err)
	}
	cfg["pause"] = "true"
	cfg["synchronous_mode"] = "quorum"
	cfg["maximum_lag_on_failover"] = "lots"
	cfg["slots"] = map[string]any{"Bad-Name": map[string]any{"type": "physical"}}
	b, _ := json.Marshal(cfg)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, c.Key("config"), string(b)); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(15 * time.Second)
	for _, n := range c.Nodes {
		for {
			line := lockdLine(n)
			if strings.Contains(line, "paused=1") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: pg-lockd's line %q is not paused after the config key says pause: \"true\"", n.Name, line)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, want := range []string{`maximum_lag_on_failover: \"lots\" is not an integer`, "slots.Bad-Name: not implemented"} {
			for !n.LogContains(testcluster.Healthd, want) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: pg-healthd did not log %q", n.Name, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	c.WaitReplicasStreaming(t, 10*time.Second)
	p := c.WaitPrimary(t, 10*time.Second)
	waitUntil(t, 15*time.Second, p.Name+" to replicate in quorum mode", func() bool {
		v, _, err := p.SyncStandbyNames(context.Background())
		return err == nil && strings.HasPrefix(v, "ANY 1 (")
	})
}

// lockdLine returns the last role line pg-lockd published in its state file.
func lockdLine(n *testcluster.Node) string {
	b, err := os.ReadFile(filepath.Join(n.RuntimeDir, pgstate.LockdFile))
	if err != nil {
		return ""
	}
	var s struct {
		Line string `json:"line"`
	}
	_ = json.Unmarshal(b, &s)
	return s.Line
}
