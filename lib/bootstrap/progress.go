package bootstrap

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Reporter publishes pg-bootstrap's state while it runs: bootstrap.json in
// the runtime directory (state.Bootstrap: "bootstrapping", then "creating
// replica" with the clone's progress), the log, and a progress bar on a
// terminal. Its Progress method is the Bootstrapper's Progress hook. Set
// the fields, then call Start and, when pg-bootstrap ends (also on
// failure), Close.
type Reporter struct {
	// Dir is the runtime directory.
	Dir string
	// Log receives a line per 10 percentage points (every 30 s while the
	// total is unknown).
	Log zerolog.Logger
	// Bar is where a progress bar is drawn (a terminal: stderr); nil for
	// none.
	Bar io.Writer
	// CustomMethod is bootstrap.method when it is not initdb: its reports
	// restore a new cluster ("running custom bootstrap script"); every
	// other method's create a replica.
	CustomMethod string
	// Clock is the clock of the state file and the pacing; nil: the host's.
	Clock clock.Clock

	mu    sync.Mutex
	st    state.Bootstrap
	pacer state.ProgressPacer
	bar   *Bar
	stop  chan struct{}
	done  chan struct{}
}

// Start writes bootstrap.json (state "bootstrapping", this process's pid)
// and rewrites it every state.BootstrapRefresh on a goroutine of its own
// until Close, so that readers tell a working pg-bootstrap from one that
// died. It returns the first write's error; the goroutine runs anyway.
func (r *Reporter) Start() error {
	if r.Clock == nil {
		r.Clock = clock.System{}
	}
	if r.Bar != nil {
		r.bar = NewBar(r.Bar)
	}
	r.mu.Lock()
	r.st = state.Bootstrap{State: state.Bootstrapping, PID: os.Getpid(), Since: time.Now()}
	err := r.writeLocked()
	r.mu.Unlock()
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.refresh()
	return err
}

func (r *Reporter) refresh() {
	defer close(r.done)
	t := time.NewTicker(state.BootstrapRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.mu.Lock()
			if err := r.writeLocked(); err != nil {
				r.Log.Warn().Err(err).Msg("writing state file")
			}
			r.mu.Unlock()
		}
	}
}

// writeLocked writes bootstrap.json; r.mu is held.
func (r *Reporter) writeLocked() error {
	r.st.Updated = r.Clock.Now()
	return state.Write(r.Dir, state.BootstrapFile, r.st)
}

// Progress reports how far the clone (or restore) has got; it may be called
// from any goroutine. bootstrap.json is rewritten with it at most once a
// second (always the first and the 100 % report), the bar redrawn, and a
// line logged every 10 percentage points. It blocks on the file's write
// only.
func (r *Reporter) Progress(p pgdata.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.Clock.Now()
	write, logIt := r.pacer.Note(p, now)
	if r.bar != nil {
		if logIt {
			r.bar.Clear()
		}
		defer r.bar.Draw(p, now)
	}
	if logIt {
		postmaster.LogProgress(r.Log, p)
	}
	r.st.State = state.CreatingReplica
	if r.CustomMethod != "" && p.Method == r.CustomMethod {
		r.st.State = state.CustomBootstrap
	}
	r.st.Progress = &p
	if write {
		if err := r.writeLocked(); err != nil {
			r.Log.Warn().Err(err).Msg("writing state file")
		}
	}
}

// Close stops the refresh, ends the bar's line, and removes bootstrap.json.
// Call it once, after Start.
func (r *Reporter) Close() {
	if r.stop != nil {
		close(r.stop)
		<-r.done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.Finish()
	}
	if err := os.Remove(filepath.Join(r.Dir, state.BootstrapFile)); err != nil && !os.IsNotExist(err) {
		r.Log.Warn().Err(err).Msg("removing state file")
	}
}

// Bar draws a clone's progress on one terminal line, redrawn in place
// ("\r"): the method, a bar and the percentage when the total is known, the
// MB done (of the total), and the average rate since the first report. It
// is not safe for concurrent use.
type Bar struct {
	w         io.Writer
	first     clock.Time // when the first report came
	firstDone int64      // and its bytes
	width     int        // characters last drawn, 0 if none
}

// NewBar returns a Bar drawing on w.
func NewBar(w io.Writer) *Bar { return &Bar{w: w} }

// barCells is the width of the bar proper.
const barCells = 30

// Draw redraws the line for report p at now.
func (b *Bar) Draw(p pgdata.Progress, now clock.Time) {
	if b.first == 0 || p.Done < b.firstDone {
		b.first, b.firstDone = now, p.Done // first report, or a clone started over
	}
	rate := -1.0
	if d := now.Sub(b.first); d >= time.Second {
		rate = float64(p.Done-b.firstDone) / d.Seconds()
	}
	line := RenderBar(p, rate)
	n := len([]rune(line))
	pad := ""
	if b.width > n {
		pad = strings.Repeat(" ", b.width-n)
	}
	fmt.Fprint(b.w, "\r"+line+pad)
	b.width = n
}

// Clear blanks the line, so that a log line can take it; the next Draw
// draws the bar again.
func (b *Bar) Clear() {
	if b.width > 0 {
		fmt.Fprint(b.w, "\r"+strings.Repeat(" ", b.width)+"\r")
		b.width = 0
	}
}

// Finish ends the bar's line with a newline, if a bar was drawn.
func (b *Bar) Finish() {
	if b.width > 0 {
		fmt.Fprintln(b.w)
		b.width = 0
	}
}

// RenderBar is the bar's line for p at rate bytes per second (negative:
// not known yet), without "\r":
//
//	basebackup [#############-----------------]  43 %  1234/2870 MB  45.3 MB/s
//	basebackup 1234 MB  45.3 MB/s
//	wal_g [#############-----------------]  43 %
//
// The last form is for a method that reports only a percentage (a Total
// under 1 MB).
// It is pure.
func RenderBar(p pgdata.Progress, rate float64) string {
	var b strings.Builder
	method := p.Method
	if method == "" {
		method = "clone"
	}
	b.WriteString(method + " ")
	if pc := p.Percent(); pc >= 0 {
		full := pc * barCells / 100
		fmt.Fprintf(&b, "[%s%s] %3d %%", strings.Repeat("#", full), strings.Repeat("-", barCells-full), pc)
		if p.Total < 1<<20 {
			return b.String() // a method's own percentage: no bytes to show
		}
		fmt.Fprintf(&b, "  %d/%d MB", p.Done>>20, p.Total>>20)
	} else {
		fmt.Fprintf(&b, "%d MB", p.Done>>20)
	}
	if rate >= 0 {
		fmt.Fprintf(&b, "  %.1f MB/s", rate/(1<<20))
	} else {
		b.WriteString("  -- MB/s")
	}
	return b.String()
}
