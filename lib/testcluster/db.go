package testcluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DSN is a libpq connection string for the node's PostgreSQL over TCP on
// 127.0.0.1, as the superuser, database postgres, connect_timeout=2.
func (n *Node) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres sslmode=disable connect_timeout=2 application_name=testcluster",
		n.PGPort, n.c.secrets.superuser)
}

// MultiHostDSN is a connection string listing every node, with
// target_session_attrs=read-write so that a client lands on the node that
// accepts writes, and connect_timeout=1 per host. nodes must belong to one
// cluster and must not be empty.
func MultiHostDSN(nodes []*Node) string {
	hosts := make([]string, len(nodes))
	ports := make([]string, len(nodes))
	for i, n := range nodes {
		hosts[i] = "127.0.0.1"
		ports[i] = strconv.Itoa(n.PGPort)
	}
	return fmt.Sprintf("host=%s port=%s user=postgres password=%s dbname=postgres sslmode=disable target_session_attrs=read-write connect_timeout=1 application_name=testcluster",
		strings.Join(hosts, ","), strings.Join(ports, ","), nodes[0].c.secrets.superuser)
}

// Conn opens a connection to the node's PostgreSQL; the caller closes it.
// It blocks for at most connect_timeout (2s) or until ctx ends.
func (n *Node) Conn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		return nil, fmt.Errorf("connect to %s (port %d): %w", n.Name, n.PGPort, err)
	}
	return conn, nil
}

// Exec runs one statement on the node in its own connection. It blocks
// until the statement completes or ctx ends.
func (n *Node) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := n.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %s: %w", n.Name, sql, err)
	}
	return nil
}

// QueryRow runs a query on the node in its own connection and scans its
// single row into dest.
func (n *Node) QueryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	conn, err := n.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return fmt.Errorf("%s: %s: %w", n.Name, sql, err)
	}
	return nil
}

// IsPrimary reports whether the node's PostgreSQL answers and is not in
// recovery. An error means it did not answer.
func (n *Node) IsPrimary(ctx context.Context) (bool, error) {
	var primary bool
	err := n.QueryRow(ctx, "SELECT NOT pg_is_in_recovery()", nil, &primary)
	return primary, err
}

// acceptsWrite reports whether the node commits a transaction that needs a
// transaction id (which a standby refuses).
func (n *Node) acceptsWrite(ctx context.Context) error {
	var xid int64
	return n.QueryRow(ctx, "SELECT txid_current()", nil, &xid)
}

// WALReceiver is a replica's row of pg_stat_wal_receiver.
type WALReceiver struct {
	Status      string
	SenderPort  int
	ReceivedTLI int
	// SlotName is the replication slot it streams through ("" for none).
	SlotName string
}

// WALReceiver returns the node's WAL receiver, or an error if it has none
// (a primary, or a replica not connected).
func (n *Node) WALReceiver(ctx context.Context) (WALReceiver, error) {
	var r WALReceiver
	var port, tli *int32
	var status, slot *string
	err := n.QueryRow(ctx, "SELECT status, sender_port, received_tli, slot_name FROM pg_stat_wal_receiver", nil, &status, &port, &tli, &slot)
	if err != nil {
		return r, err
	}
	if status != nil {
		r.Status = *status
	}
	if slot != nil {
		r.SlotName = *slot
	}
	if port != nil {
		r.SenderPort = int(*port)
	}
	if tli != nil {
		r.ReceivedTLI = int(*tli)
	}
	return r, nil
}

// Timeline returns the node's current timeline: on a primary the one it
// writes WAL on; on a replica the one it receives (or, without a WAL
// receiver, the one of its last restartpoint).
func (n *Node) Timeline(ctx context.Context) (int, error) {
	var tli int32
	err := n.QueryRow(ctx, `SELECT CASE WHEN pg_is_in_recovery()
		THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
		ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END`, nil, &tli)
	return int(tli), err
}

// ReadWrites returns the workload's rows on the node: writer → sequence
// numbers, ascending.
func (n *Node) ReadWrites(ctx context.Context) (map[string][]int64, error) {
	conn, err := n.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT writer, seq FROM "+WritesTable+" ORDER BY writer, seq")
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", n.Name, WritesTable, err)
	}
	out := map[string][]int64{}
	for rows.Next() {
		var w string
		var s int64
		if err := rows.Scan(&w, &s); err != nil {
			return nil, err
		}
		out[w] = append(out[w], s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", n.Name, WritesTable, err)
	}
	return out, nil
}
