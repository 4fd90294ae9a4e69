package main

import (
	"context"
	"errors"
	"os"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/pg-ha/pg-ha/lib/bootstrap"
	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pgdata"
)

// Exit codes beyond the common ones (listed in --help).
const (
	exitOtherCluster = 10
	exitNoLeader     = 11
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
	client, err := dcs.NewFromConfig(ctx, cfg, log.With().Str("component", "dcs").Logger(), 0)
	if err != nil {
		return err
	}
	defer client.Close()
	b := &bootstrap.Bootstrapper{
		Node:    &pgdata.Node{Cfg: cfg, RuntimeDir: dir, Owner: owner},
		DCS:     client,
		Log:     log.With().Str("component", "bootstrap").Logger(),
		Timeout: c.Timeout,
	}
	rep := &bootstrap.Reporter{Dir: dir, Log: b.Log}
	if m := cfg.Bootstrap.Method; m != "initdb" {
		rep.CustomMethod = m
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		rep.Bar = os.Stderr
	}
	if err := rep.Start(); err != nil {
		log.Warn().Err(err).Msg("cannot publish the bootstrap state")
	}
	defer rep.Close()
	b.Progress = rep.Progress
	if c.Rebuild {
		err = b.Rebuild(ctx, c.Force)
	} else {
		err = b.Run(ctx)
	}
	switch {
	case errors.Is(err, bootstrap.ErrOtherCluster):
		return cli.Exit(exitOtherCluster, err)
	case errors.Is(err, bootstrap.ErrNoLeader):
		return cli.Exit(exitNoLeader, err)
	}
	return err
}
