package pg

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: timeline Timeline
// ended, and its child began, at SwitchLSN.
type HistoryEntry struct {
	Timeline  uint32 // the parent timeline that ended
	SwitchLSN LSN    // where it ended
	Reason    string // why, e.g. "no recovery target specified"; may be empty
}

// TimelineHistory fetches the history file of timeline tli from the server
// p describes, with TIMELINE_HISTORY over a physical replication connection
// (p.Replication is forced on; the role needs the REPLICATION attribute
// and a pg_hba "replication" entry), and parses it with ParseHistory. It
// blocks on connecting (bounded by p.ConnectTimeout) and on the answer;
// cancelling ctx aborts both, and the connection is always closed before
// returning. Timeline 1 has no history: tli 1 returns no entries without
// connecting, and tli 0 is an error. It returns the entries oldest first,
// or an error wrapped "timeline history <tli>: …" when the server does not
// have that timeline (SQLState 58P01), the connection fails, or the
// content does not parse.
func TimelineHistory(ctx context.Context, p ConnParams, tli uint32) ([]HistoryEntry, error) {
	switch tli {
	case 0:
		return nil, fmt.Errorf("timeline history: timeline 0 does not exist")
	case 1:
		return nil, nil
	}
	conn, err := connectReplication(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("timeline history %d: %w", tli, err)
	}
	defer conn.Close(ctx)

	results, err := conn.Exec(ctx, fmt.Sprintf("TIMELINE_HISTORY %d", tli)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("timeline history %d: %w", tli, err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 2 {
		return nil, fmt.Errorf("timeline history %d: unexpected reply shape", tli)
	}
	entries, err := ParseHistory(string(results[0].Rows[0][1]))
	if err != nil {
		return nil, fmt.Errorf("timeline history %d: %w", tli, err)
	}
	return entries, nil
}

// ParseHistory parses the content of a timeline history file (the
// pg_wal/0000000N.history format): one "parentTLI<tab>switchLSN<tab>reason"
// line per ancestor, blank lines and lines starting with '#' ignored, fields
// separated by any white space, the reason being the rest of the line. It
// does no I/O. It returns the entries in file order, none for empty content,
// and an error naming the line for a line without a numeric timeline or a
// valid LSN, or for timelines that do not strictly increase (PostgreSQL
// refuses such files too).
func ParseHistory(content string) ([]HistoryEntry, error) {
	var entries []HistoryEntry
	for i, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		// line is trimmed and not empty, so it starts with its first field.
		tliField := strings.Fields(line)[0]
		rest := strings.TrimSpace(line[len(tliField):])
		tli, err := strconv.ParseUint(tliField, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("history line %d %q: want a numeric timeline ID", i+1, line)
		}
		lsnField, reason := rest, ""
		if j := strings.IndexAny(rest, " \t"); j >= 0 {
			lsnField, reason = rest[:j], strings.TrimSpace(rest[j:])
		}
		lsn, err := ParseLSN(lsnField)
		if err != nil {
			return nil, fmt.Errorf("history line %d %q: want a switch point LSN after the timeline", i+1, line)
		}
		if n := len(entries); n > 0 && uint32(tli) <= entries[n-1].Timeline {
			return nil, fmt.Errorf("history line %d %q: timeline IDs must increase", i+1, line)
		}
		entries = append(entries, HistoryEntry{Timeline: uint32(tli), SwitchLSN: lsn, Reason: reason})
	}
	return entries, nil
}

// System is what IDENTIFY_SYSTEM reports: on a primary, the timeline and
// flush position of its WAL; on a standby, the timeline it replays and the
// furthest of its received and replayed positions on that timeline.
type System struct {
	SystemID uint64
	Timeline uint32
	XLogPos  LSN
}

// IdentifySystem runs IDENTIFY_SYSTEM over a physical replication
// connection to the server p describes (p.Replication is forced on; the
// role needs the REPLICATION attribute and a pg_hba "replication" entry).
// Unlike the SQL functions, it names the timeline a standby replays. It
// blocks on connecting and on the answer; cancelling ctx aborts both, and
// the connection is always closed before returning. Errors are wrapped
// "identify system: …".
func IdentifySystem(ctx context.Context, p ConnParams) (System, error) {
	conn, err := connectReplication(ctx, p)
	if err != nil {
		return System{}, fmt.Errorf("identify system: %w", err)
	}
	defer conn.Close(ctx)
	results, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return System{}, fmt.Errorf("identify system: %w", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) < 3 {
		return System{}, fmt.Errorf("identify system: unexpected reply shape")
	}
	row := results[0].Rows[0]
	var s System
	if s.SystemID, err = strconv.ParseUint(string(row[0]), 10, 64); err != nil {
		return System{}, fmt.Errorf("identify system: system identifier %q", row[0])
	}
	tli, err := strconv.ParseUint(string(row[1]), 10, 32)
	if err != nil || tli == 0 {
		return System{}, fmt.Errorf("identify system: timeline %q", row[1])
	}
	s.Timeline = uint32(tli)
	if s.XLogPos, err = ParseLSN(string(row[2])); err != nil {
		return System{}, fmt.Errorf("identify system: position %q", row[2])
	}
	return s, nil
}

// ReplayTimeline returns the timeline st's server works on. That is
// st.Timeline, except on a standby that is not streaming: the SQL
// functions then know only its last checkpoint's timeline, which stays
// behind the one it replays after it followed a promotion by streaming
// (until the next restartpoint). For such a standby it asks IDENTIFY_SYSTEM
// over p, and keeps st.Timeline when that fails. It blocks on that one
// connection (ctx).
func ReplayTimeline(ctx context.Context, p ConnParams, st Status) uint32 {
	if !st.InRecovery || st.ReceiverStatus == "streaming" {
		return st.Timeline
	}
	sys, err := IdentifySystem(ctx, p)
	if err != nil || sys.SystemID != st.SystemIdentifier {
		return st.Timeline
	}
	return sys.Timeline
}
