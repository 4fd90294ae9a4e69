package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

func run(ctx context.Context, log zerolog.Logger, cfg *config.Config, c *CLI) error {
	dir, err := c.Runtime.Dir(cfg)
	if err != nil {
		return err
	}
	owner, err := pgdata.OwnerFor(cfg)
	if err != nil {
		return err
	}
	in, err := input(c.Input)
	if err != nil {
		return err
	}
	node := &pgdata.Node{Cfg: cfg, RuntimeDir: dir, Owner: owner}
	log = log.With().Str("component", "supervise").Logger()
	reader := rolepipe.NewReader(in, clock.System{}, log)
	sup := postmaster.NewSupervisor(node, reader, clock.System{}, notifier(), log)
	sup.SetCallbackTimeout(c.CallbackTimeout)
	reader.OnLine = sup.OnLine
	c.ReloadOnHangup(log, config.NeedAll, sup.Reload)
	go func() {
		if err := reader.Run(); err != nil {
			log.Error().Err(err).Msg("reading role lines")
		}
	}()
	return sup.Run(ctx)
}

// input opens where role lines come from: --input (a FIFO, opened read-write
// so that a restarting pg-lockd never causes end of input), else a FIFO
// passed by systemd, else stdin. Descriptors passed by systemd are marked
// close-on-exec either way, so none leaks into the postmaster.
func input(path string) (io.Reader, error) {
	files := activation.Files(true)
	if path != "" {
		for _, f := range files {
			f.Close()
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("--input=%s: %w", path, err)
		}
		return f, nil
	}
	if len(files) > 0 {
		return files[0], nil
	}
	return os.Stdin, nil
}
