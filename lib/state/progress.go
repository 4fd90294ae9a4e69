package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// CreatingReplica is Patroni's member state while a node clones its data
// directory from another member (or restores it with a replica creation
// method). patronictl and monitoring compare the string exactly.
const CreatingReplica = "creating replica"

// Progress says how far a clone or restore has got.
type Progress struct {
	// Method is "basebackup" or the replica creation or bootstrap method's
	// name.
	Method string `json:"method"`
	// Done and Total are bytes; Total is 0 while unknown.
	Done  int64 `json:"done"`
	Total int64 `json:"total,omitempty"`
}

// Percent is Done as a whole percentage of Total, or -1 when Total is
// unknown.
func (p Progress) Percent() int {
	if p.Total <= 0 {
		return -1
	}
	return int(min(100, max(0, p.Done)*100/p.Total))
}

// String is "43 %", or the bytes done when the total is unknown ("1536 MB").
func (p Progress) String() string {
	if pc := p.Percent(); pc >= 0 {
		return fmt.Sprintf("%d %%", pc)
	}
	return fmt.Sprintf("%d MB", p.Done>>20)
}

// Coarse is p as pg-lockd publishes it in the member key, which is written
// only when its content changes: Done rounded down to a whole 5 % step of
// Total (at most 21 distinct values for a clone), or, while Total is
// unknown, to two significant figures of its MB (90 values per power of
// ten).
func (p Progress) Coarse() Progress {
	if pc := p.Percent(); pc >= 0 {
		step := int64(pc - pc%5)
		// Rounded up, so that Percent() of the result is step exactly.
		p.Done = (p.Total*step + 99) / 100
		return p
	}
	mb := max(p.Done, 0) >> 20
	unit := int64(1)
	for mb/unit >= 100 {
		unit *= 10
	}
	p.Done = (mb - mb%unit) << 20
	return p
}

// ProgressField is the pg-ha extension field of a member key (members/<name>)
// that carries the Coarse progress of a clone while its state is
// CreatingReplica. Patroni ignores it.
const ProgressField = "progress"

// MemberProgress reads ProgressField from the extension fields of a member
// key (dcs.MemberData.Extra). It returns nil when the field is absent or
// unreadable.
func MemberProgress(extra map[string]json.RawMessage) *Progress {
	raw, ok := extra[ProgressField]
	if !ok {
		return nil
	}
	var p Progress
	if err := json.Unmarshal(raw, &p); err != nil || p.Done < 0 || p.Total < 0 {
		return nil
	}
	return &p
}

// ProgressJSON is p encoded for ProgressField.
func ProgressJSON(p Progress) json.RawMessage {
	b, _ := json.Marshal(p) // cannot fail: strings and integers
	return b
}

// WithProgress is a state word followed by the progress, as `pg-failover
// list` shows it: "creating replica 43 %". Without progress it is state.
func WithProgress(state string, p *Progress) string {
	if p == nil {
		return state
	}
	return state + " " + p.String()
}

// The pacing of progress reports.
const (
	// ProgressWriteEvery is how often a clone's progress is written to a
	// state file at most (less a tenth, for reports that come a little
	// early).
	ProgressWriteEvery = time.Second
	// ProgressLogStep is how many percentage points a clone progresses
	// between two log lines; ProgressLogEvery is the interval of its log
	// lines while the total is unknown.
	ProgressLogStep  = 10
	ProgressLogEvery = 30 * time.Second
)

// ProgressPacer decides which of a clone's progress reports are written to
// a state file and which are logged: written at most every
// ProgressWriteEvery but always the first and the first 100 % one, logged
// the first, then each time the percentage crosses a multiple of
// ProgressLogStep (every ProgressLogEvery while the total is unknown). Its
// zero value is ready; it is not safe for concurrent use.
type ProgressPacer struct {
	started    bool
	wrote      clock.Time
	wrote100   bool
	logged     clock.Time
	loggedStep int
}

// Note accounts for report p arriving at now and says whether to write and
// whether to log it.
func (pp *ProgressPacer) Note(p Progress, now clock.Time) (write, log bool) {
	pc := p.Percent()
	if !pp.started {
		pp.started, pp.wrote, pp.logged, pp.loggedStep = true, now, now, pc/ProgressLogStep
		pp.wrote100 = pc == 100
		return true, true
	}
	switch {
	case pc == 100 && !pp.wrote100:
		write = true
	case now.Sub(pp.wrote) >= ProgressWriteEvery*9/10:
		write = true
	}
	if write {
		pp.wrote = now
		pp.wrote100 = pc == 100
	}
	switch {
	case pc < 0:
		log = now.Sub(pp.logged) >= ProgressLogEvery
	case pc/ProgressLogStep > pp.loggedStep:
		log = true
	case pc < pp.loggedStep*ProgressLogStep:
		// Started over (a retried clone): log again from here.
		pp.loggedStep = pc / ProgressLogStep
	}
	if log {
		pp.logged, pp.loggedStep = now, max(pc/ProgressLogStep, 0)
	}
	return write, log
}

// Reset forgets every report: the next one counts as the first.
func (pp *ProgressPacer) Reset() { *pp = ProgressPacer{} }

// BootstrapFile is pg-bootstrap's state file, present while it runs.
const BootstrapFile = "bootstrap.json"

// The states pg-bootstrap publishes.
const (
	// Bootstrapping: pg-bootstrap runs (inspects the data directory, races
	// for the initialize key, waits for a leader).
	Bootstrapping = "bootstrapping"
	// CustomBootstrap is Patroni's state while a custom bootstrap method
	// restores a new cluster.
	CustomBootstrap = "running custom bootstrap script"
)

// Bootstrap is pg-bootstrap's published state.
type Bootstrap struct {
	// State is Bootstrapping, CreatingReplica or CustomBootstrap.
	State string `json:"state"`
	// PID is pg-bootstrap's process id.
	PID int `json:"pid"`
	// Progress is the clone's or restore's, nil before its first report.
	Progress *Progress `json:"progress,omitempty"`
	// Updated is when this was written (CLOCK_BOOTTIME ns); pg-bootstrap
	// rewrites it at least every BootstrapRefresh.
	Updated clock.Time `json:"updated"`
	// Since is when pg-bootstrap started (wall clock).
	Since time.Time `json:"since"`
}

// BootstrapRefresh is how often pg-bootstrap rewrites BootstrapFile while it
// runs; a file older than BootstrapMaxAge was left by one that died.
const (
	BootstrapRefresh = 5 * time.Second
	BootstrapMaxAge  = 3 * BootstrapRefresh
)

// ReadBootstrap reads pg-bootstrap's state from dir. It returns ErrNotExist
// (wrapped) if absent.
func ReadBootstrap(dir string) (Bootstrap, error) {
	var b Bootstrap
	err := Read(dir, BootstrapFile, &b)
	return b, err
}

// Running reports whether b was written by a pg-bootstrap that still runs:
// updated within BootstrapMaxAge of now and its process alive. It looks at
// the process table, nothing else.
func (b Bootstrap) Running(now clock.Time) bool {
	return b.PID > 0 && Fresh(b.Updated, now, BootstrapMaxAge) && alive(b.PID)
}

// alive reports whether process pid exists (one of another user counts).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
