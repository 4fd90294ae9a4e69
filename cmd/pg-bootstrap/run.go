package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"

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
	exitRebuilt      = 12
	exitIsLeader     = 13
	exitBusy         = 14
	exitNoSpace      = 15
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
		var rebuilt bool
		rebuilt, err = b.Rebuild(ctx, bootstrap.RebuildOptions{Force: c.Force, Keep: c.Keep, Reserve: int64(c.Reserve), Grace: c.Grace})
		if err == nil && rebuilt {
			return cli.Exit(exitRebuilt, errRebuilt)
		}
	} else {
		err = b.Run(ctx)
	}
	switch {
	case errors.Is(err, bootstrap.ErrIsLeader):
		return cli.Exit(exitIsLeader, err)
	case errors.Is(err, bootstrap.ErrBusy):
		return cli.Exit(exitBusy, err)
	case errors.Is(err, bootstrap.ErrNoSpace):
		return cli.Exit(exitNoSpace, err)
	case errors.Is(err, bootstrap.ErrOtherCluster):
		return cli.Exit(exitOtherCluster, err)
	case errors.Is(err, bootstrap.ErrNoLeader):
		return cli.Exit(exitNoLeader, err)
	}
	return err
}

// errRebuilt is not a failure: exit 12 tells cron the replica was rebuilt.
var errRebuilt = errors.New("rebuilt")

// Size is a byte count written like PostgreSQL's memory settings: 512MB,
// 10GB, 1TB (powers of 1024), or plain bytes.
type Size int64

// UnmarshalText reads a size.
func (s *Size) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	num := strings.TrimRightFunc(t, unicode.IsLetter)
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size; write it like 10GB or 512MB", t)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1 << 10, "K": 1 << 10, "KIB": 1 << 10, "MB": 1 << 20, "M": 1 << 20, "MIB": 1 << 20,
		"GB": 1 << 30, "G": 1 << 30, "GIB": 1 << 30, "TB": 1 << 40, "T": 1 << 40, "TIB": 1 << 40}[unit]
	if mult == 0 {
		return fmt.Errorf("%q: unknown unit %q; use kB, MB, GB or TB", t, unit)
	}
	*s = Size(n * mult)
	return nil
}
