package dcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
)

// MemberData is the value of members/<name>, with Patroni's field names.
// Fields this type does not know (Patroni's checkpoint_after_promote,
// scheduled_restart, …) are kept in Extra on read and written back by
// MarshalJSON, so a round trip loses nothing.
type MemberData struct {
	ConnURL        string         `json:"conn_url"`
	APIURL         string         `json:"api_url"`
	State          string         `json:"state"`
	Role           string         `json:"role"`
	Version        string         `json:"version,omitempty"`
	XLogLocation   *int64         `json:"xlog_location,omitempty"`
	Timeline       int            `json:"timeline,omitempty"`
	Tags           map[string]any `json:"tags,omitempty"`
	PendingRestart bool           `json:"pending_restart,omitempty"`
	Pause          bool           `json:"pause,omitempty"`
	ProxyURL       string         `json:"proxy_url,omitempty"`

	// pg-ha extensions; Patroni ignores unknown fields.
	ReceivedLocation *int64 `json:"received_location,omitempty"`
	ReplayedLocation *int64 `json:"replayed_location,omitempty"`
	ReplicationState string `json:"replication_state,omitempty"`
	FailoverPriority *int   `json:"failover_priority,omitempty"`
	// PrePromoteFailed: this member's pre_promote script refused a
	// promotion less than ttl ago; it is not a candidate meanwhile.
	PrePromoteFailed bool `json:"pre_promote_failed,omitempty"`

	// Extra holds the fields not listed above, as read.
	Extra map[string]json.RawMessage `json:"-"`
}

// memberDataFields has the same fields as MemberData but none of its methods.
type memberDataFields MemberData

var knownMemberFields = []string{
	"conn_url", "api_url", "state", "role", "version", "xlog_location", "timeline", "tags",
	"pending_restart", "pause", "proxy_url", "received_location", "replayed_location",
	"replication_state", "failover_priority", "pre_promote_failed",
}

// memberBoolFields are the boolean fields of a member key; other tools may
// write them as strings or numbers.
var memberBoolFields = []string{"pause", "pending_restart", "pre_promote_failed"}

// UnmarshalJSON decodes Patroni's member JSON and keeps unknown fields in
// Extra. Booleans are read with config.ParseBool; one it does not
// recognise is kept in Extra as written and reads as false.
func (d *MemberData) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	odd := map[string]json.RawMessage{}
	changed := false
	for _, k := range memberBoolFields {
		v, ok := all[k]
		if !ok {
			continue
		}
		switch s := string(bytes.TrimSpace(v)); s {
		case "true", "false", "null":
			continue
		}
		changed = true
		var x any
		_ = json.Unmarshal(v, &x)
		if bv, ok := config.ParseBool(x); ok {
			all[k] = json.RawMessage(strconv.FormatBool(bv))
		} else {
			odd[k] = v
			delete(all, k)
		}
	}
	if changed {
		var err error
		if b, err = json.Marshal(all); err != nil {
			return err
		}
	}
	var known memberDataFields
	if err := json.Unmarshal(b, &known); err != nil {
		return err
	}
	for _, k := range knownMemberFields {
		delete(all, k)
	}
	for k, v := range odd {
		all[k] = v
	}
	*d = MemberData(known)
	d.Extra = nil
	if len(all) > 0 {
		d.Extra = all
	}
	return nil
}

// MarshalJSON encodes compact JSON; Extra fields are added unless a known
// field of the same name is set.
func (d MemberData) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(memberDataFields(d))
	if err != nil || len(d.Extra) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range d.Extra {
		if _, set := all[k]; !set {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// parseMemberValue reads a member key's value: JSON, or the Governor-era
// connection string "postgres://…?application_name=<api_url>" Patroni still
// accepts.
func parseMemberValue(v []byte) (MemberData, error) {
	if bytes.HasPrefix(v, []byte("postgres")) {
		u, err := url.Parse(string(v))
		if err != nil {
			return MemberData{}, err
		}
		api := u.Query().Get("application_name")
		u.RawQuery = ""
		return MemberData{ConnURL: u.String(), APIURL: api}, nil
	}
	var d MemberData
	err := json.Unmarshal(v, &d)
	return d, err
}

// Failover is the failover key: a requested switchover (Leader set) or
// failover (Member set), optionally scheduled.
type Failover struct {
	Leader      string     `json:"leader,omitempty"`
	Member      string     `json:"member,omitempty"`
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	// Force (pg-ha only, ignored by Patroni): a manual failover the
	// operator forced with --failover --force; its candidate may lag more
	// than maximum_lag_on_failover.
	Force bool `json:"force,omitempty"`
}

// pythonISO is how Python's datetime.isoformat writes an aware time (Patroni
// writes scheduled_at with it), with at most microseconds.
const pythonISO = "2006-01-02T15:04:05.999999-07:00"

// MarshalJSON writes scheduled_at the way Python's isoformat does.
func (f Failover) MarshalJSON() ([]byte, error) {
	var aux struct {
		Leader      string `json:"leader,omitempty"`
		Member      string `json:"member,omitempty"`
		ScheduledAt string `json:"scheduled_at,omitempty"`
		Force       bool   `json:"force,omitempty"`
	}
	aux.Leader, aux.Member, aux.Force = f.Leader, f.Member, f.Force
	if f.ScheduledAt != nil {
		aux.ScheduledAt = f.ScheduledAt.Format(pythonISO)
	}
	return json.Marshal(aux)
}

// UnmarshalJSON reads Patroni's failover JSON; scheduled_at is parsed
// leniently (ISO 8601 with "T" or a space, any fraction, "Z" or an offset
// with or without a colon; no zone means UTC).
func (f *Failover) UnmarshalJSON(b []byte) error {
	var aux struct {
		Leader      *string `json:"leader"`
		Member      *string `json:"member"`
		ScheduledAt *string `json:"scheduled_at"`
		Force       bool    `json:"force"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*f = Failover{Force: aux.Force}
	if aux.Leader != nil {
		f.Leader = *aux.Leader
	}
	if aux.Member != nil {
		f.Member = *aux.Member
	}
	if aux.ScheduledAt != nil && *aux.ScheduledAt != "" {
		t, err := ParseISOTime(*aux.ScheduledAt)
		if err != nil {
			return fmt.Errorf("scheduled_at: %w", err)
		}
		f.ScheduledAt = &t
	}
	return nil
}

var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02 15:04:05Z07",
}

var isoLayoutsNoZone = []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05"}

// ParseISOTime parses the timestamps Python's isoformat and dateutil produce
// ("2016-01-14T10:09:57.1394+00:00", "2016-01-14T10:09:57Z",
// "2016-01-14 10:09:57+0000"). A time without a zone is taken as UTC. It
// never blocks.
func ParseISOTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	for _, l := range isoLayoutsNoZone {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time: %q", s)
}

// parseFailoverValue reads the failover key: JSON, or the legacy
// "leader:member" text Patroni still accepts.
func parseFailoverValue(v []byte) (f Failover, err error) {
	if err = json.Unmarshal(v, &f); err == nil {
		return f, nil
	}
	if json.Valid(v) {
		return Failover{}, err // valid JSON of the wrong shape
	}
	leader, member, _ := strings.Cut(string(v), ":")
	f = Failover{Leader: strings.TrimSpace(leader), Member: strings.TrimSpace(member)}
	if f.Leader == "" && f.Member == "" {
		return Failover{}, fmt.Errorf("neither JSON nor \"leader:member\": %q", v)
	}
	return f, nil
}

// HistoryEntry is one line of the history key, which holds a JSON array of
// arrays [timeline, lsn, reason, timestamp, new_leader]; the last two are
// optional.
type HistoryEntry struct {
	Timeline  int
	LSN       int64
	Reason    string
	Timestamp string
	NewLeader string
}

// MarshalJSON writes the array form.
func (h HistoryEntry) MarshalJSON() ([]byte, error) {
	line := []any{h.Timeline, h.LSN, h.Reason}
	if h.Timestamp != "" || h.NewLeader != "" {
		line = append(line, h.Timestamp)
	}
	if h.NewLeader != "" {
		line = append(line, h.NewLeader)
	}
	return json.Marshal(line)
}

// UnmarshalJSON reads the array form; timeline and lsn are required.
func (h *HistoryEntry) UnmarshalJSON(b []byte) error {
	var line []json.RawMessage
	if err := json.Unmarshal(b, &line); err != nil {
		return err
	}
	if len(line) < 2 {
		return fmt.Errorf("history line %s: want at least [timeline, lsn]", b)
	}
	tl, err := jsonInt(line[0])
	if err != nil {
		return fmt.Errorf("history line %s: timeline: %w", b, err)
	}
	lsn, err := jsonInt(line[1])
	if err != nil {
		return fmt.Errorf("history line %s: lsn: %w", b, err)
	}
	*h = HistoryEntry{Timeline: int(tl), LSN: lsn}
	for i, dst := range []*string{&h.Reason, &h.Timestamp, &h.NewLeader} {
		if len(line) <= i+2 {
			break
		}
		var s *string
		if err := json.Unmarshal(line[i+2], &s); err != nil {
			return fmt.Errorf("history line %s: field %d: %w", b, i+2, err)
		}
		if s != nil {
			*dst = *s
		}
	}
	return nil
}

// jsonInt reads an integer written as a JSON number (possibly "1.0") or a
// string of digits.
func jsonInt(raw json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	f, err := n.Float64()
	if err != nil || f != float64(int64(f)) {
		return 0, fmt.Errorf("not an integer: %s", raw)
	}
	return int64(f), nil
}

// Status is the status key: the leader's last WAL position and the confirmed
// positions of its permanent slots.
type Status struct {
	Optime int64            `json:"optime"`
	Slots  map[string]int64 `json:"slots,omitempty"`
}

// parseLegacyOptime reads optime/leader, a plain integer.
func parseLegacyOptime(v []byte) (int64, error) {
	return strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
}
