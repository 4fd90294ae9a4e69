// Package boot is pg-ha's real-systemd test tier: it boots a Debian
// container under systemd-nspawn, installs pg-ha the way README.md's
// "Install and enable" says, runs three nodes as pg-ha@node1.target …
// pg-ha@node3.target, and injects faults through systemd while an
// application writes through the example HAProxy configuration.
package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	// Every port of the run: two per node and HAProxy's three,
	// all distinct (each FreePort was free a moment ago, but two calls may
	// return the same one).
	ports := freePorts(t, 9)
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("node%d", i)
		tr.nodes = append(tr.nodes, node{name: name, pgPort: ports[2*i-2], apiPort: ports[2*i-1],
			dataDir: "/var/lib/postgresql/15/" + name})
	}
	var ext []testcluster.ExternalNode
	for _, n := range tr.nodes {
		ext = append(ext, testcluster.ExternalNode{Name: n.name, PGPort: n.pgPort, APIPort: n.apiPort})
	}
	tr.c = testcluster.Attach(t, "pg-ha", []*etcdtest.Etcd{tr.etcd}, tr.superuser, ext)
	tr.install(t)

	// HAProxy on the host, examples/haproxy.cfg pointed at the nodes.
	rw, ro, stats := ports[6], ports[7], ports[8]
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
		{"kill-supervise", tr.testKillSupervise},
		{"stop-target", tr.testStopTarget},
		{"hung-supervise", tr.testHungSupervise},
		{"healthd-restart", tr.testHealthdRestart},
		{"rebuild", tr.testRebuild},
		{"reload", tr.testReload},
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tr.src, "bin", "pg-failover"), append([]string{"--config", tr.hostYAML}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg-failover %s on the host: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitListed waits until `pg-failover list` (the member keys, which catch
// up with the replicas' state within seconds) shows two streaming
// replicas, as a switchover candidate must be, and returns the listing.
func (tr *tier) waitListed(t *testing.T) string {
	t.Helper()
	var out string
	waitFor(t, 15*time.Second, "pg-failover list showing two streaming replicas", func() bool {
		out = tr.failover(t, false, "list")
		return strings.Count(out, " streaming ") == 2
	})
	return out
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
		// The runtime directory (RuntimeDirectory= of every service) and
		// the FIFO the socket unit creates in it belong to postgres; the
		// postmaster runs as postgres.
		got := strings.Fields(tr.ct.sh(t, fmt.Sprintf(`stat -c '%%U:%%G:%%a:%%F' /run/pg-ha/%[1]s /run/pg-ha/%[1]s/role.fifo
			ps -o user= -p "$(head -n1 %[2]s/postmaster.pid)"`, n.name, n.dataDir)))
		want := []string{"postgres:postgres:750:directory", "postgres:postgres:600:fifo", "postgres"}
		if !slices.Equal(got, want) {
			t.Errorf("%s: runtime directory, FIFO, postmaster user: %q, want %q", n.name, got, want)
		}
	}
	t.Logf("pg-failover list:\n%s", tr.waitListed(t))
}

// testSwitchover: pg-failover --to switches over, once from the host and
// once inside the container, with no write lost.
func (tr *tier) testSwitchover(t *testing.T) {
	tr.scenario(t, true, func(w *testcluster.Workload) {
		for _, inside := range []bool{false, true} {
			old := tr.c.WaitPrimary(t, 10*time.Second)
			tr.waitListed(t)
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

// procs returns the PIDs in a unit's control group, as the container
// sees them.
func (tr *tier) procs(t *testing.T, unit string) []string {
	t.Helper()
	cg := tr.ct.show(t, unit, "ControlGroup")
	// The unified hierarchy, or systemd's own under cgroup v1 (as on a
	// host whose cgroups are hybrid).
	return strings.Fields(tr.ct.must(t, "sh", "-c", `for d in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
		if [ -f "$d$1/cgroup.procs" ]; then exec cat "$d$1/cgroup.procs"; fi; done; echo "no cgroup $1" >&2; exit 1`, "sh", cg))
}

// alive returns those of pids that still exist in the container.
func (tr *tier) alive(t *testing.T, pids []string) []string {
	t.Helper()
	out := tr.ct.must(t, append([]string{"sh", "-c", `for p; do [ ! -d /proc/$p ] || echo $p; done`, "sh"}, pids...)...)
	return strings.Fields(out)
}

// journal returns the messages a journalctl match selects since the
// moment since.
func (tr *tier) journal(t *testing.T, since time.Time, match ...string) string {
	t.Helper()
	args := append([]string{"journalctl", "--no-pager", "-q", "-o", "cat",
		fmt.Sprintf("--since=@%.6f", float64(since.UnixMicro())/1e6)}, match...)
	return tr.ct.must(t, args...)
}

// testKillSupervise: kill -9 of the primary's pg-supervise while sessions
// are mid-transaction and mid-statement on it. KillMode=mixed: systemd
// SIGKILLs the whole control group at once, PostgreSQL and every backend,
// so no held session commits after the kill. systemd restarts pg-supervise
// after RestartSec=1; pg-lockd, which kept its lease, either keeps the
// leader key (PostgreSQL comes back as primary after crash recovery) or a
// replica has taken over and the node rejoins as a replica. Either way the
// cluster ends with one primary and two streaming replicas.
func (tr *tier) testKillSupervise(t *testing.T) {
	tr.scenario(t, false, func(w *testcluster.Workload) {
		p := tr.c.WaitPrimary(t, 10*time.Second)
		unit := tr.node(p.Name).unit("supervise")
		pid := tr.ct.mainPID(t, unit)
		holds := w.Hold(t, p, 6*time.Second)
		pids := tr.procs(t, unit)
		killed := w.Mark("kill -9 pg-supervise of " + p.Name)
		tr.ct.must(t, "kill", "-9", fmt.Sprint(pid))
		var left []string
		waitFor(t, 3*time.Second, "every process of "+unit+" gone", func() bool {
			left = tr.alive(t, pids)
			return len(left) == 0
		})
		t.Logf("all %d processes of %s (pg-supervise, postmaster, backends) gone %s after the kill",
			len(pids), unit, time.Since(killed).Round(time.Millisecond))
		testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), killed, "kill -9 of pg-supervise")
		waitFor(t, 10*time.Second, unit+" restarted", func() bool {
			np := tr.ct.mainPID(t, unit)
			return np != 0 && np != pid && tr.ct.show(t, unit, "ActiveState") == "active"
		})
		np := tr.waitHealthy(t, 60*time.Second)
		if np == p {
			t.Logf("%s restarted by systemd %s after the kill; it kept the leader key and is primary again", unit,
				time.Since(killed).Round(time.Millisecond))
		} else {
			t.Logf("%s took over; %s rejoined as a replica", np.Name, p.Name)
		}
	})
}

// testStopTarget: `systemctl stop pg-ha@<primary>.target` hands over to a
// replica within 2 s (pg-lockd stops first and gives the key up after
// pg-supervise's fast shutdown), and `systemctl start` brings the node
// back as a replica without pg_rewind.
func (tr *tier) testStopTarget(t *testing.T) {
	tr.scenario(t, true, func(w *testcluster.Workload) {
		p := tr.c.WaitPrimary(t, 10*time.Second)
		n := tr.node(p.Name)
		stopped := w.Mark("systemctl stop " + n.target())
		done := make(chan error, 1)
		go func() {
			out, err := tr.ct.run(2*time.Minute, nil, "systemctl", "stop", n.target())
			if err != nil {
				err = fmt.Errorf("%w: %s", err, out)
			}
			done <- err
		}()
		var np *testcluster.Node
		waitFor(t, 20*time.Second, "a new primary", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			np, _ = tr.c.Primary(ctx, p)
			return np != nil
		})
		handover := time.Since(stopped)
		if err := <-done; err != nil {
			t.Fatalf("systemctl stop %s: %v", n.target(), err)
		}
		t.Logf("systemctl stop %s: %s primary %s after the stop began; stop returned after %s", n.target(), np.Name,
			handover.Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
		if handover > 2*time.Second {
			t.Errorf("hand-over took %s, want at most 2 s", handover.Round(time.Millisecond))
		}
		for _, u := range []string{n.unit("supervise"), n.unit("lockd"), n.unit("healthd"), n.unit("bootstrap")} {
			if st := tr.ct.show(t, u, "ActiveState"); st != "inactive" {
				t.Errorf("%s is %s after stopping the target, want inactive", u, st)
			}
		}
		if ps := tr.c.Primaries(context.Background()); len(ps) != 1 || ps[0] != np {
			t.Errorf("primaries after the stop: %v, want %s alone", ps, np.Name)
		}

		started := w.Mark("systemctl start " + n.target())
		tr.ct.must(t, "systemctl", "start", n.target())
		tr.waitHealthy(t, 60*time.Second)
		t.Logf("%s streams again %s after systemctl start", n.name, time.Since(started).Round(time.Millisecond))
		// pg-supervise logs every state it enters with the journal field
		// STATE=. An old primary following a new timeline enters
		// "rewinding", where pg_rewind first checks whether the data
		// diverged: after a planned stop it must find nothing to rewind
		// (the replicas had the shutdown checkpoint).
		unit := n.unit("supervise")
		states := tr.states(t, started, unit)
		msgs := tr.journal(t, started, "_SYSTEMD_UNIT="+unit)
		t.Logf("%s's states since the start: %v", unit, states)
		switch {
		case len(states) == 0:
			t.Errorf("no STATE= entry of %s in the journal since the start", unit)
		case strings.Contains(msgs, "rewound with pg_rewind") || strings.Contains(msgs, "pg_rewind failed"):
			t.Errorf("%s was rewound after the planned stop:\n%s", n.name, msgs)
		case slices.Contains(states, "rewinding") && !strings.Contains(msgs, "no rewind required"):
			t.Errorf("%s entered rewinding and did not log that no rewind was required:\n%s", n.name, msgs)
		case slices.Contains(states, "rewinding"):
			t.Logf("pg_rewind's check on %s found no divergence: nothing rewound", n.name)
		}
	})
}

// testHungSupervise: the primary's pg-supervise stopped with SIGSTOP.
// Its watchdog (WatchdogSec=4) fires: systemd kills it and, KillMode=mixed,
// PostgreSQL with every backend, well before the ttl its last lease
// validity could run, and restarts it. Sessions held on the primary never
// commit after the stop.
func (tr *tier) testHungSupervise(t *testing.T) {
	tr.scenario(t, false, func(w *testcluster.Workload) {
		p := tr.c.WaitPrimary(t, 10*time.Second)
		unit := tr.node(p.Name).unit("supervise")
		pid := tr.ct.mainPID(t, unit)
		// Longer than the watchdog takes (WatchdogSec=4, TimeoutAbortSec=2).
		holds := w.Hold(t, p, 8*time.Second)
		pids := tr.procs(t, unit)
		stopped := w.Mark("kill -STOP pg-supervise of " + p.Name)
		tr.ct.must(t, "kill", "-STOP", fmt.Sprint(pid))
		waitFor(t, tr.ttl, "every process of "+unit+" gone within the ttl", func() bool {
			return len(tr.alive(t, pids)) == 0
		})
		gone := time.Since(stopped)
		w.Mark("every process of " + unit + " gone")
		t.Logf("pg-supervise, the postmaster and %d more processes gone %s after SIGSTOP (ttl %s)",
			len(pids)-2, gone.Round(time.Millisecond), tr.ttl)
		waitFor(t, 5*time.Second, "systemd's watchdog message", func() bool {
			return strings.Contains(tr.journal(t, stopped, "-u", unit), "Failed with result 'watchdog'")
		})
		testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), stopped, "SIGSTOP of pg-supervise")
		waitFor(t, 10*time.Second, unit+" restarted", func() bool {
			np := tr.ct.mainPID(t, unit)
			return np != 0 && np != pid && tr.ct.show(t, unit, "ActiveState") == "active"
		})
		np := tr.waitHealthy(t, 60*time.Second)
		t.Logf("primary after the watchdog: %s", np.Name)
	})
}

// states returns the values of the STATE= journal field of a unit's
// entries since the moment since, in order: pg-supervise's states.
func (tr *tier) states(t *testing.T, since time.Time, unit string) []string {
	t.Helper()
	out := tr.ct.must(t, "journalctl", "--no-pager", "-q", "-o", "json", "--output-fields=STATE",
		fmt.Sprintf("--since=@%.6f", float64(since.UnixMicro())/1e6), "_SYSTEMD_UNIT="+unit)
	var states []string
	for _, line := range strings.Split(out, "\n") {
		var e struct {
			State string `json:"STATE"`
		}
		if line == "" || json.Unmarshal([]byte(line), &e) != nil || e.State == "" {
			continue
		}
		states = append(states, e.State)
	}
	return states
}

// routeWatch connects through HAProxy's read-write port every 20 ms and
// samples HAProxy's statistics every 50 ms, remembering every connection
// that reached a server in recovery and every sample with a server other
// than the primary UP in the read-write backend.
type routeWatch struct {
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	bad   []string
	conns int
	stats int
}

func (tr *tier) watchRoutes(t *testing.T, primary string) *routeWatch {
	rw := &routeWatch{done: make(chan struct{})}
	note := func(format string, args ...any) {
		rw.mu.Lock()
		rw.bad = append(rw.bad, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
		rw.mu.Unlock()
	}
	loop := func(every time.Duration, f func()) {
		defer rw.wg.Done()
		for {
			f()
			select {
			case <-rw.done:
				return
			case <-time.After(every):
			}
		}
	}
	rw.wg.Add(2)
	go loop(20*time.Millisecond, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, tr.haproxyDSN())
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		var port int
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&port, &inRecovery); err != nil {
			return
		}
		rw.mu.Lock()
		rw.conns++
		rw.mu.Unlock()
		if inRecovery {
			note(":5000 reached a server in recovery (port %d)", port)
		}
	})
	go loop(50*time.Millisecond, func() {
		st, err := testcluster.HAProxyStatus(tr.statsURL)
		if err != nil {
			return
		}
		rw.mu.Lock()
		rw.stats++
		rw.mu.Unlock()
		for _, n := range tr.nodes {
			if s := st["primary/"+n.name]; n.name != primary && s != "DOWN" {
				note("HAProxy has %s %s in the read-write backend (primary %s)", n.name, s, primary)
			}
		}
	})
	t.Cleanup(func() { rw.stop() })
	return rw
}

// stop ends the watch and returns what went wrong.
func (rw *routeWatch) stop() []string {
	select {
	case <-rw.done:
	default:
		close(rw.done)
	}
	rw.wg.Wait()
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return slices.Clone(rw.bad)
}

// testHealthdRestart: `systemctl restart` of pg-healthd (node2's, then the
// primary's if that is another node) and a stopped pg-healthd started
// again by its socket alone, on the first check HAProxy sends. HAProxy
// never routes the read-write port to a node that is not the primary,
// sampled throughout, and no write is lost.
func (tr *tier) testHealthdRestart(t *testing.T) {
	tr.scenario(t, true, func(w *testcluster.Workload) {
		p := tr.c.WaitPrimary(t, 10*time.Second)
		watch := tr.watchRoutes(t, p.Name)
		restart := func(n node) {
			unit := n.unit("healthd")
			pid := tr.ct.mainPID(t, unit)
			at := w.Mark("systemctl restart " + unit)
			tr.ct.must(t, "systemctl", "restart", unit)
			waitFor(t, 10*time.Second, unit+" running again", func() bool {
				np := tr.ct.mainPID(t, unit)
				return np != 0 && np != pid && tr.ct.show(t, unit, "ActiveState") == "active"
			})
			tr.waitHealthy(t, 15*time.Second)
			t.Logf("systemctl restart %s: HAProxy back to normal %s later", unit, time.Since(at).Round(time.Millisecond))
		}
		restart(tr.node("node2"))
		if p.Name != "node2" {
			restart(tr.node(p.Name))
		}

		// Socket activation: with pg-healthd stopped, systemd keeps
		// listening; HAProxy's next check starts it again.
		var r node
		for _, n := range tr.nodes {
			if n.name != p.Name {
				r = n
			}
		}
		unit, socket := r.unit("healthd"), "pg-ha-healthd@"+r.name+".socket"
		tr.ct.must(t, "systemctl", "stop", unit)
		at := w.Mark("systemctl stop " + unit)
		if st := tr.ct.show(t, socket, "ActiveState"); st != "active" {
			t.Errorf("%s is %s with its service stopped, want active (listening)", socket, st)
		}
		waitFor(t, 10*time.Second, unit+" started by its socket", func() bool {
			return tr.ct.show(t, unit, "ActiveState") == "active"
		})
		if got := tr.journal(t, at, "-u", unit); !strings.Contains(got, "Started") {
			t.Errorf("no start of %s in the journal:\n%s", unit, got)
		}
		t.Logf("%s started by %s %s after it was stopped", unit, socket, time.Since(at).Round(time.Millisecond))
		tr.waitHealthy(t, 15*time.Second)
		time.Sleep(500 * time.Millisecond)
		watch.mu.Lock()
		conns, samples := watch.conns, watch.stats
		watch.mu.Unlock()
		for _, b := range watch.stop() {
			t.Error(b)
		}
		if conns == 0 || samples == 0 {
			t.Errorf("route watch made %d connections through :5000 and read %d statistics samples, want some of each", conns, samples)
		}
		t.Logf("%d connections through :5000 and %d statistics samples, none routed to a non-primary", conns, samples)
	})
}

// testRebuild: the rebuild timer is active and scheduled on every node;
// a replica whose data directory lost its pg_control (pg-supervise
// stopped) is re-cloned by pg-ha-rebuild@ (exit 12, "rebuilt"), the old
// directory kept beside it, and the node streams again once started.
func (tr *tier) testRebuild(t *testing.T) {
	tr.scenario(t, true, func(w *testcluster.Workload) {
		for _, n := range tr.nodes {
			timer := "pg-ha-rebuild@" + n.name + ".timer"
			if st, next := tr.ct.show(t, timer, "ActiveState"), tr.ct.show(t, timer, "NextElapseUSecRealtime"); st != "active" || next == "" || next == "n/a" {
				t.Errorf("%s: %s, next run %q; want active with a next run", timer, st, next)
			} else {
				t.Logf("%s: next run %s", timer, next)
			}
		}
		p := tr.c.WaitPrimary(t, 10*time.Second)
		var r node
		for _, n := range tr.nodes {
			if n.name != p.Name {
				r = n
			}
		}
		sup, rebuild := r.unit("supervise"), r.unit("rebuild")
		w.Mark("break " + r.name + "'s data directory")
		tr.ct.must(t, "systemctl", "stop", sup)
		tr.ct.must(t, "rm", r.dataDir+"/global/pg_control")
		at := w.Mark("systemctl start " + rebuild)
		tr.ct.must(t, "systemctl", "start", rebuild)
		status, result := tr.ct.show(t, rebuild, "ExecMainStatus"), tr.ct.show(t, rebuild, "Result")
		t.Logf("%s: exit status %s, result %s, in %s", rebuild, status, result, time.Since(at).Round(time.Millisecond))
		if status != "12" || result != "success" {
			t.Fatalf("%s: exit status %s, result %s; want 12 (rebuilt), success\n%s", rebuild, status, result,
				tr.journal(t, at, "-u", rebuild))
		}
		tr.ct.must(t, "test", "-f", r.dataDir+"/global/pg_control")
		if old := tr.ct.sh(t, "ls -d "+r.dataDir+".old-*"); strings.TrimSpace(old) == "" {
			t.Errorf("no old data directory kept beside %s", r.dataDir)
		}
		tr.ct.must(t, "systemctl", "start", r.target())
		tr.waitHealthy(t, 60*time.Second)
		t.Logf("%s streams again %s after the rebuild began", r.name, time.Since(at).Round(time.Millisecond))
	})
}

// testReload: a parameter changed in the primary's YAML and `systemctl
// reload pg-ha@<node>.target`, which propagates to pg-supervise and
// pg-lockd (ExecReload: SIGHUP): the new value is in force on new
// sessions, and neither PostgreSQL's postmaster nor either daemon
// restarted.
func (tr *tier) testReload(t *testing.T) {
	tr.scenario(t, true, func(w *testcluster.Workload) {
		p := tr.c.WaitPrimary(t, 10*time.Second)
		n := tr.node(p.Name)
		showWorkMem := func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var v string
			if err := p.QueryRow(ctx, "SHOW work_mem", nil, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		const want = "7MB"
		if got := showWorkMem(); got == want {
			t.Fatalf("work_mem is already %s", got)
		}
		postmaster := func() string { return strings.TrimSpace(tr.ct.must(t, "head", "-n1", n.dataDir+"/postmaster.pid")) }
		pm, sup, lockd := postmaster(), tr.ct.mainPID(t, n.unit("supervise")), tr.ct.mainPID(t, n.unit("lockd"))

		var cfg map[string]any
		if err := yaml.Unmarshal([]byte(tr.ct.must(t, "cat", n.config())), &cfg); err != nil {
			t.Fatal(err)
		}
		cfg["postgresql"].(map[string]any)["parameters"].(map[string]any)["work_mem"] = want
		data, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tr.ct.writeFile(t, n.config(), data)
		at := w.Mark("systemctl reload " + n.target())
		tr.ct.must(t, "systemctl", "reload", n.target())
		waitFor(t, 10*time.Second, "work_mem "+want+" on "+n.name, func() bool { return showWorkMem() == want })
		t.Logf("work_mem %s on %s %s after systemctl reload", want, n.name, time.Since(at).Round(time.Millisecond))
		if got := postmaster(); got != pm {
			t.Errorf("postmaster PID %s after the reload, was %s: PostgreSQL restarted", got, pm)
		}
		for unit, pid := range map[string]int{n.unit("supervise"): sup, n.unit("lockd"): lockd} {
			if got := tr.ct.mainPID(t, unit); got != pid {
				t.Errorf("%s: MainPID %d after the reload, was %d", unit, got, pid)
			}
			if got := tr.journal(t, at, "_SYSTEMD_UNIT="+unit); !strings.Contains(got, "reading the configuration again") {
				t.Errorf("%s did not read its configuration again:\n%s", unit, got)
			}
		}
	})
}
