package clusterctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SwitchoverOptions tune Ctl.Switchover.
type SwitchoverOptions struct {
	// DryRun plans and reports without writing anything.
	DryRun bool
	// NoWait returns once the request is in etcd.
	NoWait bool
	// Timeout bounds the wait, counted from now or from the scheduled time.
	Timeout time.Duration
	// Confirm, if set, is asked before anything is written; false aborts.
	Confirm func(Plan) bool
	// Began is when the command started (default: now). Result.Seconds
	// counts from it for an outcome reached before anything is written;
	// once the request is written, from the write, so that the time spent
	// reading the confirmation prompt is not counted.
	Began time.Time
}

// Result is the outcome of a command, printed as the final line or as
// --json.
type Result struct {
	Action string `json:"action"`
	// Result is "done", "requested", "scheduled", "dry_run", "noop",
	// "aborted", or the failure's Reason ("not_eligible", …).
	Result   string `json:"result"`
	ExitCode int    `json:"exit_code"`
	Message  string `json:"message"`
	// Leader is the leader before the command ran.
	Leader      string     `json:"leader,omitempty"`
	Candidate   string     `json:"candidate,omitempty"`
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	// Seconds is the time from the request (see SwitchoverOptions.Began)
	// to the outcome.
	Seconds float64 `json:"seconds"`
	// Members are the assessments the plan was made from.
	Members []Assessment `json:"members,omitempty"`
}

// Failed fills r's Result, ExitCode and Message from err (not nil).
func (r *Result) Failed(err error) {
	reason := ReasonOf(err)
	r.Result, r.ExitCode, r.Message = reason.String(), reason.ExitCode(), err.Error()
}

// Switchover plans req, asks Confirm, writes the failover key and, unless
// NoWait, waits for the outcome (see Wait). The Result is filled in every
// case; the error is nil only on success (done, requested, scheduled, a
// feasible dry run, noop). It blocks for the etcd requests and the wait, and
// ends early with ctx.
func (c *Ctl) Switchover(ctx context.Context, req Request, o SwitchoverOptions) (Result, error) {
	if o.Began.IsZero() {
		o.Began = c.now()
	}
	p, cl, err := c.Plan(ctx, req)
	r := Result{Action: string(p.Kind), Leader: p.Leader, Candidate: p.Candidate, ScheduledAt: p.ScheduledAt, Members: p.Members}
	if r.Action == "" {
		r.Action = string(Switchover)
		if req.Failover {
			r.Action = string(Failover)
		}
	}
	finish := func(res, msg string, err error) (Result, error) {
		r.Seconds = c.now().Sub(o.Began).Seconds()
		if err != nil {
			r.Failed(err)
			return r, err
		}
		r.Result, r.Message = res, msg
		return r, nil
	}
	if cl == nil {
		return finish("", "", err)
	}
	if err == nil && p.Noop {
		return finish("noop", p.Candidate+" is the leader already; nothing to do", nil)
	}
	if o.DryRun {
		if err != nil {
			return finish("", "", err)
		}
		return finish("dry_run", p.Describe()+" would be requested (dry run: nothing was changed)", nil)
	}
	if err != nil {
		return finish("", "", err)
	}
	if o.Confirm != nil && !o.Confirm(p) {
		return finish("", "", errors.New("aborted: nothing was changed"))
	}
	o.Began = c.now()
	if err := c.Start(ctx, p); err != nil {
		return finish("", "", err)
	}
	if o.NoWait {
		if p.ScheduledAt != nil {
			return finish("scheduled", p.Describe()+" scheduled", nil)
		}
		return finish("requested", p.Describe()+" requested", nil)
	}
	if p.ScheduledAt != nil {
		c.Log.Info().Time("scheduled_at", *p.ScheduledAt).Msg("waiting for the scheduled time")
	}
	if err := c.Wait(ctx, p, cl.Revision, o.Timeout); err != nil {
		return finish("", "", err)
	}
	d := c.now().Sub(o.Began)
	msg := fmt.Sprintf("%s to %s done in %s", p.Kind, p.Candidate, elapsed(d))
	if p.ScheduledAt != nil {
		msg = fmt.Sprintf("%s to %s done %s after the scheduled time %s", p.Kind, p.Candidate,
			elapsed(c.now().Sub(*p.ScheduledAt)), p.ScheduledAt.Format(time.RFC3339))
	}
	return finish("done", msg, nil)
}

// RenderPlan renders every member's assessment for --dry-run: Member, Role,
// State, TL, Lag, and whether it is eligible and why not. It is pure.
func RenderPlan(as []Assessment) string {
	t := table{columns: []string{"Member", "Role", "State", "TL", "Lag", "Eligible"}, right: map[string]bool{"TL": true, "Lag": true}}
	for _, a := range as {
		role := "Replica"
		if a.Leader {
			role = "Leader"
		}
		state := a.State
		if !a.Leader && state == "running" && a.ReplicationState != "" {
			state = a.ReplicationState
		}
		tl := ""
		if a.Timeline != 0 {
			tl = strconv.Itoa(a.Timeline)
		}
		lag := ""
		if a.Lag != nil {
			lag = Bytes(*a.Lag)
		} else if !a.Leader {
			lag = "unknown"
		}
		el := "yes"
		switch {
		case a.Leader:
			el = "-"
		case a.Forced:
			el = "yes, forced: " + strings.Join(a.Reasons, "; ")
		case !a.Eligible:
			el = "no: " + strings.Join(a.Reasons, "; ")
		}
		t.rows = append(t.rows, []string{a.Name, role, state, tl, lag, el})
	}
	return t.String()
}
