package testcluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// base is the synthetic histories' time origin.
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

// w is a write acknowledged by node at ms (sent 1ms earlier).
func w(writer string, seq int64, node string, ms int, lsn uint64) Write {
	return Write{Writer: writer, Seq: seq, Node: node, LSN: lsn, Sent: at(ms - 1), Ack: at(ms)}
}

// run makes writes of writer on node every step ms from fromMs to toMs,
// numbering from seq, LSNs growing by 100 from lsn.
func run(writer string, seq int64, node string, fromMs, toMs, step int, lsn uint64) []Write {
	var out []Write
	for ms := fromMs; ms <= toMs; ms += step {
		out = append(out, w(writer, seq, node, ms, lsn))
		seq++
		lsn += 100
	}
	return out
}

func hist(end int, parts ...[]Write) *History {
	h := &History{Start: at(0), End: at(end)}
	for _, p := range parts {
		h.Writes = append(h.Writes, p...)
	}
	return h
}

func TestCheckSplitBrain(t *testing.T) {
	tests := []struct {
		name  string
		h     *History
		want  int
		pairs [][2]string
	}{
		{name: "empty", h: hist(1000), want: 0},
		{name: "one node throughout", h: hist(10000, run("multi", 1, "node1", 10, 9000, 10, 1000)), want: 0},
		{
			name: "clean failover",
			h:    hist(20000, run("multi", 1, "node1", 10, 5000, 10, 1000), run("multi", 600, "node2", 9000, 15000, 10, 900000)),
			want: 0,
		},
		{
			name: "fast failover, 50ms apart",
			h:    hist(20000, run("multi", 1, "node1", 10, 5000, 10, 1000), run("multi", 600, "node2", 5050, 15000, 10, 900000)),
			want: 0,
		},
		{
			name: "interleaved acks on two nodes",
			h: hist(20000,
				run("multi", 1, "node1", 10, 5000, 10, 1000),
				run("pin-node2", 1, "node2", 3005, 6000, 10, 900000)),
			want:  1,
			pairs: [][2]string{{"node1", "node2"}},
		},
		{
			name: "old primary acks once after the new one started",
			h: hist(20000,
				run("multi", 1, "node1", 10, 5000, 10, 1000),
				run("multi", 600, "node2", 6000, 15000, 10, 900000),
				[]Write{w("pin-node1", 77, "node1", 6500, 5000)}),
			want:  1,
			pairs: [][2]string{{"node1", "node2"}},
		},
		{
			name: "same instant on two nodes",
			h:    hist(5000, []Write{w("pin-node1", 1, "node1", 1000, 1), w("pin-node2", 1, "node2", 1000, 1)}),
			want: 1,
		},
		{
			name: "switch back after more than the gap",
			h: hist(30000,
				run("multi", 1, "node1", 10, 5000, 10, 1000),
				run("multi", 600, "node2", 6000, 10000, 10, 900000),
				run("multi", 1100, "node1", 12500, 20000, 10, 2000000)),
			want: 0,
		},
		{
			name: "switch back within the gap spans the other node's window",
			h: hist(30000,
				run("multi", 1, "node1", 10, 5000, 10, 1000),
				run("multi", 600, "node2", 5500, 5900, 10, 900000),
				run("multi", 700, "node1", 6500, 9000, 10, 2000000)),
			want:  1,
			pairs: [][2]string{{"node1", "node2"}},
		},
		{
			name: "three nodes, two overlaps",
			h: hist(30000,
				run("a", 1, "node1", 0, 5000, 10, 1),
				run("b", 1, "node2", 4000, 6000, 10, 1),
				run("c", 1, "node3", 5500, 9000, 10, 1)),
			want:  2,
			pairs: [][2]string{{"node1", "node2"}, {"node2", "node3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitBrain(tt.h, SplitBrainGap)
			if len(got) != tt.want {
				t.Fatalf("SplitBrain: %d violations, want %d: %v", len(got), tt.want, got)
			}
			for i, p := range tt.pairs {
				if got[i].A.Node != p[0] || got[i].B.Node != p[1] {
					t.Errorf("violation %d between %s and %s, want %s and %s", i, got[i].A.Node, got[i].B.Node, p[0], p[1])
				}
				if len(got[i].Samples) == 0 {
					t.Errorf("violation %d has no sample writes", i)
				}
				if !strings.Contains(got[i].String(), p[0]) {
					t.Errorf("violation %d text %q does not name %s", i, got[i], p[0])
				}
			}
		})
	}
}

func TestCheckWindows(t *testing.T) {
	h := hist(30000,
		run("multi", 1, "node1", 0, 1000, 100, 1),
		run("multi", 20, "node1", 2999, 3500, 100, 1), // 1999ms after the last: same window
		run("multi", 40, "node1", 5600, 6000, 100, 1), // 2100ms after: new window
		run("multi", 60, "node2", 8000, 8000, 100, 1),
	)
	got := Windows(h, SplitBrainGap)
	want := []struct {
		node       string
		start, end int
		writes     int
	}{
		{"node1", 0, 3499, 17},
		{"node1", 5600, 6000, 5},
		{"node2", 8000, 8000, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("Windows = %v, want %d windows", got, len(want))
	}
	for i, x := range want {
		g := got[i]
		if g.Node != x.node || !g.Start.Equal(at(x.start)) || !g.End.Equal(at(x.end)) || g.Writes != x.writes {
			t.Errorf("window %d = %v (%s..%s), want %s [%d, %d] %d writes", i, g, g.Start.Sub(base), g.End.Sub(base), x.node, x.start, x.end, x.writes)
		}
	}
}

// finalOf returns the rows of every write in h except those in drop.
func finalOf(h *History, drop ...Key) map[string][]int64 {
	skip := map[Key]bool{}
	for _, k := range drop {
		skip[k] = true
	}
	out := map[string][]int64{}
	for _, w := range h.Writes {
		if !skip[Key{w.Writer, w.Seq}] {
			out[w.Writer] = append(out[w.Writer], w.Seq)
		}
	}
	return out
}

func TestCheckLost(t *testing.T) {
	// node1 acks multi#1..#500 from 10ms to 5000ms (LSN 1000 + 100·i), then
	// node2 takes over at 9000ms.
	failover := hist(20000, run("multi", 1, "node1", 10, 5000, 10, 1000), run("multi", 600, "node2", 9000, 15000, 10, 900000))
	async := LossPolicy{AllowAsync: true, MaxBytes: 1 << 20}
	tests := []struct {
		name        string
		h           *History
		final       map[string][]int64
		failed      []Attempt
		wantLost    int
		wantGroups  int
		wantBytes   uint64
		wantNext    string
		policy      LossPolicy
		wantAllowed bool
		wantPhantom int
		wantUnexp   int
	}{
		{name: "nothing lost", h: failover, final: finalOf(failover)},
		{
			name: "tail before failover, async allowed", h: failover,
			final:    finalOf(failover, Key{"multi", 499}, Key{"multi", 500}),
			wantLost: 2, wantGroups: 1, wantBytes: 200, wantNext: "node2",
			policy: async, wantAllowed: true,
		},
		{
			name: "tail before failover, no loss policy", h: failover,
			final:    finalOf(failover, Key{"multi", 500}),
			wantLost: 1, wantGroups: 1, wantBytes: 100, wantNext: "node2",
			policy: LossPolicy{}, wantAllowed: false,
		},
		{
			name: "lost long before the window's end", h: failover,
			final:    finalOf(failover, Key{"multi", 100}),
			wantLost: 1, wantGroups: 1, wantBytes: 100, wantNext: "node2",
			policy: async, wantAllowed: false,
		},
		{
			name: "lost without a failover", h: failover,
			final:    finalOf(failover, Key{"multi", 1100}),
			wantLost: 1, wantGroups: 1, wantBytes: 100, wantNext: "",
			policy: async, wantAllowed: false,
		},
		{
			name: "more than maximum_lag_on_failover", h: failover,
			final:    finalOf(failover, Key{"multi", 499}, Key{"multi", 500}),
			wantLost: 2, wantGroups: 1, wantBytes: 200, wantNext: "node2",
			policy: LossPolicy{AllowAsync: true, MaxBytes: 150}, wantAllowed: false,
		},
		{
			name: "failed attempt present is a phantom", h: failover,
			final:       func() map[string][]int64 { f := finalOf(failover); f["pin-node2"] = []int64{1}; return f }(),
			failed:      []Attempt{{Writer: "pin-node2", Seq: 1, Outcome: Failed, Err: "read-only"}},
			wantPhantom: 1,
		},
		{
			name: "failed twice, then acknowledged with the same number", h: failover,
			final: finalOf(failover),
			failed: []Attempt{
				{Writer: "multi", Seq: 600, Outcome: Failed, Err: "read-only"},
				{Writer: "multi", Seq: 600, Outcome: Failed, Err: "connection refused"},
			},
		},
		{
			name: "failed attempt present, reported once", h: failover,
			final: func() map[string][]int64 { f := finalOf(failover); f["pin-node3"] = []int64{7}; return f }(),
			failed: []Attempt{
				{Writer: "pin-node3", Seq: 7, Outcome: Failed, Err: "read-only"},
				{Writer: "pin-node3", Seq: 7, Outcome: Failed, Err: "read-only"},
			},
			wantPhantom: 1,
		},
		{
			name: "unknown attempt present is fine", h: failover,
			final:  func() map[string][]int64 { f := finalOf(failover); f["pin-node1"] = []int64{1}; return f }(),
			failed: []Attempt{{Writer: "pin-node1", Seq: 1, Outcome: Unknown, Err: "timeout"}},
		},
		{
			name: "row nobody attempted", h: failover,
			final:     func() map[string][]int64 { f := finalOf(failover); f["multi"] = append(f["multi"], 99999); return f }(),
			wantUnexp: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h.clone()
			h.Failed = tt.failed
			l := Lost(h, tt.final)
			if len(l.Lost) != tt.wantLost || len(l.Groups) != tt.wantGroups {
				t.Fatalf("Lost: %d writes in %d groups, want %d in %d: %+v", len(l.Lost), len(l.Groups), tt.wantLost, tt.wantGroups, l.Groups)
			}
			if len(l.Phantoms) != tt.wantPhantom || len(l.Unexpected) != tt.wantUnexp {
				t.Errorf("phantoms %v, unexpected %v; want %d and %d", l.Phantoms, l.Unexpected, tt.wantPhantom, tt.wantUnexp)
			}
			if len(l.Groups) == 0 {
				return
			}
			g := l.Groups[0]
			if g.Bytes != tt.wantBytes || g.Next != tt.wantNext {
				t.Errorf("group: %d bytes, next %q; want %d, %q (%s)", g.Bytes, g.Next, tt.wantBytes, tt.wantNext, g)
			}
			if ok, why := tt.policy.Allows(g); ok != tt.wantAllowed {
				t.Errorf("policy %+v allows %s = %v (%s), want %v", tt.policy, g, ok, why, tt.wantAllowed)
			}
		})
	}
}

// TestCheckAssertSafe runs AssertSafe against a recording TB.
func TestCheckAssertSafe(t *testing.T) {
	good := hist(20000, run("multi", 1, "node1", 10, 5000, 10, 1000), run("multi", 600, "node2", 9000, 15000, 10, 900000))
	split := hist(20000, run("multi", 1, "node1", 10, 5000, 10, 1000), run("pin-node2", 1, "node2", 4000, 6000, 10, 1))
	tests := []struct {
		name   string
		h      *History
		final  map[string][]int64
		policy []LossPolicy
		// lossless also runs AssertLossless, whose errors count too.
		lossless bool
		fail     string
	}{
		{name: "safe", h: good, final: finalOf(good)},
		{name: "split brain", h: split, final: finalOf(split), fail: "SPLIT BRAIN"},
		{name: "loss not allowed", h: good, final: finalOf(good, Key{"multi", 500}), fail: "LOST"},
		{name: "async loss tolerated", h: good, final: finalOf(good, Key{"multi", 500}), policy: []LossPolicy{{AllowAsync: true, MaxBytes: 1 << 20}}},
		{name: "no writes at all", h: hist(1000), final: nil, fail: "no write"},
		{name: "synchronous: the last write before a failover counts", h: good, final: finalOf(good, Key{"multi", 500}),
			policy: []LossPolicy{{AllowAsync: true, MaxBytes: 1 << 20}}, lossless: true, fail: "LOST"},
		{name: "synchronous: nothing lost", h: good, final: finalOf(good), lossless: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			AssertSafe(r, tt.h, tt.final, tt.policy...)
			if tt.lossless {
				AssertLossless(r, tt.h, tt.final)
			}
			got := strings.Join(r.errors, "\n")
			if tt.fail == "" && got != "" {
				t.Errorf("AssertSafe failed: %s", got)
			}
			if tt.fail != "" && !strings.Contains(got, tt.fail) {
				t.Errorf("AssertSafe errors %q, want one containing %q", got, tt.fail)
			}
		})
	}
}

// recorder is a testing.TB that collects Errorf calls instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper()             {}
func (r *recorder) Log(args ...any)     {}
func (r *recorder) Logf(string, ...any) {}

func TestCheckGaps(t *testing.T) {
	h := hist(20000,
		run("multi", 1, "node1", 0, 5000, 10, 1),
		run("multi", 600, "node2", 9000, 19000, 10, 1),
		run("pin-node1", 1, "node1", 0, 5000, 10, 1))
	if got, want := MaxGap(h, "multi"), 4000*time.Millisecond; got != want {
		t.Errorf("MaxGap(multi) = %s, want %s", got, want)
	}
	// pin-node1 never resumed: the gap runs to the end.
	if got, want := MaxGap(h, "pin-node1"), 15000*time.Millisecond; got != want {
		t.Errorf("MaxGap(pin-node1) = %s, want %s", got, want)
	}
	if got := MaxGap(h, "nobody"); got != 0 {
		t.Errorf("MaxGap(nobody) = %s, want 0", got)
	}
	// multi: 5000ms → 9000ms is the gap after a fault at 5003ms; the
	// tail 19000ms → 20000ms is shorter.
	if got, want := MaxGapSince(h, "multi", at(5003)), 4000*time.Millisecond; got != want {
		t.Errorf("MaxGapSince(multi, 5003ms) = %s, want %s", got, want)
	}
	// Since 9500ms: only 10ms steps and the 1s tail.
	if got, want := MaxGapSince(h, "multi", at(9500)), 1000*time.Millisecond; got != want {
		t.Errorf("MaxGapSince(multi, 9500ms) = %s, want %s", got, want)
	}
	// pin-node1 never resumed: from its last ack to the end.
	if got, want := MaxGapSince(h, "pin-node1", at(5003)), 15000*time.Millisecond; got != want {
		t.Errorf("MaxGapSince(pin-node1, 5003ms) = %s, want %s", got, want)
	}
	// A writer with no acks at all: the whole history.
	if got, want := MaxGapSince(h, "nobody", at(100)), 20000*time.Millisecond; got != want {
		t.Errorf("MaxGapSince(nobody) = %s, want %s", got, want)
	}
	first, ok := FirstAckAfter(h, "node2", at(5003))
	if !ok || first.Seq != 600 {
		t.Errorf("FirstAckAfter(node2) = %v, %v; want multi#600", first, ok)
	}
	if _, ok := FirstAckAfter(h, "node3", at(0)); ok {
		t.Errorf("FirstAckAfter(node3) found a write")
	}
}

func TestCheckParseLSN(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"0/0", 0, false},
		{"0/16B3748", 0x16B3748, false},
		{"16/B374D848", 0x16_B374D848, false},
		{"16B3748", 0, true},
		{"x/1", 0, true},
		{"1/100000000", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestCheckClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Outcome
	}{
		{"read-only ERROR", &pgconn.PgError{Severity: "ERROR", Code: "25006"}, Failed},
		{"duplicate key ERROR", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, Failed},
		{"FATAL admin shutdown", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, Unknown},
		{"timeout", errors.New("context deadline exceeded"), Unknown},
		{"wrapped ERROR", fmt.Errorf("insert: %w", &pgconn.PgError{Severity: "ERROR", Code: "25006"}), Failed},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("%s: classify = %s, want %s", tt.name, got, tt.want)
		}
	}
}
