package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// exhaust opens connections to n as the superuser until PostgreSQL refuses
// one for want of slots, keeps them open until t ends, and returns how many
// it holds.
func exhaust(t *testing.T, n *testcluster.Node) int {
	t.Helper()
	var conns []*pgx.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	})
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := n.Conn(ctx)
		cancel()
		var pe *pgconn.PgError
		switch {
		case err == nil:
			conns = append(conns, c)
			if len(conns) > 500 {
				t.Fatalf("%s took 500 connections without refusing one", n.Name)
			}
			continue
		case errors.As(err, &pe) && pe.Code == "53300":
			return len(conns)
		default:
			t.Fatalf("connection %d to %s: %v", len(conns)+1, n.Name, err)
		}
	}
}

// healthStatus is the HTTP status of pg-healthd's endpoint path on n.
func healthStatus(n *testcluster.Node, path string) int {
	cli := http.Client{Timeout: 2 * time.Second}
	resp, err := cli.Get(fmt.Sprintf("http://127.0.0.1:%d/%s", n.APIPort, path))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConnectionsExhausted: an application logged in as the superuser holds
// every connection slot of the primary. pg-lockd, pg-supervise and
// pg-healthd keep working on the connections they already hold: the leader
// key stays, the member key says running, the health checks answer as
// before; then a switchover during the exhaustion completes, the sessions
// held on the old primary never commit after it, and nothing acknowledged
// is lost.
func TestConnectionsExhausted(t *testing.T) {
	c, w := start(t, testcluster.Options{Healthd: true, ExtraParameters: map[string]string{"max_connections": "30"}})
	p := c.WaitPrimary(t, 10*time.Second)
	c.WaitReplicasStreaming(t, 30*time.Second)
	waitMembersStreaming(t, c, p, 10*time.Second)
	var r *testcluster.Node
	for _, n := range c.Nodes {
		if n != p {
			r = n
			break
		}
	}
	holds := w.Hold(t, p, 12*time.Second)
	stop := make(chan struct{})
	seen := leaderWatch(c, stop)

	full := w.Mark("an application takes every connection slot of " + p.Name)
	held := exhaust(t, p)
	t.Logf("the application holds %d connections to %s", held, p.Name)
	// Several loops of every daemon in the exhaustion.
	for end := time.Now().Add(4 * c.Options.LoopWait); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		for _, n := range c.Nodes {
			path, want := "replica", http.StatusOK
			if n == p {
				path = "primary"
			}
			if got := healthStatus(n, path); got != want {
				t.Errorf("%s: GET /%s answered %d during the exhaustion, want %d", n.Name, path, got, want)
			}
		}
	}
	ms, err := c.Members(context.Background())
	if err != nil || ms[p.Name]["state"] != "running" {
		t.Errorf("member %s during the exhaustion: %v (%v), want state running", p.Name, fmtJSON(ms[p.Name]), err)
	}
	close(stop)
	leaders := <-seen
	for _, l := range leaders {
		if l != p.Name && l != "?" {
			t.Errorf("leader key changed during the exhaustion: %v", leaders)
			break
		}
	}

	began := w.Mark("switchover " + p.Name + " → " + r.Name + " during the exhaustion")
	switchTo(t, c, p, r)
	t.Logf("switchover during the exhaustion done in %s (%s after the exhaustion began)",
		time.Since(began).Round(time.Millisecond), time.Since(full).Round(time.Millisecond))
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 40*time.Second), began, "the switchover")
	finish(t, c, w)
}
