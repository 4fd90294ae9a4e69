package rolepipe

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const now = clock.Time(1_000_000_000_000)

func TestParse(t *testing.T) {
	in5s := strconvT(now.Add(5 * time.Second))
	tests := []struct {
		in   string
		want Line
		err  string
	}{
		{in: "lead until=" + in5s + " token=42", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42}},
		{in: "lead until=" + in5s + " token=42 slots=node2,node3 paused=1", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Slots: []string{"node2", "node3"}, Paused: true}},
		{in: "lead until=" + in5s + " token=42 slots=node2 drop=node3,node4", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Slots: []string{"node2"}, Drop: []string{"node3", "node4"}}},
		{in: "lead until=" + in5s + " token=42 drop=node3", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Drop: []string{"node3"}}},
		{in: "lead until=" + in5s + " token=42 drop=node3,", err: "not valid"},
		{in: "lead until=" + in5s + " token=42 drop=a;b", err: "not valid"},
		{in: "follow leader=node1 conn=postgres://x:1/ drop=node3", want: Line{Verb: Follow, Leader: "node1", ConnURL: "postgres://x:1/", Drop: []string{"node3"}}},
		{in: "follow leader=node2 conn=postgres://x:1/ slot=node3 slots=node1:50331744,node4", want: Line{Verb: Follow, Leader: "node2", ConnURL: "postgres://x:1/", Slot: "node3",
			Slots: []string{"node1", "node4"}, Advance: map[string]int64{"node1": 50331744}}},
		{in: "follow leader=node2 conn=postgres://x:1/ slots=node1:0/3000060", err: "not a position"},
		{in: "follow leader=node2 conn=postgres://x:1/ slots=node1:-5", err: "not a position"},
		{in: "follow leader=node2 conn=postgres://x:1/ drop=node1:5", err: "not a position"},
		{in: "lead until=" + in5s + " token=42 slots=node2,node3:5", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Slots: []string{"node2", "node3"}, Advance: map[string]int64{"node3": 5}}},
		{in: "follow leader=node1 conn=postgres://127.0.0.1:5432/postgres slot=node2", want: Line{Verb: Follow, Leader: "node1", ConnURL: "postgres://127.0.0.1:5432/postgres", Slot: "node2"}},
		{in: "follow leader=standby_cluster conn=postgres://10.1.0.1,10.1.0.2:5432/postgres remote=1 slot=dr slots=node2",
			want: Line{Verb: Follow, Leader: RemoteLeader, ConnURL: "postgres://10.1.0.1,10.1.0.2:5432/postgres", Remote: true, Slot: "dr", Slots: []string{"node2"}}},
		{in: "follow leader=node1 conn=postgres://x:1/ slot=node2 logical=cdc:50331744,app:7", want: Line{Verb: Follow, Leader: "node1", ConnURL: "postgres://x:1/", Slot: "node2",
			Logical: map[string]int64{"cdc": 50331744, "app": 7}}},
		{in: "follow leader=node1 conn=postgres://x:1/ logical=cdc", err: "want name:position"},
		{in: "follow leader=node1 conn=postgres://x:1/ logical=cdc:0/3000", err: "want name:position"},
		{in: "lead until=" + in5s + " token=42 logical=cdc:5", err: "unknown key"},
		{in: "follow leader=standby_cluster remote=1", want: Line{Verb: Follow, Leader: RemoteLeader, Remote: true}},
		{in: "follow leader=node1 remote=0", err: "needs leader= and conn="},
		{in: "follow leader=node1 conn=postgres://x:1/ remote=yes", err: "remote=\"yes\" is not 0 or 1"},
		{in: "lead until=" + in5s + " token=42 remote=1", err: "unknown key"},
		{in: "standby", want: Line{Verb: Standby}},
		{in: "  standby   paused=1 ", want: Line{Verb: Standby, Paused: true}},
		{in: "stop reason=handover", want: Line{Verb: Stop, Reason: "handover"}},
		{in: "lead until=1 token=1", want: Line{Verb: Lead, Until: 1, Token: 1}}, // long past: parses, grants nothing
		{in: "lead until=" + in5s + " token=42 sync=first:1:node2", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Sync: &SyncNames{Num: 1, Names: []string{"node2"}}}},
		{in: "lead until=" + in5s + " token=42 sync=any:1:node2,node3", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Sync: &SyncNames{Quorum: true, Num: 1, Names: []string{"node2", "node3"}}}},
		{in: "lead until=" + in5s + " token=42 sync=first:1:", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Sync: &SyncNames{Num: 1}}},
		{in: "lead until=" + in5s + " token=42 sync=off", want: Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 42, Sync: &SyncNames{}}},
		{in: "lead until=" + in5s + " token=42 sync=first:0:node2", err: "none waited for"},
		{in: "lead until=" + in5s + " token=42 sync=all:1:node2", err: "want off"},
		{in: "lead until=" + in5s + " token=42 sync=first:x:node2", err: "not a small"},
		{in: "lead until=" + in5s + " token=42 sync=first:1:a;b", err: "not valid"},
		{in: "follow leader=node1 conn=postgres://x:1/ sync=off", err: "unknown key"},
		{in: "", err: "empty"},
		{in: "promote", err: "unknown verb"},
		{in: "lead token=4", err: "needs until= and token="},
		{in: "lead until=" + strconvT(now.Add(time.Hour)) + " token=4", err: "more than any lease"},
		{in: "lead until=-5 token=4", err: "not a positive clock reading"},
		{in: "lead until=abc token=4", err: "not a positive clock reading"},
		{in: "lead until=" + in5s + " token=0", err: "not a positive revision"},
		{in: "lead until=" + in5s + " until=" + in5s + " token=3", err: "repeated"},
		{in: "lead until=" + in5s + " token=3 leader=x", err: "unknown key"},
		{in: "follow leader=node1", err: "needs leader= and conn="},
		{in: "follow leader=node1 conn=http://x:1/", err: "not a postgres:// URL"},
		{in: "follow leader=node1 conn=postgres://u:pw@x:1/", err: "not a postgres:// URL"},
		{in: "follow leader=a;b conn=postgres://x:1/", err: "not a member name"},
		{in: "stop", err: "needs reason="},
		{in: "standby paused=yes", err: "not 0 or 1"},
		{in: "standby garbage", err: "not key=value"},
		{in: strings.Repeat("x", MaxLineLength+1), err: "longer than"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, now)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%.60q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want.String() {
			t.Errorf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
		}
		again, err := Parse(got.String(), now)
		if err != nil || again.String() != got.String() {
			t.Errorf("round trip of %q = %q, %v", got, again, err)
		}
	}
}

func TestValid(t *testing.T) {
	l := Line{Verb: Lead, Until: now.Add(time.Second), Token: 1}
	if !l.Valid(now) || l.Valid(now.Add(time.Second)) {
		t.Error("lead validity must end exactly at Until")
	}
	if (Line{Verb: Follow}).Valid(now) {
		t.Error("only lead grants validity")
	}
}

func strconvT(t clock.Time) string { return strconv.FormatInt(int64(t), 10) }

func TestReaderPublishesNewestOfChunk(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr, clock.NewFake(now), zerolog.Nop())
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	// One chunk holding a stale lead, garbage, and then the newest state.
	chunk := Line{Verb: Lead, Until: now.Add(5 * time.Second), Token: 7}.String() + "\n" +
		"garbage here\n" +
		"stop reason=handover\n"
	go func() { _, _ = pw.Write([]byte(chunk)); _ = pw.Close() }()
	<-done
	l, seq, eof := r.Latest()
	if l.Verb != Stop || seq != 1 || !eof {
		t.Fatalf("Latest = %v seq=%d eof=%v; want only the stop line published, then end of input", l, seq, eof)
	}
}

func TestReaderSplitLinesAndGarbage(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr, clock.NewFake(now), zerolog.Nop())
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	writes := []string{"fol", "low leader=n1 conn=postgres://h:1/postgres\n", strings.Repeat("z", 3*MaxLineLength), "\nstandby\n", "lead until=9999999999999999999 token=1\n"}
	for _, w := range writes {
		if _, err := pw.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = pw.Close()
	<-done
	l, seq, _ := r.Latest()
	if l.Verb != Standby || seq != 2 {
		t.Fatalf("Latest = %v seq %d; want standby as the 2nd published line (garbage never published)", l, seq)
	}
}

type blockingWriter struct {
	release chan struct{}
	got     chan string
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.got <- string(p)
	return len(p), nil
}

func TestWriterNeverBlocks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	bw := &blockingWriter{release: make(chan struct{}), got: make(chan string, 10)}
	w := NewWriter(ctx, bw, zerolog.Nop())
	start := time.Now()
	for i := 1; i <= 1000; i++ {
		w.Set(Line{Verb: Lead, Until: now, Token: int64(i)})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Set blocked for %v on a stuck reader", d)
	}
	close(bw.release)
	timeout := time.After(2 * time.Second)
	for {
		select {
		case got := <-bw.got:
			if strings.Contains(got, "token=1000") {
				cancel()
				<-w.Done()
				return
			}
		case <-timeout:
			t.Fatal("newest line never written")
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"lead until=5 token=1", "follow leader=a conn=postgres://h:1/d", "standby", "stop reason=x", "lead until=99999999999999999999 token=1", "\x00\xff", "follow leader=a conn=postgres://[::1:5/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s, now)
		if err != nil {
			return
		}
		if l.Verb == Lead && l.Until.Sub(now) > MaxValidity {
			t.Fatalf("absurd deadline accepted: %q", s)
		}
		again, err := Parse(l.String(), now)
		if err != nil || again.String() != l.String() {
			t.Fatalf("round trip %q → %q → %v", s, l, err)
		}
	})
}

// chunkReader returns its chunks one per Read, then io.EOF.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if n < len(c.chunks[0]) {
		c.chunks[0] = c.chunks[0][n:]
	} else {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// The tail of an overlong line arrives after its head was dropped: it must
// be discarded up to the next newline, not parsed as a line of its own.
func TestReaderOverlongLineTailIsNotALine(t *testing.T) {
	head := "stop reason=" + strings.Repeat("x", MaxLineLength)
	r := NewReader(&chunkReader{chunks: []string{
		"standby\n",
		head[:MaxLineLength/2], head[MaxLineLength/2:], // overlong, no newline yet
		"lead until=" + strconvT(now.Add(5*time.Second)) + " token=7", // still the same line
		"\n", "standby\n",
	}}, clock.NewFake(now), zerolog.Nop())
	var published []string
	r.OnLine = func(l Line) { published = append(published, l.String()) }
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	for _, p := range published {
		if !strings.HasPrefix(p, "standby") {
			t.Fatalf("published %q; want only the two standby lines (the overlong line and its tail are one garbage line)", p)
		}
	}
	if len(published) != 2 {
		t.Fatalf("published %q; want the two standby lines", published)
	}
}
