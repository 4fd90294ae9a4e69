package elector

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
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

// streamers are the present members' tags, states and positions, for
// choosing upstreams and slots.
func streamers(cl *dcs.Cluster) map[string]decide.Streamer {
	out := make(map[string]decide.Streamer, len(cl.Members))
	for _, m := range cl.Members {
		tags := config.Tags(m.Data.Tags)
		s := decide.Streamer{ReplicateFrom: tags.ReplicateFrom(), Running: m.Data.State == "running",
			NoStream: tags.NoStream(), NoFailover: tags.NoFailover()}
		if m.Data.XLogLocation != nil {
			s.Position = *m.Data.XLogLocation
		}
		out[m.Name] = s
	}
	return out
}

// leaderName is the leader as this node acts on it: itself while it holds
// the key, else the key's holder ("" for none).
func (e *Elector) leaderName(cl *dcs.Cluster) string {
	switch {
	case e.token != 0:
		return e.cfg.Name
	case cl.Leader != nil:
		return cl.Leader.Name
	}
	return ""
}

// slots are the physical slots this node keeps for the other members (see
// decide.MemberSlots.Plan): on the leader, those with a key and those gone
// for less than member_slots_ttl; on a replica, those of the members
// cascading from it and, unless it is tagged nofailover, copies for every
// other member. It also decides e.slotAdvance, the positions the copies are
// advanced to, and e.slotDrop, the slots of members gone for longer, which
// the next line asks pg-supervise to drop. Without use_slots all are empty.
func (e *Elector) slots(cl *dcs.Cluster) []string {
	names := make([]string, 0, len(cl.Members))
	for _, m := range cl.Members {
		names = append(names, m.Name)
	}
	keep, advance, drop := decide.MemberSlots{Self: e.cfg.Name, Leader: e.leaderName(cl), NoFailover: e.cfg.Tags.NoFailover(),
		Members: streamers(cl), Permanent: e.dyn.PermanentSlots, PermanentPos: cl.Status.Slots,
		Present: names, LastSeen: e.lastSeen, Now: e.clock.Now(),
		TTL: e.dyn.MemberSlotsTTL, UseSlots: e.dyn.UseSlots, SlotName: pg.SlotName}.Plan()
	drop = slices.DeleteFunc(drop, func(s string) bool {
		return config.SlotIgnored(e.dyn.IgnoreSlots, s, "physical", "", "")
	})
	for _, s := range drop {
		if !slices.Contains(e.slotDrop, s) {
			e.log.Info().Str("slot", s).Dur("member_slots_ttl", e.dyn.MemberSlotsTTL).Msg("member gone for member_slots_ttl: its replication slot goes once inactive")
		}
	}
	e.slotDrop, e.slotAdvance = drop, advance
	return keep
}

// permanentPositions are where the permanent slots stand on this primary
// (restart_lsn of a physical one, confirmed_flush_lsn of a logical one), for
// the status key: members that may lead advance their copies to them. nil without permanent slots or when the local
// server does not answer.
func (e *Elector) permanentPositions(ctx context.Context) map[string]int64 {
	if (len(e.dyn.PermanentSlots) == 0 && len(e.dyn.LogicalSlots) == 0) || !e.dyn.UseSlots || e.conn == nil {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	pos, err := pg.PhysicalSlotPositions(qctx, e.conn, e.dyn.PermanentSlots)
	if err != nil {
		e.log.Debug().Err(err).Msg("reading the permanent slots' positions")
		return nil
	}
	if len(e.dyn.LogicalSlots) > 0 {
		names := make([]string, len(e.dyn.LogicalSlots))
		for i, s := range e.dyn.LogicalSlots {
			names[i] = s.Name
		}
		lpos, err := pg.LogicalSlotPositions(qctx, e.conn, names)
		if err != nil {
			e.log.Debug().Err(err).Msg("reading the logical permanent slots' positions")
			return nil
		}
		maps.Copy(pos, lpos)
	}
	return pos
}

// logicalCopies are the logical permanent slots a replica that may lead
// keeps copies of, each with the position the leader published for it
// (confirmed_flush_lsn); slots the leader published no position for yet
// are left out. nil on a member tagged nofailover or without use_slots.
func (e *Elector) logicalCopies(cl *dcs.Cluster) map[string]int64 {
	if len(e.dyn.LogicalSlots) == 0 || !e.dyn.UseSlots || e.cfg.Tags.NoFailover() {
		return nil
	}
	out := map[string]int64{}
	for _, s := range e.dyn.LogicalSlots {
		if pos := cl.Status.Slots[s.Name]; pos > 0 {
			out[s.Name] = pos
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
