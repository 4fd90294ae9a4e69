package bootstrap

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/state"
)

func TestRenderBar(t *testing.T) {
	for _, c := range []struct {
		p    pgdata.Progress
		rate float64
		want string
	}{
		{pgdata.Progress{Method: "basebackup", Done: 1234 << 20, Total: 2870 << 20}, 45.3 * (1 << 20),
			"basebackup [############------------------]  42 %  1234/2870 MB  45.3 MB/s"},
		{pgdata.Progress{Method: "basebackup", Done: 0, Total: 2870 << 20}, -1,
			"basebackup [------------------------------]   0 %  0/2870 MB  -- MB/s"},
		{pgdata.Progress{Method: "wal_g", Done: 100, Total: 100}, 0,
			"wal_g [##############################] 100 %"},
		{pgdata.Progress{Method: "wal_g", Done: 43, Total: 100}, 12,
			"wal_g [############------------------]  43 %"},
		{pgdata.Progress{Method: "basebackup", Done: 1536 << 20}, 2 << 20,
			"basebackup 1536 MB  2.0 MB/s"},
		{pgdata.Progress{Done: 5 << 20}, -1, "clone 5 MB  -- MB/s"},
	} {
		if got := RenderBar(c.p, c.rate); got != c.want {
			t.Errorf("RenderBar(%+v, %g)\n got %q\nwant %q", c.p, c.rate, got, c.want)
		}
	}
}

func TestBarRedraws(t *testing.T) {
	var out bytes.Buffer
	b := NewBar(&out)
	b.Finish()
	if out.Len() != 0 {
		t.Fatalf("Finish without a bar wrote %q", out.String())
	}
	now := clock.Time(time.Hour)
	const total = 100 << 20
	b.Draw(pgdata.Progress{Method: "basebackup", Done: 10 << 20, Total: total}, now)
	first := out.String()
	if !strings.HasPrefix(first, "\rbasebackup [###---") || !strings.HasSuffix(first, "  -- MB/s") {
		t.Fatalf("first draw %q", first)
	}
	out.Reset()
	// Two seconds and 20 MB later: 10 MB/s, drawn over the same line.
	b.Draw(pgdata.Progress{Method: "basebackup", Done: 30 << 20, Total: total}, now.Add(2*time.Second))
	second := out.String()
	if !strings.HasPrefix(second, "\r") || !strings.HasSuffix(second, "30/100 MB  10.0 MB/s") || strings.Contains(second, "\n") {
		t.Fatalf("second draw %q", second)
	}
	// A shorter line (unknown total) blanks what the longer one left.
	out.Reset()
	b.Draw(pgdata.Progress{Method: "basebackup", Done: 40 << 20}, now.Add(3*time.Second))
	got := out.String()
	if len(got) != len(second) || !strings.HasPrefix(got, "\rbasebackup 40 MB  10.0 MB/s ") {
		t.Fatalf("shorter draw %q does not cover the previous %q", got, second)
	}
	out.Reset()
	b.Clear()
	if got := out.String(); got != "\r"+strings.Repeat(" ", len("basebackup 40 MB  10.0 MB/s"))+"\r" {
		t.Fatalf("Clear wrote %q", got)
	}
	out.Reset()
	b.Finish()
	if out.Len() != 0 {
		t.Fatalf("Finish after Clear wrote %q", out.String())
	}
	b.Draw(pgdata.Progress{Method: "basebackup", Done: total, Total: total}, now.Add(4*time.Second))
	out.Reset()
	b.Finish()
	if out.String() != "\n" {
		t.Fatalf("Finish wrote %q, want a newline", out.String())
	}
}

func TestReporter(t *testing.T) {
	dir := t.TempDir()
	var bar bytes.Buffer
	logs := &logxtest.Buffer{}
	fake := clock.NewFake(clock.Now())
	r := &Reporter{Dir: dir, Log: zerolog.New(logs), Bar: &bar, CustomMethod: "restore", Clock: fake}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	read := func() state.Bootstrap {
		t.Helper()
		b, err := state.ReadBootstrap(dir)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := read()
	if b.State != state.Bootstrapping || b.PID != os.Getpid() || b.Progress != nil || !b.Running(fake.Now()) {
		t.Fatalf("bootstrap.json at the start: %+v", b)
	}
	const total = 100 << 24 // 1600 MB
	for pc := int64(0); pc <= 100; pc += 5 {
		fake.Advance(time.Second)
		r.Progress(pgdata.Progress{Method: "basebackup", Done: total * pc / 100, Total: total})
		b = read()
		if b.State != state.CreatingReplica || b.Progress == nil || b.Progress.Percent() != int(pc) || b.Updated != fake.Now() {
			t.Fatalf("after %d %%: %+v %+v", pc, b, b.Progress)
		}
	}
	// Logged at 0, 10, …, 100 %: 11 lines, each on a line of its own (the
	// bar was cleared before it).
	if n := strings.Count(logs.String(), `"clone progress"`); n != 11 {
		t.Errorf("%d log lines, want 11:\n%s", n, logs)
	}
	if !strings.Contains(bar.String(), "100 %  1600/1600 MB  ") {
		t.Errorf("the bar never showed 100 %%: %q", bar.String())
	}
	// A custom bootstrap method's reports say so.
	fake.Advance(time.Second)
	r.Progress(pgdata.Progress{Method: "restore", Done: 7, Total: 100})
	if b = read(); b.State != state.CustomBootstrap || b.Progress.Method != "restore" {
		t.Errorf("custom bootstrap: %+v", b)
	}
	r.Close()
	if _, err := state.ReadBootstrap(dir); !state.IsNotExist(err) {
		t.Errorf("bootstrap.json left after Close: %v", err)
	}
	if !strings.HasSuffix(bar.String(), "\n") {
		t.Errorf("the bar's line was not ended: %q", bar.String())
	}
}

// TestReporterWithoutBar: not on a terminal, nothing but the file and the log.
func TestReporterWithoutBar(t *testing.T) {
	dir := t.TempDir()
	logs := &logxtest.Buffer{}
	r := &Reporter{Dir: dir, Log: zerolog.New(logs)}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	r.Progress(pgdata.Progress{Method: "basebackup", Done: 3 << 20})
	if b, err := state.ReadBootstrap(dir); err != nil || b.State != state.CreatingReplica || b.Progress.Done != 3<<20 {
		t.Fatalf("bootstrap.json: %+v, %v", b, err)
	}
	r.Close()
	if _, err := state.ReadBootstrap(dir); !state.IsNotExist(err) {
		t.Errorf("bootstrap.json left after Close: %v", err)
	}
	if !strings.Contains(logs.String(), `"done_mb":3`) {
		t.Errorf("log: %s", logs)
	}
}
