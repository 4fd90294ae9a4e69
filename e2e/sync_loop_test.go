package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// syncSetting is synchronous_standby_names on n, "" if it cannot be read.
func syncSetting(n *testcluster.Node) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var v string
	if err := n.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names')", nil, &v); err != nil {
		return ""
	}
	return v
}

// waitSyncKey waits until the sync key names leader and lists one standby,
// and returns that standby.
func waitSyncKey(t testing.TB, c *testcluster.Cluster, leader string, within time.Duration) string {
	t.Helper()
	var k dcs.SyncKey
	waitUntil(t, within, "the sync key to list a standby of "+leader, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		raw, err := c.Get(ctx, c.Key("sync"))
		if err != nil || raw == "" {
			return false
		}
		k, err = dcs.ParseSyncKey([]byte(raw))
		return err == nil && k.Leader == leader && len(k.Standbys) == 1
	})
	return k.Standbys[0]
}

// TestSyncOnNodeDeath: in synchronous_mode on, the primary lists one
// standby in synchronous_standby_names and publishes it in the sync key;
// when the primary's node dies, that standby is promoted and no write
// acknowledged before the death is missing.
func TestSyncOnNodeDeath(t *testing.T) {
	c, w := start(t, testcluster.Options{ExtraDCS: map[string]any{"synchronous_mode": true}})
	old := c.WaitPrimary(t, 10*time.Second)
	sb := waitSyncKey(t, c, old.Name, 15*time.Second)
	if s := syncSetting(old); !strings.Contains(s, sb) || !strings.HasPrefix(s, "FIRST 1") {
		t.Fatalf("synchronous_standby_names on %s is %q, want FIRST 1 (%s)", old.Name, s, sb)
	}
	t.Logf("%s lists %s as its synchronous standby: %q", old.Name, sb, syncSetting(old))
	killed := w.Mark("kill node " + old.Name)
	old.KillAll()
	np := c.WaitPrimary(t, c.Options.TTL+15*time.Second, old)
	if np.Name != sb {
		t.Errorf("%s was promoted, want the synchronous standby %s", np.Name, sb)
	}
	w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
	old.Start(t)
	waitSyncKey(t, c, np.Name, 30*time.Second)
	if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
		t.Fatal(err)
	}
	h := w.Stop()
	final, _ := testcluster.FinalWrites(t, c)
	testcluster.AssertSafe(t, h, final, testcluster.LossPolicy{})
}
