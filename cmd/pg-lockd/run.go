package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/elector"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

func run(ctx context.Context, log zerolog.Logger, cfg *config.Config, c *CLI) error {
	// A vanished reader must not kill us with SIGPIPE: writes fail instead,
	// and the lease keeps being renewed.
	signal.Ignore(syscall.SIGPIPE)
	dir, err := c.Runtime.Dir(cfg)
	if err != nil {
		return err
	}
	unlock, err := lockRuntime(dir)
	if err != nil {
		return err
	}
	defer unlock()
	out, err := output(c.Output)
	if err != nil {
		return err
	}
	owner, err := pgdata.OwnerFor(cfg)
	if err != nil {
		return err
	}
	client, err := dcs.NewFromConfig(ctx, cfg, log.With().Str("component", "dcs").Logger(), 0)
	log = log.With().Str("component", "lockd").Logger()
	if err != nil {
		return err
	}
	defer client.Close()
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	w := rolepipe.NewWriter(wctx, out, log)
	node := &pgdata.Node{Cfg: cfg, RuntimeDir: dir, Owner: owner}
	el := elector.New(cfg, node, client, w, clock.System{}, notifier(), log)
	c.ReloadOnHangup(log, config.NeedAll, el.Reload)
	return el.Run(ctx)
}

// output opens where role lines go: --output (a FIFO, opened read-write so
// the open never blocks and never fails for want of a reader), else stdout.
func output(path string) (io.Writer, error) {
	if path == "" {
		return os.Stdout, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("--output=%s: %w", path, err)
	}
	return f, nil
}

// lockRuntime makes sure one pg-lockd runs per node.
func lockRuntime(dir string) (func(), error) {
	path := filepath.Join(dir, "lockd.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another pg-lockd runs for this node (%s is locked)", path)
	}
	return func() { f.Close() }, nil
}
