package rolepipe

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// Verb is the desired role of a line.
type Verb string

// The verbs of the protocol.
const (
	// Lead: be the writable primary until Until.
	Lead Verb = "lead"
	// Follow: be a streaming replica of Leader.
	Follow Verb = "follow"
	// Standby: be a read-only replica; no leader is known.
	Standby Verb = "standby"
	// Stop: stop PostgreSQL and keep it stopped.
	Stop Verb = "stop"
)

// ReasonUnresponsive is the Stop reason for a server that answered no
// query for primary_hang_timeout: pg-supervise kills it rather than asking
// it to shut down, which it would not do.
const ReasonUnresponsive = "unresponsive"

// MaxLineLength bounds a line; longer input is garbage.
const MaxLineLength = 4096

// MaxValidity bounds how far in the future a lead deadline may lie. A lease
// is at most a few minutes long; anything beyond is an absurd value.
const MaxValidity = 10 * time.Minute

// Line is one desired state.
type Line struct {
	Verb  Verb
	Until clock.Time // Lead: the fence deadline
	Token int64      // Lead: the leader key's create revision
	// Slots are the physical slots to keep for the other members: on a
	// leader, those its followers stream from; on a follower, those of the
	// members that cascade from it and, on one that may be promoted, a copy
	// for every other member.
	Slots []string
	// Advance are positions the kept slots of members that do not stream
	// from this node are moved up to: where each such member published it
	// has got to. On the line a slot reads name:position (decimal).
	Advance map[string]int64
	// Drop are member slots to drop: those of members gone for
	// member_slots_ttl. Only these names are ever dropped, and only while
	// physical and inactive; a name also in Slots is kept.
	Drop []string
	// Logical (Follow) are the logical permanent slots this replica keeps
	// copies of, each with where the leader's slot stands
	// (confirmed_flush_lsn): a missing copy is taken from the upstream, a
	// copy ahead of the leader's is taken again, and one behind is
	// advanced. On the line it reads logical=name:position (decimal).
	Logical map[string]int64
	// Sync (Lead) is synchronous_standby_names as pg-lockd manages it in
	// synchronous mode; nil leaves the configuration's value in force.
	Sync *SyncNames
	// Leader (Follow) is the member to stream from: the leader, or the
	// member this node's replicatefrom tag names while that one runs.
	Leader string
	// Remote (Follow) says this node is a standby cluster's standby leader:
	// ConnURL is the remote cluster standby_cluster names (Leader is
	// RemoteLeader), Slot its primary_slot_name, and the recovery settings
	// come from standby_cluster too.
	Remote  bool
	ConnURL string // Follow: Leader's conn_url (postgres://host:port/db)
	Slot    string // Follow: the slot to stream from, if slots are used
	Reason  string // Stop: why
	Paused  bool   // maintenance mode: no automatic restarts
}

// NewerKeys are the keys a reader from before them refuses: a writer sends
// one only to a reader known to take it (see state.Supervise.Accepts).
var NewerKeys = []string{"drop", FollowSlots, "remote", "logical"}

// RemoteLeader is Leader on a Remote follow line.
const RemoteLeader = "standby_cluster"

// FollowSlots is the NewerKeys entry for slots= and drop= on follow lines
// and for positions (name:position) in slots= on any line.
const FollowSlots = "follow.slots"

var wordRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// SyncNames is a synchronous_standby_names value on a lead line: commits
// wait for Num of Names — any of them when Quorum (ANY), else the first
// connected ones (FIRST). Num 0 with no Names is off; Num 1 or more with no
// Names lists a standby that does not exist, so commits wait (strict mode
// without a standby). On the line it reads sync=first:1:node2,node3,
// sync=any:1:node2,node3 or sync=off.
type SyncNames struct {
	Quorum bool
	Num    int
	Names  []string
}

func (s SyncNames) String() string {
	if s.Num <= 0 && len(s.Names) == 0 {
		return "off"
	}
	kw := "first"
	if s.Quorum {
		kw = "any"
	}
	return kw + ":" + strconv.Itoa(s.Num) + ":" + strings.Join(s.Names, ",")
}

func parseSyncNames(v string) (SyncNames, error) {
	if v == "off" {
		return SyncNames{}, nil
	}
	kw, rest, ok1 := strings.Cut(v, ":")
	num, list, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || (kw != "first" && kw != "any") {
		return SyncNames{}, errors.New("want off, first:N:names or any:N:names")
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 1000 {
		return SyncNames{}, errors.New("the number of standbys is not a small non-negative integer")
	}
	s := SyncNames{Quorum: kw == "any", Num: n}
	if list != "" {
		for _, name := range strings.Split(list, ",") {
			if !wordRE.MatchString(name) {
				return SyncNames{}, fmt.Errorf("standby name %q is not valid", truncate(name))
			}
			s.Names = append(s.Names, name)
		}
	}
	if s.Num == 0 && len(s.Names) > 0 {
		return SyncNames{}, errors.New("standbys listed but none waited for")
	}
	return s, nil
}

// String renders the line without its trailing newline.
func (l Line) String() string {
	var b strings.Builder
	b.WriteString(string(l.Verb))
	kv := func(k, v string) {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	switch l.Verb {
	case Lead:
		kv("until", strconv.FormatInt(int64(l.Until), 10))
		kv("token", strconv.FormatInt(l.Token, 10))
		l.slotKeys(kv)
		if l.Sync != nil {
			kv("sync", l.Sync.String())
		}
	case Follow:
		kv("leader", l.Leader)
		if l.ConnURL != "" || !l.Remote {
			kv("conn", l.ConnURL)
		}
		if l.Remote {
			kv("remote", "1")
		}
		if l.Slot != "" {
			kv("slot", l.Slot)
		}
		l.slotKeys(kv)
		if len(l.Logical) > 0 {
			names := slices.Sorted(maps.Keys(l.Logical))
			for i, n := range names {
				names[i] = n + ":" + strconv.FormatInt(l.Logical[n], 10)
			}
			kv("logical", strings.Join(names, ","))
		}
	case Stop:
		kv("reason", l.Reason)
	}
	if l.Paused {
		kv("paused", "1")
	}
	return b.String()
}

// slotKeys renders slots= (with positions) and drop=.
func (l Line) slotKeys(kv func(k, v string)) {
	if len(l.Slots) > 0 {
		list := make([]string, len(l.Slots))
		for i, name := range l.Slots {
			list[i] = name
			if pos, ok := l.Advance[name]; ok {
				list[i] += ":" + strconv.FormatInt(pos, 10)
			}
		}
		kv("slots", strings.Join(list, ","))
	}
	if len(l.Drop) > 0 {
		kv("drop", strings.Join(l.Drop, ","))
	}
}

// Errors of Parse; every error wraps ErrInvalid.
var ErrInvalid = errors.New("invalid role line")

// Parse reads one line (without its newline). now is the current time on the
// shared clock: a lead deadline further than MaxValidity ahead is absurd.
// A deadline in the past parses fine; it simply grants no validity.
func Parse(s string, now clock.Time) (Line, error) {
	bad := func(format string, a ...any) (Line, error) {
		return Line{}, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if len(s) > MaxLineLength {
		return bad("longer than %d bytes", MaxLineLength)
	}
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return bad("empty")
	}
	l := Line{Verb: Verb(fields[0])}
	allowed := map[string]bool{"paused": true}
	switch l.Verb {
	case Lead:
		allowed["until"], allowed["token"], allowed["slots"], allowed["drop"], allowed["sync"] = true, true, true, true, true
	case Follow:
		allowed["leader"], allowed["conn"], allowed["slot"], allowed["slots"], allowed["drop"], allowed["remote"], allowed["logical"] = true, true, true, true, true, true, true
	case Standby:
	case Stop:
		allowed["reason"] = true
	default:
		return bad("unknown verb %q", truncate(fields[0]))
	}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return bad("%q is not key=value", truncate(f))
		}
		if !allowed[k] {
			return bad("unknown key %q for %s", truncate(k), l.Verb)
		}
		if seen[k] {
			return bad("key %q repeated", k)
		}
		seen[k] = true
		switch k {
		case "until":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return bad("until=%q is not a positive clock reading", truncate(v))
			}
			l.Until = clock.Time(n)
		case "token":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return bad("token=%q is not a positive revision", truncate(v))
			}
			l.Token = n
		case "slots", "drop":
			var names []string
			for _, item := range strings.Split(v, ",") {
				name, pos, hasPos := strings.Cut(item, ":")
				if !wordRE.MatchString(name) {
					return bad("slot name %q is not valid", truncate(name))
				}
				if hasPos {
					n, err := strconv.ParseInt(pos, 10, 64)
					if k != "slots" || err != nil || n <= 0 {
						return bad("slot %q: %q is not a position to advance to", truncate(name), truncate(pos))
					}
					if l.Advance == nil {
						l.Advance = map[string]int64{}
					}
					l.Advance[name] = n
				}
				names = append(names, name)
			}
			if k == "slots" {
				l.Slots = names
			} else {
				l.Drop = names
			}
		case "logical":
			l.Logical = map[string]int64{}
			for _, item := range strings.Split(v, ",") {
				name, pos, _ := strings.Cut(item, ":")
				n, err := strconv.ParseInt(pos, 10, 64)
				if !wordRE.MatchString(name) || err != nil || n <= 0 {
					return bad("logical=%q: want name:position,…", truncate(v))
				}
				l.Logical[name] = n
			}
		case "sync":
			sn, err := parseSyncNames(v)
			if err != nil {
				return bad("sync=%q: %v", truncate(v), err)
			}
			l.Sync = &sn
		case "leader":
			if !wordRE.MatchString(v) {
				return bad("leader=%q is not a member name", truncate(v))
			}
			l.Leader = v
		case "conn":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" || u.User != nil {
				return bad("conn=%q is not a postgres:// URL without credentials", truncate(v))
			}
			l.ConnURL = v
		case "slot":
			if !wordRE.MatchString(v) {
				return bad("slot=%q is not a slot name", truncate(v))
			}
			l.Slot = v
		case "reason":
			if !wordRE.MatchString(v) {
				return bad("reason=%q is not a word", truncate(v))
			}
			l.Reason = v
		case "paused", "remote":
			if v != "1" && v != "0" {
				return bad("%s=%q is not 0 or 1", k, truncate(v))
			}
			if k == "paused" {
				l.Paused = v == "1"
			} else {
				l.Remote = v == "1"
			}
		}
	}
	switch l.Verb {
	case Lead:
		if !seen["until"] || !seen["token"] {
			return bad("lead needs until= and token=")
		}
		if l.Until.Sub(now) > MaxValidity {
			return bad("until is %s ahead, more than any lease", l.Until.Sub(now).Round(time.Second))
		}
	case Follow:
		if !seen["leader"] || (!seen["conn"] && !l.Remote) {
			// A standby leader may restore from the remote's archive alone.
			return bad("follow needs leader= and conn=")
		}
	case Stop:
		if !seen["reason"] {
			return bad("stop needs reason=")
		}
	}
	return l, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Valid reports whether a lead line still grants validity at now.
func (l Line) Valid(now clock.Time) bool {
	return l.Verb == Lead && now.Before(l.Until)
}
