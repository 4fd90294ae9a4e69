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

// waitSyncKey waits until the sync key names leader and lists n standbys,
// and returns the key.
func waitSyncKey(t testing.TB, c *testcluster.Cluster, leader string, n int, within time.Duration) dcs.SyncKey {
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
		return err == nil && k.Leader == leader && len(k.Standbys) == n
	})
	return k
}

// TestSyncNodeDeath: in synchronous_mode on, on with strict, and quorum
// (synchronous_node_count 1), the primary lists its standbys in
// synchronous_standby_names (FIRST 1 / ANY 1) and publishes them in the
// sync key; when the primary's node dies, a standby that has every
// acknowledged commit is promoted (in mode on, the one the key lists) and no
// write acknowledged before the death is missing.
func TestSyncNodeDeath(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dcs      map[string]any
		standbys int
		prefix   string
	}{
		{"on", map[string]any{"synchronous_mode": true}, 1, "FIRST 1"},
		{"strict", map[string]any{"synchronous_mode": true, "synchronous_mode_strict": true}, 1, "FIRST 1"},
		{"quorum", map[string]any{"synchronous_mode": "quorum", "synchronous_node_count": 1}, 2, "ANY 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, w := start(t, testcluster.Options{ExtraDCS: tc.dcs})
			old := c.WaitPrimary(t, 10*time.Second)
			k := waitSyncKey(t, c, old.Name, tc.standbys, 15*time.Second)
			s := syncSetting(old)
			for _, sb := range k.Standbys {
				if !strings.Contains(s, sb) {
					t.Errorf("synchronous_standby_names on %s is %q, want it to list %s", old.Name, s, sb)
				}
			}
			if !strings.HasPrefix(s, tc.prefix) {
				t.Errorf("synchronous_standby_names on %s is %q, want %s (…)", old.Name, s, tc.prefix)
			}
			t.Logf("%s: synchronous_standby_names %q, sync key %+v", old.Name, s, k)
			killed := w.Mark("kill node " + old.Name)
			old.KillAll()
			np := c.WaitPrimary(t, c.Options.TTL+15*time.Second, old)
			if tc.standbys == 1 && np.Name != k.Standbys[0] {
				t.Errorf("%s was promoted, want the synchronous standby %s", np.Name, k.Standbys[0])
			}
			w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
			old.Start(t)
			waitSyncKey(t, c, np.Name, tc.standbys, 30*time.Second)
			if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
				t.Fatal(err)
			}
			h := w.Stop()
			final, _ := testcluster.FinalWrites(t, c)
			testcluster.AssertSafe(t, h, final, testcluster.LossPolicy{})
		})
	}
}
