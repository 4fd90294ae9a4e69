package postmaster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// liveConfig is the configuration pg-supervise follows while running: the
// node's YAML (read again on SIGHUP or a reload request) and the cluster's
// config key as pg-lockd leaves it in the runtime directory. Both are
// merged as pg-lockd merges them (config.Dynamic.WithJSON) into s.dyn, and
// a running server gets the result in postgresql.conf, pg_hba.conf and
// pg_ident.conf, then a reload.
type liveConfig struct {
	local   *config.Config     // the YAML in force
	base    config.Dynamic     // local.Dynamic()
	raw     []byte             // the config key in force, nil: none seen yet
	rev     int64              // its revision
	reloads chan reloadRequest // YAML read again, latest wins
	force   bool               // reload PostgreSQL at the next chance even if no file changed
	dirty   bool               // s.dyn must be derived again
	problem string             // last problem with the config file (logged once)
	ovLog   string             // overrides last logged
	pending time.Time          // when to look for settings pending a restart (zero: not now)
	pendLog string             // pending settings last logged
}

type reloadRequest struct {
	cfg   *config.Config
	force bool
}

// initLive starts following the configuration: the config key pg-lockd
// left, if any, applies from the first start of PostgreSQL on.
func (s *Supervisor) initLive() {
	s.live.local = s.node.Cfg
	s.live.base = s.dyn
	s.live.reloads = make(chan reloadRequest, 1)
	s.readConfigFile()
	s.derive()
}

// Reload hands pg-supervise a YAML read again (SIGHUP): the settings that
// apply while running are taken from cfg at the next loop, the others are
// logged as needing a restart and kept. It never blocks.
func (s *Supervisor) Reload(cfg *config.Config) { s.queueReload(reloadRequest{cfg: cfg}) }

func (s *Supervisor) queueReload(r reloadRequest) {
	for {
		select {
		case s.live.reloads <- r:
			return
		default:
		}
		select {
		case old := <-s.live.reloads: // replaced by the newer one
			r.force = r.force || old.force
		default:
		}
	}
}

// reloadFromFile reads the YAML again for a reload request and queues it.
func (s *Supervisor) reloadFromFile() error {
	path := s.node.Cfg.File
	cfg, warns, err := config.Load(path, nil)
	if err != nil {
		return err
	}
	for _, w := range warns {
		s.log.Warn().Str("config", path).Msg(w)
	}
	if problems := cfg.Validate(config.NeedAll); len(problems) > 0 {
		return fmt.Errorf("config %s: %w", path, problems[0])
	}
	s.queueReload(reloadRequest{cfg: cfg, force: true})
	return nil
}

// followConfig is run once per loop: it takes a reloaded YAML and a new
// config key, and brings a running server's configuration files up to date.
func (s *Supervisor) followConfig(ctx context.Context, line rolepipe.Line) {
	select {
	case r := <-s.live.reloads:
		merged, restart := config.Reloaded(s.live.local, r.cfg)
		if len(restart) > 0 {
			s.log.Warn().Strs("settings", restart).Msg("changed settings need a restart of pg-supervise; their old values stay in force")
		}
		s.live.local, s.live.base = merged, merged.Dynamic()
		s.live.dirty = true
		s.live.force = s.live.force || r.force
		s.log.Info().Msg("configuration read again")
	default:
	}
	s.readConfigFile()
	if s.live.dirty {
		s.derive()
	}
	s.writeLiveConfig(line)
	s.checkPending(ctx)
}

// readConfigFile takes the config key pg-lockd left, if it changed. A
// missing, foreign or garbled file keeps what is in force: losing the
// cluster's settings because of a bad file would be worse than applying a
// change late.
func (s *Supervisor) readConfigFile() {
	c, err := state.ReadConfig(s.node.RuntimeDir, s.node.Cfg.Scope, s.node.Cfg.Name)
	if err != nil {
		problem := err.Error()
		if state.IsNotExist(err) {
			problem = "" // pg-lockd has not seen the config key yet
		}
		if problem != "" && problem != s.live.problem {
			s.log.Warn().Err(err).Msg("cannot use the config key pg-lockd left; keeping the configuration in force")
		}
		s.live.problem = problem
		return
	}
	s.live.problem = ""
	if c.Revision == s.live.rev && bytes.Equal(c.Config, s.live.raw) {
		return
	}
	s.live.raw, s.live.rev, s.live.dirty = c.Config, c.Revision, true
}

// derive merges the YAML and the config key into s.dyn and logs what
// changed for PostgreSQL and which requests pg-ha overrides.
func (s *Supervisor) derive() {
	s.live.dirty = false
	d := s.live.base
	if s.live.raw != nil {
		nd, err := s.live.base.WithJSON(s.live.raw, s.live.local)
		if err != nil {
			s.log.Warn().Err(err).Msg("ignoring the config key")
			return
		}
		d = nd
	}
	oldP, _ := s.node.ServerParameters(s.dyn)
	newP, ov := s.node.ServerParameters(d)
	if ch := paramChanges(oldP, newP); len(ch) > 0 {
		s.log.Info().Strs("changes", ch).Int64("config_revision", s.live.rev).Msg("PostgreSQL parameters changed")
	}
	if !slices.Equal(s.dyn.PgHBA, d.PgHBA) || !slices.Equal(s.dyn.PgIdent, d.PgIdent) {
		s.log.Info().Int("pg_hba_lines", len(d.PgHBA)).Int("pg_ident_lines", len(d.PgIdent)).Msg("pg_hba or pg_ident changed")
	}
	if s.dyn.UseSlots != d.UseSlots || s.dyn.UsePgRewind != d.UsePgRewind {
		s.log.Info().Bool("use_slots", d.UseSlots).Bool("use_pg_rewind", d.UsePgRewind).Msg("use_slots or use_pg_rewind changed")
	}
	if s.dyn.RemoveDataOnRewindFail != d.RemoveDataOnRewindFail || s.dyn.RemoveDataOnDiverged != d.RemoveDataOnDiverged {
		s.log.Info().Bool("remove_data_directory_on_rewind_failure", d.RemoveDataOnRewindFail).
			Bool("remove_data_directory_on_diverged_timelines", d.RemoveDataOnDiverged).Msg("remove_data_directory_on_* changed")
	}
	var lines []string
	for _, o := range ov {
		lines = append(lines, o.String())
	}
	if l := strings.Join(lines, "; "); l != s.live.ovLog {
		s.live.ovLog = l
		if l != "" {
			s.log.Warn().Strs("overridden", lines).Msg("parameters pg-ha controls were not taken as requested")
		}
	}
	s.dyn = d
}

// paramChanges lists "name: old -> new" for every parameter that differs.
func paramChanges(old, cur map[string]string) []string {
	var out []string
	for k, v := range cur {
		if o, ok := old[k]; !ok || o != v {
			out = append(out, fmt.Sprintf("%s: %q -> %q", k, old[k], v))
		}
	}
	for k, o := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, fmt.Sprintf("%s: %q -> (default)", k, o))
		}
	}
	sort.Strings(out)
	return out
}

// writeLiveConfig rewrites the configuration files of a running server that
// differ from what s.dyn and the role line give, and reloads it. Only a
// server that runs in the role the line asks for is touched: a start, a
// promotion or a change of leader writes the files itself.
func (s *Supervisor) writeLiveConfig(line rolepipe.Line) {
	if s.proc == nil || !s.statusOK || s.st.State != state.Running {
		return
	}
	var sb *pgdata.Standby
	switch {
	case s.primary && line.Verb == rolepipe.Lead:
	case !s.primary && line.Verb == rolepipe.Follow && s.upstream == line.Leader,
		!s.primary && line.Verb == rolepipe.Standby && s.upstream == "":
		var err error
		if sb, err = s.standbyConf(line); err != nil {
			return
		}
	default:
		return
	}
	dir, su := s.node.DataDir(), s.node.Cfg.Postgres.Authentication.Superuser.Username
	var written []string
	var failed error
	write := func(name string, want []byte, w func() error) {
		if have, err := os.ReadFile(filepath.Join(dir, name)); err == nil && bytes.Equal(have, want) {
			return
		}
		if err := w(); err != nil {
			failed = err
			return
		}
		written = append(written, name)
	}
	params := s.params(line)
	write("postgresql.conf", pgdata.RenderConf(dir, params, sb), func() error { return pgdata.WriteConf(dir, s.node.Owner, params, sb) })
	if hba := s.dyn.PgHBA; len(hba) > 0 {
		write("pg_hba.conf", pgdata.RenderHBA(hba, su), func() error { return pgdata.WriteHBA(dir, s.node.Owner, hba, su) })
	}
	if ident := s.dyn.PgIdent; len(ident) > 0 {
		write("pg_ident.conf", pgdata.RenderIdent(ident, s.node.Owner, su), func() error { return pgdata.WriteIdentLines(dir, s.node.Owner, ident, su) })
	}
	if failed != nil {
		s.log.Warn().Err(failed).Msg("writing the configuration files")
	}
	if len(written) == 0 && !s.live.force {
		return
	}
	s.live.force = false
	if err := s.reload(); err != nil {
		s.log.Warn().Err(err).Msg("reloading PostgreSQL")
		return
	}
	s.log.Info().Strs("files", written).Msg("configuration written; PostgreSQL reloaded")
	s.live.pending = time.Now().Add(time.Second)
}

// pendingQuery lists the settings that wait for a restart: the value in
// force and the one in the configuration files (the last line wins).
const pendingQuery = `SELECT s.name, pg_catalog.current_setting(s.name), coalesce(f.setting, '')
FROM pg_catalog.pg_settings s
LEFT JOIN LATERAL (SELECT setting FROM pg_catalog.pg_file_settings f
  WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1) f ON true
WHERE s.pending_restart ORDER BY 1`

// checkPending logs, a moment after a reload, which parameters only a
// restart of PostgreSQL applies (pg-lockd publishes pending_restart).
func (s *Supervisor) checkPending(ctx context.Context) {
	if s.live.pending.IsZero() || time.Now().Before(s.live.pending) || s.conn == nil || s.conn.IsClosed() {
		return
	}
	s.live.pending = time.Time{}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rows, err := s.conn.Query(qctx, pendingQuery)
	if err != nil {
		s.log.Warn().Err(err).Msg("looking for settings pending a restart")
		return
	}
	defer rows.Close()
	var pending []string
	for rows.Next() {
		var name, cur, next string
		if err := rows.Scan(&name, &cur, &next); err != nil {
			return
		}
		pending = append(pending, fmt.Sprintf("%s: %s -> %s", name, cur, next))
	}
	if l := strings.Join(pending, "; "); l != s.live.pendLog {
		s.live.pendLog = l
		if l != "" {
			s.log.Warn().Strs("pending", pending).Msg("parameter change needs a restart of PostgreSQL (pending_restart): pg-failover restart applies it")
		}
	}
}
