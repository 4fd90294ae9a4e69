package clusterctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// Kind is what a Plan does.
type Kind string

// Kinds of plans.
const (
	// Switchover: the leader hands the key to the candidate
	// (failover key {"leader": L, "member": C}).
	Switchover Kind = "switchover"
	// Failover: nobody leads; only the candidate races
	// (failover key {"member": C}).
	Failover Kind = "failover"
)

// Request is what the operator asked for.
type Request struct {
	// Candidate is --to; "" picks the best eligible member.
	Candidate string
	// From is --from; "" accepts whoever leads.
	From string
	// At is --at; nil means now.
	At *time.Time
	// Failover is --failover; Force is --force.
	Failover, Force bool
	// Demote is patronictl's failover: while a leader holds the key, the
	// failover is carried out as a switchover from it (Force is not needed);
	// it never promotes a lagging candidate.
	Demote bool
}

// Plan is a checked request: what pg-failover writes and then waits for.
type Plan struct {
	Kind Kind `json:"action"`
	// Leader is the current leader ("" for a failover without one).
	Leader string `json:"leader,omitempty"`
	// Candidate is the member that should end up leading.
	Candidate string `json:"candidate"`
	// ScheduledAt is when the leader acts (nil: at once).
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	// Chosen is true when the candidate was picked by Best (no --to).
	Chosen bool `json:"chosen,omitempty"`
	// Forced is true for a failover with --force: the candidate may lag
	// more than maximum_lag_on_failover, and the failover key says so.
	Forced bool `json:"forced,omitempty"`
	// Noop is true when the candidate leads already: nothing to write.
	Noop bool `json:"noop,omitempty"`
	// Members is every member's assessment, for --dry-run and messages.
	Members []Assessment `json:"members"`
}

// FailoverKey is the value of the failover key that carries out p.
func (p Plan) FailoverKey() dcs.Failover {
	f := dcs.Failover{Member: p.Candidate, ScheduledAt: p.ScheduledAt, Force: p.Forced}
	if p.Kind == Switchover {
		f.Leader = p.Leader
	}
	return f
}

// Describe is a one-line summary of p ("switchover from node1 to node2 at
// 10:00:00Z").
func (p Plan) Describe() string {
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.Leader != "" {
		b.WriteString(" from " + p.Leader)
	}
	b.WriteString(" to " + p.Candidate)
	if p.Chosen {
		b.WriteString(" (the best candidate)")
	}
	if p.ScheduledAt != nil {
		b.WriteString(" at " + p.ScheduledAt.Format(time.RFC3339))
	}
	return b.String()
}

// MakePlan checks req against the cluster and returns the plan, or a
// *Failure saying why it cannot be carried out. Failures are checked in
// this order: Usage (--at with --failover and no leader), Pending,
// then for a switchover NoLeader, NotFromLeader, NoSuchMember,
// NotEligible; for a failover LeaderAlive (without --force), NoSuchMember,
// NotEligible. A candidate that leads already gives a Noop plan. A paused
// cluster (maintenance mode) still honours a switchover or failover, as in
// Patroni. It is pure.
func MakePlan(cl *dcs.Cluster, s Settings, req Request) (Plan, error) {
	p := Plan{Kind: Switchover, ScheduledAt: req.At, Members: Assess(cl, s)}
	if cl.Leader != nil {
		p.Leader = cl.Leader.Name
	}
	if req.Failover {
		switch {
		case p.Leader != "" && !req.Force && !req.Demote:
			return p, fail(LeaderAlive, "%s holds the leader key: a failover is only for a cluster without a leader; "+
				"switch over instead (without --failover), or add --force to do exactly that", p.Leader)
		case p.Leader == "":
			p.Kind = Failover
			p.Forced = req.Force
			if req.Force {
				for i := range p.Members {
					if a := &p.Members[i]; a.lagOnly {
						a.Eligible, a.Forced = true, true
					}
				}
			}
			if req.From != "" {
				return p, fail(NotFromLeader, "--from %s: nobody leads; leave --from out for a failover", req.From)
			}
			if req.At != nil {
				return p, fail(Usage, "--at: a failover cannot be scheduled, only a switchover")
			}
		}
	}
	if f := cl.Failover; f != nil {
		return p, fail(Pending, "a %s is already pending in etcd; wait for it to finish", describeKey(*f))
	}
	if p.Kind == Switchover {
		if p.Leader == "" {
			return p, fail(NoLeader, "no leader: nobody holds the leader key, so there is nobody to switch over from; "+
				"use --failover --to NAME")
		}
		if req.From != "" && req.From != p.Leader {
			return p, fail(NotFromLeader, "--from %s: the leader is %s, not %s; nothing was changed", req.From, p.Leader, req.From)
		}
	}
	if req.Candidate != "" {
		a := Find(p.Members, req.Candidate)
		if a == nil {
			return p, fail(NoSuchMember, "no such member: %s (members: %s)", req.Candidate, names(p.Members))
		}
		p.Candidate = req.Candidate
		if a.Leader {
			p.Noop = true
			return p, nil
		}
		if !a.Eligible {
			msg := fmt.Sprintf("%s is not eligible: %s", a.Name, a.Why())
			if a.lagOnly && p.Kind == Failover {
				force := "add --force"
				if req.Demote {
					force = "run pg-failover switchover --failover --force --to " + a.Name
				}
				msg += "; " + force + " to promote it anyway, losing the WAL it lacks"
			}
			return p, fail(NotEligible, "%s", msg)
		}
		return p, nil
	}
	p.Candidate, p.Chosen = Best(p.Members), true
	if p.Candidate == "" {
		var why []string
		for _, a := range p.Members {
			if !a.Leader {
				why = append(why, a.Name+" "+a.Why())
			}
		}
		if len(why) == 0 {
			return p, fail(NotEligible, "no candidate: %s has no other member", p.Leader)
		}
		return p, fail(NotEligible, "no eligible candidate: %s", strings.Join(why, "; "))
	}
	return p, nil
}

// describeKey describes a failover key for messages.
func describeKey(f dcs.Failover) string {
	var b strings.Builder
	if f.Leader != "" {
		b.WriteString("switchover from " + f.Leader)
	} else {
		b.WriteString("failover")
	}
	if f.Member != "" {
		b.WriteString(" to " + f.Member)
	}
	if f.ScheduledAt != nil {
		b.WriteString(" scheduled at " + f.ScheduledAt.Format(time.RFC3339))
	}
	return b.String()
}

func names(as []Assessment) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.Name
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// ParseAt parses --at: RFC 3339 ("2026-01-02T03:04:05Z",
// "2026-01-02T04:04:05+01:00"). A time not after now is a Usage failure. It
// is pure.
func ParseAt(s string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fail(Usage, "--at %q: not an RFC 3339 time; write it like 2026-01-02T03:04:05Z or 2026-01-02T04:04:05+01:00", s)
	}
	if !t.After(now) {
		return time.Time{}, fail(Usage, "--at %s: that is %s in the past; give a future time, or leave --at out to switch over now",
			s, now.Sub(t).Round(time.Second))
	}
	return t, nil
}

// elapsed formats a duration for the final line ("0.52s").
func elapsed(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
