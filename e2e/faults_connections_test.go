package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// exhaust opens connections to n as the superuser until PostgreSQL refuses
// one for want of slots, keeps them open until t ends, and returns how many
// it holds and a function that closes them (called at the latest when t
// ends). With greedy, it goes on trying every 20ms until then, as a
// connection pool refilling itself would, and takes every slot that frees.
func exhaust(t *testing.T, n *testcluster.Node, greedy bool) (int, func()) {
	t.Helper()
	var mu sync.Mutex
	var conns []*pgx.Conn
	var once sync.Once
	stop := make(chan struct{})
	done := make(chan struct{})
	release := func() {
		once.Do(func() {
			close(stop)
			if greedy {
				<-done
			}
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close(context.Background())
			}
		})
	}
	t.Cleanup(release)
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
			if greedy {
				go refill(n, &mu, &conns, stop, done)
			}
			return len(conns), release
		default:
			t.Fatalf("connection %d to %s: %v", len(conns)+1, n.Name, err)
		}
	}
}

func refill(n *testcluster.Node, mu *sync.Mutex, conns *[]*pgx.Conn, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := n.Conn(ctx)
		cancel()
		if err == nil {
			mu.Lock()
			*conns = append(*conns, c)
			mu.Unlock()
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
	holds := w.Hold(t, p, 20*time.Second)
	stop := make(chan struct{})
	seen := leaderWatch(c, stop)

	full := w.Mark("an application takes every connection slot of " + p.Name)
	held, _ := exhaust(t, p, false)
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

// TestConnectionsExhaustedStall: an application that refills its pool at
// once holds every connection slot of the primary, and pg-ha's own
// backends stall for 2.5 s (SIGSTOP), longer than pg-healthd's 1 s query
// timeout. pg-healthd must keep its connection across the timed-out query
// (a cancel request needs no slot), so that once the backends run again
// /primary answers 200 on the primary: a connection dropped there would
// be taken by the application at once, and the primary would stay out of
// the load balancer for as long as the exhaustion lasts.
func TestConnectionsExhaustedStall(t *testing.T) {
	c, w := start(t, testcluster.Options{Healthd: true, ExtraParameters: map[string]string{"max_connections": "30"}})
	p := c.WaitPrimary(t, 10*time.Second)
	var pids []int
	var err error
	for deadline := time.Now().Add(10 * time.Second); len(pids) < 3 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var conn *pgx.Conn
		if conn, err = p.Conn(ctx); err == nil {
			rows, _ := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name IN ('pg-ha', 'pg-healthd')")
			pids, err = pgx.CollectRows(rows, pgx.RowTo[int])
			conn.Close(ctx)
		}
		cancel()
	}
	if err != nil || len(pids) < 3 {
		var all []string
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if conn, err := p.Conn(ctx); err == nil {
			rows, _ := conn.Query(ctx, "SELECT format('%s %s %s %s %s', pid, usename, application_name, backend_type, state) FROM pg_stat_activity")
			all, _ = pgx.CollectRows(rows, pgx.RowTo[string])
			conn.Close(ctx)
		}
		cancel()
		t.Fatalf("pg-ha's backends on %s: %v, %v; want pg-lockd's, pg-supervise's and pg-healthd's; all: %q", p.Name, pids, err, all)
	}
	held, release := exhaust(t, p, true)
	t.Logf("the application holds %d connections to %s and takes every slot that frees", held, p.Name)
	stalled := w.Mark("SIGSTOP pg-ha's backends " + fmt.Sprint(pids) + " on " + p.Name + " for 2.5s")
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	time.Sleep(2500 * time.Millisecond)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	w.Mark("SIGCONT pg-ha's backends on " + p.Name)
	var got int
	deadline := time.Now().Add(5 * time.Second)
	for got != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = healthStatus(p, "primary")
	}
	if got != http.StatusOK {
		t.Errorf("%s: GET /primary answers %d 5s after pg-ha's backends ran again, want 200", p.Name, got)
	} else {
		t.Logf("%s: GET /primary answers 200 again %s after the stall began", p.Name, time.Since(stalled).Round(time.Millisecond))
	}
	ms, err := c.Members(context.Background())
	t.Logf("member %s after the stall: %s (%v)", p.Name, fmtJSON(ms[p.Name]), err)
	release()
	finish(t, c, w)
}
