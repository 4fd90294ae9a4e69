package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status is one snapshot of a running server, taken by QueryStatus in a
// single SQL statement, so every field describes the same moment.
type Status struct {
	InRecovery bool
	// Timeline is, on a primary, the timeline of the WAL being written now
	// (from pg_walfile_name(pg_current_wal_lsn())); on a standby, the
	// timeline being received from pg_stat_wal_receiver while streaming,
	// else the latest checkpoint's (pg_control_checkpoint()).
	Timeline   uint32
	WriteLSN   LSN // primary: pg_current_wal_lsn(); standby: 0
	ReceiveLSN LSN // standby: pg_last_wal_receive_lsn(), 0 if nothing was streamed
	ReplayLSN  LSN // standby: pg_last_wal_replay_lsn(), 0 if unknown
	// ServerVersion is server_version_num, e.g. 150010.
	ServerVersion    int
	SystemIdentifier uint64 // from pg_control_system()
	PostmasterStart  time.Time
	PendingRestart   bool   // some setting in pg_settings is pending_restart
	ReceiverStatus   string // pg_stat_wal_receiver.status ("streaming", "waiting", …) or ""
	ReceiverSender   string // pg_stat_wal_receiver's sender_host:sender_port, or ""
	Replication      []Replica
	ReplayPaused     bool // standby: pg_is_wal_replay_paused(); primary: false
	// StandbyNames and SynchronousCommit are synchronous_standby_names and
	// synchronous_commit as the session sees them; FlushLSN is, on a
	// primary, pg_current_wal_flush_lsn() (0 on a standby).
	StandbyNames      string
	SynchronousCommit string
	FlushLSN          LSN
}

// Replica is one row of pg_stat_replication on the server queried: a
// standby (or pg_basebackup, pg_receivewal, …) streaming from it.
type Replica struct {
	ApplicationName string
	ClientAddr      string // "" for a unix socket connection
	State           string // "streaming", "catchup", "backup", "startup", "stopping"
	SyncState       string // "async", "sync", "potential", "quorum"
	PID             int    // the WAL sender's
	SentLSN         LSN
	WriteLSN        LSN
	FlushLSN        LSN
	ReplayLSN       LSN
}

// Position returns the best known WAL position of the server: WriteLSN on a
// primary, the larger of ReceiveLSN and ReplayLSN on a standby (a standby
// restored from archive has received nothing by streaming). It does no I/O.
func (s Status) Position() LSN {
	if !s.InRecovery {
		return s.WriteLSN
	}
	return max(s.ReceiveLSN, s.ReplayLSN)
}

// statusSQL works on a primary and a standby: functions that fail in one
// role are only evaluated under CASE in the other.
const statusSQL = `SELECT
  s.rec,
  CASE WHEN s.rec
    THEN COALESCE(CASE WHEN w.status = 'streaming' THEN NULLIF(w.received_tli, 0) END,
                  (pg_catalog.pg_control_checkpoint()).timeline_id)
    ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int
  END,
  CASE WHEN NOT s.rec THEN pg_catalog.pg_current_wal_lsn()::text END,
  CASE WHEN s.rec THEN pg_catalog.pg_last_wal_receive_lsn()::text END,
  CASE WHEN s.rec THEN pg_catalog.pg_last_wal_replay_lsn()::text END,
  pg_catalog.current_setting('server_version_num')::int,
  (pg_catalog.pg_control_system()).system_identifier,
  (extract(epoch FROM pg_catalog.pg_postmaster_start_time()) * 1000000)::bigint,
  EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart),
  COALESCE(w.status, ''),
  COALESCE(w.sender_host || ':' || w.sender_port, ''),
  CASE WHEN s.rec THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,
  COALESCE((SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
      'application_name', r.application_name,
      'pid', r.pid,
      'client_addr', pg_catalog.host(r.client_addr),
      'state', r.state,
      'sync_state', r.sync_state,
      'sent_lsn', r.sent_lsn::text,
      'write_lsn', r.write_lsn::text,
      'flush_lsn', r.flush_lsn::text,
      'replay_lsn', r.replay_lsn::text) ORDER BY r.application_name, r.pid)
    FROM pg_catalog.pg_stat_replication r), '[]')::text,
  pg_catalog.current_setting('synchronous_standby_names'),
  pg_catalog.current_setting('synchronous_commit'),
  CASE WHEN NOT s.rec THEN pg_catalog.pg_current_wal_flush_lsn()::text END
FROM (SELECT pg_catalog.pg_is_in_recovery() AS rec) s
LEFT JOIN pg_catalog.pg_stat_wal_receiver w ON true`

// QueryStatus takes a Status snapshot in one round trip (one statement over
// the simple query protocol). The role needs to be a superuser or a member
// of pg_monitor for the receiver and replication fields to be filled in.
// It blocks on the server's answer; cancelling ctx cancels the query (pgx
// may then close conn). Errors wrap the driver's ("query status: …"); a
// closed or broken connection, a server in the middle of shutting down and
// an unparseable value are all errors, with no partial Status.
func QueryStatus(ctx context.Context, conn *pgx.Conn) (Status, error) {
	var (
		s                      Status
		timeline               int32
		write, receive, replay *string
		flush                  *string
		sysID, startMicros     int64
		replicationJSON        string
	)
	err := conn.QueryRow(ctx, statusSQL, pgx.QueryExecModeSimpleProtocol).Scan(
		&s.InRecovery, &timeline, &write, &receive, &replay,
		&s.ServerVersion, &sysID, &startMicros, &s.PendingRestart,
		&s.ReceiverStatus, &s.ReceiverSender, &s.ReplayPaused, &replicationJSON,
		&s.StandbyNames, &s.SynchronousCommit, &flush)
	if err != nil {
		return Status{}, fmt.Errorf("query status: %w", err)
	}
	s.Timeline = uint32(timeline)
	s.SystemIdentifier = uint64(sysID)
	s.PostmasterStart = time.UnixMicro(startMicros)
	for _, f := range []struct {
		dst *LSN
		src *string
	}{{&s.WriteLSN, write}, {&s.ReceiveLSN, receive}, {&s.ReplayLSN, replay}, {&s.FlushLSN, flush}} {
		if *f.dst, err = optionalLSN(f.src); err != nil {
			return Status{}, fmt.Errorf("query status: %w", err)
		}
	}
	if s.Replication, err = parseReplicas(replicationJSON); err != nil {
		return Status{}, fmt.Errorf("query status: %w", err)
	}
	return s, nil
}

// optionalLSN parses a nullable pg_lsn in text form; NULL is 0.
func optionalLSN(s *string) (LSN, error) {
	if s == nil {
		return 0, nil
	}
	return ParseLSN(*s)
}

// parseReplicas decodes the JSON array statusSQL builds from
// pg_stat_replication.
func parseReplicas(js string) ([]Replica, error) {
	var rows []struct {
		ApplicationName *string `json:"application_name"`
		PID             int     `json:"pid"`
		ClientAddr      *string `json:"client_addr"`
		State           *string `json:"state"`
		SyncState       *string `json:"sync_state"`
		SentLSN         *string `json:"sent_lsn"`
		WriteLSN        *string `json:"write_lsn"`
		FlushLSN        *string `json:"flush_lsn"`
		ReplayLSN       *string `json:"replay_lsn"`
	}
	if err := json.Unmarshal([]byte(js), &rows); err != nil {
		return nil, fmt.Errorf("decode pg_stat_replication: %w", err)
	}
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	var replicas []Replica
	for _, r := range rows {
		rep := Replica{
			ApplicationName: str(r.ApplicationName),
			PID:             r.PID,
			ClientAddr:      str(r.ClientAddr),
			State:           str(r.State),
			SyncState:       str(r.SyncState),
		}
		for _, f := range []struct {
			dst *LSN
			src *string
		}{{&rep.SentLSN, r.SentLSN}, {&rep.WriteLSN, r.WriteLSN}, {&rep.FlushLSN, r.FlushLSN}, {&rep.ReplayLSN, r.ReplayLSN}} {
			var err error
			if *f.dst, err = optionalLSN(f.src); err != nil {
				return nil, fmt.Errorf("decode pg_stat_replication: %w", err)
			}
		}
		replicas = append(replicas, rep)
	}
	return replicas, nil
}
