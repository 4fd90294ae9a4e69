package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/health"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/sdnotify"
)

// etcdRequestTimeout bounds each etcd read, well inside the 2 s the leader
// key may go unconfirmed before /primary turns 503.
const etcdRequestTimeout = time.Second

func run(ctx context.Context, log zerolog.Logger, cfg *config.Config, c *CLI) error {
	standalone := c.Standalone || len(cfg.Endpoints()) == 0
	if !standalone {
		if errs := cfg.Validate(config.Need{Etcd: true}); len(errs) > 0 {
			return cli.Exit(cli.ExitConfig, fmt.Errorf("config %s: %w", cfg.File, errs[0]))
		}
	}
	dir, err := c.Runtime.Dir(cfg)
	if err != nil {
		return err
	}
	tlsCfg, warning, err := health.TLSConfig(cfg.RestAPI)
	if err != nil {
		return cli.Exit(cli.ExitConfig, err)
	}
	if warning != "" {
		log.Warn().Msg(warning)
	}

	notify := sdnotify.New()
	var lastPing time.Time
	o := health.OptionsFromConfig(cfg, standalone)
	o.Version, o.RuntimeDir, o.Log = cli.Version, dir, log
	o.PG = (&pgdata.Node{Cfg: cfg, RuntimeDir: dir}).Local(health.DefaultPGTimeout)
	o.PG.ApplicationName = program.Name
	o.OnChange = func(summary string) { _ = notify.Status(summary) }
	o.OnTick = func() { // the refresh loop: a hung loop stops the pings
		if iv := notify.WatchdogInterval(); iv > 0 && time.Since(lastPing) >= iv/2 {
			lastPing = time.Now()
			_ = notify.Watchdog()
		}
	}
	if !standalone {
		client, err := dcs.NewFromConfig(ctx, cfg, log.With().Str("component", "dcs").Logger(), etcdRequestTimeout)
		if err != nil {
			return err
		}
		defer client.Close()
		o.DCS = client
	}
	o.Writer, err = health.NewWriter(health.WriterOptions{Cfg: cfg, DCS: o.DCS, PG: o.PG, RuntimeDir: dir, Log: log})
	if err != nil {
		return cli.Exit(cli.ExitConfig, err)
	}
	svc, err := health.New(o)
	if err != nil {
		return cli.Exit(cli.ExitConfig, err)
	}

	listeners, activated, err := health.Listeners(health.ListenAddress(c.Listen, cfg.RestAPI.Listen))
	if err != nil {
		return err
	}
	for _, l := range listeners {
		log.Info().Str("listen", l.Addr().String()).Bool("socket_activated", activated).
			Bool("tls", tlsCfg != nil).Bool("standalone", standalone).Msg("serving")
	}
	srv := health.NewServer(svc.Handle, tlsCfg, log.With().Str("component", "http").Logger())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	g.Go(func() error { return health.Serve(gctx, srv, listeners) })
	_ = notify.Ready() // the listeners are bound: connections queue until accepted
	g.Go(func() error {
		<-gctx.Done()
		_ = notify.Stopping()
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
