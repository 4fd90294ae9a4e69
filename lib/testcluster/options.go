package testcluster

import "time"

// Defaults applied to zero Options fields. The timings are pg-ha's defaults
// (lib/config).
const (
	DefaultNodes                = 3
	DefaultTTL                  = 8 * time.Second
	DefaultLoopWait             = 1 * time.Second
	DefaultRetryTimeout         = 3 * time.Second
	DefaultMaximumLagOnFailover = 1 << 20
	DefaultStartTimeout         = 60 * time.Second
)

// Options describes a cluster for Start. The zero value is a 3-node cluster
// with pg-ha's default timings, replication slots and pg_rewind.
type Options struct {
	// Nodes is the number of nodes (default 3).
	Nodes int
	// TTL, LoopWait and RetryTimeout go to bootstrap.dcs as seconds
	// (fractions allowed); defaults 8s, 1s and 3s.
	TTL, LoopWait, RetryTimeout time.Duration
	// MaximumLagOnFailover goes to bootstrap.dcs (default 1048576 bytes).
	MaximumLagOnFailover int64
	// DisableSlots and DisablePgRewind turn off use_slots and use_pg_rewind,
	// which are on by default.
	DisableSlots, DisablePgRewind bool
	// Healthd also runs pg-healthd on every node.
	Healthd bool
	// FIFO wires pg-lockd to pg-supervise through a named pipe
	// (pg-lockd --output F, pg-supervise --input F), so that either may be
	// restarted alone with Node.StartLockd or Node.StartSupervise, as
	// systemd does. Without it the two run joined by a plain pipe, exactly
	// like `pg-lockd --config F | pg-supervise --config F`.
	FIFO bool
	// EtcdProxy puts a Proxy of its own between every node and etcd: the
	// node's etcd3.hosts name its proxy instead of etcd, so that
	// Node.PartitionFromEtcd can cut that node alone off from etcd (its
	// PostgreSQL stays reachable). The harness itself talks to etcd
	// directly.
	EtcdProxy bool
	// EtcdMembers is the number of etcd members (default 1). With more than
	// one, etcd runs as one cluster of that many members
	// (etcdtest.StartCluster) and every node's etcd3.hosts lists them all.
	EtcdMembers int
	// Tags, when set, returns the tags of node i (0-based), such as
	// {"nosync": true} for a member that must never be a synchronous
	// standby. Start and the streaming checks (WaitReplicasStreaming, …)
	// read two of them: a node tagged replicatefrom may stream from the
	// member it names instead of the primary, and one tagged nostream need
	// not stream at all, only be in recovery (see expectedUpstreams).
	Tags func(i int) map[string]any
	// Node1First starts node1 alone, and the other nodes only once node1
	// holds the leader key and commits a write, so that node1 initializes
	// the cluster and is its first leader. StartTimeout covers both steps.
	Node1First bool
	// SyncMode is synchronous_mode in bootstrap.dcs: SyncOn, SyncQuorum or
	// SyncOff; "" leaves the setting out (asynchronous, as Patroni's
	// default).
	SyncMode string
	// SyncStrict sets synchronous_mode_strict: true, so that with no
	// synchronous standby commits wait instead of going on without a copy.
	SyncStrict bool
	// SyncNodeCount, when positive, is synchronous_node_count.
	SyncNodeCount int
	// ExtraParameters are added to postgresql.parameters of every node.
	ExtraParameters map[string]string
	// ExtraRestAPI are added to every node's restapi section
	// (authentication, …), replacing what is there.
	ExtraRestAPI map[string]any
	// ExtraPostgres, when set, returns keys added to node i's postgresql
	// section (callbacks, pre_promote, …), replacing what is there.
	ExtraPostgres func(i int) map[string]any
	// ExtraBootstrap are added to every node's bootstrap section
	// (post_bootstrap, users, …), replacing what is there.
	ExtraBootstrap map[string]any
	// SuperviseArgs are extra flags for every pg-supervise
	// (--callback-timeout, …).
	SuperviseArgs []string
	// ExtraDCS are added to bootstrap.dcs (primary_start_timeout, …),
	// replacing what the fields above put there. With standby_cluster
	// among them the cluster is a standby cluster: Start and the streaming
	// checks then expect a standby leader in place of a primary (see
	// IsStandbyCluster).
	ExtraDCS map[string]any
	// WALFilesystem, when positive, gives every node a tmpfs of that many
	// bytes (Node.WALDir's parent) and the node that initializes the
	// cluster puts its pg_wal there (bootstrap.initdb waldir), so that a
	// test can fill the primary's WAL disk alone. Replicas cloned from it
	// keep pg_wal in their data directory.
	WALFilesystem int64
	// SecretsOf, when set, gives every node that cluster's superuser,
	// replication and rewind passwords instead of new ones: a standby
	// cluster of it clones and streams from it as its replication user, and
	// its members connect to each other with their own.
	SecretsOf *Cluster
	// NamePrefix names the members NamePrefix1, NamePrefix2, … (default
	// "node"), so that the members of two clusters in one test differ in
	// the logs and in pg_stat_replication of a primary both stream from.
	NamePrefix string
	// StartTimeout bounds Start's wait for one primary and streaming
	// replicas (default 60s).
	StartTimeout time.Duration
	// Patroni runs every node with Patroni (PatroniBinary, given the node's
	// YAML) instead of pg-ha's programs, so that a benchmark can compare
	// the two on the same machine, with the same workload and the same
	// faults. Everything that reads the cluster (WaitPrimary, the workload,
	// FinalWrites, Node.PID(Postmaster), PartitionFromEtcd, teardown) works
	// as with pg-ha; Node methods that drive pg-ha's programs do not apply.
	// Node.Migrate moves one node to pg-ha's programs (with pg-healthd on
	// Patroni's REST API port) and back. It cannot be combined with FIFO,
	// Healthd or WALFilesystem.
	Patroni bool
}

func (o Options) withDefaults() Options {
	if o.Nodes <= 0 {
		o.Nodes = DefaultNodes
	}
	if o.EtcdMembers <= 0 {
		o.EtcdMembers = 1
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.LoopWait <= 0 {
		o.LoopWait = DefaultLoopWait
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = DefaultRetryTimeout
	}
	if o.MaximumLagOnFailover <= 0 {
		o.MaximumLagOnFailover = DefaultMaximumLagOnFailover
	}
	if o.NamePrefix == "" {
		o.NamePrefix = "node"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	return o
}

// IsStandbyCluster reports whether the cluster is a standby cluster:
// ExtraDCS sets standby_cluster (to anything but null). Its first member
// clones the remote cluster and leads as a standby leader, in recovery.
func (o Options) IsStandbyCluster() bool {
	v, ok := o.ExtraDCS["standby_cluster"]
	return ok && v != nil
}
