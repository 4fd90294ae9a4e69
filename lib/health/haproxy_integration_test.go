package health

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
	"github.com/pg-ha/pg-ha/lib/state"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// The HAProxy end-to-end test runs the real haproxy (2.6) with
// examples/haproxy.cfg, its addresses rewritten to two real PostgreSQL 15
// nodes (a primary and its streaming replica), each behind its own
// pg-healthd Service, with a real etcd. The leader key is moved by hand and
// pg-lockd's and pg-supervise's state files are written by the test, which
// plays their part: renewing the leader's lease validity, letting it run
// out, fencing.

const exampleConfig = "../../examples/haproxy.cfg"

func TestExampleHAProxyConfigIsValid(t *testing.T) {
	t.Parallel()
	haproxyBin := testcluster.HAProxyBinary(t)
	out, err := exec.Command(haproxyBin, "-c", "-f", exampleConfig).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c %s: %v\n%s", exampleConfig, err, out)
	}
	if strings.Contains(strings.ToLower(string(out)), "warning") {
		t.Errorf("haproxy -c warns:\n%s", out)
	}
}

// landing is one connection made through HAProxy.
type landing struct {
	at         time.Time
	port       int // PostgreSQL's port: which node answered
	inRecovery bool
	err        error
}

// probe connects through addr and asks the server who it is.
func probe(port int) landing {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l := landing{at: time.Now()}
	conn, err := pg.Connect(ctx, pg.ConnParams{Host: "127.0.0.1", Port: port, User: "postgres",
		ConnectTimeout: time.Second, Extra: map[string]string{"sslmode": "disable"}})
	if err != nil {
		l.err = err
		return l
	}
	defer conn.Close(context.Background())
	l.err = conn.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&l.port, &l.inRecovery)
	return l
}

// fakeLockd plays pg-lockd and pg-supervise on one node: while renewing, it
// publishes a lease validity of ttl from now, and a fence deadline 1 s
// earlier, every 100 ms.
type fakeLockd struct {
	dir  string
	ttl  time.Duration
	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
}

func (f *fakeLockd) write(role string, until clock.Time, sup string) error {
	var deadline clock.Time
	if until != 0 {
		deadline = until.Add(-time.Second)
	}
	if err := state.Write(f.dir, state.LockdFile, state.Lockd{Role: role, ValidUntil: until, EtcdOK: true, Updated: clock.Now()}); err != nil {
		return err
	}
	return state.Write(f.dir, state.SuperviseFile, state.Supervise{State: sup, Deadline: deadline, Updated: clock.Now()})
}

// lead renews until stopRenewing.
func (f *fakeLockd) lead(t *testing.T) {
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		for {
			if err := f.write("leader", clock.Now().Add(f.ttl), state.Running); err != nil {
				t.Errorf("write state files: %v", err)
				return
			}
			select {
			case <-f.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(f.stopRenewing)
}

func (f *fakeLockd) stopRenewing() {
	if f.stop != nil {
		close(f.stop)
		<-f.done
		f.stop = nil
	}
}

func TestIntegrationHAProxy(t *testing.T) {
	t.Parallel()
	haproxyBin := testcluster.HAProxyBinary(t)
	pgtest.RequireBinary(t, "/usr/bin/psql", "psql (postgresql-client)")
	e := etcdtest.Start(t)
	a := startPrimary(t)
	b := a.startReplica(t)
	c, raw := etcdClients(t, e, "haproxy")
	put(t, raw, c.Key("leader"), "a")
	dirA, dirB := t.TempDir(), t.TempDir()
	lockdA := &fakeLockd{dir: dirA, ttl: 3 * time.Second}
	lockdA.lead(t)
	lockdB := &fakeLockd{dir: dirB, ttl: 3 * time.Second}
	if err := lockdB.write("replica", 0, state.Running); err != nil {
		t.Fatal(err)
	}
	urlA := serve(t, newNodeService(t, "a", "haproxy", a, c, dirA))
	urlB := serve(t, newNodeService(t, "b", "haproxy", b, c, dirB))
	hcPort := func(u string) int {
		_, p, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
		n, _ := strconv.Atoi(p)
		return n
	}
	rw, ro, stats := pgtest.FreePort(t), pgtest.FreePort(t), pgtest.FreePort(t)
	cfg := testcluster.RewriteHAProxyConfig(t, exampleConfig, map[string]int{"5000": rw, "5001": ro, "7000": stats},
		[]testcluster.HAProxyServer{{Name: "node1", PGPort: a.Port, CheckPort: hcPort(urlA)}, {Name: "node2", PGPort: b.Port, CheckPort: hcPort(urlB)}})
	testcluster.StartHAProxy(t, haproxyBin, cfg)
	statsURL := fmt.Sprintf("http://127.0.0.1:%d", stats)
	// HAProxy 2.6 starts every server UP: wait for the checks to sort them.
	testcluster.WaitHAProxyStatus(t, statsURL, 10*time.Second, map[string]string{
		"primary/node1": "UP", "primary/node2": "DOWN", "replicas/node1": "DOWN", "replicas/node2": "UP"})

	// psql through :5000 reaches the primary, :5001 the replica.
	out, err := exec.Command("/usr/bin/psql", "-h", "127.0.0.1", "-p", strconv.Itoa(rw), "-U", "postgres",
		"-d", "postgres", "-Atc", "SELECT inet_server_port() || ' ' || pg_is_in_recovery()").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("%d false", a.Port) {
		t.Fatalf("psql through :5000: %q %v; want the primary on port %d", out, err, a.Port)
	}
	if l := probe(ro); l.err != nil || l.port != b.Port || !l.inRecovery {
		t.Fatalf("through :5001: %+v; want the replica on port %d", l, b.Port)
	}

	// Clients connect through :5000 every 20 ms for the whole failover.
	var mu sync.Mutex
	var landings []landing
	stopClients := make(chan struct{})
	clientsDone := make(chan struct{})
	go func() {
		defer close(clientsDone)
		for {
			l := probe(rw)
			mu.Lock()
			landings = append(landings, l)
			mu.Unlock()
			select {
			case <-stopClients:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer func() {
		select {
		case <-stopClients:
		default:
			close(stopClients)
		}
		<-clientsDone
	}()
	time.Sleep(300 * time.Millisecond)

	// pg-lockd on a loses etcd: its validity is no longer renewed. 1 s
	// before pg-supervise's fence deadline (validity − 1 s), /primary turns
	// 503; at the deadline pg-supervise fences. PostgreSQL is left running
	// for a moment after the fence, the worst case for the load balancer.
	lockdA.stopRenewing()
	last, err := state.ReadLockd(dirA)
	if err != nil {
		t.Fatal(err)
	}
	wall := func(c clock.Time) time.Time { return time.Now().Add(c.Sub(clock.Now())) }
	time.Sleep(time.Until(wall(last.ValidUntil.Add(-time.Second))))
	fenceAt := time.Now()
	if err := state.Write(dirA, state.SuperviseFile, state.Supervise{State: state.Fenced, Updated: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	t.Logf("a fenced at %s", fenceAt.Format("15:04:05.000"))

	// The lease has run out: b takes the leader key and promotes.
	time.Sleep(time.Until(wall(last.ValidUntil)) + 100*time.Millisecond)
	a.Kill()
	put(t, raw, c.Key("leader"), "b")
	lockdB.lead(t)
	b.promote()
	promotedAt := time.Now()
	t.Logf("b promoted at %s", promotedAt.Format("15:04:05.000"))

	var firstOnB time.Time
	waitFor(t, 5*time.Second, "a connection through :5000 to reach b", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range landings {
			if l.err == nil && l.port == b.Port {
				firstOnB = l.at
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	close(stopClients)
	<-clientsDone

	took := firstOnB.Sub(promotedAt)
	t.Logf("first connection through :5000 on the new primary %v after its promotion", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("the new primary was reached %v after promotion, want within 3 s", took)
	}
	var ok, failed int
	for _, l := range landings {
		if l.err != nil {
			failed++
			continue
		}
		ok++
		if l.inRecovery {
			t.Errorf("%s: :5000 reached a server in recovery (port %d)", l.at.Format("15:04:05.000"), l.port)
		}
		if l.port == a.Port && !l.at.Before(fenceAt) {
			t.Errorf("%s: :5000 reached the fenced primary a, fenced at %s", l.at.Format("15:04:05.000"), fenceAt.Format("15:04:05.000"))
		}
	}
	t.Logf("%d connections through :5000 succeeded, %d failed during the failover", ok, failed)
	testcluster.WaitHAProxyStatus(t, statsURL, 5*time.Second, map[string]string{"primary/node1": "DOWN", "primary/node2": "UP"})
	out, err = exec.Command("/usr/bin/psql", "-h", "127.0.0.1", "-p", strconv.Itoa(rw), "-U", "postgres",
		"-d", "postgres", "-Atc", "SELECT inet_server_port() || ' ' || pg_is_in_recovery()").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("%d false", b.Port) {
		t.Errorf("psql through :5000 after the failover: %q %v; want the new primary on port %d", out, err, b.Port)
	}
}
