package decide

import (
	"cmp"
	"slices"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// MemberSlots is what the leader knows of the other members for their
// physical replication slots: who has a member key now and when each member
// ever seen last had one.
type MemberSlots struct {
	// Self is the leader's own member name: it never gets a slot.
	Self string
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

// Decide returns the slots the leader keeps — one per other member present
// and per member gone for less than TTL — and the slots it drops: those of
// members gone for TTL or longer. A slot name a kept member also maps to is
// never dropped, and the leader's own slot name is in neither list. Both
// lists are sorted and free of duplicates; both are empty without
// UseSlots.
func (m MemberSlots) Decide() (keep, drop []string) {
	if !m.UseSlots {
		return nil, nil
	}
	own := m.SlotName(m.Self)
	present := make(map[string]bool, len(m.Present))
	for _, name := range m.Present {
		present[name] = true
		if name != m.Self {
			keep = append(keep, m.SlotName(name))
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
	return keep, drop
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
