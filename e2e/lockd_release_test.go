package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestLockdReleaseDownNoLeadLine: the primary's pg-supervise is stopped
// (SIGTERM; PostgreSQL shuts down with it) and stays away, so pg-lockd
// gives the leader key up because PostgreSQL is down. etcd answers that node
// 300 ms late each way, and the moment the key is gone the node is cut off
// from etcd, so its pg-lockd cannot learn who leads next. Then pg-supervise
// is started again, as systemd would restart it, and reads what pg-lockd
// wrote to the role FIFO meanwhile and what it keeps re-sending. Once the
// key is given up no lead line may be there: PostgreSQL must not come back
// as a primary — without the key, next to the replica promoted in its
// place — before that line's deadline runs out. pg-lockd sends a stop line
// before it releases, and re-sends that, never a lead line, without a
// current token.
func TestLockdReleaseDownNoLeadLine(t *testing.T) {
	const delay = 300 * time.Millisecond
	c, w := start(t, testcluster.Options{FIFO: true, EtcdProxy: true})
	o := c.Options
	old := c.WaitPrimary(t, 10*time.Second)
	old.DelayEtcd(delay)

	stopped := w.Mark("stop pg-supervise of " + old.Name + " (SIGTERM)")
	if err := old.Signal(testcluster.Supervise, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !old.Wait(testcluster.Supervise, 30*time.Second) {
		t.Fatalf("%s's pg-supervise did not stop on SIGTERM", old.Name)
	}
	// The key goes 2 × loop_wait after pg-supervise is seen gone.
	var leader string
	waitUntil(t, 30*time.Second, "release of "+old.Name+"'s leader key", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		name, err := c.Leader(ctx)
		leader = name
		return err == nil && name != old.Name
	})
	old.PartitionFromEtcd()
	released := w.Mark("leader key of " + old.Name + " gone (now " + orNone(leader) + "); " + old.Name + " cut off from etcd; start its pg-supervise again")
	old.StartSupervise(t)

	// A lead line handed over before the release is valid for at most ttl.
	var asPrimary []time.Duration
	for end := released.Add(o.TTL + time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		primary, err := old.IsPrimary(ctx)
		cancel()
		if err == nil && primary {
			asPrimary = append(asPrimary, time.Since(released))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	now, _ := c.Leader(ctx)
	cancel()
	t.Logf("%s's pg-supervise stopped at %s; leader key released %s later; leader key %s after ttl",
		old.Name, stopped.Format("15:04:05.000"), released.Sub(stopped).Round(time.Millisecond), orNone(now))
	if len(asPrimary) > 0 {
		t.Errorf("%s's PostgreSQL answered as a primary %d times, from %s to %s after its leader key was released (leader key now %s): it was started as a primary without the key",
			old.Name, len(asPrimary), asPrimary[0].Round(time.Millisecond), asPrimary[len(asPrimary)-1].Round(time.Millisecond), orNone(now))
	}
	old.HealEtcd()
	old.DelayEtcd(0)
	finish(t, c, w)
}

// orNone is name, or "none" for no leader key.
func orNone(name string) string {
	if name == "" {
		return "none"
	}
	return name
}
