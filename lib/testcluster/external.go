package testcluster

import (
	"testing"

	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

// ExternalNode is a node that something other than the harness runs (for
// example systemd in a container): its member name and its ports on
// 127.0.0.1.
type ExternalNode struct {
	Name            string
	PGPort, APIPort int
}

// Attach returns a Cluster for nodes that something else runs, with the
// superuser password of their YAML, so that the Workload, the Holds, the
// checks and the queries (WaitPrimary, WaitReplicasStreaming, Leader, …)
// work on them. It starts and kills nothing: the node methods that manage
// processes (Start, Signal, Stop, Logs, …) must not be used on its nodes;
// the streaming checks take every node to be running.
// The etcd client is closed in t's Cleanup.
func Attach(t testing.TB, scope string, etcd []*etcdtest.Etcd, superuserPassword string, nodes []ExternalNode) *Cluster {
	t.Helper()
	c := &Cluster{
		EtcdMembers: etcd,
		Scope:       scope,
		Options:     Options{}.withDefaults(),
		t:           t,
		secrets:     secrets{superuser: superuserPassword},
	}
	if len(etcd) > 0 {
		c.Etcd = etcd[0]
	}
	for i, e := range nodes {
		c.Nodes = append(c.Nodes, &Node{Name: e.Name, Index: i, PGPort: e.PGPort, APIPort: e.APIPort, c: c, procs: map[Proc]*process{}, external: true})
	}
	t.Cleanup(func() {
		c.etcdMu.Lock()
		if c.etcdCli != nil {
			c.etcdCli.Close()
			c.etcdCli = nil
		}
		c.etcdMu.Unlock()
	})
	return c
}
