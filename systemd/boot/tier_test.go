// Package boot is pg-ha's real-systemd test tier: it boots a Debian
// container under systemd-nspawn, installs pg-ha the way README.md's
// "Install and enable" says, runs three nodes as pg-ha@node1.target …
// pg-ha@node3.target, and injects faults through systemd while an
// application writes through the example HAProxy configuration.
package boot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// requirements skips the tier (fails it with PGHA_TEST_DISALLOW_SKIP=1)
// unless the host can build and boot the container.
func requirements(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "must run as root (systemd-nspawn)")
	}
	for _, p := range []string{"mmdebstrap", "systemd-nspawn", "nsenter", "systemctl", "make", "go"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p+" not found (apt-get install mmdebstrap systemd-container)")
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv(testcluster.DisallowSkipEnv) == "1" {
		t.Fatalf("systemd tier requirements missing (%s=1): %s", testcluster.DisallowSkipEnv, strings.Join(missing, "; "))
	}
	t.Skipf("systemd tier requirements missing: %s (set %s=1 to fail instead)", strings.Join(missing, "; "), testcluster.DisallowSkipEnv)
}

// node is one pg-ha instance in the container.
type node struct {
	name            string
	pgPort, apiPort int
	dataDir         string
}

func (n node) target() string              { return "pg-ha@" + n.name + ".target" }
func (n node) unit(prog string) string     { return "pg-ha-" + prog + "@" + n.name + ".service" }
func (n node) config() string              { return "/etc/pg-ha/" + n.name + ".yml" }
func (n node) runtimeFile(f string) string { return "/run/pg-ha/" + n.name + "/" + f }

// tier is the booted container with its cluster.
type tier struct {
	ct        *container
	src       string // the module's root on the host (/src inside)
	etcd      *etcdtest.Etcd
	nodes     []node
	c         *testcluster.Cluster
	superuser string
	hostYAML  string // node1's YAML on the host, for pg-failover
	rwPort    int    // HAProxy's read-write port
	statsURL  string
	ttl       time.Duration
	loopWait  time.Duration
}

func (tr *tier) node(name string) node {
	for _, n := range tr.nodes {
		if n.name == name {
			return n
		}
	}
	panic("no node " + name)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// TestSystemd is the whole tier: one container, one cluster, the
// scenarios in order, each leaving the cluster healthy for the next.
func TestSystemd(t *testing.T) {
	requirements(t)
	testcluster.SkipUnlessAvailable(t)
	haproxy := testcluster.HAProxyBinary(t)
	began := time.Now()
	root := rootfs(t)
	tr := &tier{src: moduleRoot(t), superuser: "su-" + randomHex(8)}

	// README: `make && sudo make install`. The programs are built on the
	// host (the container has no Go toolchain) into the module's bin/, and
	// the container runs the top-level `make install` in the module, bound
	// read-only at /src: install needs only bin/ and systemd/.
	if out, err := exec.Command("make", "-C", tr.src, "build").CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	tr.etcd = etcdtest.Start(t)
	tr.ct = boot(t, root, "--bind-ro="+tr.src+":/src")
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("node%d", i)
		tr.nodes = append(tr.nodes, node{name: name, pgPort: testcluster.FreePort(t), apiPort: testcluster.FreePort(t),
			dataDir: "/var/lib/postgresql/15/" + name})
	}
	var ext []testcluster.ExternalNode
	for _, n := range tr.nodes {
		ext = append(ext, testcluster.ExternalNode{Name: n.name, PGPort: n.pgPort, APIPort: n.apiPort})
	}
	tr.c = testcluster.Attach(t, "pg-ha", []*etcdtest.Etcd{tr.etcd}, tr.superuser, ext)
	tr.install(t)

	// HAProxy on the host, examples/haproxy.cfg pointed at the nodes.
	rw, ro, stats := testcluster.FreePort(t), testcluster.FreePort(t), testcluster.FreePort(t)
	var servers []testcluster.HAProxyServer
	for _, n := range tr.nodes {
		servers = append(servers, testcluster.HAProxyServer{Name: n.name, PGPort: n.pgPort, CheckPort: n.apiPort})
	}
	cfg := testcluster.RewriteHAProxyConfig(t, filepath.Join(tr.src, "examples", "haproxy.cfg"),
		map[string]int{"5000": rw, "5001": ro, "7000": stats}, servers)
	testcluster.StartHAProxy(t, haproxy, cfg)
	tr.rwPort, tr.statsURL = rw, fmt.Sprintf("http://127.0.0.1:%d", stats)
	t.Logf("set up in %s", time.Since(began).Round(time.Millisecond))

	for _, s := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"enable", tr.testEnable},
		{"switchover", tr.testSwitchover},
		{"kill-lockd", tr.testKillLockd},
	} {
		if !t.Run(s.name, s.f) {
			return
		}
	}
}

// install does README.md's "Install and enable" steps but the last in the
// container, for three instances of the node.
func (tr *tier) install(t *testing.T) {
	t.Helper()
	ct := tr.ct
	ct.sh(t, "cd /src && make install")
	example := []byte(ct.must(t, "cat", "/etc/pg-ha/example.yml"))
	var hosts []string
	for _, e := range tr.etcd.Endpoints() {
		hosts = append(hosts, strings.TrimPrefix(e, "http://"))
	}
	for _, n := range tr.nodes {
		ct.must(t, "install", "-m", "0640", "-g", "postgres", "/etc/pg-ha/example.yml", n.config())
		data := nodeYAML(t, example, n, hosts, tr.superuser)
		ct.writeFile(t, n.config(), data)
		if n.name == "node1" {
			tr.hostYAML = filepath.Join(t.TempDir(), "node1.yml")
			if err := os.WriteFile(tr.hostYAML, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// README "Health API port": the socket unit's port follows
		// restapi.listen through a drop-in (systemctl edit).
		dropin := "/etc/systemd/system/pg-ha-healthd@" + n.name + ".socket.d"
		ct.must(t, "mkdir", "-p", dropin)
		ct.writeFile(t, dropin+"/override.conf",
			[]byte(fmt.Sprintf("[Socket]\nListenStream=\nListenStream=127.0.0.1:%d\n", n.apiPort)))
	}
	if got := ct.sh(t, "stat -c '%U:%G %a' "+tr.nodes[0].config()); strings.TrimSpace(got) != "root:postgres 640" {
		t.Fatalf("%s is %s, want root:postgres 640", tr.nodes[0].config(), got)
	}
	ct.must(t, "systemctl", "daemon-reload")
	var cfg struct {
		Bootstrap struct {
			DCS struct {
				TTL      float64 `yaml:"ttl"`
				LoopWait float64 `yaml:"loop_wait"`
			} `yaml:"dcs"`
		} `yaml:"bootstrap"`
	}
	if err := yaml.Unmarshal(example, &cfg); err != nil {
		t.Fatal(err)
	}
	tr.ttl = time.Duration(cfg.Bootstrap.DCS.TTL * float64(time.Second))
	tr.loopWait = time.Duration(cfg.Bootstrap.DCS.LoopWait * float64(time.Second))
}

// nodeYAML is the example configuration with one node's settings, what an
// operator writes with sudoedit.
func nodeYAML(t *testing.T, example []byte, n node, etcdHosts []string, superuser string) []byte {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(example, &m); err != nil {
		t.Fatal(err)
	}
	section := func(parent map[string]any, key string) map[string]any {
		s, ok := parent[key].(map[string]any)
		if !ok {
			t.Fatalf("example.yml has no %s section", key)
		}
		return s
	}
	m["name"] = n.name
	api := section(m, "restapi")
	api["listen"] = fmt.Sprintf("127.0.0.1:%d", n.apiPort)
	api["connect_address"] = fmt.Sprintf("127.0.0.1:%d", n.apiPort)
	section(m, "etcd3")["hosts"] = etcdHosts
	section(m, "bootstrap")["pg_hba"] = []string{
		"local all all peer",
		"host replication replicator 127.0.0.1/32 scram-sha-256",
		"host all all 127.0.0.1/32 scram-sha-256",
	}
	pg := section(m, "postgresql")
	pg["listen"] = fmt.Sprintf("127.0.0.1:%d", n.pgPort)
	pg["connect_address"] = fmt.Sprintf("127.0.0.1:%d", n.pgPort)
	pg["data_dir"] = n.dataDir
	pg["pgpass"] = n.dataDir + ".pgpass"
	auth := section(pg, "authentication")
	section(auth, "superuser")["password"] = superuser
	section(auth, "replication")["password"] = "rep-" + superuser
	section(auth, "rewind")["password"] = "rew-" + superuser
	// The data lives in the container's tmpfs overlay.
	section(pg, "parameters")["fsync"] = "off"
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// haproxyDSN connects through HAProxy's read-write port.
func (tr *tier) haproxyDSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres sslmode=disable connect_timeout=2 application_name=systemd-tier",
		tr.rwPort, tr.superuser)
}

// waitHealthy waits until there is one primary, every other node streams
// from it, and HAProxy routes :5000 to the primary alone. It returns the
// primary.
func (tr *tier) waitHealthy(t *testing.T, within time.Duration) *testcluster.Node {
	t.Helper()
	p := tr.c.WaitPrimary(t, within)
	tr.c.WaitReplicasStreaming(t, within)
	want := map[string]string{}
	for _, n := range tr.nodes {
		want["primary/"+n.name] = "DOWN"
	}
	want["primary/"+p.Name] = "UP"
	testcluster.WaitHAProxyStatus(t, tr.statsURL, 15*time.Second, want)
	return p
}

// scenario runs f with the application writing through HAProxy, then
// checks that no two nodes acknowledged writes at once and that the final
// primary has every acknowledged write (lossless) or loses no more than
// asynchronous replication allows.
func (tr *tier) scenario(t *testing.T, lossless bool, f func(w *testcluster.Workload)) {
	t.Helper()
	p := tr.waitHealthy(t, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := p.Exec(ctx, "DROP TABLE IF EXISTS "+testcluster.WritesTable)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	w := testcluster.StartWorkloadVia(t, tr.c, tr.haproxyDSN())
	w.WaitAck(t, testcluster.MultiWriter, p.Name, time.Now(), 15*time.Second)
	f(w)
	tr.waitHealthy(t, 60*time.Second)
	w.WaitAck(t, testcluster.MultiWriter, "", time.Now(), 15*time.Second)
	h := w.Stop()
	final, _ := testcluster.FinalWrites(t, tr.c)
	if lossless {
		testcluster.AssertLossless(t, h, final)
	} else {
		testcluster.AssertSafe(t, h, final)
	}
}

// failover runs pg-failover with args, on the host (in == nil) or inside
// the container.
func (tr *tier) failover(t *testing.T, inside bool, args ...string) string {
	t.Helper()
	if inside {
		return tr.ct.must(t, append([]string{"pg-failover", "--config", "/etc/pg-ha/node1.yml"}, args...)...)
	}
	cmd := exec.Command(filepath.Join(tr.src, "bin", "pg-failover"), append([]string{"--config", tr.hostYAML}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg-failover %s on the host: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testEnable: `systemctl enable --now` of the three targets forms a
// cluster: one primary, two streaming replicas, every unit active.
func (tr *tier) testEnable(t *testing.T) {
	began := time.Now()
	args := []string{"systemctl", "enable", "--now"}
	for _, n := range tr.nodes {
		args = append(args, n.target())
	}
	tr.ct.must(t, args...)
	p := tr.waitHealthy(t, 60*time.Second)
	t.Logf("cluster formed in %s, primary %s", time.Since(began).Round(time.Millisecond), p.Name)
	for _, n := range tr.nodes {
		for _, u := range []string{n.target(), n.unit("bootstrap"), n.unit("supervise"), n.unit("lockd"), n.unit("healthd"),
			"pg-ha-role@" + n.name + ".socket", "pg-ha-healthd@" + n.name + ".socket", "pg-ha-rebuild@" + n.name + ".timer"} {
			if st := tr.ct.show(t, u, "ActiveState"); st != "active" {
				t.Errorf("%s is %s, want active", u, st)
			}
		}
		if st := tr.ct.show(t, n.target(), "UnitFileState"); st != "enabled" {
			t.Errorf("%s is %s, want enabled", n.target(), st)
		}
	}
	// The member keys catch up with the replicas' state within seconds.
	var out string
	waitFor(t, 15*time.Second, "pg-failover list showing two streaming replicas", func() bool {
		out = tr.failover(t, false, "list")
		return strings.Count(out, " streaming ") == 2
	})
	t.Logf("pg-failover list:\n%s", out)
}

// testSwitchover: pg-failover --to switches over, once from the host and
// once inside the container, with no write lost.
func (tr *tier) testSwitchover(t *testing.T) {
	tr.scenario(t, true, func(w *testcluster.Workload) {
		for _, inside := range []bool{false, true} {
			old := tr.c.WaitPrimary(t, 10*time.Second)
			to := tr.c.Nodes[(old.Index+1)%len(tr.c.Nodes)]
			where := "host"
			if inside {
				where = "container"
			}
			at := w.Mark(fmt.Sprintf("pg-failover --to %s (from the %s)", to.Name, where))
			out := tr.failover(t, inside, "--to", to.Name)
			t.Logf("pg-failover --to %s from the %s in %s: %s", to.Name, where, time.Since(at).Round(time.Millisecond), strings.TrimSpace(out))
			if p := tr.waitHealthy(t, 30*time.Second); p != to {
				t.Fatalf("primary %s after the switchover, want %s", p.Name, to.Name)
			}
			w.WaitAck(t, testcluster.MultiWriter, to.Name, at, 10*time.Second)
		}
	})
}

// testKillLockd: kill -9 of the primary's pg-lockd. systemd restarts it at
// once, it reattaches to its lease, and the same node stays primary: no
// failover, and the application's longest write gap stays within one
// loop_wait and a small margin.
func (tr *tier) testKillLockd(t *testing.T) {
	tr.scenario(t, true, func(w *testcluster.Workload) {
		p := tr.c.WaitPrimary(t, 10*time.Second)
		n := tr.node(p.Name)
		unit := n.unit("lockd")
		pid := tr.ct.mainPID(t, unit)
		restarts := tr.ct.show(t, unit, "NRestarts")
		leaders := watchLeader(t, tr.c)
		killed := w.Mark("kill -9 pg-lockd of " + p.Name)
		tr.ct.must(t, "kill", "-9", fmt.Sprint(pid))
		waitFor(t, 10*time.Second, unit+" restarted", func() bool {
			np := tr.ct.mainPID(t, unit)
			return np != 0 && np != pid && tr.ct.show(t, unit, "ActiveState") == "active"
		})
		t.Logf("%s restarted %s after the kill (NRestarts %s → %s)", unit, time.Since(killed).Round(time.Millisecond),
			restarts, tr.ct.show(t, unit, "NRestarts"))
		// Long enough for a lost lease to show: a failover would need ttl.
		time.Sleep(tr.ttl + 2*time.Second)
		if seen := leaders.stop(); len(seen) != 1 || seen[0] != p.Name {
			t.Errorf("leader key held by %v after the kill, want %s throughout", seen, p.Name)
		}
		limit := tr.loopWait + 500*time.Millisecond
		if g := testcluster.MaxGapSince(w.Snapshot(), testcluster.MultiWriter, killed.Add(-time.Second)); g > limit {
			t.Errorf("longest write gap through HAProxy %s after the kill, want at most %s", g.Round(time.Millisecond), limit)
		} else {
			t.Logf("longest write gap through HAProxy around the kill: %s", g.Round(time.Millisecond))
		}
	})
}
