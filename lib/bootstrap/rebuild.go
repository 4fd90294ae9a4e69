package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/postmaster"
)

// Errors of Rebuild a caller maps to exit codes: each means nothing was
// changed.
var (
	// ErrIsLeader: this node holds the leader key.
	ErrIsLeader = errors.New("this node is the leader")
	// ErrBusy: another rebuild of this node runs.
	ErrBusy = errors.New("another rebuild of this node is running")
	// ErrNoSpace: the file system cannot hold a new copy beside the old.
	ErrNoSpace = pgdata.ErrNoSpace
)

// RebuildOptions say when and how Rebuild works.
type RebuildOptions struct {
	// Force rebuilds even a healthy replica.
	Force bool
	// Keep is how many replaced data directories are kept aside.
	Keep int
	// Reserve is the free space, in bytes, the file system must keep after
	// the new copy.
	Reserve int64
	// Grace is how long a replica that does not stream is given to start
	// streaming before it is rebuilt.
	Grace time.Duration
}

// Rebuild re-creates this node's data directory if it is a replica that
// cannot follow the leader: its data directory is missing or broken, or its
// PostgreSQL does not stream (down, diverged, or lost its WAL). It returns
// true when it rebuilt, false when there was nothing to do. It refuses
// (ErrIsLeader, ErrBusy, ErrNoSpace, ErrNoLeader) without changing anything.
// A new copy is made beside the old data directory and replaces it only
// once complete and proven to start; the old one is kept aside (at most
// o.Keep of them). When pg-supervise runs, it does the work (it owns
// PostgreSQL); otherwise the copy is made here.
func (b *Bootstrapper) Rebuild(ctx context.Context, o RebuildOptions) (bool, error) {
	unlock, err := b.lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	cl, err := b.DCS.Get(ctx)
	if err != nil {
		return false, fmt.Errorf("read the cluster from etcd: %w", err)
	}
	name := b.Node.Cfg.Name
	if cl.Leader != nil && cl.Leader.Name == name {
		return false, fmt.Errorf("%w: refusing to rebuild it (switch over first, then rebuild)", ErrIsLeader)
	}
	sources := cloneSources(cl, name, b.Node.Cfg.Tags.ReplicateFrom())
	if !hasLeader(cl, sources) {
		return false, fmt.Errorf("%w: the cluster has no running leader to copy from", ErrNoLeader)
	}
	leader := cl.Member(cl.Leader.Name)
	st, _, err := b.Node.Inspect(ctx)
	if err != nil && st != pgdata.Broken {
		return false, err
	}
	why := ""
	switch {
	case o.Force:
		why = "--force"
	case st == pgdata.Missing:
		why = "no data directory"
	case st == pgdata.Broken:
		why = "the data directory holds no usable cluster"
	default:
		// A replica may be between leaders for a moment: only one that
		// does not stream for the whole grace period is rebuilt.
		deadline := time.Now().Add(o.Grace)
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
				return false, ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
	}
	if why == "" {
		b.Log.Info().Msg("this replica streams from the leader: nothing to rebuild")
		return false, nil
	}
	need := pgdata.DirSize(b.Node.DataDir())
	if src, err := b.Node.Remote(leader.Data.ConnURL, b.Node.Cfg.Postgres.Authentication.Replication, false); err == nil {
		if err := b.Node.WritePgpass(); err == nil {
			if n, err := pgdata.SourceSize(ctx, src); err == nil {
				need = max(need, n)
			}
		}
	}
	if err := b.Node.CheckSpace(need, o.Reserve); err != nil {
		return false, err
	}
	b.Log.Warn().Str("reason", why).Msg("rebuilding this replica")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, serr := postmaster.Request(sctx, b.Node.RuntimeDir, "status")
	cancel()
	if serr == nil {
		keep := o.Keep
		opts, _ := json.Marshal(postmaster.ReinitOptions{Sources: sources, Keep: &keep})
		rctx, cancel := context.WithTimeout(ctx, b.Timeout)
		defer cancel()
		if _, err := postmaster.Request(rctx, b.Node.RuntimeDir, "reinit "+string(opts)); err != nil {
			return false, fmt.Errorf("rebuild through pg-supervise: %w", err)
		}
		b.Log.Info().Msg("rebuilt by pg-supervise")
		return true, nil
	}
	d, err := b.Node.Cfg.Dynamic().WithJSON(cl.Config, b.Node.Cfg)
	if err != nil {
		d = b.Node.Cfg.Dynamic()
	}
	src, err := b.Node.Remote(leader.Data.ConnURL, b.Node.Cfg.Postgres.Authentication.Replication, false)
	if err != nil {
		return false, err
	}
	src.Database = ""
	sb := &pgdata.Standby{PrimaryConnInfo: src.ConnString()}
	check := func(ctx context.Context, dir string) error {
		return b.Node.TrialStart(ctx, dir, b.Node.Parameters(d), sb, time.Minute)
	}
	if err := b.create(ctx, cl, sources, o.Keep, check); err != nil {
		return false, err
	}
	return true, nil
}

// lock takes this node's rebuild lock (a file in the runtime directory)
// without waiting: two rebuilds never overlap.
func (b *Bootstrapper) lock() (func(), error) {
	path := filepath.Join(b.Node.RuntimeDir, "rebuild.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (it holds %s)", ErrBusy, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
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
