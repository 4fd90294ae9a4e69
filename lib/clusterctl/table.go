package clusterctl

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/state"
)

// table renders rows the way patronictl's PrettyTable does: a frame of
// '+', '-' and '|', one space of padding, a title written over the top rule
// from its second character.
type table struct {
	title   string
	columns []string
	right   map[string]bool
	rows    [][]string
}

func (t table) String() string {
	widths := make([]int, len(t.columns))
	for i, c := range t.columns {
		widths[i] = utf8.RuneCountInString(c)
	}
	for _, r := range t.rows {
		for i, v := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(v))
		}
	}
	var rule strings.Builder
	rule.WriteByte('+')
	for _, w := range widths {
		rule.WriteString(strings.Repeat("-", w+2))
		rule.WriteByte('+')
	}
	line := func(cells []string, header bool) string {
		var b strings.Builder
		b.WriteByte('|')
		for i, v := range cells {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(v))
			if t.right[t.columns[i]] && !header {
				b.WriteString(" " + pad + v + " |")
			} else {
				b.WriteString(" " + v + pad + " |")
			}
		}
		return b.String()
	}
	top := rule.String()
	if t.title != "" {
		// Over the top rule from its second character, never past its last.
		r := []rune(top)
		title := []rune(t.title)
		if len(title) > len(r)-2 {
			title = title[:len(r)-2]
		}
		copy(r[1:], title)
		top = string(r)
	}
	var b strings.Builder
	b.WriteString(top + "\n")
	b.WriteString(line(t.columns, true) + "\n")
	b.WriteString(rule.String() + "\n")
	for _, r := range t.rows {
		b.WriteString(line(r, false) + "\n")
	}
	b.WriteString(rule.String() + "\n")
	return b.String()
}

// MemberRow is one member in `list` (its --json form).
type MemberRow struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	Port     int    `json:"port,omitempty"`
	Role     string `json:"role"`
	State    string `json:"state"`
	Timeline int    `json:"timeline,omitempty"`
	// Lag is the bytes behind the leader's position; nil for the leader or
	// when the member published no position.
	Lag              *int64         `json:"lag_bytes,omitempty"`
	ReplicationState string         `json:"replication_state,omitempty"`
	PendingRestart   bool           `json:"pending_restart,omitempty"`
	Tags             map[string]any `json:"tags,omitempty"`
	// Progress is how far a member creating a replica (or restoring a new
	// cluster) has got, in steps of 5 % as its member key carries it; State
	// stays Patroni's "creating replica".
	Progress *state.Progress `json:"progress,omitempty"`
}

// Listing is the cluster as `list` shows it.
type Listing struct {
	Scope            string        `json:"scope"`
	SystemIdentifier string        `json:"system_identifier,omitempty"`
	Leader           string        `json:"leader,omitempty"`
	Paused           bool          `json:"paused"`
	Scheduled        *dcs.Failover `json:"scheduled_switchover,omitempty"`
	// SyncMode is synchronous_mode when on or quorum ("" when off);
	// SyncStrict is synchronous_mode_strict.
	SyncMode   string `json:"synchronous_mode,omitempty"`
	SyncStrict bool   `json:"synchronous_mode_strict,omitempty"`
	// NoSyncStandby: synchronous replication is asked for, a leader holds
	// the key, and the sync key lists no standby. Without strict mode the
	// leader then replicates asynchronously.
	NoSyncStandby bool        `json:"no_sync_standby,omitempty"`
	Members       []MemberRow `json:"members"`
}

// List builds the listing of cl. Lag is measured from LeaderPosition, as
// patronictl measures it from the cluster's last known position. Roles are
// Patroni 4's: "leader" ("standby_leader" in a standby cluster),
// "sync_standby" or "quorum_standby" for a standby
// the sync key lists while synchronous_mode is on or quorum (not in a
// standby cluster), else "replica". It is pure.
func List(scope string, cl *dcs.Cluster, s Settings) Listing {
	l := Listing{Scope: scope, SystemIdentifier: cl.Initialize, Paused: s.Paused, Members: []MemberRow{}}
	if cl.Leader != nil {
		l.Leader = cl.Leader.Name
	}
	if f := cl.Failover; f != nil && f.ScheduledAt != nil {
		l.Scheduled = f
	}
	if !s.StandbyCluster && (s.SyncMode == config.SyncOn || s.SyncMode == config.SyncQuorum) {
		l.SyncMode, l.SyncStrict = string(s.SyncMode), s.SyncStrict
		l.NoSyncStandby = asyncFallback(s, l.Leader, cl.Sync)
	}
	pos := LeaderPosition(cl)
	for _, m := range cl.Members {
		d := m.Data
		r := MemberRow{Name: m.Name, State: d.State, Timeline: d.Timeline, ReplicationState: d.ReplicationState,
			PendingRestart: d.PendingRestart, Tags: d.Tags}
		r.Host, r.Port = hostPort(d.ConnURL)
		if d.State == state.CreatingReplica || d.State == state.CustomBootstrap {
			r.Progress = state.MemberProgress(d.Extra)
		}
		switch {
		case m.Name == l.Leader && s.StandbyCluster:
			r.Role = "standby_leader"
		case m.Name == l.Leader:
			r.Role = "leader"
		default:
			r.Role = syncRole(s, cl.Sync, m.Name)
		}
		if m.Name != l.Leader && d.XLogLocation != nil {
			lag := max(pos-*d.XLogLocation, 0)
			r.Lag = &lag
		}
		l.Members = append(l.Members, r)
	}
	return l
}

// hostPort reads host and port from a member's conn_url
// ("postgres://10.0.0.1:5433/postgres").
func hostPort(connURL string) (string, int) {
	u, err := url.Parse(connURL)
	if err != nil || u.Host == "" {
		return "", 0
	}
	h, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host, 0
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

// RenderList renders l like `patronictl list`: the table, then
// "Maintenance mode: on" when paused, a "Synchronous mode: …" line when
// synchronous replication is asked for but the sync key lists no standby
// (pg-ha's; patronictl prints none), and the scheduled switchover if any.
// Host shows host:port when a member runs on a port other than 5432 or two
// share a host; Lag in MB is rounded, "unknown" without a position; a
// replica that streams shows its WAL receiver state ("streaming") as
// State, one creating a replica its progress ("creating replica 45 %").
// It is pure.
func RenderList(l Listing) string {
	cols := []string{"Member", "Host", "Role", "State", "TL", "Lag in MB"}
	pending, tags := false, false
	hosts := map[string]bool{}
	withPort := false
	for _, m := range l.Members {
		pending = pending || m.PendingRestart
		tags = tags || len(m.Tags) > 0
		withPort = withPort || (m.Port != 0 && m.Port != 5432) || hosts[m.Host]
		hosts[m.Host] = true
	}
	if pending {
		cols = append(cols, "Pending restart")
	}
	if tags {
		cols = append(cols, "Tags")
	}
	t := table{columns: cols, right: map[string]bool{"TL": true, "Lag in MB": true}}
	t.title = " Cluster: " + l.Scope + " "
	if l.SystemIdentifier != "" {
		t.title = " Cluster: " + l.Scope + " (" + l.SystemIdentifier + ") "
	}
	for _, m := range l.Members {
		host := m.Host
		if withPort && m.Port != 0 {
			host = net.JoinHostPort(m.Host, strconv.Itoa(m.Port))
		}
		st := state.WithProgress(m.State, m.Progress)
		if m.Role != "leader" && st == "running" && m.ReplicationState != "" {
			st = m.ReplicationState
		}
		tl := ""
		if m.Timeline != 0 {
			tl = strconv.Itoa(m.Timeline)
		}
		lag := ""
		if m.Role != "leader" && m.Role != "standby_leader" {
			lag = "unknown"
			if m.Lag != nil {
				lag = strconv.FormatInt((*m.Lag+(1<<19))>>20, 10)
			}
		}
		row := []string{m.Name, host, roleTitle(m.Role), st, tl, lag}
		if pending {
			row = append(row, map[bool]string{true: "*", false: ""}[m.PendingRestart])
		}
		if tags {
			row = append(row, formatTags(m.Tags))
		}
		t.rows = append(t.rows, row)
	}
	out := t.String()
	if l.Paused {
		out += " Maintenance mode: on\n"
	}
	if l.NoSyncStandby {
		out += syncLine(l)
	}
	if f := l.Scheduled; f != nil {
		out += " Switchover scheduled at: " + f.ScheduledAt.Format(time.RFC3339) + "\n"
		if f.Leader != "" {
			out += fmt.Sprintf("%24s: %s\n", "from", f.Leader)
		}
		if f.Member != "" {
			out += fmt.Sprintf("%24s: %s\n", "to", f.Member)
		}
	}
	return out
}

// roleTitle is patronictl's spelling of a role: "Leader", "Sync Standby",
// "Quorum Standby", "Replica".
func roleTitle(r string) string {
	words := strings.Split(r, "_")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

func formatTags(tags map[string]any) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %v", k, tags[k])
	}
	return strings.Join(parts, ", ")
}

// HistoryRow is one timeline switch (`history --json`).
type HistoryRow struct {
	Timeline  int    `json:"timeline"`
	LSN       int64  `json:"lsn"`
	Reason    string `json:"reason"`
	Timestamp string `json:"timestamp,omitempty"`
	NewLeader string `json:"new_leader,omitempty"`
}

// History converts the history key's lines. It is pure.
func History(h []dcs.HistoryEntry) []HistoryRow {
	out := make([]HistoryRow, len(h))
	for i, e := range h {
		out[i] = HistoryRow{Timeline: e.Timeline, LSN: e.LSN, Reason: e.Reason, Timestamp: e.Timestamp, NewLeader: e.NewLeader}
	}
	return out
}

// RenderHistory renders rows like `patronictl history`: TL, LSN, Reason,
// Timestamp, New Leader. It is pure.
func RenderHistory(rows []HistoryRow) string {
	t := table{columns: []string{"TL", "LSN", "Reason", "Timestamp", "New Leader"}, right: map[string]bool{"TL": true, "LSN": true}}
	for _, r := range rows {
		t.rows = append(t.rows, []string{strconv.Itoa(r.Timeline), strconv.FormatInt(r.LSN, 10), r.Reason, r.Timestamp, r.NewLeader})
	}
	return t.String()
}
