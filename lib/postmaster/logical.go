package postmaster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/callback"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Logical permanent slots (slots: with type logical) on PostgreSQL 15,
// which cannot create or decode a logical slot on a standby, are kept as
// Patroni keeps them: the primary creates them; a replica that may lead
// gets a copy by taking the slot's state file from its upstream and
// restarting once; the copy is then advanced to where the leader's slot
// stands (pg_replication_slot_advance works on a standby). After a
// failover the new primary's slot is at most a loop behind what its
// consumer had confirmed: the consumer continues from its own confirmed
// position with no gap. A copy ahead of the leader's slot (the old primary
// rejoining) is taken again, so a later promotion never starts a consumer
// past WAL this timeline lacks.

// codeUndefinedFile: requested WAL segment has already been removed.
const codeUndefinedFile = "58P01"

const (
	logicalEvery     = time.Second      // how often the slots are checked
	logicalCopyAfter = 10 * time.Second // between two copies that restart the replica
)

type logicalKeeper struct {
	next      time.Time
	copyAfter time.Time
	warned    map[string]string // slot → last problem logged
}

// keepLogical keeps the logical permanent slots of s.dyn on a running
// primary, and the copies line.Logical asks for on a running replica. It
// may stop the replica to put copies in place; the loop starts it again.
func (s *Supervisor) keepLogical(ctx context.Context, line rolepipe.Line) {
	want := s.dyn.LogicalSlots
	if len(want) == 0 || !s.dyn.UseSlots || s.proc == nil || !s.statusOK || s.st.State != state.Running || s.conn == nil {
		return
	}
	k := &s.logical
	if time.Now().Before(k.next) {
		return
	}
	k.next = time.Now().Add(logicalEvery)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	switch {
	case s.primary && !s.lastStatus.InRecovery && line.Verb == rolepipe.Lead:
		s.createLogical(qctx, want)
	case !s.primary && s.lastStatus.InRecovery && line.Verb == rolepipe.Follow && !line.Remote && len(line.Logical) > 0:
		s.copyLogical(qctx, want, line)
	}
}

// warnOnce logs a problem with slot once until it changes.
func (s *Supervisor) warnOnce(slot, problem string, err error) {
	if s.logical.warned == nil {
		s.logical.warned = map[string]string{}
	}
	msg := problem
	if err != nil {
		msg += ": " + err.Error()
	}
	if s.logical.warned[slot] == msg {
		return
	}
	s.logical.warned[slot] = msg
	s.log.Warn().Str("slot", slot).Err(err).Msg(problem)
}

// onDatabase runs f over a connection to db on the local server.
func (s *Supervisor) onDatabase(ctx context.Context, db string, f func(*pgx.Conn) error) error {
	p := s.node.Local(time.Second)
	p.Database = db
	conn, err := pg.Connect(ctx, p)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}

// createLogical creates the missing logical permanent slots on the primary.
// A slot of the same name for another database or plugin is left alone.
func (s *Supervisor) createLogical(ctx context.Context, want []config.LogicalSlot) {
	have, err := pg.LogicalSlots(ctx, s.conn)
	if err != nil {
		s.log.Debug().Err(err).Msg("listing logical slots")
		return
	}
	for _, w := range want {
		if h, ok := have[w.Name]; ok {
			if h.Database != w.Database || h.Plugin != w.Plugin {
				s.warnOnce(w.Name, fmt.Sprintf("logical slot exists for database %q and plugin %q, not %q and %q as slots: says; left alone",
					h.Database, h.Plugin, w.Database, w.Plugin), nil)
			}
			continue
		}
		err := s.onDatabase(ctx, w.Database, func(c *pgx.Conn) error { return pg.CreateLogicalSlot(ctx, c, w.Name, w.Plugin) })
		if err != nil {
			s.warnOnce(w.Name, "creating the logical permanent slot", err)
			continue
		}
		s.log.Info().Str("slot", w.Name).Str("database", w.Database).Str("plugin", w.Plugin).Msg("created the logical permanent slot")
	}
}

// copyLogical keeps this replica's copies: advanced when behind the
// leader's position, taken again when missing or ahead of it.
func (s *Supervisor) copyLogical(ctx context.Context, want []config.LogicalSlot, line rolepipe.Line) {
	have, err := pg.LogicalSlots(ctx, s.conn)
	if err != nil {
		s.log.Debug().Err(err).Msg("listing logical slots")
		return
	}
	replayed := s.lastStatus.ReplayLSN
	var missing []config.LogicalSlot
	for _, w := range want {
		pos, ok := line.Logical[w.Name]
		if !ok {
			continue
		}
		h, ok := have[w.Name]
		switch {
		case !ok:
			missing = append(missing, w)
		case h.Database != w.Database || h.Plugin != w.Plugin:
			s.warnOnce(w.Name, "the copy of the logical slot is for another database or plugin; left alone", nil)
		case h.Active:
		case int64(h.Confirmed) > pos:
			// Ahead of the leader's slot: a former primary's own slot,
			// possibly past the point this timeline forked from it.
			err := s.onDatabase(ctx, w.Database, func(c *pgx.Conn) error { _, err := pg.DropSlot(ctx, c, w.Name); return err })
			if err != nil {
				s.warnOnce(w.Name, "dropping the copy of the logical slot that is ahead of the leader's", err)
				continue
			}
			s.log.Info().Str("slot", w.Name).Stringer("copy", h.Confirmed).Stringer("leader", pg.LSN(pos)).
				Msg("dropped the copy of a logical slot ahead of the leader's: taking it again")
			missing = append(missing, w)
		default:
			to := min(pg.LSN(pos), replayed)
			if to <= h.Confirmed {
				continue
			}
			err := s.onDatabase(ctx, w.Database, func(c *pgx.Conn) error { _, err := pg.AdvanceSlot(ctx, c, w.Name, to); return err })
			if pg.SQLState(err) == codeUndefinedFile {
				// The copy needs WAL this replica no longer has: useless.
				// It is taken again once the leader's slot has moved on.
				s.warnOnce(w.Name, "the copy of the logical slot needs WAL this replica removed: dropping it", err)
				_ = s.onDatabase(ctx, w.Database, func(c *pgx.Conn) error { _, err := pg.DropSlot(ctx, c, w.Name); return err })
				continue
			}
			if err != nil {
				s.warnOnce(w.Name, "advancing the copy of the logical slot", err)
			}
		}
	}
	if len(missing) > 0 && !time.Now().Before(s.logical.copyAfter) {
		s.takeLogical(ctx, missing, line)
	}
}

// takeLogical reads the missing slots' state files from the upstream,
// stops this replica, writes them into pg_replslot and leaves the start to
// the loop: a slot is loaded only when the server starts.
func (s *Supervisor) takeLogical(ctx context.Context, missing []config.LogicalSlot, line rolepipe.Line) {
	s.logical.copyAfter = time.Now().Add(logicalEvery * 2)
	p, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Superuser, false)
	if err != nil {
		return
	}
	p.Database = "postgres"
	up, err := pg.Connect(ctx, p)
	if err != nil {
		s.warnOnce("", "connecting to the upstream to copy logical slots", err)
		return
	}
	oldest, oerr := pg.OldestWAL(ctx, s.conn)
	states := map[string][]byte{}
	for _, w := range missing {
		b, err := pg.SlotState(ctx, up, w.Name)
		if err != nil {
			s.warnOnce(w.Name, "the upstream has no logical slot to copy yet", err)
			continue
		}
		if restart, ok := pg.SlotStateRestartLSN(b, w.Name); ok && oerr == nil && restart < oldest {
			// A copy would need WAL from before this replica's oldest:
			// wait for the slot to move on (its consumer confirming).
			s.warnOnce(w.Name, fmt.Sprintf("not copying the logical slot yet: it needs WAL from %s, this replica has it from %s", restart, oldest), nil)
			continue
		}
		states[w.Name] = b
	}
	_ = up.Close(context.WithoutCancel(ctx))
	if len(states) == 0 {
		return
	}
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	s.log.Info().Strs("slots", names).Str("upstream", line.Leader).Msg("copying logical slots from the upstream: restarting this replica to load them")
	s.logical.copyAfter = time.Now().Add(logicalCopyAfter)
	s.hooks.stopKind = callback.StopRestart
	if err := s.stop(ctx, Fast, state.Stopped); err != nil {
		s.log.Error().Err(err).Msg("stopping the replica to copy logical slots")
		return
	}
	for _, n := range names {
		if err := s.writeSlotState(n, states[n]); err != nil {
			s.log.Error().Err(err).Str("slot", n).Msg("writing the copied logical slot")
		}
	}
}

// writeSlotState puts a slot's state file into pg_replslot/<name>/, owned
// by the server's account, written under another name first so that a
// crash never leaves a torn file PostgreSQL would refuse to start with.
func (s *Supervisor) writeSlotState(name string, b []byte) error {
	dir := filepath.Join(s.node.DataDir(), "pg_replslot", name)
	uid, gid := int(s.node.Owner.UID), int(s.node.Owner.GID)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return err
	}
	f := filepath.Join(tmp, "state")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		return err
	}
	if err := os.Chown(f, uid, gid); err != nil {
		return err
	}
	if fd, err := os.Open(f); err == nil {
		_ = fd.Sync()
		fd.Close()
	}
	return os.Rename(tmp, dir)
}
