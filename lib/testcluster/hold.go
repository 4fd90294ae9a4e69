package testcluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// HoldKind is one way a session can be in the middle of a write when a
// fault strikes.
type HoldKind string

// The kinds of Hold. Each inserts into the workload's table and commits only
// when its work is done, about the hold duration after it began.
const (
	// HoldIdle: BEGIN; INSERT; the client waits; COMMIT.
	HoldIdle HoldKind = "idle"
	// HoldSleep: BEGIN; INSERT; SELECT pg_sleep(d); COMMIT.
	HoldSleep HoldKind = "sleep"
	// HoldTxnCPU: BEGIN; INSERT; a CPU-bound SELECT of about d; COMMIT. A
	// statement like this never looks at whether its postmaster is alive.
	HoldTxnCPU HoldKind = "txn-cpu"
	// HoldCPU: one autocommit INSERT … SELECT whose SELECT is CPU-bound for
	// about d.
	HoldCPU HoldKind = "cpu"
	// HoldCopy: COPY … FROM STDIN of holdCopyRows rows, streamed over d.
	HoldCopy HoldKind = "copy"
)

// AllHolds is every kind.
var AllHolds = []HoldKind{HoldIdle, HoldSleep, HoldTxnCPU, HoldCPU, HoldCopy}

const holdCopyRows = 200

// HoldResult is how one held session ended.
type HoldResult struct {
	Kind   HoldKind
	Writer string
	Node   string
	// Began is when the session's transaction began (its row inserted,
	// for all but HoldCPU and HoldCopy); Ended when COMMIT's answer (or the
	// error) arrived.
	Began, Ended time.Time
	// Committed: COMMIT was acknowledged.
	Committed bool
	Err       error
}

func (r HoldResult) String() string {
	out := "error: " + fmt.Sprint(r.Err)
	if r.Committed {
		out = "committed"
	}
	return fmt.Sprintf("%s on %s [%s, %s] %s", r.Writer, r.Node, clockTime(r.Began), clockTime(r.Ended), out)
}

// Holds are sessions started by Workload.Hold.
type Holds struct {
	node    *Node
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []HoldResult
	ready   sync.WaitGroup
}

// Hold starts one session of each kind on node n (all kinds if none are
// given), each busy for about d before it commits. It returns once every
// session is inside its transaction or statement, so a fault injected
// after Hold returns hits them mid-flight. A commit that is acknowledged
// is recorded in the workload's history as an acknowledged write of
// writer "hold-<kind>" (every row of a COPY), so AssertSafe counts it: an
// old primary acknowledging one after another node was promoted is a split
// brain, and one missing from the final primary is a lost write. A session
// that fails is recorded as an attempt of unknown outcome.
func (w *Workload) Hold(t testing.TB, n *Node, d time.Duration, kinds ...HoldKind) *Holds {
	t.Helper()
	if len(kinds) == 0 {
		kinds = AllHolds
	}
	h := &Holds{node: n}
	for _, k := range kinds {
		w.mu.Lock()
		w.holdSeq++
		seq := w.holdSeq
		writer := "hold-" + string(k)
		if !slices.Contains(w.h.Writers, writer) {
			w.h.Writers = append(w.h.Writers, writer)
		}
		w.mu.Unlock()
		h.wg.Add(1)
		h.ready.Add(1)
		go h.run(w, k, writer, seq, d)
	}
	h.ready.Wait()
	return h
}

// Wait waits up to timeout for every session to end and returns how each
// ended. It fails t if one is still running then.
func (h *Holds) Wait(t testing.TB, timeout time.Duration) []HoldResult {
	t.Helper()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("held sessions on %s still running after %s", h.node.Name, timeout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]HoldResult(nil), h.results...)
}

// AssertNoneCommittedAfter fails t for every held session that was
// acknowledged at or after the moment at (a fault that must have stopped
// them), and for any that ended before it (it could not prove anything).
func AssertNoneCommittedAfter(t testing.TB, rs []HoldResult, at time.Time, fault string) {
	t.Helper()
	for _, r := range rs {
		switch {
		case r.Ended.Before(at):
			t.Errorf("held session %s ended before %s: it was not mid-flight at the fault", r, fault)
		case r.Committed:
			t.Errorf("held session %s committed after %s", r, fault)
		default:
			t.Logf("held session %s: stopped by %s", r, fault)
		}
	}
}

func (h *Holds) run(w *Workload, k HoldKind, writer string, seq int64, d time.Duration) {
	defer h.wg.Done()
	r := HoldResult{Kind: k, Writer: writer, Node: h.node.Name}
	var rows []Write
	var once sync.Once
	began := make(chan time.Time, 1)
	ready := func() {
		once.Do(func() { began <- time.Now(); h.ready.Done() })
	}
	defer func() {
		ready()
		r.Began = <-began
		r.Ended = time.Now()
		w.mu.Lock()
		if r.Committed {
			for _, x := range rows {
				x.Sent, x.Ack = r.Began, r.Ended
				w.h.Writes = append(w.h.Writes, x)
			}
		} else {
			for _, x := range rows {
				w.h.Failed = append(w.h.Failed, Attempt{Writer: x.Writer, Seq: x.Seq, Node: h.node.Name,
					Sent: r.Began, Done: r.Ended, Outcome: Unknown, Err: fmt.Sprint(r.Err)})
			}
		}
		w.mu.Unlock()
		h.mu.Lock()
		h.results = append(h.results, r)
		h.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(h.node.DSN())
	if err != nil {
		r.Err = err
		return
	}
	cfg.RuntimeParams["statement_timeout"] = "0"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		r.Err = err
		return
	}
	defer conn.Close(context.Background())
	node := h.node.Name
	if a, ok := conn.PgConn().Conn().RemoteAddr().(*net.TCPAddr); ok {
		node = w.node(a.Port)
	}
	insert := func(tx pgx.Tx) error {
		rows = append(rows, Write{Writer: writer, Seq: seq, Node: node})
		_, err := tx.Exec(ctx, "INSERT INTO "+WritesTable+" (writer, seq, node) VALUES ($1, $2, $3)", writer, seq, node)
		return err
	}
	// CPU-bound for d by the server's clock, however fast the CPU is at the
	// moment: the series is produced a row at a time, and each row looks
	// at the time (which needs no system call), never at the postmaster.
	cpu := fmt.Sprintf("SELECT count(*) FROM (SELECT s FROM (SELECT generate_series(1, 1000000000000000) AS s) x"+
		" WHERE clock_timestamp() >= statement_timestamp() + interval '%d milliseconds' LIMIT 1) g", d.Milliseconds())

	switch k {
	case HoldIdle, HoldSleep, HoldTxnCPU:
		tx, err := conn.Begin(ctx)
		if err == nil {
			err = insert(tx)
		}
		if err != nil {
			r.Err = err
			return
		}
		ready()
		switch k {
		case HoldIdle:
			time.Sleep(d)
		case HoldSleep:
			_, err = tx.Exec(ctx, "SELECT pg_sleep($1)", d.Seconds())
		case HoldTxnCPU:
			_, err = tx.Exec(ctx, cpu)
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		r.Err, r.Committed = err, err == nil
	case HoldCPU:
		rows = append(rows, Write{Writer: writer, Seq: seq, Node: node})
		go func() { time.Sleep(50 * time.Millisecond); ready() }()
		_, err := conn.Exec(ctx, "INSERT INTO "+WritesTable+" (writer, seq, node) SELECT $1, $2, $3 FROM ("+cpu+") c",
			writer, seq, node)
		r.Err, r.Committed = err, err == nil
	case HoldCopy:
		src := &slowCopy{writer: writer, seq: seq * 1_000_000, node: node, n: holdCopyRows,
			every: d / holdCopyRows, ready: ready}
		_, err := conn.CopyFrom(ctx, pgx.Identifier{WritesTable}, []string{"writer", "seq", "node"}, src)
		rows = src.sent
		r.Err, r.Committed = err, err == nil
	}
}

// slowCopy feeds COPY n rows, one every every.
type slowCopy struct {
	writer, node string
	seq          int64
	n            int
	every        time.Duration
	ready        func()
	sent         []Write
	row          []any
}

func (s *slowCopy) Next() bool {
	if len(s.sent) == s.n {
		return false
	}
	if len(s.sent) == 1 {
		s.ready() // the COPY is under way
	}
	if len(s.sent) > 0 {
		time.Sleep(s.every)
	}
	x := Write{Writer: s.writer, Seq: s.seq + int64(len(s.sent)), Node: s.node}
	s.sent = append(s.sent, x)
	s.row = []any{x.Writer, x.Seq, x.Node}
	return true
}

func (s *slowCopy) Values() ([]any, error) { return s.row, nil }
func (s *slowCopy) Err() error             { return nil }
