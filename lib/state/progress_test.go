package state

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

func TestProgressString(t *testing.T) {
	for _, c := range []struct {
		p    Progress
		want string
		pc   int
	}{
		{Progress{Done: 43, Total: 100}, "43 %", 43},
		{Progress{Done: 0, Total: 1 << 30}, "0 %", 0},
		{Progress{Done: 2 << 30, Total: 1 << 30}, "100 %", 100},
		{Progress{Done: 1536 << 20}, "1536 MB", -1},
		{Progress{}, "0 MB", -1},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.p, got, c.want)
		}
		if got := c.p.Percent(); got != c.pc {
			t.Errorf("%+v.Percent() = %d, want %d", c.p, got, c.pc)
		}
	}
	if s := WithProgress(CreatingReplica, &Progress{Done: 43, Total: 100}); s != "creating replica 43 %" {
		t.Errorf("WithProgress = %q", s)
	}
	if s := WithProgress("running", nil); s != "running" {
		t.Errorf("WithProgress without progress = %q", s)
	}
}

func TestProgressCoarse(t *testing.T) {
	const total = 7_777_777_777
	seen := map[Progress]bool{}
	for done := int64(0); done <= total; done += total / 1000 {
		p := Progress{Method: "basebackup", Done: done, Total: total}
		c := p.Coarse()
		if c.Method != "basebackup" || c.Total != total {
			t.Fatalf("Coarse(%+v) = %+v: method or total changed", p, c)
		}
		if got, want := c.Percent(), p.Percent()-p.Percent()%5; got != want {
			t.Fatalf("Coarse(%+v).Percent() = %d, want %d", p, got, want)
		}
		if c.Done > p.Done || c != c.Coarse() {
			t.Fatalf("Coarse(%+v) = %+v: not rounded down, or not stable", p, c)
		}
		seen[c] = true
	}
	if len(seen) > 21 {
		t.Errorf("%d distinct coarse values for one clone, want at most 21", len(seen))
	}
	// A method's own percentage (Total 100) keeps its 5 % steps.
	if c := (Progress{Done: 43, Total: 100}).Coarse(); c.Done != 40 {
		t.Errorf("Coarse(43/100) = %+v", c)
	}
	for _, c := range []struct{ mb, want int64 }{{0, 0}, {7, 7}, {99, 99}, {123, 120}, {1536, 1500}, {98765, 98000}} {
		if got := (Progress{Done: c.mb<<20 + 12345}).Coarse().Done >> 20; got != c.want {
			t.Errorf("Coarse(%d MB of unknown) = %d MB, want %d", c.mb, got, c.want)
		}
	}
}

func TestMemberProgress(t *testing.T) {
	p := Progress{Method: "basebackup", Done: 400, Total: 1000}
	extra := map[string]json.RawMessage{ProgressField: ProgressJSON(p), "other": json.RawMessage(`1`)}
	if got := MemberProgress(extra); got == nil || *got != p {
		t.Fatalf("MemberProgress = %+v, want %+v", got, p)
	}
	for _, raw := range []string{`"43 %"`, `{"done":-1}`, `[]`} {
		if got := MemberProgress(map[string]json.RawMessage{ProgressField: json.RawMessage(raw)}); got != nil {
			t.Errorf("MemberProgress(%s) = %+v, want nil", raw, got)
		}
	}
	if MemberProgress(nil) != nil {
		t.Error("MemberProgress(nil) is not nil")
	}
}

func TestProgressPacer(t *testing.T) {
	var pp ProgressPacer
	now := clock.Time(time.Hour)
	const total = 1000
	type step struct {
		after       time.Duration
		done        int64
		write, log  bool
		description string
	}
	for i, s := range []step{
		{0, 10, true, true, "the first report"},
		{300 * time.Millisecond, 20, false, false, "too soon"},
		{700 * time.Millisecond, 90, true, false, "a second after the last write"},
		{950 * time.Millisecond, 100, true, true, "a tenth early is fine; crossed 10 %"},
		{100 * time.Millisecond, 150, false, false, "too soon, same decade"},
		{100 * time.Millisecond, 210, false, true, "too soon to write, but crossed 20 %"},
		{time.Second, 550, true, true, "crossed 30, 40 and 50 %: one line"},
		{time.Second, 590, true, false, ""},
		{10 * time.Millisecond, 1000, true, true, "100 % is always written"},
		{10 * time.Millisecond, 1000, false, false, "but only once"},
		{time.Second, 1000, true, false, "then as any other"},
		{time.Second, 50, true, false, "a retry starts over"},
		{time.Second, 120, true, true, "and logs 10 % again"},
	} {
		now = now.Add(s.after)
		w, l := pp.Note(Progress{Done: s.done, Total: total}, now)
		if w != s.write || l != s.log {
			t.Errorf("step %d (%s): write %v log %v, want %v %v", i, s.description, w, l, s.write, s.log)
		}
	}

	// Unknown total: written each second, logged every ProgressLogEvery.
	pp.Reset()
	var writes, logs int
	for i := range 91 {
		w, l := pp.Note(Progress{Done: int64(i) << 20}, now.Add(time.Duration(i)*time.Second))
		if w {
			writes++
		}
		if l {
			logs++
		}
	}
	if writes != 91 || logs != 4 {
		t.Errorf("unknown total over 90 s: %d writes, %d logs; want 91 and 4 (0, 30, 60, 90 s)", writes, logs)
	}
}

func TestBootstrapFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadBootstrap(dir); !IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
	now := clock.Now()
	b := Bootstrap{State: CreatingReplica, PID: os.Getpid(), Progress: &Progress{Method: "basebackup", Done: 1 << 20, Total: 4 << 20},
		Updated: now, Since: time.Now().Truncate(time.Second)}
	if err := Write(dir, BootstrapFile, b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBootstrap(dir)
	if err != nil || got.State != b.State || got.PID != b.PID || got.Progress == nil || *got.Progress != *b.Progress ||
		got.Updated != b.Updated || !got.Since.Equal(b.Since) {
		t.Fatalf("ReadBootstrap = %+v, %v; want %+v", got, err, b)
	}
	if !got.Running(now) {
		t.Error("a fresh file of this process does not count as running")
	}
	if got.Running(now.Add(BootstrapMaxAge + time.Second)) {
		t.Error("a stale file counts as running")
	}
	got.PID = deadPID(t)
	if got.Running(now) {
		t.Error("a file of a dead process counts as running")
	}
}

func TestSuperviseProgressRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := Supervise{State: Cloning, Progress: &Progress{Method: "basebackup", Done: 43, Total: 100}, Updated: clock.Now()}
	if err := Write(dir, SuperviseFile, s); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSupervise(dir)
	if err != nil || got.Progress == nil || *got.Progress != *s.Progress {
		t.Fatalf("ReadSupervise = %+v, %v", got, err)
	}
	// Without a clone, the field is left out.
	if err := Write(dir, SuperviseFile, Supervise{State: Running}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(dir + "/" + SuperviseFile)
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["progress"]; ok {
		t.Errorf("progress written outside a clone: %s", data)
	}
}

// deadPID returns the id of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return p.Pid
}
