package bootstrap

import (
	"context"
	"fmt"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/postmaster"
)

// Rebuild re-clones this node if it is a replica that cannot follow the
// leader: its data directory is missing or broken, or its PostgreSQL is not
// streaming from the leader (down, diverged, or lost its WAL). A healthy
// replica and the leader are left alone unless force. The old data
// directory is moved aside, never deleted. When pg-supervise runs, it does
// the work (it owns PostgreSQL); otherwise the clone is made directly.
func (b *Bootstrapper) Rebuild(ctx context.Context, force bool) error {
	cl, err := b.DCS.Get(ctx)
	if err != nil {
		return fmt.Errorf("read the cluster from etcd: %w", err)
	}
	name := b.Node.Cfg.Name
	if cl.Leader == nil {
		return fmt.Errorf("%w: the cluster has no leader", ErrNoLeader)
	}
	if cl.Leader.Name == name {
		b.Log.Info().Msg("this node is the leader: nothing to rebuild")
		return nil
	}
	st, _, err := b.Node.Inspect(ctx)
	if err != nil && st != pgdata.Broken {
		return err
	}
	why := ""
	switch {
	case force:
		why = "--force"
	case st == pgdata.Missing:
		why = "no data directory"
	case st == pgdata.Broken:
		why = "the data directory holds no usable cluster"
	default:
		// A replica may be between leaders for a moment: only one that
		// does not stream for a whole minute is rebuilt.
		deadline := time.Now().Add(time.Minute)
		for {
			ok, reason := b.streaming(ctx)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				why = reason
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
	}
	if why == "" {
		b.Log.Info().Msg("this replica streams from the leader: nothing to rebuild")
		return nil
	}
	b.Log.Warn().Str("reason", why).Msg("rebuilding this replica from the leader")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, serr := postmaster.Request(sctx, b.Node.RuntimeDir, "status")
	cancel()
	if serr == nil {
		rctx, cancel := context.WithTimeout(ctx, b.Timeout)
		defer cancel()
		if _, err := postmaster.Request(rctx, b.Node.RuntimeDir, "reinit"); err != nil {
			return fmt.Errorf("rebuild through pg-supervise: %w", err)
		}
		b.Log.Info().Msg("rebuilt")
		return nil
	}
	if st != pgdata.Missing {
		aside, err := b.Node.MoveAside("rebuild")
		if err != nil {
			return err
		}
		b.Log.Info().Str("old_data", aside).Msg("moved the old data directory aside")
	}
	return b.clone(ctx)
}

// streaming reports whether the local server answers as a replica that
// streams WAL, with the reason when it does not.
func (b *Bootstrapper) streaming(ctx context.Context) (bool, string) {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pg.Connect(qctx, b.Node.Local(3*time.Second))
	if err != nil {
		return false, "PostgreSQL does not answer"
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := pg.QueryStatus(qctx, conn)
	if err != nil {
		return false, "PostgreSQL does not answer"
	}
	if !st.InRecovery {
		return true, "" // a primary that is not the leader is pg-supervise's business
	}
	if st.ReceiverStatus != "streaming" {
		return false, fmt.Sprintf("the WAL receiver is %q, not streaming", st.ReceiverStatus)
	}
	return true, ""
}
