package testcluster

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// SplitBrainGap is the gap used by AssertSafe: a node that acknowledged no
// write for this long is taken to have stopped being writable.
const SplitBrainGap = 2 * time.Second

// DefaultLossWithin is LossPolicy.Within's default.
const DefaultLossWithin = time.Second

// Window is a writable window of a node: a maximal run of the writes it
// acknowledged where consecutive acknowledgements are less than the gap
// apart.
type Window struct {
	Node        string
	Start, End  time.Time // first and last acknowledgement
	Writes      int
	First, Last Write
}

func (w Window) String() string {
	return fmt.Sprintf("%s [%s, %s] %d writes", w.Node, clockTime(w.Start), clockTime(w.End), w.Writes)
}

// overlaps reports whether w and o share a moment (bounds included).
func (w Window) overlaps(o Window) bool {
	return !w.Start.After(o.End) && !o.Start.After(w.End)
}

// Windows returns every node's writable windows, ordered by start (then
// node name). It is pure.
func Windows(h *History, gap time.Duration) []Window {
	byNode := map[string][]Write{}
	for _, w := range h.sortedByAck(nil) {
		byNode[w.Node] = append(byNode[w.Node], w)
	}
	var out []Window
	for node, ws := range byNode {
		cur := Window{Node: node, Start: ws[0].Ack, End: ws[0].Ack, Writes: 1, First: ws[0], Last: ws[0]}
		for _, w := range ws[1:] {
			if w.Ack.Sub(cur.End) < gap {
				cur.End, cur.Last = w.Ack, w
				cur.Writes++
				continue
			}
			out = append(out, cur)
			cur = Window{Node: node, Start: w.Ack, End: w.Ack, Writes: 1, First: w, Last: w}
		}
		out = append(out, cur)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].Node < out[j].Node
	})
	return out
}

// Violation is a split brain: two nodes' writable windows overlap, so both
// acknowledged writes in the same moment.
type Violation struct {
	A, B Window
	// Samples are up to three writes of each node acknowledged inside the
	// other's window.
	Samples []Write
}

func (v Violation) String() string {
	s := make([]string, len(v.Samples))
	for i, w := range v.Samples {
		s[i] = w.String()
	}
	return fmt.Sprintf("%s overlaps %s; e.g. %s", v.A, v.B, strings.Join(s, ", "))
}

// SplitBrain returns every pair of overlapping writable windows (see
// Windows) of different nodes. An empty result means no two nodes ever
// acknowledged writes at the same time. It is pure.
func SplitBrain(h *History, gap time.Duration) []Violation {
	ws := Windows(h, gap)
	acked := h.sortedByAck(nil)
	var out []Violation
	for i := range ws {
		for j := i + 1; j < len(ws); j++ {
			a, b := ws[i], ws[j]
			if b.Start.After(a.End) {
				break // ordered by start: no later window overlaps a either
			}
			if a.Node == b.Node || !a.overlaps(b) {
				continue
			}
			v := Violation{A: a, B: b}
			v.Samples = append(v.Samples, inside(acked, a.Node, b, 3)...)
			v.Samples = append(v.Samples, inside(acked, b.Node, a, 3)...)
			out = append(out, v)
		}
	}
	return out
}

// inside returns up to max writes of node acknowledged within w.
func inside(acked []Write, node string, w Window, max int) []Write {
	var out []Write
	for _, x := range acked {
		if x.Node == node && !x.Ack.Before(w.Start) && !x.Ack.After(w.End) {
			out = append(out, x)
			if len(out) == max {
				break
			}
		}
	}
	return out
}

// Key names one row of the workload's table.
type Key struct {
	Writer string
	Seq    int64
}

// LossGroup is the acknowledged writes lost from one writable window.
type LossGroup struct {
	// Window is the writable window of the node that acknowledged them.
	Window Window
	// Writes are the lost writes, in ack order.
	Writes []Write
	// Bytes estimates the WAL lost: the highest LSN of a lost write minus
	// the highest LSN of a surviving write of the window below the lowest
	// lost one (or the lowest lost LSN if none survived).
	Bytes uint64
	// Before is how long before the window's end the first lost write was
	// acknowledged.
	Before time.Duration
	// Next is the node whose window began first after this one ended, ""
	// if none did (no failover followed).
	Next string
}

func (g LossGroup) String() string {
	ids := make([]string, 0, len(g.Writes))
	for i, w := range g.Writes {
		if i == 10 {
			ids = append(ids, fmt.Sprintf("… %d more", len(g.Writes)-10))
			break
		}
		ids = append(ids, fmt.Sprintf("%s#%d", w.Writer, w.Seq))
	}
	next := "no failover after it"
	if g.Next != "" {
		next = "then " + g.Next + " took over"
	}
	return fmt.Sprintf("%d writes (~%d WAL bytes) acknowledged by %s in the last %s of its window %s, %s: %s",
		len(g.Writes), g.Bytes, g.Window.Node, g.Before.Round(time.Millisecond), g.Window, next, strings.Join(ids, " "))
}

// Loss is the comparison of a history with the final primary's rows.
type Loss struct {
	// Lost are acknowledged writes missing from the final rows, by ack time.
	Lost []Write
	// Groups are Lost grouped by the writable window that acknowledged them.
	Groups []LossGroup
	// Phantoms are rows that exist although every attempt to write them
	// certainly failed (one attempt reported per row).
	Phantoms []Attempt
	// Unexpected are rows no writer ever attempted.
	Unexpected []Key
}

// Lost compares h with final (writer → sequence numbers present on the final
// primary). It is pure.
func Lost(h *History, final map[string][]int64) Loss {
	present := map[Key]bool{}
	for w, seqs := range final {
		for _, s := range seqs {
			present[Key{w, s}] = true
		}
	}
	attempted := map[Key]bool{}
	var l Loss
	acked := h.sortedByAck(nil)
	for _, w := range acked {
		k := Key{w.Writer, w.Seq}
		attempted[k] = true
		if !present[k] {
			l.Lost = append(l.Lost, w)
		}
	}
	// A writer retries a failed insert with the same number, so a failed
	// attempt is a phantom only if nothing else could have written its row:
	// no acknowledged or unknown attempt with that number.
	mayExist := map[Key]bool{}
	for _, w := range acked {
		mayExist[Key{w.Writer, w.Seq}] = true
	}
	for _, a := range h.Failed {
		k := Key{a.Writer, a.Seq}
		attempted[k] = true
		if a.Outcome == Unknown {
			mayExist[k] = true
		}
	}
	reported := map[Key]bool{}
	for _, a := range h.Failed {
		k := Key{a.Writer, a.Seq}
		if present[k] && !mayExist[k] && !reported[k] {
			reported[k] = true
			l.Phantoms = append(l.Phantoms, a)
		}
	}
	for k := range present {
		if !attempted[k] {
			l.Unexpected = append(l.Unexpected, k)
		}
	}
	sort.Slice(l.Unexpected, func(i, j int) bool {
		a, b := l.Unexpected[i], l.Unexpected[j]
		return a.Writer < b.Writer || a.Writer == b.Writer && a.Seq < b.Seq
	})
	if len(l.Lost) == 0 {
		return l
	}
	windows := Windows(h, SplitBrainGap)
	lost := map[Key]bool{}
	for _, w := range l.Lost {
		lost[Key{w.Writer, w.Seq}] = true
	}
	for _, win := range windows {
		var g LossGroup
		var survivors []Write
		for _, w := range acked {
			if w.Node != win.Node || w.Ack.Before(win.Start) || w.Ack.After(win.End) {
				continue
			}
			if lost[Key{w.Writer, w.Seq}] {
				g.Writes = append(g.Writes, w)
			} else {
				survivors = append(survivors, w)
			}
		}
		if len(g.Writes) == 0 {
			continue
		}
		g.Window = win
		g.Before = win.End.Sub(g.Writes[0].Ack)
		g.Bytes = lostBytes(g.Writes, survivors)
		for _, o := range windows {
			if o.Node != win.Node && o.Start.After(win.End) {
				g.Next = o.Node
				break
			}
		}
		l.Groups = append(l.Groups, g)
	}
	return l
}

// lostBytes estimates the WAL bytes of lost writes; see LossGroup.Bytes.
func lostBytes(lost, survivors []Write) uint64 {
	var lo, hi uint64
	for _, w := range lost {
		if w.LSN == 0 {
			continue
		}
		if lo == 0 || w.LSN < lo {
			lo = w.LSN
		}
		if w.LSN > hi {
			hi = w.LSN
		}
	}
	if hi == 0 {
		return 0
	}
	base := lo
	var best uint64
	for _, s := range survivors {
		if s.LSN != 0 && s.LSN < lo && s.LSN > best {
			best = s.LSN
		}
	}
	if best != 0 {
		base = best
	}
	return hi - base
}

// LossPolicy says which lost acknowledged writes a test tolerates.
type LossPolicy struct {
	// AllowAsync tolerates the loss asynchronous replication permits: writes
	// a node acknowledged in the last moment (Within) of its writable window,
	// when another node's window followed (a failover), of at most MaxBytes
	// of WAL in total per failover.
	AllowAsync bool
	// MaxBytes is maximum_lag_on_failover.
	MaxBytes uint64
	// Within is "the last moment" (default DefaultLossWithin).
	Within time.Duration
}

// Allows reports whether p tolerates losing g, and if not, why.
func (p LossPolicy) Allows(g LossGroup) (bool, string) {
	within := p.Within
	if within <= 0 {
		within = DefaultLossWithin
	}
	switch {
	case !p.AllowAsync:
		return false, "no loss allowed"
	case g.Next == "":
		return false, "no failover followed the window"
	case g.Before > within:
		return false, fmt.Sprintf("first lost write %s before the window's end, more than %s", g.Before.Round(time.Millisecond), within)
	case g.Bytes > p.MaxBytes:
		return false, fmt.Sprintf("~%d WAL bytes lost, more than maximum_lag_on_failover %d", g.Bytes, p.MaxBytes)
	}
	return true, ""
}

// MaxGap returns the longest time between consecutive acknowledged writes
// of writer, counting the time from its last acknowledgement to h.End (a
// writer that never succeeded again was unavailable until the end). The
// time before its first acknowledgement is not counted. It is pure.
func MaxGap(h *History, writer string) time.Duration {
	ws := h.ByWriter(writer)
	var max time.Duration
	for i := 1; i < len(ws); i++ {
		if d := ws[i].Ack.Sub(ws[i-1].Ack); d > max {
			max = d
		}
	}
	if len(ws) > 0 && !h.End.IsZero() {
		if d := h.End.Sub(ws[len(ws)-1].Ack); d > max {
			max = d
		}
	}
	return max
}

// MaxGapSince is MaxGap counting only the gaps that end after since: the
// gap that spans since and every later one, including the one from the
// last acknowledgement to h.End. Measured on a snapshot taken once writes
// flow again after a fault at since, it is the unavailability the fault
// caused. It is pure.
func MaxGapSince(h *History, writer string, since time.Time) time.Duration {
	ws := h.ByWriter(writer)
	var max time.Duration
	prev := h.Start
	for _, w := range ws {
		if w.Ack.After(since) {
			if d := w.Ack.Sub(prev); d > max {
				max = d
			}
		}
		prev = w.Ack
	}
	if !h.End.IsZero() && h.End.After(since) {
		if d := h.End.Sub(prev); d > max {
			max = d
		}
	}
	return max
}

// FirstAckAfter returns the first write acknowledged after at, by node if
// node is not "", and whether there is one.
func FirstAckAfter(h *History, node string, at time.Time) (Write, bool) {
	for _, w := range h.sortedByAck(nil) {
		if w.Ack.After(at) && (node == "" || w.Node == node) {
			return w, true
		}
	}
	return Write{}, false
}

// AssertLossless is AssertSafe tolerating no loss at all, as synchronous
// replication promises: every acknowledged write must be on the final
// primary, also those acknowledged in the last moment before a failover.
func AssertLossless(t testing.TB, h *History, final map[string][]int64) {
	t.Helper()
	AssertSafe(t, h, final)
}

// AssertSafe fails t on a split brain (SplitBrain with SplitBrainGap), on a
// lost acknowledged write that policy (at most one; none means no loss is
// tolerated) does not allow, on a row that was known to have failed and on
// a row never attempted. Tolerated losses are only logged. It logs the
// history's summary.
func AssertSafe(t testing.TB, h *History, final map[string][]int64, policy ...LossPolicy) {
	t.Helper()
	var p LossPolicy
	if len(policy) > 0 {
		p = policy[0]
	}
	t.Log(h.Summary())
	if len(h.Writes) == 0 {
		t.Errorf("workload: no write was acknowledged at all")
	}
	for _, v := range SplitBrain(h, SplitBrainGap) {
		t.Errorf("SPLIT BRAIN: %s", v)
	}
	l := Lost(h, final)
	for _, g := range l.Groups {
		if ok, why := p.Allows(g); ok {
			t.Logf("async loss (tolerated): %s", g)
		} else {
			t.Errorf("LOST acknowledged writes (%s): %s", why, g)
		}
	}
	for i, a := range l.Phantoms {
		if i == 10 {
			t.Errorf("… %d more phantom rows", len(l.Phantoms)-10)
			break
		}
		t.Errorf("phantom row: %s#%d failed with %q at %s, yet it is on the final primary", a.Writer, a.Seq, a.Err, clockTime(a.Done))
	}
	if len(l.Unexpected) > 0 {
		t.Errorf("%d rows no writer attempted, e.g. %v", len(l.Unexpected), l.Unexpected[0])
	}
}
