package testcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// Cluster is a running pg-ha cluster: its etcd (one member unless
// Options.EtcdMembers says more) and its nodes.
type Cluster struct {
	// Etcd is the cluster's etcd; tests stop, restart and pause it. With
	// Options.EtcdMembers > 1 it is the first member.
	Etcd *etcdtest.Etcd
	// EtcdMembers are all etcd members, Etcd first.
	EtcdMembers []*etcdtest.Etcd
	// Nodes are node1…nodeN in order.
	Nodes []*Node
	// Scope is the cluster's scope, unique per Cluster.
	Scope string
	// Options are the options Start used, defaults filled in.
	Options Options
	// Dir holds every node's directory.
	Dir string

	t       testing.TB
	bin     string
	secrets secrets

	etcdMu  sync.Mutex
	etcdCli *clientv3.Client

	proxyMu sync.Mutex
	proxies []*Proxy // every node's, closed after the nodes are killed

	closeOnce sync.Once
}

// Start starts etcd and o.Nodes nodes (all at once, so they race for the
// initialize key, unless o.Node1First), then waits up to o.StartTimeout
// (default 60s) until exactly one node is a primary holding the leader key
// and every other node is a streaming replica of it (or of the member its
// replicatefrom tag names; one tagged nostream only needs to be in
// recovery). A standby cluster (Options.IsStandbyCluster) has no
// primary: Start waits for a standby leader instead (see StandbyLeader),
// the others streaming from it. It fails t if a node cannot start, a daemon
// exits, or the wait times out. Everything is
// killed and removed in t's Cleanup, where the logs are written to the
// test log if t failed.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	SkipUnlessAvailable(t)
	o = o.withDefaults()
	if o.Patroni {
		skipUnlessPatroni(t)
		if o.FIFO || o.Healthd || o.WALFilesystem > 0 {
			t.Fatal("testcluster: Options.Patroni cannot be combined with FIFO, Healthd or WALFilesystem")
		}
	}
	bin := Binaries(t)
	var members []*etcdtest.Etcd
	if o.EtcdMembers > 1 {
		members = etcdtest.StartCluster(t, o.EtcdMembers)
	} else {
		members = []*etcdtest.Etcd{etcdtest.Start(t)}
	}
	base, err := os.MkdirTemp(shortTempDir(), "pgha-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{
		Etcd:        members[0],
		EtcdMembers: members,
		Scope:       "pgha-" + randomHex(4),
		Options:     o,
		Dir:         base,
		t:           t,
		bin:         bin,
		secrets:     newSecrets(),
	}
	if o.SecretsOf != nil {
		c.secrets = o.SecretsOf.secrets
	}
	t.Cleanup(c.cleanup)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(2 * o.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	hosts := etcdHosts(c.etcdEndpoints())
	for i := range o.Nodes {
		name := fmt.Sprintf("%s%d", o.NamePrefix, i+1)
		dir := filepath.Join(base, name)
		n := &Node{
			Name:       name,
			Index:      i,
			PGPort:     ports[2*i],
			APIPort:    ports[2*i+1],
			Dir:        dir,
			DataDir:    filepath.Join(dir, "data"),
			RuntimeDir: filepath.Join(dir, "run"),
			ConfigPath: filepath.Join(dir, name+".yml"),
			c:          c,
			procs:      map[Proc]*process{},
			patroni:    o.Patroni,
		}
		if err := ensureOwned(dir); err != nil {
			t.Fatal(err)
		}
		if err := ensureOwned(n.RuntimeDir); err != nil {
			t.Fatal(err)
		}
		if o.FIFO {
			n.FIFOPath = filepath.Join(dir, "role.fifo")
			if err := mkfifoOwned(n.FIFOPath); err != nil {
				t.Fatal(err)
			}
		}
		nodeHosts := hosts
		if o.EtcdProxy {
			if nodeHosts, err = c.startProxies(n, hosts); err != nil {
				t.Fatal(err)
			}
		}
		cfg, err := nodeConfig(c, n, nodeHosts)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeOwned(n.ConfigPath, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, n)
		if err := n.mountWAL(); err != nil {
			t.Fatal(err)
		}
	}

	began := time.Now()
	rest := c.Nodes
	if o.Node1First {
		first := c.Nodes[0]
		if err := first.start(); err != nil {
			t.Fatalf("start cluster %s: %s: %v", c.Scope, first.Name, err)
		}
		if desc, ok := c.waitFirstLeader(first, began.Add(o.StartTimeout)); !ok {
			t.Fatalf("cluster %s: %s not the leader within %s of its start (Options.Node1First): %s",
				c.Scope, first.Name, o.StartTimeout, desc)
		}
		rest = c.Nodes[1:]
	}
	errs := make([]error, len(rest))
	var wg sync.WaitGroup
	for i, n := range rest {
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, rest[i].Name+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		t.Fatalf("start cluster %s: %s", c.Scope, strings.Join(failed, "; "))
	}
	if desc, ok := c.waitReady(began.Add(o.StartTimeout)); !ok {
		t.Fatalf("cluster %s not ready within %s: %s", c.Scope, o.StartTimeout, desc)
	}
	t.Logf("cluster %s ready in %s (%s)", c.Scope, time.Since(began).Round(time.Millisecond), c.describe())
	return c
}

// waitFirstLeader waits until deadline for n, started alone, to hold the
// leader key and commit a write (in a standby cluster: to be its standby
// leader). It gives up early when one of n's daemons
// exits, and says what it saw last otherwise.
func (c *Cluster) waitFirstLeader(n *Node, deadline time.Time) (string, bool) {
	for {
		for _, p := range daemons {
			if e := n.Exited(p); e != "" {
				return fmt.Sprintf("%s %s exited: %s", n.Name, p, e), false
			}
		}
		p, err := c.leading(context.Background())
		if err == nil && p == n {
			return "", true
		}
		desc := c.leaderWord() + " " + nodeName(p)
		if err != nil {
			desc = err.Error()
		}
		if time.Now().After(deadline) {
			return desc, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeName(n *Node) string {
	if n == nil {
		return "(none)"
	}
	return n.Name
}

// etcdHosts turns client URLs into the host:port list of etcd3.hosts.
func etcdHosts(endpoints []string) []string {
	out := make([]string, 0, len(endpoints))
	for _, e := range endpoints {
		e = strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://")
		out = append(out, strings.TrimSuffix(e, "/"))
	}
	return out
}

// startProxies starts n's proxies, one per etcd host, and returns their
// addresses for n's etcd3.hosts.
func (c *Cluster) startProxies(n *Node, hosts []string) ([]string, error) {
	var addrs []string
	for _, h := range hosts {
		p, err := StartProxy(h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		c.proxyMu.Lock()
		c.proxies = append(c.proxies, p)
		c.proxyMu.Unlock()
		n.proxies = append(n.proxies, p)
		addrs = append(addrs, p.Addr())
	}
	return addrs, nil
}

// Close kills every node process, stops etcd and removes the nodes'
// directories now rather than in the test's Cleanup (which then does
// nothing more). After a failed test it logs every node's logs first.
func (c *Cluster) Close() {
	c.cleanup()
	for _, m := range c.EtcdMembers {
		m.Stop()
	}
}

// etcdEndpoints returns every etcd member's client URL.
func (c *Cluster) etcdEndpoints() []string {
	var out []string
	for _, m := range c.EtcdMembers {
		out = append(out, m.Endpoints()...)
	}
	return out
}

// cleanup kills every node process and removes the directories; after a
// failed test it logs every node's logs first. Only the first call acts.
func (c *Cluster) cleanup() { c.closeOnce.Do(c.doCleanup) }

func (c *Cluster) doCleanup() {
	if c.t.Failed() {
		c.t.Logf("node logs of cluster %s:\n%s", c.Scope, c.Logs())
	}
	began := time.Now()
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(n.KillAll)
	}
	wg.Wait()
	killUnder(c.Dir, 10*time.Second)
	for _, n := range c.Nodes {
		n.unmountWAL()
		// Servers killed by the test leave their shared memory segments.
		_, _ = pg.RemoveSegment(n.DataDir)
	}
	if d := time.Since(began); d > 3*time.Second {
		c.t.Logf("killing cluster %s took %s; left: %v", c.Scope, d.Round(time.Millisecond), pidsUnder(c.Dir))
	}
	c.proxyMu.Lock()
	for _, p := range c.proxies {
		p.Close()
	}
	c.proxies = nil
	c.proxyMu.Unlock()
	c.etcdMu.Lock()
	if c.etcdCli != nil {
		c.etcdCli.Close()
		c.etcdCli = nil
	}
	c.etcdMu.Unlock()
	if os.Getenv("PGHA_TEST_KEEP") == "1" {
		c.t.Logf("kept %s (PGHA_TEST_KEEP=1)", c.Dir)
		return
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Logf("remove %s: %v", c.Dir, err)
	}
}

// Logs returns every node's Logs.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		b.WriteString(n.Logs())
	}
	return b.String()
}

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Key returns the etcd key /service/<scope>/<name>.
func (c *Cluster) Key(name string) string { return "/service/" + c.Scope + "/" + name }

func (c *Cluster) etcd() (*clientv3.Client, error) {
	c.etcdMu.Lock()
	defer c.etcdMu.Unlock()
	if c.etcdCli != nil {
		return c.etcdCli, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.etcdEndpoints(),
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		// gRPC's reconnect backoff grows to 120s by default; tests restart
		// etcd and must see it again at once.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	c.etcdCli = cli
	return cli, nil
}

// dropEtcd closes cli after a failed request, so that the next request
// dials afresh instead of waiting out a reconnect backoff.
func (c *Cluster) dropEtcd(cli *clientv3.Client) {
	c.etcdMu.Lock()
	if c.etcdCli == cli {
		c.etcdCli = nil
	}
	c.etcdMu.Unlock()
	cli.Close()
}

// Get reads one etcd key; a missing key is "" with a nil error. It blocks
// for at most 2s or until ctx ends.
func (c *Cluster) Get(ctx context.Context, key string) (string, error) {
	cli, err := c.etcd()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := cli.Get(clientv3.WithRequireLeader(ctx), key)
	if err != nil {
		c.dropEtcd(cli)
		return "", fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// Leader returns the value of the leader key (/service/<scope>/leader): the
// leader's member name, or "" when there is none. It blocks for at most 2s.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	return c.Get(ctx, c.Key("leader"))
}

// Members returns the decoded JSON of every members/<name> key, by name.
// It blocks for at most 2s.
func (c *Cluster) Members(ctx context.Context) (map[string]map[string]any, error) {
	cli, err := c.etcd()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	prefix := c.Key("members/")
	resp, err := cli.Get(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix())
	if err != nil {
		c.dropEtcd(cli)
		return nil, fmt.Errorf("etcd get %s*: %w", prefix, err)
	}
	out := map[string]map[string]any{}
	for _, kv := range resp.Kvs {
		var m map[string]any
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("member key %s: %w (value %q)", kv.Key, err, kv.Value)
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = m
	}
	return out, nil
}

// Primaries returns the nodes whose PostgreSQL answers
// pg_is_in_recovery() = false right now; each node is asked at once, with
// a 1s timeout. Nodes that do not answer are not primaries.
func (c *Cluster) Primaries(ctx context.Context) []*Node {
	res := make([]bool, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			res[i], _ = n.IsPrimary(ctx)
		})
	}
	wg.Wait()
	var out []*Node
	for i, ok := range res {
		if ok {
			out = append(out, c.Nodes[i])
		}
	}
	return out
}

// WaitPrimary waits up to timeout for a node, not one of exclude, that
// holds the leader key, is not in recovery and commits a write, and
// returns it. It fails t with the cluster's state on timeout.
func (c *Cluster) WaitPrimary(t testing.TB, timeout time.Duration, exclude ...*Node) *Node {
	t.Helper()
	n, desc := c.waitPrimary(timeout, exclude...)
	if n == nil {
		t.Fatalf("no primary within %s: %s", timeout, desc)
	}
	return n
}

func (c *Cluster) waitPrimary(timeout time.Duration, exclude ...*Node) (*Node, string) {
	deadline := time.Now().Add(timeout)
	desc := ""
	for {
		n, err := c.Primary(context.Background(), exclude...)
		if err == nil {
			return n, ""
		}
		desc = err.Error()
		if time.Now().After(deadline) {
			return nil, desc
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Primary returns the node named by the leader key if it is not one of
// exclude and commits a write right now; otherwise an error says why not.
// It blocks for at most about 4s or until ctx ends.
func (c *Cluster) Primary(ctx context.Context, exclude ...*Node) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	name, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("no leader key")
	}
	n := c.Node(name)
	if n == nil {
		return nil, fmt.Errorf("leader key names unknown member %q", name)
	}
	for _, x := range exclude {
		if x == n {
			return nil, fmt.Errorf("leader is still %s (excluded)", name)
		}
	}
	if err := n.acceptsWrite(ctx); err != nil {
		return nil, fmt.Errorf("leader %s does not accept a write: %w", name, err)
	}
	return n, nil
}

// WaitReplicasStreaming waits up to timeout until every running node other
// than the current primary (the leader-key holder, writable) streams from
// it: pg_stat_wal_receiver status 'streaming' with the primary's port. In a
// standby cluster the standby leader stands for the primary. A
// node tagged replicatefrom (Options.Tags) may stream from the member it
// names instead, and one tagged nostream need only be in recovery (see
// expectedUpstreams). It fails t with the cluster's state on timeout. Nodes
// whose pg-supervise is not running are skipped.
func (c *Cluster) WaitReplicasStreaming(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := c.ReplicasStreamingWithin(timeout); err != nil {
		t.Fatal(err)
	}
}

// ReplicasStreamingWithin is WaitReplicasStreaming returning an error that
// describes the cluster's state instead of failing a test.
func (c *Cluster) ReplicasStreamingWithin(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		desc, ok := c.replicasStreaming()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas not streaming within %s: %s", timeout, desc)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) replicasStreaming() (string, bool) {
	p, err := c.upstream(context.Background())
	if err != nil {
		return err.Error(), false
	}
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		names[i] = n.Name
	}
	var problems []string
	for _, n := range c.Nodes {
		if n == p || !n.managed() {
			continue
		}
		var tags map[string]any
		if c.Options.Tags != nil {
			tags = c.Options.Tags(n.Index)
		}
		from, streams := expectedUpstreams(tags, n.Name, p.Name, names)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if !streams {
			primary, err := n.IsPrimary(ctx)
			cancel()
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s: %v", n.Name, err))
			case primary:
				problems = append(problems, fmt.Sprintf("%s (tagged nostream): not in recovery, want a replica", n.Name))
			}
			continue
		}
		r, err := n.WALReceiver(ctx)
		cancel()
		ports := map[int]bool{}
		var want []string
		for _, name := range from {
			u := c.Node(name)
			ports[u.PGPort] = true
			want = append(want, fmt.Sprintf("%s (port %d)", u.Name, u.PGPort))
		}
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", n.Name, err))
		case r.Status != "streaming" || !ports[r.SenderPort]:
			problems = append(problems, fmt.Sprintf("%s: wal receiver %q from port %d, want streaming from %s",
				n.Name, r.Status, r.SenderPort, strings.Join(want, " or ")))
		}
	}
	if len(problems) > 0 {
		return c.leaderWord() + " " + p.Name + "; " + strings.Join(problems, "; "), false
	}
	return "", true
}

// leaderWord names the member that leads, for messages.
func (c *Cluster) leaderWord() string {
	if c.Options.IsStandbyCluster() {
		return "leader"
	}
	return "primary"
}

// leading is who Start waits for to lead: the primary, or in a standby
// cluster the standby leader.
func (c *Cluster) leading(ctx context.Context) (*Node, error) {
	if c.Options.IsStandbyCluster() {
		return c.StandbyLeader(ctx)
	}
	return c.Primary(ctx)
}

// upstream is the member the others stream from: the primary, or in a
// standby cluster its standby leader, or its primary once standby_cluster
// is gone from the configuration.
func (c *Cluster) upstream(ctx context.Context) (*Node, error) {
	if !c.Options.IsStandbyCluster() {
		return c.Primary(ctx)
	}
	sl, err := c.StandbyLeader(ctx)
	if err == nil {
		return sl, nil
	}
	p, perr := c.Primary(ctx)
	if perr == nil {
		return p, nil
	}
	return nil, fmt.Errorf("no standby leader (%v) nor primary (%v)", err, perr)
}

// StandbyLeader returns the standby leader of a standby cluster: the node
// named by the leader key, if it is not one of exclude, its member key says
// role "standby_leader" and state "running", and its PostgreSQL is in
// recovery. Otherwise an error says why not. It blocks for at most about 4s
// or until ctx ends.
func (c *Cluster) StandbyLeader(ctx context.Context, exclude ...*Node) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	name, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("no leader key")
	}
	n := c.Node(name)
	if n == nil {
		return nil, fmt.Errorf("leader key names unknown member %q", name)
	}
	if slices.Contains(exclude, n) {
		return nil, fmt.Errorf("leader is still %s (excluded)", name)
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	if m := ms[name]; m["role"] != "standby_leader" || m["state"] != "running" {
		return nil, fmt.Errorf("leader %s's member key has role %v, state %v; want standby_leader, running", name, m["role"], m["state"])
	}
	primary, err := n.IsPrimary(ctx)
	switch {
	case err != nil:
		return nil, fmt.Errorf("leader %s: %w", name, err)
	case primary:
		return nil, fmt.Errorf("leader %s is not in recovery, want a standby leader", name)
	}
	return n, nil
}

// WaitStandbyLeader waits up to timeout for a standby leader not one of
// exclude (see StandbyLeader) and returns it. It fails t with what it saw
// last on timeout.
func (c *Cluster) WaitStandbyLeader(t testing.TB, timeout time.Duration, exclude ...*Node) *Node {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := c.StandbyLeader(context.Background(), exclude...)
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no standby leader within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectedUpstreams says whom replica self, with tags (Options.Tags), may
// stream from while primary leads a cluster of members: nothing for a
// member tagged nostream (streams false: it replays WAL from an archive
// and need only be in recovery); otherwise the primary and, when its
// replicatefrom tag names another member of the cluster (neither itself
// nor the primary), that member too, because it streams from the primary
// whenever that member does not run. It is pure.
func expectedUpstreams(tags map[string]any, self, primary string, members []string) (from []string, streams bool) {
	if config.TagBool(tags["nostream"]) {
		return nil, false
	}
	from = []string{primary}
	if rf, ok := tags["replicatefrom"].(string); ok && rf != self && rf != primary && slices.Contains(members, rf) {
		from = append(from, rf)
	}
	return from, true
}

// waitReady waits until deadline for one primary holding the leader key and
// every other node streaming from it; in a standby cluster for a standby
// leader and no primary. It gives up early when a daemon exits.
func (c *Cluster) waitReady(deadline time.Time) (string, bool) {
	desc := ""
	for {
		for _, n := range c.Nodes {
			for _, p := range daemons {
				if e := n.Exited(p); e != "" {
					return fmt.Sprintf("%s %s exited: %s", n.Name, p, e), false
				}
			}
		}
		d, ok := c.replicasStreaming()
		if ok {
			ps := c.Primaries(context.Background())
			want := 1
			if c.Options.IsStandbyCluster() {
				want = 0
			}
			if len(ps) == want {
				return "", true
			}
			d = fmt.Sprintf("%d primaries: %s", len(ps), names(ps))
		}
		desc = d
		if time.Now().After(deadline) {
			return desc, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitReplicasCaughtUp waits up to timeout until every running replica has
// replayed the primary's WAL up to the primary's position when the call
// began. It fails t on timeout.
func (c *Cluster) WaitReplicasCaughtUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	p := c.WaitPrimary(t, timeout)
	var target string
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text", nil, &target)
	cancel()
	if err != nil {
		t.Fatalf("primary %s position: %v", p.Name, err)
	}
	deadline := time.Now().Add(timeout)
	for _, n := range c.Nodes {
		if n == p || !n.managed() {
			continue
		}
		for {
			var done bool
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := n.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", []any{target}, &done)
			cancel()
			if err == nil && done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not replay up to %s of %s within %s (last error: %v)", n.Name, target, p.Name, timeout, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// describe is a one-line summary of leader and roles, for logs.
func (c *Cluster) describe() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	leader, err := c.Leader(ctx)
	if err != nil {
		leader = "(" + err.Error() + ")"
	}
	return fmt.Sprintf("leader %s, primaries %s", leader, names(c.Primaries(ctx)))
}

func names(ns []*Node) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	sort.Strings(s)
	return "[" + strings.Join(s, " ") + "]"
}
