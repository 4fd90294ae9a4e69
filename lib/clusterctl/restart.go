package clusterctl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// RestartFilter selects the members of restart and flush restart, like
// patronictl's member names, --role and --pending.
type RestartFilter struct {
	// Names are the members; none: every member.
	Names []string
	// Role is "", "any", "leader" (also "primary", "master") or "replica".
	Role string
	// Pending keeps only members whose key says a restart is pending.
	Pending bool
}

// Empty says whether f names no member and filters nothing.
func (f RestartFilter) Empty() bool {
	return len(f.Names) == 0 && (f.Role == "" || f.Role == "any") && !f.Pending
}

// SelectMembers returns the members of cl that f selects, in cl's order
// (the leader's role is taken from the leader key). Failures: NoSuchMember
// for a name without a member key, Usage for an unknown role. An empty
// result is no failure. It is pure.
func SelectMembers(cl *dcs.Cluster, f RestartFilter) ([]*dcs.Member, error) {
	leader := ""
	if cl.Leader != nil {
		leader = cl.Leader.Name
	}
	var wantLeader *bool
	switch f.Role {
	case "", "any":
	case "leader", "primary", "master":
		t := true
		wantLeader = &t
	case "replica", "standby":
		b := false
		wantLeader = &b
	default:
		return nil, UsageError("--role %s: want leader, primary, replica or any", f.Role)
	}
	named := map[string]bool{}
	for _, n := range f.Names {
		if cl.Member(n) == nil {
			var as []Assessment
			for _, m := range cl.Members {
				as = append(as, Assessment{Name: m.Name})
			}
			return nil, fail(NoSuchMember, "no such member: %s (members: %s)", n, names(as))
		}
		named[n] = true
	}
	var out []*dcs.Member
	for i := range cl.Members {
		m := &cl.Members[i]
		switch {
		case len(named) > 0 && !named[m.Name]:
		case wantLeader != nil && *wantLeader != (m.Name == leader):
		case f.Pending && !m.Data.PendingRestart:
		default:
			out = append(out, m)
		}
	}
	return out, nil
}

// memberNames joins the members' names.
func memberNames(ms []*dcs.Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Name
	}
	return strings.Join(s, ", ")
}

// RestartBody is POST /restart's body as patronictl sends it.
func RestartBody(at time.Time, role string, pending bool) map[string]any {
	b := map[string]any{"schedule": at.Format(time.RFC3339)}
	switch role {
	case "leader", "primary", "master":
		b["role"] = "primary"
	case "replica", "standby":
		b["role"] = "replica"
	}
	if pending {
		b["restart_pending"] = true
	}
	return b
}

// ScheduleRestart asks each of ms, through its REST API (POST /restart
// with "schedule", as patronictl restart --scheduled does), to restart its
// PostgreSQL at at; the member checks role and pending restart again then.
// It returns every member's answer; the error is the first failure: a
// Pending one when a restart is already scheduled there (409), an Unknown
// one for any other refusal or an unreachable API. Members after a failure
// are still asked. It blocks for one HTTP request per member.
func (c *Ctl) ScheduleRestart(ctx context.Context, ms []*dcs.Member, at time.Time, f RestartFilter) ([]APIAnswer, error) {
	var answers []APIAnswer
	var first error
	for _, m := range ms {
		a, err := c.CallMember(ctx, m, http.MethodPost, "restart", RestartBody(at, f.Role, f.Pending))
		answers = append(answers, a)
		switch {
		case err != nil:
		case a.Status == http.StatusAccepted:
			c.Log.Info().Str("member", m.Name).Time("schedule", at).Msg("restart scheduled")
		case a.Status == http.StatusConflict:
			err = fail(Pending, "another restart is already scheduled on %s (pg-failover flush restart %s cancels it)", m.Name, m.Name)
		default:
			err = fail(Unknown, "%s refused the scheduled restart: %d %s", m.Name, a.Status, a.Body)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return answers, first
}

// FlushRestart cancels the scheduled restart of each of ms through its
// REST API (DELETE /restart, as patronictl flush restart does). deleted
// are the members that had one; a member without one is no failure. The
// error is the first other answer or unreachable API; the rest are still
// asked. It blocks for one HTTP request per member.
func (c *Ctl) FlushRestart(ctx context.Context, ms []*dcs.Member) (deleted []string, err error) {
	for _, m := range ms {
		a, cerr := c.CallMember(ctx, m, http.MethodDelete, "restart", nil)
		switch {
		case cerr != nil:
		case a.Status == http.StatusOK:
			deleted = append(deleted, m.Name)
		case a.Status == http.StatusNotFound:
		default:
			cerr = fail(Unknown, "%s: cancelling its scheduled restart failed: %d %s", m.Name, a.Status, a.Body)
		}
		if cerr != nil && err == nil {
			err = cerr
		}
	}
	return deleted, err
}

// RestartMembers restarts each of ms in turn through its request key (see
// Request), waiting for each with timeout (none when 0), and stops at the
// first failure. done are the members restarted (or requested, without a
// wait). It blocks for the requests and the waits.
func (c *Ctl) RestartMembers(ctx context.Context, ms []*dcs.Member, timeout time.Duration) (done []string, err error) {
	for _, m := range ms {
		if err := c.Request(ctx, m.Name, dcs.ActionRestart, timeout); err != nil {
			var f *Failure
			if errors.As(err, &f) && len(done) > 0 {
				return done, &Failure{Reason: f.Reason, Msg: fmt.Sprintf("%s (restarted before it: %s)", f.Msg, strings.Join(done, ", "))}
			}
			return done, err
		}
		done = append(done, m.Name)
	}
	return done, nil
}
