package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// PostgreSQL type OIDs the stand-in answers with.
const (
	oidBool = 16
	oidInt8 = 20
	oidInt4 = 23
	oidText = 25
)

// walRate is how fast a stand-in primary's WAL position advances.
const walRate = 64 << 10 // bytes per second

// result is one answer to a statement: no fields means a command without
// rows.
type result struct {
	fields []pgproto3.FieldDescription
	rows   [][]any // nil values are NULL
	tag    string
}

func field(name string, oid uint32) pgproto3.FieldDescription {
	size := int16(-1)
	switch oid {
	case oidBool:
		size = 1
	case oidInt4:
		size = 4
	case oidInt8:
		size = 8
	}
	return pgproto3.FieldDescription{Name: []byte(name), DataTypeOID: oid, DataTypeSize: size, TypeModifier: -1}
}

// encode renders v in the text (format 0) or binary (format 1) format of oid.
func encode(v any, oid uint32, format int16) []byte {
	if v == nil {
		return nil
	}
	if format == 0 {
		switch x := v.(type) {
		case string:
			return append([]byte{}, x...) // not nil: "" is not NULL
		case bool:
			if x {
				return []byte("t")
			}
			return []byte("f")
		default:
			return fmt.Append(nil, x)
		}
	}
	switch oid {
	case oidBool:
		if v.(bool) {
			return []byte{1}
		}
		return []byte{0}
	case oidInt4:
		return binary.BigEndian.AppendUint32(nil, uint32(toInt(v)))
	case oidInt8:
		return binary.BigEndian.AppendUint64(nil, uint64(toInt(v)))
	}
	return fmt.Append(nil, v)
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	return 0
}

func lsnText(pos int64) string { return fmt.Sprintf("%X/%X", uint64(pos)>>32, uint32(pos)) }

// standin plays one node's PostgreSQL on a unix socket: it answers the
// status queries pg-lockd sends with the state the driver gives it (primary
// or standby, timeline, WAL positions), IDENTIFY_SYSTEM on a replication
// connection, and refuses everything else with an error.
type standin struct {
	node *node
	path string // the socket's path

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	dead  bool
	// queries counts the statements answered, for the report.
	queries int64
}

// listen opens the socket <dir>/.s.PGSQL.<port>, as PostgreSQL names it.
func (s *standin) listen(dir string, port int) error {
	s.path = filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))
	_ = os.Remove(s.path)
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		return err
	}
	s.ln, s.conns = ln, map[net.Conn]struct{}{}
	go s.accept()
	return nil
}

func (s *standin) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.dead {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go s.serve(c)
	}
}

// kill makes the server vanish as a dead host's would: the socket is
// removed and every connection closed.
func (s *standin) kill() {
	s.mu.Lock()
	s.dead = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	_ = os.Remove(s.path)
}

func (s *standin) serve(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	be := pgproto3.NewBackend(c, c)
	var replication bool
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		case *pgproto3.CancelRequest:
			return
		case *pgproto3.StartupMessage:
			replication = m.Parameters["replication"] == "true" || m.Parameters["replication"] == "1"
		default:
			return
		}
		break
	}
	be.Send(&pgproto3.AuthenticationOk{})
	for k, v := range map[string]string{
		"server_version": "15.10", "server_encoding": "UTF8", "client_encoding": "UTF8",
		"DateStyle": "ISO, MDY", "integer_datetimes": "on", "standard_conforming_strings": "on",
		"TimeZone": "UTC", "application_name": "pg-ha",
	} {
		be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	// Extended protocol: statement texts by name, the portal's statement
	// and result formats.
	stmts := map[string]string{}
	var portal struct {
		query   string
		formats []int16
	}
	failed := false // an error in the extended protocol skips to Sync
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		s.mu.Lock()
		dead := s.dead
		s.queries++
		s.mu.Unlock()
		if dead {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			r, err := s.answer(m.String, replication)
			if err != nil {
				sendError(be, err)
			} else {
				if len(r.fields) > 0 {
					be.Send(&pgproto3.RowDescription{Fields: r.fields})
					sendRows(be, r, nil)
				}
				be.Send(&pgproto3.CommandComplete{CommandTag: []byte(r.tag)})
			}
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if be.Flush() != nil {
				return
			}
		case *pgproto3.Parse:
			if failed {
				continue
			}
			stmts[m.Name] = m.Query
			be.Send(&pgproto3.ParseComplete{})
		case *pgproto3.Describe:
			if failed {
				continue
			}
			q := stmts[m.Name]
			if m.ObjectType == 'P' {
				q = portal.query
			}
			r, err := s.answer(q, replication)
			if err != nil {
				sendError(be, err)
				failed = true
				continue
			}
			if m.ObjectType == 'S' {
				be.Send(&pgproto3.ParameterDescription{ParameterOIDs: paramOIDs(q)})
			}
			if len(r.fields) > 0 {
				be.Send(&pgproto3.RowDescription{Fields: r.fields})
			} else {
				be.Send(&pgproto3.NoData{})
			}
		case *pgproto3.Bind:
			if failed {
				continue
			}
			portal.query, portal.formats = stmts[m.PreparedStatement], m.ResultFormatCodes
			be.Send(&pgproto3.BindComplete{})
		case *pgproto3.Execute:
			if failed {
				continue
			}
			r, err := s.answer(portal.query, replication)
			if err != nil {
				sendError(be, err)
				failed = true
				continue
			}
			sendRows(be, r, portal.formats)
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte(r.tag)})
		case *pgproto3.Close:
			be.Send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			failed = false
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if be.Flush() != nil {
				return
			}
		case *pgproto3.Flush:
			if be.Flush() != nil {
				return
			}
		case *pgproto3.Terminate:
			return
		default:
			sendError(be, fmt.Errorf("message %T not supported by the stand-in", msg))
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if be.Flush() != nil {
				return
			}
		}
	}
}

// paramOIDs declares the parameters of the statements the stand-in knows
// ($1 of the replication guard is a number of seconds).
func paramOIDs(q string) []uint32 {
	if strings.Contains(q, "$1") {
		return []uint32{701} // float8
	}
	return nil
}

func sendError(be *pgproto3.Backend, err error) {
	be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "0A000", Message: err.Error()})
}

func sendRows(be *pgproto3.Backend, r result, formats []int16) {
	for _, row := range r.rows {
		vals := make([][]byte, len(row))
		for i, v := range row {
			var f int16
			switch {
			case len(formats) == 1:
				f = formats[0]
			case i < len(formats):
				f = formats[i]
			}
			vals[i] = encode(v, r.fields[i].DataTypeOID, f)
		}
		be.Send(&pgproto3.DataRow{Values: vals})
	}
}

var errUnknown = errors.New("statement not known to the stand-in")

// answer returns the result of one statement, from the node's state now.
func (s *standin) answer(q string, replication bool) (result, error) {
	st := s.node.snapshot(time.Now())
	q = strings.TrimSpace(q)
	switch {
	case q == "":
		return result{tag: ""}, nil
	case replication && strings.HasPrefix(strings.ToUpper(q), "IDENTIFY_SYSTEM"):
		return result{
			fields: []pgproto3.FieldDescription{field("systemid", oidText), field("timeline", oidInt4),
				field("xlogpos", oidText), field("dbname", oidText)},
			rows: [][]any{{strconv.FormatUint(st.sysid, 10), int32(st.timeline), lsnText(st.position), nil}},
			tag:  "IDENTIFY_SYSTEM",
		}, nil
	case replication:
		return result{}, errUnknown
	case strings.Contains(q, "pg_stat_wal_receiver") && strings.Contains(q, "pg_is_in_recovery() AS rec"):
		return s.status(st), nil
	case strings.Contains(q, "FROM pg_catalog.pg_stat_replication") && strings.Contains(q, "count(*)"):
		return result{fields: []pgproto3.FieldDescription{field("count", oidInt8)},
			rows: [][]any{{int64(st.receivers)}}, tag: "SELECT 1"}, nil
	case q == "SELECT pg_is_in_recovery()":
		return result{fields: []pgproto3.FieldDescription{field("pg_is_in_recovery", oidBool)},
			rows: [][]any{{!st.primary}}, tag: "SELECT 1"}, nil
	case strings.EqualFold(q, "CHECKPOINT"):
		return result{tag: "CHECKPOINT"}, nil
	}
	return result{}, fmt.Errorf("%w: %.60q", errUnknown, q)
}

// status is the one-row answer to pg-lockd's status statement (lib/pg's
// QueryStatus): sixteen columns in its order.
func (s *standin) status(st nodeState) result {
	fields := []pgproto3.FieldDescription{
		field("rec", oidBool), field("timeline", oidInt4), field("write", oidText), field("receive", oidText),
		field("replay", oidText), field("server_version_num", oidInt4), field("system_identifier", oidInt8),
		field("start", oidInt8), field("pending_restart", oidBool), field("receiver_status", oidText),
		field("sender", oidText), field("replay_paused", oidBool), field("replication", oidText),
		field("synchronous_standby_names", oidText), field("synchronous_commit", oidText), field("flush", oidText),
	}
	var write, receive, replay, flush any
	status, sender := "", ""
	repl := "[]"
	if st.primary {
		write, flush = lsnText(st.position), lsnText(st.position)
		var rs []string
		for _, r := range st.replicas {
			rs = append(rs, fmt.Sprintf(`{"application_name":%q,"pid":%d,"client_addr":"127.0.0.1","state":"streaming","sync_state":"async","sent_lsn":%q,"write_lsn":%q,"flush_lsn":%q,"replay_lsn":%q}`,
				r, 5000+len(rs), lsnText(st.position), lsnText(st.position), lsnText(st.position), lsnText(st.position)))
		}
		if len(rs) > 0 {
			repl = "[" + strings.Join(rs, ",") + "]"
		}
	} else {
		receive, replay = lsnText(st.position), lsnText(st.position)
		if st.streaming {
			status, sender = "streaming", st.sender
		}
	}
	return result{fields: fields, tag: "SELECT 1", rows: [][]any{{
		!st.primary, int32(st.timeline), write, receive, replay, int32(150010), int64(st.sysid),
		st.started.UnixMicro(), false, status, sender, false, repl, "", "on", flush,
	}}}
}
