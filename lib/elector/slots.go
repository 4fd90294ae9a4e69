package elector

import (
	"slices"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// seeMembers records which members have a key now. Every node keeps this
// clock, not only the leader, so that after a failover the new leader
// already knows how long a departed member has been gone; a pg-lockd that
// restarts starts it again, which only delays a drop.
func (e *Elector) seeMembers(cl *dcs.Cluster) {
	names := make([]string, 0, len(cl.Members))
	for _, m := range cl.Members {
		names = append(names, m.Name)
	}
	decide.SeeMembers(e.lastSeen, names, e.clock.Now())
}

// slots are the physical slots the leader keeps for the other members:
// those with a key and those gone for less than member_slots_ttl. It also
// decides e.slotDrop, the slots of members gone for longer, which the next
// lead line asks pg-supervise to drop. Without use_slots both are empty.
func (e *Elector) slots(cl *dcs.Cluster) []string {
	names := make([]string, 0, len(cl.Members))
	for _, m := range cl.Members {
		names = append(names, m.Name)
	}
	keep, drop := decide.MemberSlots{Self: e.cfg.Name, Present: names, LastSeen: e.lastSeen, Now: e.clock.Now(),
		TTL: e.dyn.MemberSlotsTTL, UseSlots: e.dyn.UseSlots, SlotName: pg.SlotName}.Decide()
	for _, s := range drop {
		if !slices.Contains(e.slotDrop, s) {
			e.log.Info().Str("slot", s).Dur("member_slots_ttl", e.dyn.MemberSlotsTTL).Msg("member gone for member_slots_ttl: its replication slot goes once inactive")
		}
	}
	e.slotDrop = drop
	return keep
}
