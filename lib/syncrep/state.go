package syncrep

import "strings"

// Options are the dynamic configuration settings that pick standbys.
type Options struct {
	// Quorum: synchronous_mode is quorum (ANY n), not on (FIRST n).
	Quorum bool
	// NodeCount is synchronous_node_count (at least 1 in strict mode).
	NodeCount int
	// MaxLagOnSyncNode is maximum_lag_on_syncnode in bytes; a standby
	// further behind the best one is not picked. 0 or less: no limit.
	MaxLagOnSyncNode int64
}

// State is the synchronous replication state of the primary at one
// moment, the input of the decisions in lib/decide.
type State struct {
	// Current is synchronous_standby_names as set now.
	Current StandbyNames
	// Active are the standbys to be synchronous, best first: for on, the
	// first NodeCount candidates; for quorum, every candidate (those
	// tagged nofailover only while fewer than NodeCount are picked).
	Active []string
	// Confirmed are the Active standbys known to have every commit
	// acknowledged since they were listed: for on, listed, reported "sync"
	// by pg_stat_replication and caught up (or already published in the
	// sync key); for quorum, listed, reported "quorum" and caught up.
	// Only these may be published in the sync key.
	Confirmed []string
}

// Readiness remembers, across loops of the primary, which standbys listed
// in synchronous_standby_names have caught up with the primary since the
// setting last changed: a standby only just listed may report sync_state
// "sync" before it holds every commit acknowledged without it. The zero
// value is ready for use; it is not safe for concurrent use.
type Readiness struct {
	setting  string
	names    StandbyNames
	catchUp  uint64
	ready    map[string]bool
	observed bool
}

// Observe records the synchronous_standby_names value PostgreSQL uses now
// and the primary's flush position. When the value changed since the last
// call, standbys no longer listed are forgotten and newly listed ones must
// reach flushLSN before they count; changed is then true and the caller
// should cause some WAL traffic (a transaction with synchronous_commit off)
// so they can. An unparsable value is treated as off and returned as err,
// for the log. It never blocks.
func (r *Readiness) Observe(setting string, flushLSN uint64) (changed bool, err error) {
	if r.observed && setting == r.setting {
		return false, nil
	}
	r.observed, r.setting = true, setting
	r.names, err = ParseStandbyNames(setting)
	if err != nil {
		r.names = StandbyNames{}
	}
	for k := range r.ready {
		if !r.names.Has(k) || r.names.Star {
			delete(r.ready, k)
		}
	}
	r.catchUp = flushLSN
	return true, err
}

// Current returns the parsed synchronous_standby_names last observed. It
// never blocks.
func (r *Readiness) Current() StandbyNames { return r.names }

// Ready reports whether name is known to have caught up. It never blocks.
func (r *Readiness) Ready(name string) bool { return r.ready[strings.ToLower(name)] }

// State marks the standbys that caught up and picks the synchronous ones.
// syncKey lists the standbys published in the sync key (in on mode they
// count as caught up). Call Observe first in each loop. It never blocks.
func (r *Readiness) State(o Observation, opt Options, syncKey []string) State {
	standbys, maxLSN := Standbys(o)
	if r.ready == nil {
		r.ready = map[string]bool{}
	}
	inKey := map[string]bool{}
	for _, n := range syncKey {
		inKey[strings.ToLower(n)] = true
	}
	for _, s := range standbys {
		k := strings.ToLower(s.Name)
		if r.ready[k] || !r.names.Has(s.Name) || r.names.Star || r.names.Placeholder {
			continue
		}
		caughtUp := s.LSN >= r.catchUp
		if opt.Quorum {
			r.ready[k] = caughtUp && s.SyncState == "quorum"
		} else {
			r.ready[k] = inKey[k] || caughtUp && s.SyncState == "sync"
		}
	}
	st := State{Current: r.names}
	// Prefer standbys that may be promoted; the sort is stable.
	ordered := append([]Standby(nil), standbys...)
	stablePartition(ordered, func(s Standby) bool { return !s.NoFailover })
	count := max(opt.NodeCount, 1)
	for _, s := range ordered {
		if opt.MaxLagOnSyncNode > 0 && maxLSN > s.LSN && maxLSN-s.LSN > uint64(opt.MaxLagOnSyncNode) {
			continue
		}
		ready := r.ready[strings.ToLower(s.Name)]
		if opt.Quorum {
			// A nofailover standby only fills the replication factor: a
			// quorum of unpromotable voters would reduce availability.
			if !s.NoFailover || len(st.Active) < count {
				if ready {
					st.Confirmed = append(st.Confirmed, s.Name)
				}
				st.Active = append(st.Active, s.Name)
			}
			continue
		}
		st.Active = append(st.Active, s.Name)
		if s.SyncState == "sync" && ready {
			st.Confirmed = append(st.Confirmed, s.Name)
		}
		if len(st.Active) >= count {
			break
		}
	}
	return st
}

func stablePartition(list []Standby, first func(Standby) bool) {
	var a, b []Standby
	for _, s := range list {
		if first(s) {
			a = append(a, s)
		} else {
			b = append(b, s)
		}
	}
	copy(list, append(a, b...))
}
