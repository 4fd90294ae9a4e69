package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// A permanent logical slot (slots: {cdc: {type: logical, …}} in the
// dynamic configuration, as Patroni's) kept across switchovers and
// failovers: a change-data-capture consumer that follows the primary sees
// every committed row of the workload exactly once.

// logicalSlot is the permanent logical slot TestLogicalSlotFailovers
// configures.
const logicalSlot = "cdc"

// logicalRounds is how many switchovers and node deaths, alternating, the
// consumer lives through.
const logicalRounds = 10

// logicalSlotDCS is the slot's entry in bootstrap.dcs.
var logicalSlotDCS = map[string]any{
	"slots": map[string]any{logicalSlot: map[string]any{"type": "logical", "database": "postgres", "plugin": "test_decoding"}},
}

// syncFlushSQL is how far the synchronous standby has flushed: the
// consumer decodes no further, which is what PostgreSQL 17's
// synchronized_standby_slots enforces for a logical walsender. PostgreSQL
// 15 has no such guard: a consumer that reads past it may see a change
// that a failover then loses.
const syncFlushSQL = `SELECT flush_lsn::text FROM pg_stat_replication
	WHERE sync_state IN ('sync', 'quorum') ORDER BY flush_lsn DESC LIMIT 1`

// getChangesSQL consumes the slot up to $2. skip-empty-xacts leaves out
// transactions without a row change (the harness's txid_current() probes),
// so that an idle cluster decodes to nothing. The server confirms before
// it sends the rows: a connection cut in that instant (a switchover's
// shutdown) would lose them to the consumer, as it would not a streaming
// client, which confirms what it has.
const getChangesSQL = `SELECT lsn::text, xid::text, data
	FROM pg_logical_slot_get_changes($1, $2::text::pg_lsn, NULL, 'skip-empty-xacts', '1')`

// insertRow matches test_decoding's line for a workload insert:
// table public.pgha_writes: INSERT: writer[text]:'multi' seq[bigint]:42 node[text]:'5432'.
var insertRow = regexp.MustCompile(`^table public\.` + regexp.QuoteMeta(testcluster.WritesTable) +
	`: INSERT: writer\[text\]:'([^']*)' seq\[bigint\]:(\d+)( |$)`)

// rowID names a workload row: its primary key, writer#seq.
func rowID(writer string, seq int64) string { return fmt.Sprintf("%s#%d", writer, seq) }

// slotConsumer reads the logical slot on whichever node is primary, every
// 150ms, as an application's change-data-capture client would, and counts
// the workload rows it sees.
type slotConsumer struct {
	c      *testcluster.Cluster
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu         sync.Mutex
	lastCommit pg.LSN         // the commit LSN of the last transaction processed
	node       string         // where the last read succeeded
	seen       map[string]int // row id → times consumed
	dups       []string       // the first few rows consumed twice, with where
	txns, rows int            // processed
	again      int            // transactions delivered again after a move and skipped
	lastErr    string
	moves      []string // each move to another primary, for the log
	draining   bool
	drainFrom  pg.LSN // while draining: a read counts only if it reached here
	empty      int    // consecutive empty reads while draining
}

// startConsumer starts a consumer; it stops when close is called or t ends.
func startConsumer(t testing.TB, c *testcluster.Cluster) *slotConsumer {
	k := &slotConsumer{c: c, done: make(chan struct{}), seen: map[string]int{}}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	go k.run()
	t.Cleanup(k.close)
	return k
}

// close stops the consumer and waits for it; later calls do nothing.
func (k *slotConsumer) close() {
	k.once.Do(func() {
		k.cancel()
		<-k.done
	})
}

func (k *slotConsumer) run() {
	defer close(k.done)
	var conn *pgx.Conn
	var node *testcluster.Node
	drop := func() {
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(ctx)
			cancel()
			conn = nil
		}
	}
	defer drop()
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-tick.C:
		}
		if conn == nil {
			p, err := k.c.Primary(k.ctx)
			if err == nil {
				conn, err = p.Conn(k.ctx)
			}
			if err != nil {
				k.failed(err)
				continue
			}
			node = p
			k.arrive(conn, node)
		}
		if err := k.read(conn, node); err != nil {
			k.failed(fmt.Errorf("%s: %w", node.Name, err))
			drop()
		}
	}
}

func (k *slotConsumer) failed(err error) {
	k.mu.Lock()
	k.lastErr = time.Now().Format("15:04:05.000") + " " + err.Error()
	k.mu.Unlock()
}

// arrive notes where the slot stands on node when the consumer moves there
// from another primary.
func (k *slotConsumer) arrive(conn *pgx.Conn, node *testcluster.Node) {
	k.mu.Lock()
	from, last := k.node, k.lastCommit
	k.mu.Unlock()
	if from == "" || from == node.Name {
		return
	}
	ctx, cancel := context.WithTimeout(k.ctx, 3*time.Second)
	defer cancel()
	var confirmed *string
	err := conn.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", logicalSlot).Scan(&confirmed)
	at := "(none)"
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		at = "(no such slot)"
	case err != nil:
		at = "(" + err.Error() + ")"
	case confirmed != nil:
		at = *confirmed
	}
	k.mu.Lock()
	k.moves = append(k.moves, fmt.Sprintf("%s → %s: slot there at %s, consumer's last commit %s", from, node.Name, at, last))
	k.mu.Unlock()
}

// read consumes what the synchronous standby has flushed and processes
// each transaction in commit order.
func (k *slotConsumer) read(conn *pgx.Conn, node *testcluster.Node) error {
	ctx, cancel := context.WithTimeout(k.ctx, 5*time.Second)
	defer cancel()
	var upto *string
	err := conn.QueryRow(ctx, syncFlushSQL).Scan(&upto)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && upto == nil) {
		return nil // no synchronous standby right now: nothing is safe to read
	}
	if err != nil {
		return err
	}
	uptoLSN, err := pg.ParseLSN(*upto)
	if err != nil {
		return err
	}
	rows, err := conn.Query(ctx, getChangesSQL, logicalSlot, *upto)
	if err != nil {
		return err
	}
	defer rows.Close()
	var ids []string
	n := 0
	for rows.Next() {
		var lsn, xid, data string
		if err := rows.Scan(&lsn, &xid, &data); err != nil {
			return err
		}
		n++
		switch {
		case strings.HasPrefix(data, "BEGIN"):
			ids = nil
		case strings.HasPrefix(data, "COMMIT"):
			// The COMMIT row's lsn is the transaction's commit LSN.
			commit, err := pg.ParseLSN(lsn)
			if err != nil {
				return err
			}
			k.process(node.Name, xid, commit, ids)
			ids = nil
		default:
			if m := insertRow.FindStringSubmatch(data); m != nil {
				ids = append(ids, m[1]+"#"+m[2])
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	k.node = node.Name
	if k.draining {
		if n == 0 && uptoLSN >= k.drainFrom {
			k.empty++
		} else {
			k.empty = 0
		}
	}
	k.mu.Unlock()
	return nil
}

// process records a transaction's rows unless it was processed before: a
// copy of the slot may stand before what the consumer confirmed on the
// previous primary, and a streaming client asking to start at its
// confirmed LSN would not get those again.
func (k *slotConsumer) process(node, xid string, commit pg.LSN, ids []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if commit <= k.lastCommit {
		k.again++
		return
	}
	for _, id := range ids {
		k.seen[id]++
		if k.seen[id] == 2 && len(k.dups) < 10 {
			k.dups = append(k.dups, fmt.Sprintf("%s again in xid %s (commit %s) on %s", id, xid, commit, node))
		}
	}
	k.lastCommit = commit
	k.txns++
	k.rows += len(ids)
}

func (k *slotConsumer) position() pg.LSN {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastCommit
}

func (k *slotConsumer) status() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return fmt.Sprintf("last commit %s read on %s, %d transactions (%d rows) processed, %d delivered again; last error: %s",
		k.lastCommit, k.node, k.txns, k.rows, k.again, k.lastErr)
}

// takeMoves returns the moves noted since the last call.
func (k *slotConsumer) takeMoves() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.moves
	k.moves = nil
	return m
}

// waitProgress waits up to timeout for the consumer to process a
// transaction it had not, and returns how long that took; it fails t
// otherwise.
func (k *slotConsumer) waitProgress(t testing.TB, what string, timeout time.Duration) time.Duration {
	t.Helper()
	from, began := k.position(), time.Now()
	if !holdsWithin(timeout, func() bool { return k.position() > from }) {
		t.Fatalf("%s: the consumer made no progress within %s: %s", what, timeout, k.status())
	}
	return time.Since(began)
}

// drain waits up to timeout until the consumer has read everything the
// primary wrote so far and found nothing more twice in a row.
func (k *slotConsumer) drain(t testing.TB, timeout time.Duration) {
	t.Helper()
	p := k.c.WaitPrimary(t, 30*time.Second)
	var text string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text", nil, &text)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	target, err := pg.ParseLSN(text)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	k.draining, k.drainFrom, k.empty = true, target, 0
	k.mu.Unlock()
	if !holdsWithin(timeout, func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.empty >= 2
	}) {
		t.Fatalf("the consumer did not drain the slot up to %s on %s within %s: %s", target, p.Name, timeout, k.status())
	}
}

// slotCopiesProblem says what is missing for the next switchover or
// failover to keep the logical slot: the primary's slot, or a running
// replica's copy of it; a copy ahead of the primary's slot also counts,
// since promoting it would skip changes the consumer has not confirmed.
// "" means nothing.
func slotCopiesProblem(c *testcluster.Cluster) string {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	p, err := c.Primary(ctx)
	if err != nil {
		return "no primary: " + err.Error()
	}
	for _, n := range c.Nodes {
		if n == p || !n.Managed() {
			continue
		}
		s, ok, err := n.ReplicationSlot(ctx, logicalSlot)
		switch {
		case err != nil:
			return fmt.Sprintf("replica %s did not answer: %v", n.Name, err)
		case !ok:
			return fmt.Sprintf("no copy of logical slot %s on replica %s (primary %s)", logicalSlot, n.Name, p.Name)
		case s.Type != "logical":
			return fmt.Sprintf("replica %s's slot %s is not logical: %s", n.Name, logicalSlot, s)
		}
		// Read after the copy: the primary's slot only moves forward.
		ps, ok, err := p.ReplicationSlot(ctx, logicalSlot)
		switch {
		case err != nil:
			return fmt.Sprintf("primary %s did not answer: %v", p.Name, err)
		case !ok:
			return fmt.Sprintf("no logical slot %s on the primary %s", logicalSlot, p.Name)
		case s.ConfirmedFlushLSN > ps.ConfirmedFlushLSN:
			return fmt.Sprintf("replica %s's copy of %s at %s, ahead of the primary %s's at %s",
				n.Name, logicalSlot, s.ConfirmedFlushLSN, p.Name, ps.ConfirmedFlushLSN)
		}
	}
	return ""
}

// waitSlotCopies waits up to timeout until slotCopiesProblem finds
// nothing, and fails t with the last problem otherwise.
func waitSlotCopies(t testing.TB, c *testcluster.Cluster, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	for {
		problem := slotCopiesProblem(c)
		if problem == "" {
			return time.Since(began)
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s: %s", timeout, problem)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRoundReady waits up to timeout until the cluster is steady for the
// next round and returns its synchronous state and how long that took:
// every running replica streams and holds a copy of the slot
// (slotCopiesProblem), synchronous replication has settled, and all that
// still holds two loops later with no server restarted. A replica restarts
// to load a copy, and the leader sees it a loop late: the synchronous
// standby may change after a first look.
func waitRoundReady(t testing.TB, c *testcluster.Cluster, timeout time.Duration) (testcluster.SyncState, time.Duration) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	problem := ""
	look := func() (testcluster.SyncState, map[string]int, bool) {
		if err := c.ReplicasStreamingWithin(0); err != nil {
			problem = err.Error()
			return testcluster.SyncState{}, nil, false
		}
		if p := slotCopiesProblem(c); p != "" {
			problem = p
			return testcluster.SyncState{}, nil, false
		}
		s, err := c.Sync(context.Background())
		if err != nil || !synced(s, testcluster.SyncOn, 1) {
			problem = fmt.Sprintf("synchronous replication not settled: %s (%v)", s, err)
			return s, nil, false
		}
		pids := map[string]int{}
		for _, n := range c.Nodes {
			pids[n.Name] = n.PID(testcluster.Postmaster)
		}
		return s, pids, true
	}
	for {
		if time.Now().After(deadline) {
			t.Fatalf("cluster not steady for a round within %s: %s", timeout, problem)
		}
		s, pids, ok := look()
		if !ok {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		time.Sleep(2 * c.Options.LoopWait)
		s2, pids2, ok := look()
		switch {
		case !ok:
		case s2.String() != s.String():
			problem = fmt.Sprintf("synchronous replication changed: %s, then %s", s, s2)
		case !maps.Equal(pids, pids2):
			problem = fmt.Sprintf("a server restarted: postmasters %v, then %v", pids, pids2)
		default:
			return s2, time.Since(began)
		}
	}
}

// newPrimarySlot fails t unless np, just promoted, holds the logical slot,
// and describes it.
func newPrimarySlot(t testing.TB, np *testcluster.Node, what string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, ok, err := np.ReplicationSlot(ctx, logicalSlot)
	switch {
	case err != nil:
		t.Fatalf("%s: the new primary %s: %v", what, np.Name, err)
	case !ok:
		t.Errorf("%s: the new primary %s has no slot %s", what, np.Name, logicalSlot)
		return "no slot"
	case s.Type != "logical" || s.Plugin != "test_decoding" || s.Database != "postgres":
		t.Errorf("%s: the new primary %s's slot is not the configured one: %s (plugin %q, database %q)", what, np.Name, s, s.Plugin, s.Database)
	}
	return s.String()
}

// TestLogicalSlotFailovers: with a permanent logical slot configured and
// synchronous_mode on, pg-ha runs PostgreSQL with wal_level logical and
// hot_standby_feedback on, creates the slot on the primary and keeps a
// copy on each replica. Through ten rounds of switchover and node death
// of the primary, alternating, the new primary always holds the slot, and
// a consumer that follows the primary, decoding what the synchronous
// standby has, keeps going after each and in the end has seen every row
// of the workload exactly once, and no row the final primary lacks. No
// acknowledged write is lost and there are never two primaries.
func TestLogicalSlotFailovers(t *testing.T) {
	t.Parallel() // with the synchronous failover tests: it mostly waits
	o := syncOptions(3, testcluster.SyncOn, false)
	o.ExtraDCS = logicalSlotDCS
	c := testcluster.Start(t, o)
	ttl := c.Options.TTL

	// The slot must be consistent before the workload's first write, or
	// decoding would begin after it.
	p := waitSynced(t, c, testcluster.SyncOn, 1).Leader
	waitUntil(t, 30*time.Second, "consistent logical slot "+logicalSlot+" on the primary "+p.Name, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s, ok, err := p.ReplicationSlot(ctx, logicalSlot)
		return err == nil && ok && s.Type == "logical" && s.ConfirmedFlushLSN != 0
	})
	w := testcluster.StartWorkload(t, c)
	k := startConsumer(t, c)
	time.Sleep(warmUp)
	k.waitProgress(t, "start", 10*time.Second)
	// A replica cloned after the slot was made lacks the WAL from its
	// restart_lsn on; it gets a copy once the consumer's confirmations have
	// moved the slot past that, at a running-xacts record (one at least
	// every 15s while there are writes).
	took := waitSlotCopies(t, c, 45*time.Second)
	t.Logf("slot %s on %s, copies on the replicas %s after the consumer's first change", logicalSlot, p.Name, took.Round(time.Millisecond))
	// Set from the start or, at the latest, when the copies were made.
	ctx := context.Background()
	for _, n := range c.Nodes {
		for setting, want := range map[string]string{"wal_level": "logical", "hot_standby_feedback": "on"} {
			var got string
			if err := n.QueryRow(ctx, "SHOW "+setting, nil, &got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: %s = %s, want %s with a logical permanent slot configured", n.Name, setting, got, want)
			}
		}
	}

	began := time.Now()
	for i := range logicalRounds {
		s, steady := waitRoundReady(t, c, 60*time.Second)
		old := s.Leader
		roundBegan := time.Now()
		var np *testcluster.Node
		var what, slot string
		var promoted time.Duration
		if i%2 == 0 {
			to := c.Node(s.Key.Standbys[0])
			what = fmt.Sprintf("round %d/%d: switchover %s → %s", i+1, logicalRounds, old.Name, to.Name)
			waitSwitchable(t, c, old, to, 15*time.Second)
			w.Mark(what)
			switchTo(t, c, old, to)
			np = to
			promoted = time.Since(roundBegan)
			slot = newPrimarySlot(t, np, what)
		} else {
			what = fmt.Sprintf("round %d/%d: node death of primary %s", i+1, logicalRounds, old.Name)
			killed := w.Mark(what)
			old.KillAll()
			np = c.WaitPromoted(t, ttl+15*time.Second, old)
			promoted = time.Since(roundBegan)
			slot = newPrimarySlot(t, np, what)
			if !s.Lists(np.Name) {
				t.Errorf("%s: %s was promoted, but it was not a synchronous standby: %s", what, np.Name, s)
			}
			w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 30*time.Second)
		}
		// The consumer reads up to the synchronous standby's flush: after a
		// node death that standby may first have to be rewound (it received
		// WAL the promoted one never got) and restarted to load its slot
		// copy, which took up to 10 s beside the other long tests.
		progressBound := 10 * time.Second
		if i%2 == 1 {
			progressBound = 30 * time.Second
		}
		progress := k.waitProgress(t, what, progressBound)
		if i%2 == 1 {
			w.Mark("start " + old.Name + " again")
			old.Start(t)
			c.WaitReplicasStreaming(t, 45*time.Second)
		}
		t.Logf("%s: steady after %s; %s leads after %s, its slot %s; consumer moved on %s later; %s",
			what, steady.Round(time.Millisecond), np.Name, promoted.Round(time.Millisecond), slot,
			progress.Round(time.Millisecond), strings.Join(k.takeMoves(), "; "))
	}
	t.Logf("%d rounds in %s", logicalRounds, time.Since(began).Round(time.Millisecond))

	h := finishSync(t, c, w)
	k.drain(t, 30*time.Second)
	k.close()
	t.Logf("consumer: %s", k.status())
	final, fp := testcluster.FinalWrites(t, c)
	checkConsumed(t, h, final, fp, k)
	// Which of pg-supervise's ways to keep a copy this run took.
	for _, n := range c.Nodes {
		t.Logf("%s: took a copy of the slot %d times, %d of them replacing one ahead of the leader's", n.Name,
			n.LogCount(testcluster.Supervise, "copying logical slots from the upstream"),
			n.LogCount(testcluster.Supervise, "ahead of the leader's: taking it again"))
	}
}

// checkConsumed fails t unless the consumer saw every row on the final
// primary fp exactly once and no other row.
func checkConsumed(t testing.TB, h *testcluster.History, final map[string][]int64, fp *testcluster.Node, k *slotConsumer) {
	t.Helper()
	acked := map[string]testcluster.Write{}
	for _, x := range h.Writes {
		acked[rowID(x.Writer, x.Seq)] = x
	}
	describe := func(id string) string {
		if x, ok := acked[id]; ok {
			return fmt.Sprintf("%s (LSN %s)", x, pg.LSN(x.LSN))
		}
		return id + " (not acknowledged)"
	}
	report := func(what string, ids []string) {
		if len(ids) == 0 {
			return
		}
		sort.Strings(ids)
		var ex []string
		for _, id := range ids[:min(10, len(ids))] {
			ex = append(ex, describe(id))
		}
		t.Errorf("%d rows %s, e.g. %s", len(ids), what, strings.Join(ex, ", "))
	}
	onFinal := map[string]bool{}
	var missing, twice, extra []string
	for writer, seqs := range final {
		for _, seq := range seqs {
			id := rowID(writer, seq)
			onFinal[id] = true
			switch k.seen[id] {
			case 0:
				missing = append(missing, id)
			case 1:
			default:
				twice = append(twice, id)
			}
		}
	}
	for id := range k.seen {
		if !onFinal[id] {
			extra = append(extra, id)
		}
	}
	report(fmt.Sprintf("on the final primary %s never reached the consumer", fp.Name), missing)
	report("reached the consumer more than once", twice)
	for _, d := range k.dups {
		t.Errorf("consumed twice: %s", d)
	}
	report(fmt.Sprintf("reached the consumer but are not on the final primary %s", fp.Name), extra)
	t.Logf("%d rows on the final primary %s, %d consumed", len(onFinal), fp.Name, len(k.seen))
}
