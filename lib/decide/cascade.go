package decide

// Streamer is what choosing an upstream needs to know of a member.
type Streamer struct {
	// ReplicateFrom is its replicatefrom tag ("" for none).
	ReplicateFrom string
	// Running is whether its member key says it runs.
	Running bool
	// NoStream is its nostream tag: it replays archived WAL only and
	// streams from no one.
	NoStream bool
	// NoFailover is its nofailover tag.
	NoFailover bool
	// Position is its last published WAL position (0: unknown).
	Position int64
}

// Upstream returns the member name streams from: the member its
// replicatefrom tag names, while that one has a key saying it runs and
// following the replicatefrom tags from it does not lead back to name;
// otherwise leader ("" when there is none). A member named that does not
// run, or a loop of tags, makes each member in the loop stream from the
// leader, so the cluster never ends up with a ring of standbys fed by no
// one; members hanging off a loop keep their own upstream.
func Upstream(name, leader string, members map[string]Streamer) string {
	from := members[name].ReplicateFrom
	if from == "" || from == name || from == leader {
		return leader
	}
	if m, ok := members[from]; !ok || !m.Running {
		return leader
	}
	seen := map[string]bool{}
	for cur := from; cur != "" && cur != leader && !seen[cur]; {
		if cur == name {
			return leader
		}
		seen[cur] = true
		m, ok := members[cur]
		if !ok || !m.Running {
			break
		}
		cur = m.ReplicateFrom
	}
	return from
}
