package decide

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrQuorumState means a quorum transition could not keep the invariant
// that every set of members able to acknowledge a commit overlaps every set
// able to elect a new leader, or was asked for an impossible quorum or
// replication factor. Nothing should be written; the next loop re-reads the
// state and tries again.
var ErrQuorumState = errors.New("decide: quorum state")

// QuorumState is what the primary knows, in synchronous_mode: quorum, when
// deciding how to move synchronous_standby_names and the sync key towards
// the wanted state (Patroni's QuorumStateResolver).
//
// PostgreSQL's synchronous_standby_names says ANY NumSync (Sync): how many
// of which standbys must acknowledge a commit. The sync key says Quorum of
// (Voters): how many of which members a candidate must see to be sure it
// has seen every acknowledged commit. Both are "any n of a set".
type QuorumState struct {
	// Leader, Quorum and Voters are the sync key (leader, quorum,
	// sync_standby).
	Leader string
	Quorum int
	Voters []string
	// NumSync and Sync are synchronous_standby_names as parsed (NumSync is
	// capped at len(Sync)).
	NumSync int
	Sync    []string
	// NumSyncConfirmed counts the standbys of Sync that are known to have
	// reached the primary's flush position after they were added.
	NumSyncConfirmed int
	// Active are the standbys streaming from the primary that may be
	// synchronous (no nosync tag, running), from syncrep.
	Active []string
	// SyncWanted is synchronous_node_count.
	SyncWanted int
	// LeaderWanted is this primary's name; it differs from Leader right
	// after a failover.
	LeaderWanted string
}

// TransitionKind says what a QuorumTransition changes.
type TransitionKind int

const (
	// SetStandbyNames: set synchronous_standby_names to ANY Num (Names).
	SetStandbyNames TransitionKind = iota + 1
	// SetSyncKey: write the sync key with Leader, quorum Num and
	// sync_standby Names (guarded by the fencing token).
	SetSyncKey
	// Restart: stop applying transitions, re-read PostgreSQL's replication
	// state (standbys just added may become synchronous soon) and decide
	// again; Leader, Num and Names are the unchanged sync key.
	Restart
)

func (k TransitionKind) String() string {
	switch k {
	case SetStandbyNames:
		return "sync"
	case SetSyncKey:
		return "quorum"
	case Restart:
		return "restart"
	}
	return fmt.Sprintf("TransitionKind(%d)", int(k))
}

// QuorumTransition is one step towards the wanted state; its fields are the
// new state. Names are sorted.
type QuorumTransition struct {
	Kind   TransitionKind
	Leader string
	Num    int
	Names  []string
}

func (t QuorumTransition) String() string {
	return fmt.Sprintf("%s %s %d (%s)", t.Kind, t.Leader, t.Num, strings.Join(t.Names, ","))
}

// QuorumTransitions returns the steps that take synchronous_standby_names
// and the sync key from s to the optimal state for the active standbys,
// in an order that keeps every committing set overlapping every quorum for
// promotion at each step: when a number (numsync or quorum) grows, it grows
// first; when it shrinks, it shrinks last. Consecutive steps of the same
// kind are merged (nobody can have observed the first), and the list ends
// at a Restart. The caller applies them in order and stops at the first
// failure; the next loop recomputes from what was applied. The optimal
// state, for active standbys A, is
//
//	sync = voters = A, numsync = min(synchronous_node_count, |A|), quorum = |A| - numsync.
//
// A state that breaks the invariant (say, after an interrupted change) is
// repaired first by raising the quorum; err (wrapping ErrQuorumState) is
// returned only when no safe sequence was found, and then nothing must be
// applied. It is pure and never blocks.
func QuorumTransitions(s QuorumState) ([]QuorumTransition, error) {
	r := &quorumResolver{
		leader:          s.Leader,
		quorum:          s.Quorum,
		voters:          newNameSet(s.Voters...),
		sync:            newNameSet(s.Sync...),
		numsyncConfirmd: s.NumSyncConfirmed,
		active:          newNameSet(s.Active...),
		syncWanted:      s.SyncWanted,
		leaderWanted:    s.LeaderWanted,
	}
	r.numsync = min(s.NumSync, len(r.sync))
	if err := r.generate(); err != nil {
		return nil, err
	}
	var out []QuorumTransition
	for i, t := range r.out {
		if i+1 < len(r.out) && r.out[i+1].Kind == t.Kind {
			continue
		}
		out = append(out, t)
		if t.Kind == Restart {
			break
		}
	}
	return out, nil
}

// quorumResolver follows Patroni's QuorumStateResolver step by step, so
// that Patroni's own test scenarios carry over unchanged.
type quorumResolver struct {
	leader          string
	quorum          int
	voters          nameSet
	numsync         int
	sync            nameSet
	numsyncConfirmd int
	active          nameSet
	syncWanted      int
	leaderWanted    string
	out             []QuorumTransition
}

func (r *quorumResolver) emit(k TransitionKind, num int, names nameSet) {
	r.out = append(r.out, QuorumTransition{Kind: k, Leader: r.leader, Num: num, Names: names.sorted()})
}

// checkInvariants: any set of numsync standbys of sync (plus the leader)
// overlaps any set of quorum+1 members of voters (plus the leader), and
// one of sync and voters contains the other.
func (r *quorumResolver) checkInvariants() error {
	voters := r.voters.union(newNameSet(r.leader))
	sync := r.sync.union(newNameSet(r.leaderWanted))
	if len(r.voters) > 0 && len(voters.union(sync)) > r.quorum+r.numsync+1 {
		return fmt.Errorf("%w: quorum and sync not guaranteed to overlap: %d members > quorum %d + numsync %d + 1",
			ErrQuorumState, len(voters.union(sync)), r.quorum, r.numsync)
	}
	if !voters.subsetOf(sync) && !sync.subsetOf(voters) {
		return fmt.Errorf("%w: mismatched sets: only voters %v, only synchronous_standby_names %v",
			ErrQuorumState, voters.minus(sync).sorted(), sync.minus(voters).sorted())
	}
	return nil
}

// quorumUpdate sets the sync key's quorum and voters, and the leader when
// leader is not nil. With adjust, the quorum is raised by the standbys of
// synchronous_standby_names not yet confirmed.
func (r *quorumResolver) quorumUpdate(quorum int, voters nameSet, leader *string, adjust bool) error {
	if quorum < 0 {
		return fmt.Errorf("%w: quorum %d < 0 of (%s)", ErrQuorumState, quorum, strings.Join(voters.sorted(), ","))
	}
	if quorum > 0 && quorum >= len(voters) {
		return fmt.Errorf("%w: quorum %d >= N of (%s)", ErrQuorumState, quorum, strings.Join(voters.sorted(), ","))
	}
	oldLeader := r.leader
	switch {
	case leader != nil:
		r.leader = *leader
	case r.numsyncConfirmd == 0 && len(r.voters) == 0:
		// No standby is known to have caught up: keep the key empty.
		quorum, voters = 0, nameSet{}
	case adjust:
		// Fewer standbys caught up than numsync: ask the leader race to see
		// more members, so it still finds one that has every commit.
		quorum += max(r.numsync-r.numsyncConfirmd, 0)
	}
	if r.leader == oldLeader && quorum == r.quorum && voters.equal(r.voters) {
		if len(r.voters) > 0 {
			return nil
		}
		// Nothing to publish yet: re-read once the standbys had time to
		// become synchronous.
		r.emit(Restart, r.quorum, r.voters)
	}
	r.quorum, r.voters = quorum, voters
	if err := r.checkInvariants(); err != nil {
		return err
	}
	r.emit(SetSyncKey, r.quorum, r.voters)
	return nil
}

// syncUpdate sets synchronous_standby_names to ANY numsync (sync).
func (r *quorumResolver) syncUpdate(numsync int, sync nameSet) error {
	if numsync < 0 {
		return fmt.Errorf("%w: numsync %d < 0 of (%s)", ErrQuorumState, numsync, strings.Join(sync.sorted(), ","))
	}
	if numsync > len(sync) {
		return fmt.Errorf("%w: numsync %d > N of (%s)", ErrQuorumState, numsync, strings.Join(sync.sorted(), ","))
	}
	r.numsync, r.sync = numsync, sync
	if err := r.checkInvariants(); err != nil {
		return err
	}
	r.emit(SetStandbyNames, r.numsync, r.sync)
	return nil
}

func (r *quorumResolver) generate() error {
	done, err := r.handleLeaderChange()
	if err != nil {
		if !errors.Is(err, ErrQuorumState) {
			return err
		}
		// A broken state: make the quorum large enough to be safe again.
		if err := r.quorumUpdate(len(r.sync)-r.numsync, r.sync, nil, true); err != nil {
			return err
		}
	}
	if done {
		return nil
	}
	if r.leader != r.leaderWanted {
		return fmt.Errorf("%w: sync key leader %q is not %q after the leader change", ErrQuorumState, r.leader, r.leaderWanted)
	}
	// After a restart or failover nothing is confirmed yet: derive it from
	// the quorum.
	if r.numsyncConfirmd == 0 && len(r.sync.and(r.active)) > 0 {
		r.numsyncConfirmd = min(len(r.sync.and(r.active)), len(r.voters)-r.quorum)
	}
	for _, step := range []func() error{r.nonSteady, r.removeGone, r.addNew, r.replicationFactor} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// handleLeaderChange: after a failover the new primary takes the sync key
// over and counts the former leader as a voter. done means the new
// primary's standbys have not reconnected yet: wait a loop before dropping
// them.
func (r *quorumResolver) handleLeaderChange() (done bool, err error) {
	if r.leaderWanted == r.leader {
		return false, r.checkInvariants()
	}
	voters := r.voters.minus(newNameSet(r.leaderWanted)).union(newNameSet(r.leader))
	if len(r.sync) == 0 {
		// Nothing in synchronous_standby_names yet: set it first.
		if err := r.syncUpdate(len(voters)-r.quorum, voters); err != nil {
			return false, err
		}
	}
	leader := r.leaderWanted
	if err := r.quorumUpdate(r.quorum, voters, &leader, true); err != nil {
		return false, err
	}
	return len(r.sync.and(r.active)) == 0, nil
}

// nonSteady finishes a change a previous loop left half done, so that
// synchronous_standby_names and the voters name the same members again.
func (r *quorumResolver) nonSteady() error {
	switch {
	case r.sync.properSubset(r.voters):
		// The voters were being changed: drop dead voters that are not
		// being synced, then sync to live voters.
		removeFromVoters := r.voters.minus(r.sync.union(r.active))
		if len(removeFromVoters) > 0 {
			if err := r.quorumUpdate(len(r.voters)-len(removeFromVoters)-r.numsync, r.voters.minus(removeFromVoters),
				nil, len(r.sync.minus(r.active)) == 0); err != nil {
				return err
			}
		}
		if addToSync := r.voters.and(r.active).minus(r.sync); len(addToSync) > 0 {
			if err := r.syncUpdate(r.numsync, r.sync.union(addToSync)); err != nil {
				return err
			}
		}
	case r.voters.properSubset(r.sync):
		// The replication factor was being changed: drop dead standbys
		// while some stay in common with the voters, make the live ones
		// voters, then drop the rest.
		removeFromSync := r.sync.minus(r.active)
		sync := r.sync.minus(removeFromSync)
		if len(removeFromSync) > 0 && len(sync) > 0 && (len(r.voters) == 0 || len(sync.and(r.voters)) > 0) {
			if err := r.syncUpdate(min(r.numsync, len(r.sync)-len(removeFromSync)), sync); err != nil {
				return err
			}
		}
		if addToVoters := r.sync.minus(r.voters).and(r.active); len(addToVoters) > 0 {
			voters := r.voters.union(addToVoters)
			if err := r.quorumUpdate(len(voters)-r.numsync, voters, nil, true); err != nil {
				return err
			}
		}
		if removeFromSync := r.sync.minus(r.voters); len(removeFromSync) > 0 {
			if err := r.syncUpdate(min(r.numsync, len(r.sync)-len(removeFromSync)), r.sync.minus(removeFromSync)); err != nil {
				return err
			}
		}
	}
	if !r.voters.equal(r.sync) {
		return fmt.Errorf("%w: voters (%s) still differ from synchronous_standby_names (%s)",
			ErrQuorumState, strings.Join(r.voters.sorted(), ","), strings.Join(r.sync.sorted(), ","))
	}
	all := len(r.voters.union(r.sync))
	if r.quorum+min(r.numsync, r.numsyncConfirmd)-all > 0 {
		// Half way through a change of the replication factor.
		if r.numsync > r.syncWanted {
			return r.syncUpdate(max(r.syncWanted, len(r.voters)-r.quorum), r.sync)
		}
		return r.quorumUpdate(len(r.sync)-r.numsync, r.voters, nil, true)
	}
	if r.numsync == r.syncWanted && r.quorum+r.numsync-all > 0 && r.numsync > r.numsyncConfirmd {
		return r.quorumUpdate(len(r.sync)-r.numsync, r.voters, nil, true)
	}
	return nil
}

// removeGone drops standbys that stopped streaming (or may no longer be
// synchronous) from both places.
func (r *quorumResolver) removeGone() error {
	toRemove := r.sync.minus(r.active)
	if len(toRemove) == 0 {
		return nil
	}
	if r.sync.equal(toRemove) {
		if err := r.quorumUpdate(0, nameSet{}, nil, false); err != nil {
			return err
		}
		return r.syncUpdate(0, nameSet{})
	}
	if r.quorum > 0 {
		// Shrink the quorum first where it allows; pick names in reverse
		// order so the outcome is deterministic.
		names := toRemove.sorted()
		slices.Reverse(names)
		remove := first(names, r.quorum)
		sync := r.sync.minus(remove)
		numsync := r.numsync
		if r.syncWanted > r.numsync {
			numsync = r.syncWanted // removing standbys allows raising numsync
		}
		if err := r.syncUpdate(min(numsync, len(sync)), sync); err != nil {
			return err
		}
		voters := r.voters.minus(remove)
		toRemove = r.sync.and(toRemove)
		if err := r.quorumUpdate(len(voters)-r.numsync, voters, nil, len(toRemove) == 0); err != nil {
			return err
		}
	}
	if len(toRemove) == 0 {
		return nil
	}
	if r.quorum != 0 {
		return fmt.Errorf("%w: quorum %d is not 0 while removing %s", ErrQuorumState, r.quorum, strings.Join(toRemove.sorted(), ","))
	}
	numsync := r.numsync - len(toRemove)
	sync := r.sync.minus(toRemove)
	voters := r.voters.minus(toRemove)
	quorum := 0
	if decrease := numsync - min(r.syncWanted, len(sync)); decrease != 0 {
		quorum = min(decrease, len(voters)-1)
	}
	if err := r.quorumUpdate(quorum, voters, nil, false); err != nil {
		return err
	}
	return r.syncUpdate(numsync, sync)
}

// addNew adds standbys that stream and may be synchronous: first up to the
// wanted replication factor, then as extra voters.
func (r *quorumResolver) addNew() error {
	toAdd := r.active.minus(r.sync)
	if len(toAdd) == 0 {
		return nil
	}
	syncWanted := min(r.syncWanted, len(r.sync.union(toAdd)))
	if increase := syncWanted - r.numsync; increase > 0 {
		add := toAdd // with only the leader it is safe to add all at once
		if len(r.sync) > 0 {
			add = first(toAdd.sorted(), increase)
			increase = len(add)
		}
		if err := r.syncUpdate(r.numsync+increase, r.sync.union(add)); err != nil {
			return err
		}
		voters := r.voters.union(add)
		if err := r.quorumUpdate(len(voters)-syncWanted, voters, nil, true); err != nil {
			return err
		}
		toAdd = toAdd.minus(r.sync)
	}
	if len(toAdd) == 0 {
		return nil
	}
	voters := r.voters.union(toAdd)
	if err := r.quorumUpdate(len(voters)-syncWanted, voters, nil, syncWanted > r.numsyncConfirmd); err != nil {
		return err
	}
	return r.syncUpdate(syncWanted, r.sync.union(toAdd))
}

// replicationFactor applies a changed synchronous_node_count: a larger one
// raises numsync, then lowers the quorum; a smaller one raises the quorum,
// then lowers numsync.
func (r *quorumResolver) replicationFactor() error {
	increase := min(r.syncWanted, len(r.sync)) - r.numsync
	switch {
	case increase > 0:
		if err := r.syncUpdate(r.numsync+increase, r.sync); err != nil {
			return err
		}
		return r.quorumUpdate(len(r.voters)-r.numsync, r.voters, nil, true)
	case increase < 0:
		if r.quorum-increase < len(r.voters) {
			if err := r.quorumUpdate(len(r.voters)-r.numsync-increase, r.voters, nil, r.syncWanted > r.numsyncConfirmd); err != nil {
				return err
			}
		}
		return r.syncUpdate(r.numsync+increase, r.sync)
	}
	return nil
}

// nameSet is a set of member names compared case-insensitively, as
// PostgreSQL compares application_name with synchronous_standby_names. It
// keeps one spelling per name: a union or intersection keeps the spelling of
// its right operand, a difference that of its left one, like Patroni's
// CaseInsensitiveSet. Operations return new sets; none modifies its operands.
type nameSet map[string]string

func newNameSet(names ...string) nameSet {
	s := make(nameSet, len(names))
	for _, n := range names {
		s[strings.ToLower(n)] = n
	}
	return s
}

func (s nameSet) has(name string) bool {
	_, ok := s[strings.ToLower(name)]
	return ok
}

func (s nameSet) union(o nameSet) nameSet {
	r := make(nameSet, len(s)+len(o))
	for k, v := range s {
		r[k] = v
	}
	for k, v := range o {
		r[k] = v
	}
	return r
}

func (s nameSet) minus(o nameSet) nameSet {
	r := nameSet{}
	for k, v := range s {
		if _, ok := o[k]; !ok {
			r[k] = v
		}
	}
	return r
}

func (s nameSet) and(o nameSet) nameSet {
	r := nameSet{}
	for k, v := range o {
		if _, ok := s[k]; ok {
			r[k] = v
		}
	}
	return r
}

func (s nameSet) subsetOf(o nameSet) bool {
	if len(s) > len(o) {
		return false
	}
	for k := range s {
		if _, ok := o[k]; !ok {
			return false
		}
	}
	return true
}

func (s nameSet) equal(o nameSet) bool        { return len(s) == len(o) && s.subsetOf(o) }
func (s nameSet) properSubset(o nameSet) bool { return len(s) < len(o) && s.subsetOf(o) }

// sorted returns the spellings in byte order.
func (s nameSet) sorted() []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// first returns the set of the first n names of list.
func first(list []string, n int) nameSet {
	return newNameSet(list[:min(n, len(list))]...)
}
