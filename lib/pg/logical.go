package pg

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// slotNameRE is what PostgreSQL takes as a replication slot name.
var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// LogicalSlot is a logical replication slot as pg_replication_slots shows it.
type LogicalSlot struct {
	Database, Plugin string
	Active           bool
	// Confirmed is confirmed_flush_lsn: where its consumer has confirmed
	// (or, on a standby, where it was advanced to).
	Confirmed LSN
}

// LogicalSlots lists the server's logical slots by name.
func LogicalSlots(ctx context.Context, conn *pgx.Conn) (map[string]LogicalSlot, error) {
	rows, err := conn.Query(ctx,
		"SELECT slot_name::text, coalesce(database::text, ''), coalesce(plugin::text, ''), active, coalesce(confirmed_flush_lsn::text, '0/0')"+
			" FROM pg_catalog.pg_replication_slots WHERE slot_type = 'logical'",
		pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, fmt.Errorf("list logical slots: %w", err)
	}
	out := map[string]LogicalSlot{}
	var (
		name, confirmed string
		s               LogicalSlot
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &s.Database, &s.Plugin, &s.Active, &confirmed}, func() error {
		lsn, err := ParseLSN(confirmed)
		if err != nil {
			return err
		}
		s.Confirmed = lsn
		out[name] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list logical slots: %w", err)
	}
	return out, nil
}

// CreateLogicalSlot creates logical slot name with the output plugin on
// the database conn is connected to (a logical slot belongs to one). A slot
// that already exists is no error.
func CreateLogicalSlot(ctx context.Context, conn *pgx.Conn, name, plugin string) error {
	_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2)",
		pgx.QueryExecModeSimpleProtocol, name, plugin)
	if err != nil && SQLState(err) != codeDuplicateObject {
		return fmt.Errorf("create logical slot %q: %w", name, err)
	}
	return nil
}

// AdvanceSlot moves slot name up to to (never back; PostgreSQL stops at
// what the server has flushed or, on a standby, replayed). A logical slot
// can only be advanced over a connection to its database. It returns where
// the slot now stands.
func AdvanceSlot(ctx context.Context, conn *pgx.Conn, name string, to LSN) (LSN, error) {
	var end string
	err := conn.QueryRow(ctx, "SELECT end_lsn::text FROM pg_catalog.pg_replication_slot_advance($1, $2::pg_lsn)",
		pgx.QueryExecModeSimpleProtocol, name, to.String()).Scan(&end)
	if err != nil {
		return 0, fmt.Errorf("advance slot %q to %s: %w", name, to, err)
	}
	return ParseLSN(end)
}

// DropSlot drops slot name unless it is in use; a slot already gone is no
// error. It reports whether it dropped the slot.
func DropSlot(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_drop_replication_slot($1)", pgx.QueryExecModeSimpleProtocol, name)
	switch SQLState(err) {
	case codeUndefinedObject, codeObjectInUse:
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("drop slot %q: %w", name, err)
	}
	return true, nil
}

// SlotState reads slot name's state file (pg_replslot/<name>/state) from
// the server behind conn, which needs superuser or pg_read_server_files.
// Written into another server's data directory (of the same cluster) while
// it is stopped, it gives that server the slot at the same position when
// it starts: PostgreSQL 15 has no other way to put a logical slot on a
// standby.
func SlotState(ctx context.Context, conn *pgx.Conn, name string) ([]byte, error) {
	if !slotNameRE.MatchString(name) {
		return nil, fmt.Errorf("read the state of slot %q: not a slot name", name)
	}
	var b []byte
	err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_read_binary_file('pg_replslot/' || $1::text || '/state')",
		pgx.QueryExecModeSimpleProtocol, name).Scan(&b)
	if err != nil {
		return nil, fmt.Errorf("read the state of slot %q: %w", name, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("read the state of slot %q: empty", name)
	}
	return b, nil
}

// LogicalSlotPositions returns confirmed_flush_lsn of each named logical
// slot on the server (those missing are left out).
func LogicalSlotPositions(ctx context.Context, conn *pgx.Conn, names []string) (map[string]int64, error) {
	all, err := LogicalSlots(ctx, conn)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, n := range names {
		if s, ok := all[n]; ok && s.Confirmed != 0 {
			out[n] = int64(s.Confirmed)
		}
	}
	return out, nil
}

// Layout of a slot's state file (ReplicationSlotOnDisk, PostgreSQL 12 to
// 17): magic, checksum, version, length, then the slot's name (64 bytes)
// and its data, restart_lsn at byte 96.
const (
	slotStateMagic      = 0x1051CA1
	slotStateRestartOff = 96
)

// SlotStateRestartLSN returns the restart_lsn a slot state file holds: the
// oldest WAL a server given the file needs to decode or advance the slot.
// ok is false when the file is not a state file of that slot as
// PostgreSQL 12 to 17 write it.
func SlotStateRestartLSN(state []byte, name string) (lsn LSN, ok bool) {
	if len(state) < slotStateRestartOff+8 || binary.LittleEndian.Uint32(state) != slotStateMagic {
		return 0, false
	}
	slot := state[16 : 16+64]
	if n := bytes.IndexByte(slot, 0); n < 0 || string(slot[:n]) != name {
		return 0, false
	}
	return LSN(binary.LittleEndian.Uint64(state[slotStateRestartOff:])), true
}

// OldestWAL returns where the oldest WAL segment in the server's pg_wal
// begins: a slot whose restart_lsn is older cannot be used there (its WAL
// is gone). It needs superuser or pg_monitor.
func OldestWAL(ctx context.Context, conn *pgx.Conn) (LSN, error) {
	var name, size string
	err := conn.QueryRow(ctx, "SELECT coalesce(min(name), ''), current_setting('wal_segment_size') FROM pg_catalog.pg_ls_waldir()"+
		" WHERE name ~ '^[0-9A-F]{24}$'", pgx.QueryExecModeSimpleProtocol).Scan(&name, &size)
	if err != nil {
		return 0, fmt.Errorf("oldest WAL segment: %w", err)
	}
	if name == "" {
		return 0, fmt.Errorf("oldest WAL segment: pg_wal holds none")
	}
	segSize, err := parseSize(size)
	if err != nil || segSize <= 0 {
		return 0, fmt.Errorf("oldest WAL segment: wal_segment_size %q", size)
	}
	hi, err1 := strconv.ParseUint(name[8:16], 16, 32)
	seg, err2 := strconv.ParseUint(name[16:24], 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("oldest WAL segment: %q is not a segment name", name)
	}
	return LSN(hi<<32 + seg*uint64(segSize)), nil
}

// parseSize reads a size setting as SHOW prints it ("16MB", "1GB", "8kB",
// "16777216").
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n * mult, err
}
