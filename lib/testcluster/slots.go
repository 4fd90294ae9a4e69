package testcluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// Slot is one row of a node's pg_replication_slots.
type Slot struct {
	Name string
	// Type is "physical" or "logical"; Plugin and Database are set for a
	// logical slot only.
	Type, Plugin, Database string
	Active                 bool
	// RestartLSN and ConfirmedFlushLSN are 0 when NULL: a slot that
	// reserves no WAL, a physical slot (no confirmed_flush_lsn), or a
	// logical slot still looking for its consistent point.
	RestartLSN, ConfirmedFlushLSN pg.LSN
}

func (s Slot) String() string {
	return fmt.Sprintf("%s (%s, restart_lsn %s, confirmed_flush_lsn %s, active %t)",
		s.Name, s.Type, s.RestartLSN, s.ConfirmedFlushLSN, s.Active)
}

// ReplicationSlot returns the node's replication slot called name, and
// false if the node has none by that name. An error means the node did
// not answer.
func (n *Node) ReplicationSlot(ctx context.Context, name string) (Slot, bool, error) {
	s := Slot{Name: name}
	var plugin, database, restart, confirmed *string
	err := n.QueryRow(ctx, `SELECT slot_type, plugin, database, active, restart_lsn::text, confirmed_flush_lsn::text
		FROM pg_replication_slots WHERE slot_name = $1`, []any{name},
		&s.Type, &plugin, &database, &s.Active, &restart, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Slot{}, false, nil
	}
	if err != nil {
		return Slot{}, false, err
	}
	if plugin != nil {
		s.Plugin = *plugin
	}
	if database != nil {
		s.Database = *database
	}
	for _, x := range []struct {
		text *string
		lsn  *pg.LSN
	}{{restart, &s.RestartLSN}, {confirmed, &s.ConfirmedFlushLSN}} {
		if x.text == nil {
			continue
		}
		l, err := pg.ParseLSN(*x.text)
		if err != nil {
			return Slot{}, false, fmt.Errorf("%s: slot %s: %w", n.Name, name, err)
		}
		*x.lsn = l
	}
	return s, true, nil
}
