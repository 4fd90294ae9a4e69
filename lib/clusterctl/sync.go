package clusterctl

import (
	"strings"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// syncRole is the role Patroni 4's listing gives a member other than the
// leader: "sync_standby" with synchronous_mode on or "quorum_standby" with
// quorum when the sync key lists it (case-insensitively, as PostgreSQL
// compares synchronous_standby_names), "replica" otherwise and always in a
// standby cluster.
func syncRole(s Settings, key *dcs.SyncKey, name string) string {
	if s.StandbyCluster || key == nil || key.Empty() {
		return "replica"
	}
	listed := false
	for _, n := range key.Standbys {
		listed = listed || strings.EqualFold(n, name)
	}
	switch {
	case !listed:
		return "replica"
	case s.SyncMode == config.SyncOn:
		return "sync_standby"
	case s.SyncMode == config.SyncQuorum:
		return "quorum_standby"
	}
	return "replica"
}

// asyncFallback says that synchronous replication is asked for but the
// sync key lists no standby although a leader holds the key: without
// synchronous_mode_strict the leader then commits without waiting for any
// standby; with it, commits wait until one is listed.
func asyncFallback(s Settings, leader string, key *dcs.SyncKey) bool {
	if leader == "" || s.StandbyCluster || (s.SyncMode != config.SyncOn && s.SyncMode != config.SyncQuorum) {
		return false
	}
	return key == nil || key.Empty() || len(key.Standbys) == 0
}

// syncLine is the listing's line under the table when asyncFallback holds.
func syncLine(l Listing) string {
	mode := l.SyncMode
	if l.SyncStrict {
		mode += " (strict)"
	}
	what := "replicating asynchronously"
	if l.SyncStrict {
		what = "commits wait until one is listed"
	}
	kind := "synchronous"
	if l.SyncMode == string(config.SyncQuorum) {
		kind = "quorum"
	}
	return " Synchronous mode: " + mode + ", no " + kind + " standby: " + what + "\n"
}
