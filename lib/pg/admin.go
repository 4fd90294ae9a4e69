package pg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Errors Promote returns, wrapped; test with errors.Is.
var (
	// ErrNotInRecovery means the server is already a primary.
	ErrNotInRecovery = errors.New("pg: server is not in recovery")
	// ErrPromoteTimeout means the promotion was requested but had not
	// finished when the wait ran out; it may still finish later.
	ErrPromoteTimeout = errors.New("pg: promotion did not finish in time")
)

// SQLSTATE codes this package tells apart.
const (
	codeObjectNotInPrerequisiteState = "55000"
	codeObjectInUse                  = "55006"
	codeDuplicateObject              = "42710"
	codeUndefinedObject              = "42704"
)

// Promote asks the standby behind conn to leave recovery and become a
// primary (SELECT pg_promote(true, secs), secs being wait rounded up to
// whole seconds), which needs superuser or EXECUTE on pg_promote. With
// wait > 0 it blocks until the promotion finished or wait passed; with
// wait <= 0 it only signals the postmaster and returns. Cancelling ctx
// cancels the query (pgx may then close conn) but not a promotion already
// signalled. It returns nil once promoted (or signalled, for wait <= 0),
// ErrPromoteTimeout if the server reported that the promotion did not finish
// within wait, ErrNotInRecovery (together with the server error) if the
// server is not a standby, and other errors wrapped "promote: …".
func Promote(ctx context.Context, conn *pgx.Conn, wait time.Duration) error {
	sql := "SELECT pg_catalog.pg_promote(false)"
	if wait > 0 {
		sql = fmt.Sprintf("SELECT pg_catalog.pg_promote(true, %d)", int(min(math.Ceil(wait.Seconds()), math.MaxInt32)))
	}
	var ok bool
	err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&ok)
	switch {
	case err != nil && SQLState(err) == codeObjectNotInPrerequisiteState:
		return fmt.Errorf("promote: %w: %w", ErrNotInRecovery, err)
	case err != nil:
		return fmt.Errorf("promote: %w", err)
	case !ok && wait > 0:
		return fmt.Errorf("promote: %w (waited %s)", ErrPromoteTimeout, wait)
	case !ok:
		return errors.New("promote: the server could not signal its postmaster")
	}
	return nil
}

// Checkpoint runs CHECKPOINT (superuser, or pg_checkpointer on 15+). It
// blocks until the checkpoint is complete, which can take long on a busy
// server; cancelling ctx cancels the wait (pgx may then close conn), not the
// checkpoint. Errors are wrapped "checkpoint: …".
func Checkpoint(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// EnsurePhysicalSlots creates each named physical replication slot that does
// not exist yet, reserving WAL immediately
// (pg_create_physical_replication_slot(name, true)); it never drops
// anything. A slot created concurrently by someone else counts as created.
// It blocks on one query per missing slot plus one listing; cancelling ctx
// cancels the current query (pgx may then close conn). It returns nil when
// every slot exists, else the errors joined, each naming its slot: a
// logical slot holding one of the names, an invalid name, too few
// max_replication_slots, or a connection error.
func EnsurePhysicalSlots(ctx context.Context, conn *pgx.Conn, names []string) error {
	existing, err := listSlots(ctx, conn, "")
	if err != nil {
		return fmt.Errorf("ensure physical slots: %w", err)
	}
	var errs []error
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		switch existing[name].slotType {
		case "physical":
			continue
		case "":
		default:
			errs = append(errs, fmt.Errorf("create physical slot %q: a %s slot has that name", name, existing[name].slotType))
			continue
		}
		_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_create_physical_replication_slot($1, true)",
			pgx.QueryExecModeSimpleProtocol, name)
		if err != nil && SQLState(err) != codeDuplicateObject {
			errs = append(errs, fmt.Errorf("create physical slot %q: %w", name, err))
			if ctx.Err() != nil || conn.IsClosed() {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// PhysicalSlotPositions returns where each named physical slot that
// reserves WAL stands (restart_lsn); a name missing, logical or reserving
// nothing is left out. It blocks on one query.
func PhysicalSlotPositions(ctx context.Context, conn *pgx.Conn, names []string) (map[string]int64, error) {
	existing, err := listSlots(ctx, conn, "physical")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, name := range names {
		if s, ok := existing[name]; ok && s.restart != 0 {
			out[name] = int64(s.restart)
		}
	}
	return out, nil
}

// AdvancePhysicalSlots moves each named physical slot that is not active
// up to its position in to, as far as this server has WAL (its flush
// position, or on a standby its replay position: PostgreSQL stops there).
// A slot missing, logical, active, reserving no WAL or already at or past
// its position is left alone; a slot never moves back. It returns the slots
// it moved and nil, or with the errors joined, each naming its slot.
func AdvancePhysicalSlots(ctx context.Context, conn *pgx.Conn, to map[string]int64) ([]string, error) {
	if len(to) == 0 {
		return nil, nil
	}
	existing, err := listSlots(ctx, conn, "physical")
	if err != nil {
		return nil, fmt.Errorf("advance physical slots: %w", err)
	}
	var (
		moved []string
		errs  []error
	)
	for _, name := range slices.Sorted(maps.Keys(to)) {
		slot, ok := existing[name]
		pos := LSN(to[name])
		if !ok || slot.active || slot.restart == 0 || pos <= slot.restart {
			continue
		}
		// The server lowers the target to what it has; below the slot's
		// own position (a standby that replayed less) it refuses: skip.
		var end string
		err := conn.QueryRow(ctx, `SELECT coalesce(CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
			ELSE pg_catalog.pg_current_wal_flush_lsn() END::text, '0/0')`, pgx.QueryExecModeSimpleProtocol).Scan(&end)
		if err != nil {
			errs = append(errs, fmt.Errorf("advance physical slot %q: %w", name, err))
			break
		}
		if e, err := ParseLSN(end); err != nil || min(e, pos) <= slot.restart {
			continue
		}
		_, err = conn.Exec(ctx, "SELECT pg_catalog.pg_replication_slot_advance($1, $2::pg_lsn)",
			pgx.QueryExecModeSimpleProtocol, name, pos.String())
		switch SQLState(err) {
		case codeUndefinedObject, codeObjectInUse:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advance physical slot %q: %w", name, err))
			if ctx.Err() != nil || conn.IsClosed() {
				break
			}
			continue
		}
		moved = append(moved, name)
	}
	return moved, errors.Join(errs...)
}

// DropPhysicalSlots drops each named replication slot that is physical and
// not active; a name that is missing, a logical slot, or an active slot
// (also one that became active meanwhile) is left alone. No other slot is
// ever touched. It blocks on one query per slot dropped plus one listing;
// cancelling ctx cancels the current query (pgx may then close conn). It
// returns the slots it dropped and nil, or with the errors joined, each
// naming its slot.
func DropPhysicalSlots(ctx context.Context, conn *pgx.Conn, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	existing, err := listSlots(ctx, conn, "physical")
	if err != nil {
		return nil, fmt.Errorf("drop physical slots: %w", err)
	}
	var (
		dropped []string
		errs    []error
	)
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		slot, ok := existing[name]
		if !ok || slot.active || seen[name] {
			continue
		}
		seen[name] = true
		// pg_drop_replication_slot refuses an active slot (55006) itself.
		_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_drop_replication_slot($1)",
			pgx.QueryExecModeSimpleProtocol, name)
		switch SQLState(err) {
		case codeUndefinedObject, codeObjectInUse:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("drop physical slot %q: %w", name, err))
			if ctx.Err() != nil || conn.IsClosed() {
				break
			}
			continue
		}
		dropped = append(dropped, name)
	}
	return dropped, errors.Join(errs...)
}

type slotInfo struct {
	slotType string
	active   bool
	restart  LSN // 0 when it reserves no WAL
}

// listSlots returns the replication slots of type slotType, or all if "".
func listSlots(ctx context.Context, conn *pgx.Conn, slotType string) (map[string]slotInfo, error) {
	rows, err := conn.Query(ctx,
		"SELECT slot_name::text, slot_type, active, coalesce(restart_lsn::text, '0/0') FROM pg_catalog.pg_replication_slots",
		pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, fmt.Errorf("list replication slots: %w", err)
	}
	slots := make(map[string]slotInfo)
	var (
		name    string
		info    slotInfo
		restart string
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &info.slotType, &info.active, &restart}, func() error {
		lsn, err := ParseLSN(restart)
		if err != nil {
			return err
		}
		info.restart = lsn
		if slotType == "" || info.slotType == slotType {
			slots[name] = info
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list replication slots: %w", err)
	}
	return slots, nil
}

// SlotName maps a member name to the replication slot name Patroni uses
// for it (patroni.dcs.slot_name_from_member_name), so that slots survive a
// move between Patroni and pg-ha: the name is lower-cased, '-' and '.'
// become '_', every other character outside [a-z0-9_] becomes 'u' followed
// by its Unicode code point in decimal, at least 4 digits ("é" → "u0233"),
// and the result is cut to 63 bytes. Different members can map to the same
// slot. It does no I/O.
func SlotName(member string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(member) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '_':
			b.WriteRune(r)
		case r == '-', r == '.':
			b.WriteByte('_')
		default:
			fmt.Fprintf(&b, "u%04d", r)
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}
