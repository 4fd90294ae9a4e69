package clusterctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/state"
)

// NewRequest is the value of requests/<member> for action
// (dcs.ActionRestart or dcs.ActionReinit): a random id and the time.
func NewRequest(action string, now time.Time) dcs.NodeRequest {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand does not fail on Linux
	return dcs.NodeRequest{Action: action, ID: hex.EncodeToString(b), RequestedAt: now.UTC()}
}

// CheckRequest says whether action may be asked of member in cl: the member
// must exist (NoSuchMember), have no request pending (Pending), and, for a
// reinit, not be the leader (NotEligible). It is pure.
func CheckRequest(cl *dcs.Cluster, member, action string) error {
	if cl.Member(member) == nil {
		var as []Assessment
		for _, m := range cl.Members {
			as = append(as, Assessment{Name: m.Name})
		}
		return fail(NoSuchMember, "no such member: %s (members: %s)", member, names(as))
	}
	if r, ok := cl.Requests[member]; ok {
		if r.Error != "" {
			return fail(Pending, "%s's last %s request failed and is still in etcd: %s", member, r.Action, r.Error)
		}
		return fail(Pending, "a %s of %s is already pending (requested at %s)", r.Action, member, r.RequestedAt.Format(time.RFC3339))
	}
	if action == dcs.ActionReinit && cl.Leader != nil && cl.Leader.Name == member {
		return fail(NotEligible, "%s is the leader: a leader cannot be rebuilt from itself; switch over to another member first", member)
	}
	return nil
}

// RequestProgress tracks a restart or reinit until it is done.
type RequestProgress struct {
	Member string
	Req    dcs.NodeRequest
	// Gone is the revision of the first read without the request (0 while
	// it is pending).
	Gone int64
}

// Judge updates p from cl and says whether the request is done: the member
// deleted it and has since published, from a running PostgreSQL, a member
// key newer than the deletion (a key read earlier could predate the
// restart). A request the member marked with an error is a RequestFailed
// failure; one replaced by another request is a Diverted one. It is pure
// apart from updating p.
func (p *RequestProgress) Judge(cl *dcs.Cluster) (bool, error) {
	if r, ok := cl.Requests[p.Member]; ok {
		switch {
		case r.ID != p.Req.ID:
			return false, fail(Diverted, "another %s request for %s (id %s) replaced this one", r.Action, p.Member, r.ID)
		case r.Error != "":
			return false, fail(RequestFailed, "%s could not %s: %s", p.Member, p.Req.Action, r.Error)
		}
		return false, nil
	}
	if p.Gone == 0 {
		p.Gone = cl.Revision
	}
	m := cl.Member(p.Member)
	return m != nil && m.ModRevision > p.Gone && m.Data.State == "running", nil
}

// Request asks member to carry out action and, with timeout > 0, waits
// until it is done (RequestProgress.Judge), else a TimedOut failure. A
// request the member failed is read and deleted here, as its daemon leaves
// it for this tool. It blocks for the etcd requests and the wait.
func (c *Ctl) Request(ctx context.Context, member, action string, timeout time.Duration) error {
	cl, err := c.DCS.Get(ctx)
	if err != nil {
		return err
	}
	if err := CheckRequest(cl, member, action); err != nil {
		return err
	}
	p := &RequestProgress{Member: member, Req: NewRequest(action, c.now())}
	err = c.DCS.PutRequest(ctx, member, p.Req)
	if errors.Is(err, dcs.ErrConflict) {
		return fail(Pending, "another request for %s appeared in etcd meanwhile; nothing was written", member)
	}
	if err != nil {
		return fmt.Errorf("write the %s request for %s: %w", action, member, err)
	}
	c.Log.Info().Str("request", action).Str("request_id", p.Req.ID).Str("target", member).Msg("request written to etcd")
	if timeout <= 0 {
		return nil
	}
	var judged error
	last, err := c.watchUntil(ctx, cl.Revision, c.now().Add(timeout), func(cl *dcs.Cluster) bool {
		done, err := p.Judge(cl)
		judged = err
		return done || err != nil
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fail(TimedOut, "%s of %s not done within --timeout %s: %s", action, member, timeout, requestState(p, last))
	case err != nil:
		return fmt.Errorf("waiting for the %s of %s (the request stays in etcd): %w", action, member, err)
	}
	if ReasonOf(judged) == RequestFailed {
		if r, ok := last.Requests[member]; ok {
			if err := c.DCS.FinishRequest(ctx, member, r, ""); err != nil {
				c.Log.Warn().Err(err).Msg("deleting the failed request")
			}
		}
	}
	return judged
}

// requestState describes, for a timeout message, where the request stands.
func requestState(p *RequestProgress, cl *dcs.Cluster) string {
	if cl == nil {
		return "etcd did not answer"
	}
	if _, ok := cl.Requests[p.Member]; ok {
		return "the request is still in etcd: is pg-lockd running on " + p.Member + "?"
	}
	m := cl.Member(p.Member)
	if m == nil {
		return p.Member + " has no member key"
	}
	st := orUnknown(m.Data.State)
	if st == state.CreatingReplica {
		st = state.WithProgress(st, state.MemberProgress(m.Data.Extra)) // a reinit that takes long
	}
	return fmt.Sprintf("%s took the request; its PostgreSQL is %s", p.Member, st)
}
