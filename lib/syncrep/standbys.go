package syncrep

import (
	"slices"
	"strconv"
	"strings"
)

// Member is what the primary knows from etcd about a cluster member.
type Member struct {
	Name string
	// Running: its PostgreSQL runs (member state "running").
	Running bool
	// NoSync and SyncPriority come from the member's tags (see SyncTags).
	NoSync       bool
	SyncPriority int
	// NoFailover: tagged nofailover (or failover_priority 0).
	NoFailover bool
	// ReplicateFrom is its replicatefrom tag ("" for none).
	ReplicateFrom string
}

// Replication is one row of pg_stat_replication on the primary. An LSN of
// 0 stands for NULL (not yet reported). Like Patroni, only a standby in
// state streaming may be picked: PostgreSQL never makes one that is still
// catching up synchronous, and one that connects only to find that its
// timeline diverged (it must be rewound) shows up for a moment each time it
// retries; listing either would keep commits waiting for a standby that
// cannot confirm them.
type Replication struct {
	PID             int
	ApplicationName string
	State           string // streaming, catchup, backup, startup, stopping
	SyncState       string // async, potential, sync, quorum
	WriteLSN        uint64
	FlushLSN        uint64
	ReplayLSN       uint64
}

// Standby is a standby that may be synchronous: it streams from this
// primary and is a running member without nosync.
type Standby struct {
	Name         string // the member's name (its application_name)
	PID          int    // its walsender
	SyncState    string
	LSN          uint64 // write, flush or replay LSN as synchronous_commit waits for
	NoFailover   bool
	SyncPriority int
}

// Observation is what the primary sees of its standbys at one moment.
type Observation struct {
	// Self is the primary's member name; it is never its own standby.
	Self        string
	Members     []Member
	Replication []Replication
	// SynchronousCommit is the primary's synchronous_commit: remote_apply
	// ranks standbys by replay LSN, remote_write by write LSN, anything
	// else by flush LSN.
	SynchronousCommit string
	// PrimaryLSN is the primary's own WAL position, the reference for
	// maximum_lag_on_syncnode when a single standby streams.
	PrimaryLSN uint64
}

// Standbys returns the standbys that may be synchronous, best first, and
// the position lag is measured from. A replication row counts when its
// application_name is a running member other than Self without nosync,
// it is in state streaming, its LSN (per SynchronousCommit) has been reported, and the member is not
// meant to cascade (replicatefrom) from a standby that itself streams from
// this primary. Names match case-insensitively; for a repeated
// application_name the last row wins. The order is Patroni's: higher
// sync_priority first, then sync_state (sync, quorum, potential, async),
// then the higher LSN, ties in pg_stat_replication order. So a standby
// already synchronous stays so even when an asynchronous one is a little
// ahead. maxLSN is the highest LSN among two or more standbys, or
// PrimaryLSN. It never blocks.
func Standbys(o Observation) (list []Standby, maxLSN uint64) {
	lsnOf := func(r Replication) uint64 {
		switch o.SynchronousCommit {
		case "remote_apply":
			return r.ReplayLSN
		case "remote_write":
			return r.WriteLSN
		}
		return r.FlushLSN
	}
	members := map[string]Member{}
	for _, m := range o.Members {
		if m.Running && !m.NoSync && !strings.EqualFold(m.Name, o.Self) {
			members[strings.ToLower(m.Name)] = m
		}
	}
	var order []string
	rows := map[string]Replication{}
	for _, r := range o.Replication {
		k := strings.ToLower(r.ApplicationName)
		if lsnOf(r) == 0 || r.State != "streaming" {
			continue
		}
		if _, ok := members[k]; !ok {
			continue
		}
		if _, seen := rows[k]; !seen {
			order = append(order, k)
		}
		rows[k] = r
	}
	for _, k := range order {
		r, m := rows[k], members[k]
		if cascades(members, rows, m, 0) {
			continue
		}
		list = append(list, Standby{Name: r.ApplicationName, PID: r.PID, SyncState: r.SyncState, LSN: lsnOf(r),
			NoFailover: m.NoFailover, SyncPriority: m.SyncPriority})
	}
	slices.SortStableFunc(list, func(a, b Standby) int {
		switch {
		case a.SyncPriority != b.SyncPriority:
			return b.SyncPriority - a.SyncPriority
		case a.SyncState != b.SyncState:
			return strings.Compare(b.SyncState, a.SyncState) // "sync" > "quorum" > "potential" > "async"
		case a.LSN != b.LSN:
			if a.LSN > b.LSN {
				return -1
			}
			return 1
		}
		return 0
	})
	if len(list) > 1 {
		for _, s := range list {
			maxLSN = max(maxLSN, s.LSN)
		}
	} else {
		maxLSN = o.PrimaryLSN
	}
	return list, maxLSN
}

// cascades reports whether m should stream from another standby (its
// replicatefrom chain reaches a member streaming from this primary)
// rather than from the primary.
func cascades(members map[string]Member, rows map[string]Replication, m Member, depth int) bool {
	up, ok := members[strings.ToLower(m.ReplicateFrom)]
	if m.ReplicateFrom == "" || !ok || depth > len(members) {
		return false
	}
	if up.ReplicateFrom == "" {
		_, streams := rows[strings.ToLower(up.Name)]
		return streams
	}
	return cascades(members, rows, up, depth+1)
}

// SyncTags reads the nosync and sync_priority tags of a member as Patroni
// does: nosync, when present, decides (true → never synchronous); else a
// sync_priority of 0 or less means nosync. priority is sync_priority
// (default 1), 0 when nosync is set. Tag values are what JSON or YAML give
// (bool, number, string). It never blocks.
func SyncTags(tags map[string]any) (noSync bool, priority int) {
	priority = 1
	p, hasP := tagInt(tags["sync_priority"])
	if hasP {
		priority = p
	}
	if v, ok := tags["nosync"]; ok && v != nil {
		noSync = truthy(v)
		if noSync {
			priority = 0
		}
		return noSync, priority
	}
	return hasP && p <= 0, priority
}

func tagInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		return int(x), true
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, true
		}
	}
	return 0, false
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "", "0", "false", "off", "no", "n", "f":
			return false
		}
		return true
	case float64:
		return x != 0
	case int:
		return x != 0
	}
	return v != nil
}
