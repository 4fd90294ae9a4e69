package elector

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/state"
)

// sharedConfig is the config key last left for pg-supervise, and the YAML
// the config key is merged with.
type sharedConfig struct {
	rev  int64
	raw  []byte
	fail bool // the last write failed (logged once)

	local *config.Config                // the YAML in force, nil: e.cfg
	next  atomic.Pointer[config.Config] // a YAML read again, taken by the loop
}

// shareConfig leaves the config key for pg-supervise in config.json when it
// changed: pg-supervise does not talk to etcd, yet postgresql.parameters,
// pg_hba, use_slots and use_pg_rewind in the key are its business. An
// absent key is not written: pg-supervise keeps what it has.
func (e *Elector) shareConfig(cl *dcs.Cluster) {
	if cl.Config == nil || (!e.shared.fail && e.shared.rev == cl.ConfigRev && bytes.Equal(e.shared.raw, cl.Config)) {
		return
	}
	c := state.Config{Scope: e.cfg.Scope, Name: e.cfg.Name, Revision: cl.ConfigRev, Config: cl.Config, Updated: e.clock.Now()}
	if err := state.Write(e.node.RuntimeDir, state.ConfigFile, c); err != nil {
		if !e.shared.fail {
			e.log.Warn().Err(err).Msg("cannot leave the config key for pg-supervise")
		}
		e.shared.fail = true
		return
	}
	e.shared.rev, e.shared.raw, e.shared.fail = cl.ConfigRev, cl.Config, false
}

// localConfig is the YAML the config key is merged with.
func (e *Elector) localConfig() *config.Config {
	if e.shared.local != nil {
		return e.shared.local
	}
	return e.cfg
}

// Reload hands pg-lockd a YAML read again (SIGHUP): from the next loop its
// dynamic settings and local postgresql settings are merged with the config
// key; settings that need a restart are logged and kept. pg-supervise is
// asked to read its YAML again too, so that one SIGHUP to either program
// reaches PostgreSQL. It never blocks.
func (e *Elector) Reload(cfg *config.Config) { e.shared.next.Store(cfg) }

// takeReload applies a YAML handed to Reload, if any, and with ask asks
// pg-supervise (in the background) to do the same. It runs on the loop.
func (e *Elector) takeReload(ask bool) {
	next := e.shared.next.Swap(nil)
	if next == nil {
		return
	}
	merged, restart := config.Reloaded(e.localConfig(), next)
	if len(restart) > 0 {
		e.log.Warn().Strs("settings", restart).Msg("changed settings need a restart of pg-lockd; their old values stay in force")
	}
	e.shared.local, e.base = merged, merged.Dynamic()
	e.log.Info().Msg("configuration read again")
	if !ask {
		return
	}
	go func() {
		if err := reloadSupervisor(e.node.RuntimeDir); err != nil {
			e.log.Warn().Err(err).Msg("asking pg-supervise to read its configuration again")
		}
	}()
}

// reloadSupervisor asks the node's pg-supervise to read its YAML again and
// bring PostgreSQL's configuration up to date.
func reloadSupervisor(runtimeDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := postmaster.Request(ctx, runtimeDir, "reload")
	return err
}

// reloadRequest carries out a reload request (pg-failover reload): both
// daemons read their YAML again and PostgreSQL is reloaded, whether or not
// a file changed. The request is finished with the outcome.
func (e *Elector) reloadRequest(finish func(string)) {
	cfg, _, err := config.Load(e.cfg.File, nil)
	if err == nil {
		if problems := cfg.Validate(config.NeedAll); len(problems) > 0 {
			err = fmt.Errorf("config %s: %w", e.cfg.File, problems[0])
		}
	}
	if err != nil {
		e.log.Error().Err(err).Msg("reload requested: configuration not reloaded, the one in force is kept")
		finish(fmt.Sprintf("pg-lockd cannot load its configuration: %v", err))
		return
	}
	e.shared.next.Store(cfg)
	e.takeReload(false)
	if err := reloadSupervisor(e.node.RuntimeDir); err != nil {
		finish(fmt.Sprintf("pg-supervise did not take the reload: %v", err))
		return
	}
	e.log.Info().Msg("reloaded on request")
	finish("")
}
