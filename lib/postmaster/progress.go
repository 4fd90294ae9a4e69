package postmaster

import (
	"sync"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/state"
)

// cloneReport is the progress of the clone in course, which supervise.json
// carries while the state is cloning (state.Supervise.Progress).
type cloneReport struct {
	mu      sync.Mutex
	cloning bool // the state last published is cloning
	cur     *state.Progress
	pacer   state.ProgressPacer
}

// current is the progress to publish with state st: the last report while
// st is cloning, nil otherwise. Entering and leaving the cloning state
// forget the reports, so that each clone starts afresh.
func (r *cloneReport) current(st string) *state.Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cloning := st == state.Cloning; cloning != r.cloning {
		r.cloning, r.cur = cloning, nil
		r.pacer.Reset()
	}
	return r.cur
}

// cloneProgress reports how far the clone in course has got. The clone's
// engine calls it with each report (about once a second; calling it again
// with an unchanged report keeps the state file fresh while the clone
// makes no visible progress), from any goroutine. The report is published
// in supervise.json, written at most once a second but always for the
// first and the 100 % report, and only while the published state is
// cloning (a report made in another state is only logged); it is logged at info at the first report, then every 10
// percentage points (every 30 s while the total is unknown). The progress
// leaves the state file with the cloning state. It blocks on the state
// file's write only.
func (s *Supervisor) cloneProgress(p pgdata.Progress) {
	now := s.clock.Now()
	r := &s.progress
	r.mu.Lock()
	write, logIt := r.pacer.Note(p, now)
	if r.cloning {
		r.cur = &p
	}
	r.mu.Unlock()
	if logIt {
		LogProgress(s.log, p)
	}
	if !write {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.published.State != state.Cloning {
		return
	}
	st := s.published
	st.Progress, st.Updated = &p, now
	s.published = st
	if err := state.Write(s.node.RuntimeDir, state.SuperviseFile, st); err != nil {
		s.log.Warn().Err(err).Msg("writing state file")
	}
}

// LogProgress logs a clone's progress report p at info: its method, the
// percentage when the total is known, and the MB done and in total (none
// for a method that reports only a percentage, a total under 1 MB).
func LogProgress(log zerolog.Logger, p pgdata.Progress) {
	ev := log.Info().Str("method", p.Method)
	pc := p.Percent()
	if pc >= 0 {
		ev = ev.Int("percent", pc)
	}
	switch {
	case pc < 0:
		ev = ev.Int64("done_mb", p.Done>>20)
	case p.Total >= 1<<20:
		ev = ev.Int64("total_mb", p.Total>>20).Int64("done_mb", p.Done>>20)
	}
	ev.Msg("clone progress")
}
