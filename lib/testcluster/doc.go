// Package testcluster runs whole pg-ha clusters for integration tests: a
// real etcd (lib/dcs/etcdtest), and per node the real binaries started the
// way DESIGN.md's "Running a node without systemd" does —
//
//	pg-bootstrap --config F && pg-lockd --config F | pg-supervise --config F
//	pg-healthd --config F
//
// — each as the postgres OS user in its own process group, with real
// PostgreSQL. It also holds the application workload used by the end-to-end
// fault tests (StartWorkload) and the pure checker that judges its history
// (Windows, SplitBrain, Lost, LossPolicy, MaxGap, MaxGapSince, AssertSafe,
// AssertLossless).
//
// For synchronous replication, Options.SyncMode, SyncStrict, SyncNodeCount
// and a nosync tag (Options.Tags) go into bootstrap.dcs and the nodes' tags;
// Cluster.Sync reads the sync key and the leader's
// synchronous_standby_names together, WaitSync waits for a state of them,
// WaitPromoted finds a new primary without committing (strict mode may hold
// commits back), and UpdateConfig edits the config key as patronictl
// edit-config does.
//
// For replication topologies, Options.Node1First makes node1 the first
// leader (the others start once it leads), and the streaming checks
// (Start, WaitReplicasStreaming) honour the replicatefrom and nostream tags
// of Options.Tags: a cascading replica may stream from the member it names,
// one fed by the WAL archive alone need only be in recovery.
//
// For network partitions, Options.EtcdProxy puts a Proxy of its own between
// each node and etcd, so that Node.PartitionFromEtcd cuts that node alone off
// from etcd (silently, like dropped packets) and Node.HealEtcd reconnects it;
// Options.EtcdMembers runs etcd as a cluster of several members.
//
// For comparisons, Options.Patroni runs every node with Patroni
// (/usr/bin/patroni node.yml) on the same YAML instead of pg-ha's programs;
// the workload, the checker and the partitions work the same way.
//
// Everything a Cluster starts is killed, and every directory it made removed,
// in the test's Cleanup; when the test failed, every node's logs are written
// to the test log first.
//
// Integration tests need /usr/bin/etcd, PostgreSQL 15, the postgres OS user
// and root. Without them they skip, or fail when PGHA_TEST_DISALLOW_SKIP=1.
package testcluster
