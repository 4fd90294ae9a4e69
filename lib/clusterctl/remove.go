package clusterctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// RemoveConfirmation is patronictl remove's second answer, typed exactly.
const RemoveConfirmation = "Yes I am aware"

// Question is one typed confirmation: the prompt, the exact answer that
// goes on, and the failure for any other.
type Question struct {
	Prompt string
	Want   string
	Wrong  string
}

// RemoveQuestions are patronictl remove's confirmations for cluster scope:
// its name, then RemoveConfirmation, then, while leader ("" if none) holds
// the leader key, the leader's name. It is pure.
func RemoveQuestions(scope, leader string) []Question {
	q := []Question{
		{Prompt: "Please confirm the cluster name to remove", Want: scope, Wrong: "Cluster names specified do not match"},
		{Prompt: fmt.Sprintf("You are about to remove all information in DCS for %s, please type: %q", scope, RemoveConfirmation),
			Want: RemoveConfirmation, Wrong: fmt.Sprintf("You did not exactly type %q", RemoveConfirmation)},
	}
	if leader != "" {
		q = append(q, Question{Prompt: "This cluster currently is healthy. Please specify the leader name to continue",
			Want: leader, Wrong: "You did not specify the current leader of the cluster"})
	}
	return q
}

// CheckRemove says whether the keys of cl may be removed: while a leader
// holds the leader key its daemons are running and would write them again,
// so that is a LeaderAlive failure unless force. It is pure.
func CheckRemove(cl *dcs.Cluster, force bool) error {
	if cl.Leader != nil && !force {
		return fail(LeaderAlive, "%s holds the leader key: the cluster is running; stop its daemons on every node first, "+
			"or add --force to remove the keys anyway (you will be asked for the leader's name)", cl.Leader.Name)
	}
	return nil
}

// Remove deletes every key of the cluster from etcd, like patronictl
// remove, after CheckRemove and the answers ask returns to
// RemoveQuestions (a wrong one is a Usage failure and nothing is deleted).
// A leader elected after the read is never wiped without force
// (LeaderAlive). It blocks for the etcd requests and for ask.
func (c *Ctl) Remove(ctx context.Context, force bool, ask func(prompt string) (string, error)) (Result, error) {
	r := Result{Action: "remove"}
	failed := func(err error) (Result, error) {
		r.Failed(err)
		return r, err
	}
	cl, err := c.DCS.Get(ctx)
	if err != nil {
		return failed(err)
	}
	leader := ""
	if cl.Leader != nil {
		leader = cl.Leader.Name
		r.Leader = leader
	}
	if err := CheckRemove(cl, force); err != nil {
		return failed(err)
	}
	for _, q := range RemoveQuestions(c.Cfg.Scope, leader) {
		a, err := ask(q.Prompt)
		if err != nil {
			return failed(fmt.Errorf("%s: %w", q.Prompt, err))
		}
		if a != q.Want {
			return failed(fail(Usage, "%s; nothing was removed", q.Wrong))
		}
	}
	n, err := c.DCS.DeleteCluster(ctx, leader == "")
	if errors.Is(err, dcs.ErrConflict) {
		return failed(fail(LeaderAlive, "a leader was elected meanwhile; nothing was removed"))
	}
	if err != nil {
		return failed(err)
	}
	c.Log.Info().Str("prefix", c.DCS.Prefix()).Int64("keys", n).Msg("cluster removed from etcd")
	r.Result, r.Message = "removed", fmt.Sprintf("removed cluster %s from etcd (%d keys under %s)", c.Cfg.Scope, n, c.DCS.Prefix())
	return r, nil
}
