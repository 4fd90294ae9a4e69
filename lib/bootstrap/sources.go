package bootstrap

import (
	"cmp"
	"slices"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pgdata"
)

// cloneSources are the members a new replica of self may be copied from,
// preferred first: the member self's replicatefrom tag names (from, "" for
// none) when it runs, as self will stream from it; running replicas tagged
// clonefrom, least lag first; then the leader when it runs as a primary (or
// as a standby cluster's standby leader). A leader still being promoted is
// left out: pg_basebackup fails when its source is promoted meanwhile.
func cloneSources(cl *dcs.Cluster, self, from string) []pgdata.Source {
	leader := ""
	if cl.Leader != nil {
		leader = cl.Leader.Name
	}
	var tagged []dcs.Member
	var out []pgdata.Source
	if m := cl.Member(from); m != nil && m.Name != self && m.Name != leader && m.Data.ConnURL != "" && m.Data.State == "running" && m.Data.Role != "primary" {
		out = append(out, pgdata.Source{Name: m.Name, ConnURL: m.Data.ConnURL})
	}
	for _, m := range cl.Members {
		if m.Name == self || m.Name == from || m.Data.ConnURL == "" || m.Data.State != "running" {
			continue
		}
		if m.Name != leader && m.Data.Role != "primary" && config.TagBool(m.Data.Tags["clonefrom"]) {
			tagged = append(tagged, m)
		}
	}
	slices.SortStableFunc(tagged, func(a, b dcs.Member) int { return cmp.Compare(position(b), position(a)) })
	for _, m := range tagged {
		out = append(out, pgdata.Source{Name: m.Name, ConnURL: m.Data.ConnURL})
	}
	if m := cl.Member(leader); m != nil && m.Name != self && m.Data.ConnURL != "" && m.Data.State == "running" && (m.Data.Role == "primary" || m.Data.Role == "standby_leader") {
		out = append(out, pgdata.Source{Name: m.Name, ConnURL: m.Data.ConnURL})
	}
	return out
}

// position is how far a member has received or replayed WAL.
func position(m dcs.Member) int64 {
	var p int64
	for _, v := range []*int64{m.Data.XLogLocation, m.Data.ReceivedLocation, m.Data.ReplayedLocation} {
		if v != nil {
			p = max(p, *v)
		}
	}
	return p
}

// hasLeader says whether sources end with a primary (the leader).
func hasLeader(cl *dcs.Cluster, sources []pgdata.Source) bool {
	return cl.Leader != nil && len(sources) > 0 && sources[len(sources)-1].Name == cl.Leader.Name
}

// noLeaderMethod says whether a configured replica creation method may run
// without any member to copy from.
func noLeaderMethod(cfg *config.Config) bool {
	for _, name := range cfg.ReplicaMethods() {
		if m, ok := cfg.Postgres.Methods[name]; ok && m.NoLeader {
			return true
		}
	}
	return false
}
