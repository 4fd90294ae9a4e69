package decide

import (
	"cmp"
	"slices"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// MemberSlots is what a node knows of the other members for their
// physical replication slots: who has a member key now, what it says, and
// when each member ever seen last had one.
type MemberSlots struct {
	// Self is this node's own member name: it never gets a slot.
	Self string
	// Leader is the leader's name ("" when there is none).
	Leader string
	// NoFailover is this node's nofailover tag: a node that can never
	// lead keeps only the slots of the members streaming from it.
	NoFailover bool
	// Members are the present members' tags and positions, by name; a
	// present member missing here streams from the leader.
	Members map[string]Streamer
	// Permanent are the permanent physical slots (slots: in the dynamic
	// configuration) and PermanentPos where each stands on the leader (the
	// status key's slots): the leader keeps them, a member that may lead
	// keeps copies advanced to those positions. A name that is also a
	// member's slot is a member slot.
	Permanent    []string
	PermanentPos map[string]int64
	// Present are the members with a key in etcd now.
	Present []string
	// LastSeen is when each member seen since pg-lockd started last had a
	// key (see SeeMembers). A member never seen has no slot dropped: after
	// a restart the clock starts again, which only delays a drop.
	LastSeen map[string]clock.Time
	// Now is the current time on LastSeen's clock.
	Now clock.Time
	// TTL is member_slots_ttl: how long a member's slot outlives its key.
	TTL time.Duration
	// UseSlots is use_slots; off, no slot is kept or dropped.
	UseSlots bool
	// SlotName maps a member name to its slot's name (pg.SlotName).
	SlotName func(string) string
}

// Decide returns the slots this node keeps and drops (see Plan).
func (m MemberSlots) Decide() (keep, drop []string) {
	keep, _, drop = m.Plan()
	return keep, drop
}

// Plan returns the slots this node keeps, the positions some of them are
// advanced to, and the slots it drops. It keeps a slot for each other
// member present that streams from it (its upstream is this node: see
// Upstream), and, unless this node is a replica that can never lead, a copy
// for every other present member, advanced to where that member published
// it has got to — so that a replica promoted later already holds its
// peers' WAL, and no copy holds WAL a member no longer needs. It keeps the
// slot of a member gone for less than TTL and drops that of one gone for
// TTL or longer, and drops the slots of present members that use none
// (nostream; and, on a replica that can never lead, those not streaming
// from it). A slot name a kept member also maps to is never dropped, and
// this node's own slot name is in neither list. Both lists are sorted and
// free of duplicates; everything is empty without UseSlots. Permanent
// slots are kept like member copies: on the leader as they are, on a member
// that may lead advanced to the leader's positions.
func (m MemberSlots) Plan() (keep []string, advance map[string]int64, drop []string) {
	if !m.UseSlots {
		return nil, nil, nil
	}
	own := m.SlotName(m.Self)
	present := make(map[string]bool, len(m.Present))
	mayLead := m.Self == m.Leader || !m.NoFailover
	for _, name := range m.Present {
		present[name] = true
		if name == m.Self {
			continue
		}
		info := m.Members[name]
		switch {
		case info.NoStream:
			drop = append(drop, m.SlotName(name))
		case Upstream(name, m.Leader, m.Members) == m.Self:
			keep = append(keep, m.SlotName(name))
		case mayLead:
			keep = append(keep, m.SlotName(name))
			if info.Position > 0 {
				if advance == nil {
					advance = map[string]int64{}
				}
				advance[m.SlotName(name)] = max(advance[m.SlotName(name)], info.Position)
			}
		default:
			drop = append(drop, m.SlotName(name))
		}
	}
	members := make(map[string]bool, len(m.Present))
	for _, name := range m.Present {
		members[m.SlotName(name)] = true
	}
	for _, name := range m.Permanent {
		if name == own || members[name] || !mayLead {
			continue
		}
		keep = append(keep, name)
		if pos := m.PermanentPos[name]; pos > 0 && m.Self != m.Leader {
			if advance == nil {
				advance = map[string]int64{}
			}
			advance[name] = pos
		}
	}
	for name, seen := range m.LastSeen {
		if name == m.Self || present[name] {
			continue
		}
		if m.Now.Sub(seen) < m.TTL {
			keep = append(keep, m.SlotName(name))
		} else {
			drop = append(drop, m.SlotName(name))
		}
	}
	slices.Sort(keep)
	keep = slices.Compact(keep)
	keep = slices.DeleteFunc(keep, func(s string) bool { return s == own })
	slices.Sort(drop)
	drop = slices.Compact(drop)
	drop = slices.DeleteFunc(drop, func(s string) bool { _, kept := slices.BinarySearch(keep, s); return kept || s == own })
	delete(advance, own)
	return keep, advance, drop
}

// MaxRemembered bounds how many departed members SeeMembers remembers.
const MaxRemembered = 32

// SeeMembers records that the members in present have a key at now and
// forgets the departed members beyond the MaxRemembered most recently seen,
// so that the drop list stays short. It changes lastSeen in place.
func SeeMembers(lastSeen map[string]clock.Time, present []string, now clock.Time) {
	for _, name := range present {
		lastSeen[name] = now
	}
	var gone []string
	for name, seen := range lastSeen {
		if seen != now {
			gone = append(gone, name)
		}
	}
	if len(gone) <= MaxRemembered {
		return
	}
	slices.SortFunc(gone, func(a, b string) int {
		return cmp.Or(cmp.Compare(lastSeen[b], lastSeen[a]), cmp.Compare(a, b)) // most recent first
	})
	for _, name := range gone[MaxRemembered:] {
		delete(lastSeen, name)
	}
}
