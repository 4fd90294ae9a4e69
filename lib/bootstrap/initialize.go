package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// ErrLostInitialize: the initialize key's lease expired while this node was
// bootstrapping the cluster (another node may have won it since).
var ErrLostInitialize = errors.New("lost the initialize key")

// incompleteMarker is the file, next to the data directory, that exists
// while this node creates a new cluster: written before initdb, removed once
// the data directory is set up. A data directory found with it is
// half-initialized and never used.
func (b *Bootstrapper) incompleteMarker() string {
	dir := b.Node.DataDir()
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".pg-ha-incomplete")
}

// setAsideIncomplete moves a half-initialized data directory (the marker
// exists) aside, never deleting it, and removes the marker.
func (b *Bootstrapper) setAsideIncomplete() error {
	marker := b.incompleteMarker()
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	aside, err := b.Node.MoveAside("incomplete-" + strconv.FormatInt(time.Now().Unix(), 10))
	if err != nil {
		return err
	}
	b.Log.Warn().Str("old_data", aside).Msg("the data directory was left half-initialized by an interrupted bootstrap: moved it aside")
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", marker, err)
	}
	return nil
}

// initializeLease is an initialize key won on a lease this node keeps alive
// until the bootstrap is done.
type initializeLease struct {
	id     int64
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// raceInitialize races for the initialize key on a new lease of the
// cluster's ttl. Won, it returns the lease, kept alive every third of the
// ttl until release, and a context that ends with ErrLostInitialize if the
// lease is lost; not won, a nil lease.
func (b *Bootstrapper) raceInitialize(ctx context.Context) (*initializeLease, context.Context, error) {
	ttl := b.Node.Cfg.Dynamic().TTL
	l, err := b.DCS.Grant(ctx, ttl)
	if err != nil {
		return nil, nil, err
	}
	won, err := b.DCS.InitializeOnLease(ctx, l.ID)
	if err != nil || !won {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = b.DCS.Revoke(rctx, l.ID)
		cancel()
		return nil, nil, err
	}
	lctx, cancel := context.WithCancelCause(ctx)
	il := &initializeLease{id: l.ID, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(il.done)
		valid := l.ValidUntil
		for {
			select {
			case <-lctx.Done():
				return
			case <-time.After(ttl / 3):
			}
			nl, err := b.DCS.KeepAlive(lctx, l.ID)
			switch {
			case err == nil:
				valid = nl.ValidUntil
			case errors.Is(err, dcs.ErrLeaseNotFound) || !b.DCS.Clock().Now().Before(valid):
				cancel(fmt.Errorf("%w: its lease %x expired", ErrLostInitialize, l.ID))
				return
			}
		}
	}()
	return il, lctx, nil
}

// release stops the keepalive and revokes the lease; a key already made
// permanent by CompleteInitialize stays, one still on the lease goes.
func (il *initializeLease) release(ctx context.Context, c *dcs.Client) {
	il.cancel(nil)
	<-il.done
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.Revoke(rctx, il.id)
}
