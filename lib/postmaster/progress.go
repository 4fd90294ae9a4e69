package postmaster

import "github.com/pg-ha/pg-ha/lib/pgdata"

// cloneProgress records how far a clone has got.
func (s *Supervisor) cloneProgress(p pgdata.Progress) {
	s.log.Debug().Str("method", p.Method).Int64("done", p.Done).Int64("total", p.Total).Msg("clone progress")
}
