package testcluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// WritesTable is the workload's table:
// (writer text, seq bigint, node text, primary key (writer, seq)).
const WritesTable = "pgha_writes"

// MultiWriter is the writer that connects through MultiHostDSN, the
// application's view of the cluster. Pinned writers are "pin-<node name>".
const MultiWriter = "multi"

// Timings of every writer.
const (
	statementTimeout = 2 * time.Second
	connectTimeout   = 4 * time.Second
	retryPause       = 50 * time.Millisecond
)

const insertSQL = "INSERT INTO " + WritesTable + " (writer, seq, node) VALUES ($1, $2, inet_server_port()::text) " +
	"RETURNING inet_server_port(), pg_current_wal_insert_lsn()::text"

// Workload writes to a Cluster until Stop: one writer through MultiHostDSN
// and one pinned to each node, each inserting seq = 1, 2, 3, … every 5–10 ms
// and recording every acknowledged insert and every failed attempt.
type Workload struct {
	c     *Cluster
	stop  chan struct{}
	ctx   context.Context // cancelled by Stop: aborts connects and pauses, never a statement
	abort context.CancelFunc
	wg    sync.WaitGroup
	ports map[int]string

	mu      sync.Mutex
	h       History
	stopped bool
	holdSeq int64 // the last sequence number a Hold used
}

// StartWorkload creates the workload's table through the primary (waiting
// up to 30s for one) and starts the writers. It fails t if the table
// cannot be created. Stop is also called in t's Cleanup.
func StartWorkload(t testing.TB, c *Cluster) *Workload {
	t.Helper()
	return StartWorkloadVia(t, c, MultiHostDSN(c.Nodes))
}

// StartWorkloadVia is StartWorkload with the application's writer (the
// MultiWriter) connecting with dsn instead of MultiHostDSN, for example
// through HAProxy's read-write port. Its writes are attributed to the node
// whose PostgreSQL port inet_server_port() names.
func StartWorkloadVia(t testing.TB, c *Cluster, dsn string) *Workload {
	t.Helper()
	p := c.WaitPrimary(t, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+WritesTable+
		" (writer text NOT NULL, seq bigint NOT NULL, node text NOT NULL, PRIMARY KEY (writer, seq))")
	if err != nil {
		t.Fatalf("create workload table: %v", err)
	}
	w := &Workload{c: c, stop: make(chan struct{}), ports: map[int]string{}}
	w.ctx, w.abort = context.WithCancel(context.Background())
	for _, n := range c.Nodes {
		w.ports[n.PGPort] = n.Name
		w.h.Nodes = append(w.h.Nodes, n.Name)
	}
	w.h.Start = time.Now()
	w.h.Writers = append(w.h.Writers, MultiWriter)
	w.wg.Add(1 + len(c.Nodes))
	go w.run(MultiWriter, dsn, true)
	for _, n := range c.Nodes {
		name := "pin-" + n.Name
		w.h.Writers = append(w.h.Writers, name)
		go w.run(name, n.DSN(), false)
	}
	t.Cleanup(func() { w.Stop() })
	return w
}

// Mark records an event (such as "kill node1") in the history at the
// current time and returns that time.
func (w *Workload) Mark(what string) time.Time {
	now := time.Now()
	w.mu.Lock()
	w.h.Events = append(w.h.Events, Event{At: now, What: what})
	w.mu.Unlock()
	return now
}

// Snapshot returns a copy of the history so far; its End is now.
func (w *Workload) Snapshot() *History {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.h.clone()
	if h.End.IsZero() {
		h.End = time.Now()
	}
	return h
}

// WaitAck waits up to timeout until writer has a write acknowledged after
// the moment after — by node, unless node is "" — and returns the first
// such write. It fails t on timeout.
func (w *Workload) WaitAck(t testing.TB, writer, node string, after time.Time, timeout time.Duration) Write {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		var first Write
		for _, x := range w.h.Writes {
			if x.Writer == writer && (node == "" || x.Node == node) && x.Ack.After(after) &&
				(first.Ack.IsZero() || x.Ack.Before(first.Ack)) {
				first = x
			}
		}
		w.mu.Unlock()
		if !first.Ack.IsZero() {
			return first
		}
		if time.Now().After(deadline) {
			on := ""
			if node != "" {
				on = " on " + node
			}
			t.Fatalf("writer %s: no write acknowledged%s within %s after %s", writer, on, timeout, clockTime(after))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the writers and returns the history. An insert in flight is
// allowed to finish (at most the 2s statement timeout) so its outcome is
// known. Stop may be called more than once; later calls return the same
// history.
func (w *Workload) Stop() *History {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.stop)
		w.abort()
	}
	w.mu.Unlock()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h.End.IsZero() {
		w.h.End = time.Now()
	}
	return w.h.clone()
}

func (w *Workload) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause sleeps d unless Stop comes first.
func (w *Workload) pause(d time.Duration) {
	select {
	case <-w.stop:
	case <-time.After(d):
	}
}

func (w *Workload) node(port int) string {
	if name, ok := w.ports[port]; ok {
		return name
	}
	return "port:" + strconv.Itoa(port)
}

// run is one writer's loop.
func (w *Workload) run(writer, dsn string, multi bool) {
	defer w.wg.Done()
	var conn *pgx.Conn
	closeConn := func() {
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(ctx)
			cancel()
			conn = nil
		}
	}
	defer closeConn()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		panic(fmt.Sprintf("workload %s: %v", writer, err)) // the harness built dsn
	}
	// Keep the expected errors (read-only, shutting down) of thousands of
	// attempts out of PostgreSQL's log, which the node logs show.
	cfg.RuntimeParams["log_min_messages"] = "fatal"
	cfg.RuntimeParams["log_min_error_statement"] = "panic"
	// An acknowledgement must mean what the cluster promises for a commit:
	// with synchronous replication, that a synchronous standby has it. Set
	// explicitly so that no server or role default can weaken it.
	cfg.RuntimeParams["synchronous_commit"] = "on"
	connNode := ""
	seq := int64(1)
	for !w.stopping() {
		if conn == nil {
			ctx, cancel := context.WithTimeout(w.ctx, connectTimeout)
			c, err := pgx.ConnectConfig(ctx, cfg)
			cancel()
			if err != nil {
				w.pause(retryPause)
				continue
			}
			conn = c
			connNode = ""
			if a, ok := c.PgConn().Conn().RemoteAddr().(*net.TCPAddr); ok {
				connNode = w.node(a.Port)
			}
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), statementTimeout)
		var port int32
		var lsn string
		err := conn.QueryRow(ctx, insertSQL, writer, seq).Scan(&port, &lsn)
		cancel()
		done := time.Now()
		if err == nil {
			l, _ := ParseLSN(lsn)
			w.mu.Lock()
			w.h.Writes = append(w.h.Writes, Write{Writer: writer, Seq: seq, Node: w.node(int(port)), LSN: l, Sent: sent, Ack: done})
			w.mu.Unlock()
			seq++
			w.pause(time.Duration(5+rand.IntN(6)) * time.Millisecond)
			continue
		}
		outcome := classify(err)
		w.mu.Lock()
		w.h.Failed = append(w.h.Failed, Attempt{Writer: writer, Seq: seq, Node: connNode, Sent: sent, Done: done, Outcome: outcome, Err: err.Error()})
		w.mu.Unlock()
		// A new number after an unknown outcome, so that a commit we did
		// not hear of is never confused with a later one; also after a
		// duplicate key, which means exactly that happened.
		var pe *pgconn.PgError
		if outcome == Unknown || (errors.As(err, &pe) && pe.Code == "23505") {
			seq++
		}
		// The multi-host writer looks for the writable node again after any
		// error; a pinned one keeps a healthy session to a read-only node.
		if multi || outcome == Unknown || conn.IsClosed() || !errors.As(err, &pe) {
			closeConn()
		}
		w.pause(retryPause)
	}
}

// classify decides whether a failed insert certainly did not commit
// (Failed): never sent, or answered with an ERROR, which in autocommit
// means rolled back. Anything else — a timeout, a broken connection, a
// FATAL that may follow a local commit — is Unknown.
func classify(err error) Outcome {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Severity == "ERROR" {
			return Failed
		}
		return Unknown
	}
	if pgconn.SafeToRetry(err) {
		return Failed
	}
	return Unknown
}

// FinalWrites waits up to 30s for the primary, then returns the
// workload's rows on it (writer → sequence numbers), and the primary. It
// fails t if they cannot be read.
func FinalWrites(t testing.TB, c *Cluster) (map[string][]int64, *Node) {
	t.Helper()
	p := c.WaitPrimary(t, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := p.ReadWrites(ctx)
	if err != nil {
		t.Fatalf("read final writes: %v", err)
	}
	return rows, p
}

// ParseLSN parses PostgreSQL's text form of a WAL location, "16/B374D848".
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q: want X/Y", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("LSN %q: not hexadecimal", s)
	}
	return h<<32 | l, nil
}
