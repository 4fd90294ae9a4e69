package clusterctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// Cancel deletes a pending or scheduled switchover or failover request (the
// failover key), like patronictl flush CLUSTER switchover. A switchover the
// leader has already begun (the key released) is not undone: the cluster
// then elects normally. Result is "cancelled", or "noop" when nothing was
// pending. A key that changed between the read and the delete is a Pending
// failure and is left alone. It blocks for two etcd requests.
func (c *Ctl) Cancel(ctx context.Context) (Result, error) {
	r := Result{Action: "cancel"}
	cl, err := c.DCS.Get(ctx)
	if err != nil {
		r.Failed(err)
		return r, err
	}
	if cl.Leader != nil {
		r.Leader = cl.Leader.Name
	}
	f := cl.Failover
	if f == nil {
		r.Result, r.Message = "noop", "no switchover or failover is pending; nothing to cancel"
		return r, nil
	}
	r.Candidate, r.ScheduledAt = f.Member, f.ScheduledAt
	err = c.DCS.DeleteFailoverAt(ctx, cl.FailoverRev)
	if errors.Is(err, dcs.ErrConflict) {
		err = fail(Pending, "the pending request changed while it was being cancelled; nothing was deleted: run pg-failover cancel again")
	} else if err != nil {
		err = fmt.Errorf("delete the failover key: %w", err)
	}
	if err != nil {
		r.Failed(err)
		return r, err
	}
	c.Log.Info().Str("request", describeKey(*f)).Msg("request cancelled")
	r.Result, r.Message = "cancelled", "cancelled the "+describeKey(*f)
	return r, nil
}
