package testcluster

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Outcome is what is known of an insert that was not acknowledged.
type Outcome int

const (
	// Failed: the insert certainly did not commit (not sent, or rolled back
	// with an ERROR).
	Failed Outcome = iota + 1
	// Unknown: the insert may or may not have committed (timeout, broken
	// connection, FATAL).
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Write is one acknowledged insert.
type Write struct {
	Writer string
	Seq    int64
	// Node acknowledged the insert (its inet_server_port(), mapped to the
	// node's name).
	Node string
	// LSN is pg_current_wal_insert_lsn() right after the row was inserted,
	// on Node; 0 if unknown.
	LSN uint64
	// Sent is when the insert was sent, Ack when its result arrived; both
	// carry the monotonic clock reading.
	Sent, Ack time.Time
}

func (w Write) String() string {
	return fmt.Sprintf("%s#%d@%s acked %s", w.Writer, w.Seq, w.Node, clockTime(w.Ack))
}

// Attempt is an insert that was not acknowledged.
type Attempt struct {
	Writer string
	Seq    int64
	// Node the session was connected to, "" if not known.
	Node       string
	Sent, Done time.Time
	Outcome    Outcome
	Err        string
}

// Event is a moment a test marked (Workload.Mark).
type Event struct {
	At   time.Time
	What string
}

// History is everything a Workload saw.
type History struct {
	// Start and End bound the workload.
	Start, End time.Time
	// Nodes and Writers are the names in use.
	Nodes, Writers []string
	// Writes are the acknowledged inserts, in no particular order.
	Writes []Write
	// Failed are the unacknowledged attempts.
	Failed []Attempt
	// Events are the test's marks, in order.
	Events []Event
}

func (h *History) clone() *History {
	c := *h
	c.Nodes = slices.Clone(h.Nodes)
	c.Writers = slices.Clone(h.Writers)
	c.Writes = slices.Clone(h.Writes)
	c.Failed = slices.Clone(h.Failed)
	c.Events = slices.Clone(h.Events)
	return &c
}

// sortedByAck returns the writes that match keep, ordered by Ack.
func (h *History) sortedByAck(keep func(Write) bool) []Write {
	var out []Write
	for _, w := range h.Writes {
		if keep == nil || keep(w) {
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Ack.Before(out[j].Ack) })
	return out
}

// ByWriter returns the writer's acknowledged writes in ack order.
func (h *History) ByWriter(writer string) []Write {
	return h.sortedByAck(func(w Write) bool { return w.Writer == writer })
}

// ByNode returns the writes node acknowledged, in ack order.
func (h *History) ByNode(node string) []Write {
	return h.sortedByAck(func(w Write) bool { return w.Node == node })
}

// Count returns the number of attempts with outcome o.
func (h *History) Count(o Outcome) int {
	n := 0
	for _, a := range h.Failed {
		if a.Outcome == o {
			n++
		}
	}
	return n
}

// Summary is a few lines for the test log: acknowledged writes per node,
// unacknowledged attempts, the writable windows, the events, and the
// multi writer's longest gap.
func (h *History) Summary() string {
	var b strings.Builder
	per := map[string]int{}
	for _, w := range h.Writes {
		per[w.Node]++
	}
	var nodes []string
	for n := range per {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	fmt.Fprintf(&b, "workload %s–%s: %d acknowledged (", clockTime(h.Start), clockTime(h.End), len(h.Writes))
	for i, n := range nodes {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", n, per[n])
	}
	fmt.Fprintf(&b, "), %d failed, %d unknown", h.Count(Failed), h.Count(Unknown))
	if g := MaxGap(h, MultiWriter); g > 0 {
		fmt.Fprintf(&b, "; %s max gap %s", MultiWriter, g.Round(time.Millisecond))
	}
	b.WriteString("\n  windows:")
	for _, w := range Windows(h, SplitBrainGap) {
		b.WriteString(" " + w.String() + ";")
	}
	for _, e := range h.Events {
		fmt.Fprintf(&b, "\n  event %s: %s", clockTime(e.At), e.What)
	}
	return b.String()
}

// clockTime formats t like the nodes' logs' times of day, to correlate.
func clockTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000")
}
