package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pgstate "github.com/pg-ha/pg-ha/lib/state"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// The HAProxy test: the real haproxy (2.6) runs examples/haproxy.cfg, its
// addresses rewritten to a three-node cluster whose nodes run pg-healthd.
// psql through :5000 reaches the primary. Then the primary's pg-lockd is
// frozen (SIGSTOP): its lease validity runs out, pg-supervise fences the
// primary, and another node is elected. Throughout, a client connects
// through :5000 every 20 ms: no connection may reach a server in recovery
// or the old primary after its fence, and the new primary must be reached
// within 3 s of accepting writes.

const haproxyExample = "../examples/haproxy.cfg"

func haproxyBinary(t testing.TB) string {
	bin := os.Getenv("PGHA_HAPROXY_BIN")
	if bin == "" {
		bin = "/usr/sbin/haproxy"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("PGHA_TEST_DISALLOW_SKIP") == "1" {
			t.Fatalf("haproxy not installed: %v", err)
		}
		t.Skipf("haproxy not installed: %v", err)
	}
	return bin
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// haproxyConfig rewrites the example: listeners on the given loopback
// ports, and "server nodeN" lines pointing at the cluster's node of that
// name (PostgreSQL's port, pg-healthd's port for the check).
func haproxyConfig(t *testing.T, c *testcluster.Cluster, rw, ro, stats int) string {
	t.Helper()
	data, err := os.ReadFile(haproxyExample)
	if err != nil {
		t.Fatal(err)
	}
	binds := map[string]int{"5000": rw, "5001": ro, "7000": stats}
	var out strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "bind":
			_, port, _ := net.SplitHostPort(f[1])
			p, ok := binds[port]
			if !ok {
				t.Fatalf("the example binds %s, which the test does not map", f[1])
			}
			line = fmt.Sprintf("    bind 127.0.0.1:%d", p)
		case len(f) > 2 && f[0] == "server":
			n := c.Node(f[1])
			if n == nil {
				continue
			}
			f[2] = fmt.Sprintf("127.0.0.1:%d", n.PGPort)
			for i := range f {
				if f[i] == "port" && i+1 < len(f) {
					f[i+1] = strconv.Itoa(n.APIPort)
				}
			}
			line = "    " + strings.Join(f, " ")
		}
		out.WriteString(line + "\n")
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runHAProxy(t *testing.T, bin, cfg string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("haproxy log:\n%s", b)
		}
	})
}

var statsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}

// haproxyServers reads the stats CSV: "proxy/server" → UP, DOWN, …
func haproxyServers(statsURL string) (map[string]string, error) {
	resp, err := statsClient.Get(statsURL + "/;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("stats CSV: %v", err)
	}
	col := -1
	for i, h := range rows[0] {
		if strings.TrimPrefix(h, "# ") == "status" {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("no status column in %v", rows[0])
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > col {
			out[row[0]+"/"+row[1]] = strings.Fields(row[col] + " ")[0]
		}
	}
	return out, nil
}

func waitServers(t *testing.T, statsURL string, within time.Duration, want map[string]string) {
	t.Helper()
	var got map[string]string
	var err error
	deadline := time.Now().Add(within)
	for {
		got, err = haproxyServers(statsURL)
		ok := err == nil
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy servers %v (%v) after %s, want %v", got, err, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hop is one connection through HAProxy: which PostgreSQL answered.
type hop struct {
	at         time.Time
	port       int
	inRecovery bool
	err        error
}

// through is n's connection string with HAProxy's port instead of n's.
func through(n *testcluster.Node, port int) string {
	return strings.Replace(n.DSN(), fmt.Sprintf("port=%d ", n.PGPort), fmt.Sprintf("port=%d ", port), 1)
}

func connectThrough(dsn string) hop {
	h := hop{at: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		h.err = err
		return h
	}
	defer conn.Close(context.Background())
	h.err = conn.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&h.port, &h.inRecovery)
	return h
}

func psqlThrough(t *testing.T, dsn string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/psql", "-d", dsn, "-Atc", "SELECT inet_server_port() || ' ' || pg_is_in_recovery()").CombinedOutput()
	if err != nil {
		t.Fatalf("psql through HAProxy: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestHAProxy(t *testing.T) {
	bin := haproxyBinary(t)
	c, w := start(t, testcluster.Options{Healthd: true})
	old := c.WaitPrimary(t, 10*time.Second)
	c.WaitReplicasStreaming(t, 30*time.Second)

	rw, ro, stats := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
	runHAProxy(t, bin, haproxyConfig(t, c, rw, ro, stats))
	statsURL := fmt.Sprintf("http://127.0.0.1:%d", stats)
	// HAProxy 2.6 starts every server UP: wait until the checks sort them.
	want := map[string]string{}
	for _, n := range c.Nodes {
		want["primary/"+n.Name], want["replicas/"+n.Name] = "DOWN", "UP"
	}
	want["primary/"+old.Name], want["replicas/"+old.Name] = "UP", "DOWN"
	waitServers(t, statsURL, 15*time.Second, want)

	if got := psqlThrough(t, through(old, rw)); got != fmt.Sprintf("%d false", old.PGPort) {
		t.Fatalf("psql through :5000 answered %q, want the primary %s (port %d)", got, old.Name, old.PGPort)
	}
	if h := connectThrough(through(old, ro)); h.err != nil || !h.inRecovery || h.port == old.PGPort {
		t.Fatalf("through :5001: %+v, want a replica", h)
	}

	// A client connects through :5000 every 20 ms; another watcher notes
	// when each node first accepts writes.
	var mu sync.Mutex
	var hops []hop
	writable := map[string]time.Time{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			h := connectThrough(through(old, rw))
			mu.Lock()
			hops = append(hops, h)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			for _, n := range c.Nodes {
				if n == old {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				p, err := n.IsPrimary(ctx)
				cancel()
				mu.Lock()
				if _, seen := writable[n.Name]; err == nil && p && !seen {
					writable[n.Name] = time.Now()
				}
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()
	time.Sleep(500 * time.Millisecond)

	w.Mark("SIGSTOP pg-lockd of " + old.Name)
	if err := old.Signal(testcluster.Lockd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			old.Signal(testcluster.Lockd, syscall.SIGCONT)
		}
	}()
	np := c.WaitPrimary(t, c.Options.TTL+20*time.Second, old)
	var fencedAt time.Time
	waitUntil(t, 10*time.Second, old.Name+" fenced", func() bool {
		sup, err := pgstate.ReadSupervise(old.RuntimeDir)
		if err == nil && sup.State == pgstate.Fenced {
			fencedAt = sup.Since
		}
		return !fencedAt.IsZero()
	})
	waitUntil(t, 5*time.Second, "a connection through :5000 on "+np.Name, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hops {
			if h.err == nil && h.port == np.PGPort {
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	halt()
	if err := old.Signal(testcluster.Lockd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true

	promoted := writable[np.Name]
	var firstOnNew time.Time
	var ok, failed int
	for _, h := range hops {
		if h.err != nil {
			failed++
			continue
		}
		ok++
		if h.inRecovery {
			t.Errorf("%s: :5000 reached a server in recovery (port %d)", h.at.Format("15:04:05.000"), h.port)
		}
		if h.port == old.PGPort && !h.at.Before(fencedAt) {
			t.Errorf("%s: :5000 reached %s, fenced at %s", h.at.Format("15:04:05.000"), old.Name, fencedAt.Format("15:04:05.000"))
		}
		if h.port == np.PGPort && firstOnNew.IsZero() {
			firstOnNew = h.at
		}
	}
	t.Logf("%s fenced at %s; %s writable at %s, reached through :5000 at %s (%s later); %d connections succeeded, %d failed",
		old.Name, fencedAt.Format("15:04:05.000"), np.Name, promoted.Format("15:04:05.000"),
		firstOnNew.Format("15:04:05.000"), firstOnNew.Sub(promoted).Round(time.Millisecond), ok, failed)
	if promoted.IsZero() || firstOnNew.Sub(promoted) > 3*time.Second {
		t.Errorf("the new primary %s was reached through :5000 %s after it accepted writes, want within 3 s",
			np.Name, firstOnNew.Sub(promoted).Round(time.Millisecond))
	}
	if got := psqlThrough(t, through(old, rw)); got != fmt.Sprintf("%d false", np.PGPort) {
		t.Errorf("psql through :5000 after the failover answered %q, want %s (port %d)", got, np.Name, np.PGPort)
	}
	finish(t, c, w)
}
