package health

import (
	"bytes"
	"encoding/json"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Rendered holds the response bodies of one Snapshot, encoded once when the
// snapshot is published so that requests only copy bytes.
type Rendered struct {
	Status, Cluster, History, Config, Failsafe []byte
}

// statusJSON is Patroni's status document, fields in Patroni's order.
type statusJSON struct {
	State               string         `json:"state"`
	PostmasterStartTime string         `json:"postmaster_start_time,omitempty"`
	Role                string         `json:"role"`
	ServerVersion       int            `json:"server_version,omitempty"`
	XLog                any            `json:"xlog,omitempty"`
	SyncStandby         bool           `json:"sync_standby,omitempty"`
	QuorumStandby       bool           `json:"quorum_standby,omitempty"`
	Timeline            uint32         `json:"timeline,omitempty"`
	ReplicationState    string         `json:"replication_state,omitempty"`
	Replication         []replicaJSON  `json:"replication,omitempty"`
	ClusterUnlocked     bool           `json:"cluster_unlocked,omitempty"`
	FailsafeActive      bool           `json:"failsafe_mode_is_active,omitempty"`
	DCSLastSeen         *int64         `json:"dcs_last_seen,omitempty"`
	Tags                map[string]any `json:"tags,omitempty"`
	SystemIdentifier    string         `json:"database_system_identifier,omitempty"`
	PendingRestart      bool           `json:"pending_restart,omitempty"`
	Patroni             patroniJSON    `json:"patroni"`
	Pause               bool           `json:"pause,omitempty"`
	// Progress is pg-ha's: a clone's while state is "creating replica".
	Progress *state.Progress `json:"progress,omitempty"`
}

type primaryXLog struct {
	Location int64 `json:"location"`
}

type replicaXLog struct {
	ReceivedLocation  int64   `json:"received_location"`
	ReplayedLocation  int64   `json:"replayed_location"`
	ReplayedTimestamp *string `json:"replayed_timestamp"`
	Paused            bool    `json:"paused"`
}

type replicaJSON struct {
	ApplicationName string  `json:"application_name"`
	ClientAddr      *string `json:"client_addr"`
	State           string  `json:"state"`
	SyncState       string  `json:"sync_state"`
}

type patroniJSON struct {
	Version string `json:"version"`
	Scope   string `json:"scope"`
	Name    string `json:"name"`
}

// pythonTime is how Python's str() prints an aware datetime.
func pythonTime(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05-07:00")
	}
	return t.Format("2006-01-02 15:04:05.000000-07:00")
}

// StatusJSON renders this node's status with Patroni's field names. It is
// pure.
func StatusJSON(s *Snapshot, f *Facts) []byte {
	doc := statusJSON{
		State: f.State, Role: f.Role,
		Patroni: patroniJSON{Version: s.Version, Scope: s.Scope, Name: s.Name},
		Tags:    s.Tags, Pause: f.Paused,
		SyncStandby: f.SyncStandby, QuorumStandby: f.QuorumStandby,
		Progress: f.Progress,
	}
	st := &s.PG.Status
	if f.Running {
		doc.PostmasterStartTime = pythonTime(st.PostmasterStart)
		doc.ServerVersion = st.ServerVersion
		doc.Timeline = st.Timeline
		if st.InRecovery {
			doc.XLog = replicaXLog{ReceivedLocation: f.Received, ReplayedLocation: f.Replayed, Paused: st.ReplayPaused}
			doc.ReplicationState = f.ReplicationState
		} else {
			doc.XLog = primaryXLog{Location: int64(st.WriteLSN)}
		}
		for _, r := range st.Replication {
			rj := replicaJSON{ApplicationName: r.ApplicationName, State: r.State, SyncState: r.SyncState}
			if r.ClientAddr != "" {
				addr := r.ClientAddr
				rj.ClientAddr = &addr
			}
			doc.Replication = append(doc.Replication, rj)
		}
		doc.PendingRestart = st.PendingRestart
	}
	if s.PG.Known && st.SystemIdentifier != 0 {
		doc.SystemIdentifier = strconv.FormatUint(st.SystemIdentifier, 10)
	}
	if !s.Standalone {
		doc.ClusterUnlocked = s.DCS.Cluster == nil || s.DCS.Cluster.Leader == nil
		doc.FailsafeActive = f.FailsafeActive
		var seen int64
		if !s.DCS.LastSeen.IsZero() {
			seen = s.DCS.LastSeen.Unix()
		}
		doc.DCSLastSeen = &seen
	}
	return mustJSON(doc)
}

type clusterJSON struct {
	Members             []memberJSON    `json:"members"`
	Pause               bool            `json:"pause,omitempty"`
	ScheduledSwitchover *switchoverJSON `json:"scheduled_switchover,omitempty"`
}

type memberJSON struct {
	Name           string         `json:"name"`
	Role           string         `json:"role"`
	State          string         `json:"state"`
	APIURL         string         `json:"api_url"`
	Host           string         `json:"host,omitempty"`
	Port           int            `json:"port,omitempty"`
	Timeline       int            `json:"timeline,omitempty"`
	PendingRestart bool           `json:"pending_restart,omitempty"`
	Tags           map[string]any `json:"tags,omitempty"`
	Lag            any            `json:"lag,omitempty"`
	// Progress is pg-ha's: the progress of a member creating a replica, as
	// its member key carries it (in steps of 5 %).
	Progress *state.Progress `json:"progress,omitempty"`
}

type switchoverJSON struct {
	At   string `json:"at"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// ClusterJSON renders the members as Patroni's /cluster does (utils.py
// cluster_as_json): sorted by name, the leader's role "leader" (or
// "standby_leader"), the standbys the sync key lists "sync_standby" with
// synchronous_mode on or "quorum_standby" with quorum (never in a standby
// cluster, as Patroni 4), the others "replica"; every member but the
// leader with its lag behind the status optime ("unknown" without
// xlog_location). It is pure.
func ClusterJSON(cl *dcs.Cluster, standby, paused bool, mode config.SyncMode) []byte {
	doc := clusterJSON{Members: []memberJSON{}, Pause: paused}
	syncRole := ""
	switch {
	case standby || cl.Sync == nil:
	case mode == config.SyncOn:
		syncRole = "sync_standby"
	case mode == config.SyncQuorum:
		syncRole = "quorum_standby"
	}
	leader := ""
	if cl.Leader != nil {
		leader = cl.Leader.Name
	}
	for _, m := range cl.Members { // already sorted by name
		d := &m.Data
		mj := memberJSON{Name: m.Name, Role: "replica", State: d.State, APIURL: d.APIURL,
			Timeline: d.Timeline, PendingRestart: d.PendingRestart, Tags: d.Tags}
		if d.State == state.CreatingReplica || d.State == state.CustomBootstrap {
			mj.Progress = state.MemberProgress(d.Extra)
		}
		if u, err := url.Parse(d.ConnURL); err == nil && u.Host != "" {
			host, port, err := net.SplitHostPort(u.Host)
			if err != nil {
				host, port = u.Host, ""
			}
			mj.Host = host
			if p, err := strconv.Atoi(port); err == nil {
				mj.Port = p
			}
		}
		if m.Name == leader {
			mj.Role = "leader"
			if standby {
				mj.Role = "standby_leader"
			}
		} else {
			if syncRole != "" && listsStandby(cl.Sync, m.Name) {
				mj.Role = syncRole
			}
			switch lsn := d.XLogLocation; {
			case lsn == nil:
				mj.Lag = "unknown"
			case cl.Status.Optime >= *lsn:
				mj.Lag = cl.Status.Optime - *lsn
			default:
				mj.Lag = 0
			}
		}
		doc.Members = append(doc.Members, mj)
	}
	if f := cl.Failover; f != nil && f.ScheduledAt != nil {
		doc.ScheduledSwitchover = &switchoverJSON{At: f.ScheduledAt.Format("2006-01-02T15:04:05.999999-07:00"), From: f.Leader, To: f.Member}
	}
	return mustJSON(doc)
}

// Render encodes every body of s at now. It is pure.
func Render(s *Snapshot, b Bounds, now clock.Time) *Rendered {
	f := Evaluate(s, b, now)
	r := &Rendered{Status: StatusJSON(s, &f)}
	if cl := s.DCS.Cluster; cl != nil && !s.Standalone {
		r.Cluster = ClusterJSON(cl, s.DCS.StandbyCluster, s.DCS.Paused, s.DCS.SyncMode)
		h := cl.History
		if h == nil {
			h = []dcs.HistoryEntry{}
		}
		r.History = mustJSON(h)
		if cl.Failsafe != nil {
			r.Failsafe = mustJSON(cl.Failsafe)
		}
		if cl.Config != nil {
			var buf bytes.Buffer
			if json.Compact(&buf, cl.Config) == nil {
				r.Config = buf.Bytes()
			} else {
				r.Config = cl.Config
			}
		}
	}
	return r
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only tags could fail (a YAML value JSON cannot hold); drop them
		// rather than serve nothing.
		if doc, ok := v.(statusJSON); ok && doc.Tags != nil {
			doc.Tags = nil
			return mustJSON(doc)
		}
		return []byte(`{"error":` + strconv.Quote(err.Error()) + `}`)
	}
	return b
}
