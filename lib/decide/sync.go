package decide

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SyncMode is synchronous_mode: off, on (FIRST n) or quorum (ANY n).
type SyncMode int

const (
	// SyncOff: asynchronous replication; the sync key is deleted.
	SyncOff SyncMode = iota
	// SyncOn: synchronous_standby_names is FIRST n (standbys); only a
	// standby listed in the sync key may be promoted.
	SyncOn
	// SyncQuorum: synchronous_standby_names is ANY n (standbys); a
	// candidate must see a quorum of the sync key's voters.
	SyncQuorum
)

func (m SyncMode) String() string {
	switch m {
	case SyncOff:
		return "off"
	case SyncOn:
		return "on"
	case SyncQuorum:
		return "quorum"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// SyncKey is the sync key: the primary that manages it, its synchronous
// standbys (sync_standby; in quorum mode, the voters) and, in quorum mode,
// how many of leader+voters a candidate must see. An empty Leader means the
// key is absent or empty: synchronous replication is not active.
type SyncKey struct {
	Leader   string
	Standbys []string
	Quorum   int
}

// Lists reports whether name is the key's leader or one of its standbys
// (case-insensitively). An empty key lists nobody.
func (k SyncKey) Lists(name string) bool {
	if k.Leader == "" || name == "" {
		return false
	}
	return strings.EqualFold(k.Leader, name) || newNameSet(k.Standbys...).has(name)
}

// StandbyNamesSetting is a synchronous_standby_names value: commits wait
// for Num of Names, any of them (Quorum: ANY) or the first connected ones
// (FIRST). No Names with Num 0 is off; no Names with Num 1 or more lists a
// name no standby has, so commits wait (strict mode with no standby).
// lib/syncrep renders and parses it.
type StandbyNamesSetting struct {
	Quorum bool
	Num    int
	Names  []string
}

// Off reports whether commits wait for no standby.
func (s StandbyNamesSetting) Off() bool { return len(s.Names) == 0 && s.Num <= 0 }

func (s StandbyNamesSetting) same(o StandbyNamesSetting) bool {
	if s.Off() && o.Off() {
		return true
	}
	return s.Quorum == o.Quorum && s.Num == o.Num && newNameSet(s.Names...).equal(newNameSet(o.Names...))
}

// SyncActionKind says what a SyncAction changes.
type SyncActionKind int

const (
	// SyncPutKey: write Key, in a transaction guarded by the fencing
	// token (and the key's mod revision as read).
	SyncPutKey SyncActionKind = iota + 1
	// QuorumSetStandbyNames: set synchronous_standby_names to Names and reload;
	// the next action may be applied only once PostgreSQL uses it.
	SyncSetStandbyNames
)

// SyncAction is one change, to apply in order.
type SyncAction struct {
	Kind  SyncActionKind
	Key   SyncKey
	Names StandbyNamesSetting
}

func (a SyncAction) String() string {
	if a.Kind == SyncPutKey {
		return fmt.Sprintf("sync key %s (%s) quorum %d", a.Key.Leader, strings.Join(a.Key.Standbys, ","), a.Key.Quorum)
	}
	kw := "FIRST"
	if a.Names.Quorum {
		kw = "ANY"
	}
	if a.Names.Off() {
		return "synchronous_standby_names off"
	}
	return fmt.Sprintf("synchronous_standby_names %s %d (%s)", kw, a.Names.Num, strings.Join(a.Names.Names, ","))
}

// SyncOnState is what the primary knows, in synchronous_mode: on, when
// deciding its next change to synchronous replication.
type SyncOnState struct {
	// Self is this primary's member name.
	Self string
	// Key is the sync key as read.
	Key SyncKey
	// Current is synchronous_standby_names as PostgreSQL uses it now.
	Current StandbyNamesSetting
	// Active are the standbys picked to be synchronous, best first, and
	// Confirmed those of them known to be synchronous and caught up
	// (lib/syncrep's State).
	Active    []string
	Confirmed []string
	// NodeCount is synchronous_node_count; Strict synchronous_mode_strict.
	NodeCount int
	Strict    bool
}

// SyncPlan is the next step of synchronous replication.
type SyncPlan struct {
	// Actions are applied in order; on the first failure the rest is
	// dropped and the next loop decides again from what it reads.
	Actions []SyncAction
	// Recheck: standbys were just listed and are not confirmed yet; look
	// again soon (a second or two) rather than a whole loop later, to
	// publish them in the sync key.
	Recheck bool
	// Blocking: strict mode without a standby, commits wait until one
	// comes back. Async: not strict and no standby, commits no longer wait
	// for any standby. Both are worth a warning and a status line.
	Blocking, Async bool
	// Reason says why, for the log.
	Reason string
}

// SyncStep decides the next changes to synchronous_standby_names and the
// sync key in synchronous_mode: on (Patroni's multisync processing). It
// keeps the order that makes promotion of a standby in the sync key safe:
// a standby enters synchronous_standby_names first and is published in the
// sync key only once it is confirmed synchronous; it leaves the sync key
// first and synchronous_standby_names after. Strict mode never leaves
// synchronous_standby_names empty: with no standby it keeps the standbys of
// the sync key listed, or a placeholder, so commits wait. It is pure and
// never blocks.
func SyncStep(s SyncOnState) SyncPlan {
	var p SyncPlan
	writeKey := func(standbys nameSet, why string) {
		p.Actions = append(p.Actions, SyncAction{Kind: SyncPutKey, Key: SyncKey{Leader: s.Self, Standbys: standbys.sorted()}})
		if p.Reason == "" {
			p.Reason = why
		}
	}
	cur := s.Current
	setNames := func(n StandbyNamesSetting, why string) {
		if n.same(cur) {
			return
		}
		cur = n
		p.Actions = append(p.Actions, SyncAction{Kind: SyncSetStandbyNames, Names: n})
		if p.Reason == "" {
			p.Reason = why
		}
	}
	active := s.Active
	if s.NodeCount > 0 && len(active) > s.NodeCount {
		active = active[:s.NodeCount]
	}
	picked := newNameSet(active...)
	confirmed := picked.and(newNameSet(s.Confirmed...))

	voters := newNameSet(s.Key.Standbys...)
	if s.Key.Leader != s.Self {
		// Absent, empty, or left by another primary: take it over, listing
		// nobody until this primary's standbys are confirmed.
		voters = nameSet{}
		writeKey(voters, "the sync key does not name this primary")
	}
	if picked.equal(voters) && !voters.equal(confirmed) {
		voters = confirmed
		writeKey(voters, "the sync key lists standbys that are not synchronous")
	}

	minSync := 0
	if s.Strict {
		minSync = 1
	}
	if len(picked) < minSync {
		// Keep commits waiting for the published standbys, or for nobody
		// that exists.
		setNames(StandbyNamesSetting{Num: max(minSync, len(voters)), Names: voters.sorted()},
			"no standby may be synchronous and synchronous_mode_strict is on")
		p.Blocking = true
		if p.Reason == "" {
			p.Reason = "no standby may be synchronous and synchronous_mode_strict is on: commits wait"
		}
		return p
	}
	if len(picked) == 0 {
		p.Async = true
	}

	if picked.equal(voters) && voters.equal(newNameSet(cur.Names...)) && cur.Num == len(picked) {
		setNames(StandbyNamesSetting{Num: len(picked), Names: picked.sorted()}, "synchronous_standby_names uses ANY in synchronous_mode on")
		if p.Async && p.Reason == "" {
			p.Reason = "no standby may be synchronous: commits do not wait for a standby"
		}
		return p
	}
	// Leave the sync key first: keep only standbys still confirmed.
	common := voters.and(confirmed)
	if !common.equal(voters) {
		writeKey(common, "standbys leave the sync key before synchronous_standby_names")
	}
	setNames(StandbyNamesSetting{Num: len(picked), Names: picked.sorted()}, "the standbys picked to be synchronous changed")
	if len(confirmed) > 0 && !confirmed.equal(common) {
		writeKey(confirmed, "confirmed synchronous standbys are published")
	}
	p.Recheck = len(picked) > 0 && !confirmed.equal(picked)
	if p.Async && p.Reason == "" {
		p.Reason = "no standby may be synchronous: commits do not wait for a standby"
	}
	return p
}

// SyncPrepromote returns what a node about to promote writes, in order,
// in synchronous_mode on or quorum (Patroni's pre-promote processing):
//   - on, not strict: the sync key naming itself with no standby, then
//     synchronous_standby_names off; standbys are added as they connect.
//   - on, strict: the sync key and synchronous_standby_names list the old
//     key's leader and standbys other than itself (or the placeholder), so
//     no commit is acknowledged without a standby from the first one.
//   - quorum: only synchronous_standby_names, ANY n of the old key's leader
//     and voters other than itself, n chosen so that every commit reaches
//     a quorum; QuorumTransitions takes the key over once it leads.
//
// key is the sync key as read before promoting. It is pure and never
// blocks.
func SyncPrepromote(mode SyncMode, self string, key SyncKey, strict bool) []SyncAction {
	minSync := 0
	if strict {
		minSync = 1
	}
	members := nameSet{}
	if key.Leader != "" {
		members = newNameSet(key.Leader).union(newNameSet(key.Standbys...))
	}
	switch mode {
	case SyncOn:
		sync := nameSet{}
		if strict {
			sync = members.minus(newNameSet(self))
		}
		names := StandbyNamesSetting{Num: len(sync), Names: sync.sorted()}
		if len(sync) == 0 {
			names.Num = minSync
		}
		return []SyncAction{
			{Kind: SyncPutKey, Key: SyncKey{Leader: self, Standbys: sync.sorted()}},
			{Kind: SyncSetStandbyNames, Names: names},
		}
	case SyncQuorum:
		quorum := 0
		if key.Leader != "" {
			quorum = key.Quorum
		}
		numsync := len(members) - quorum - 1 // members include the old leader
		if members.has(self) {
			members = members.minus(newNameSet(self))
		} else {
			// Promoted from outside the voters (manual failover, or it won
			// the quorum race).
			numsync++
		}
		numsync = max(numsync, minSync)
		return []SyncAction{{Kind: SyncSetStandbyNames, Names: StandbyNamesSetting{Quorum: true, Num: numsync, Names: members.sorted()}}}
	}
	return nil
}

// SyncPeer is another member as a candidate sees it during the leader race
// (from its REST API or its member key).
type SyncPeer struct {
	Name string
	// Reachable: it answered (and reported a position) just now.
	Reachable bool
	// Primary: it runs as a primary (not in recovery).
	Primary bool
	// Position is its received/replayed WAL position (0: PostgreSQL not
	// running).
	Position   int64
	NoFailover bool
}

// SyncPromotable decides the synchronous-replication part of whether self
// may take the free leader key; the general checks (lag, timeline,
// priority, Elect) still apply. With synchronous replication off or the
// sync key empty (not active), anyone may. In mode on only a member the key
// lists — a synchronous standby, or the former leader itself — has every
// acknowledged commit. In quorum mode the key says how many of its leader
// and voters a candidate must see besides itself: any Quorum+1 of them
// include one that acknowledged every commit. Self counts itself if it is
// a voter, each reachable promotable voter whose position is reported and
// not ahead of it is a vote, and it needs Quorum votes; a reachable
// promotable member ahead of it (other than the former leader) disqualifies
// it; the former leader itself may come back when no one is ahead. So a
// candidate promotes only when it is the most advanced of a quorum. It is pure and never blocks; the reason says why
// not.
func SyncPromotable(mode SyncMode, self string, selfPosition int64, key SyncKey, peers []SyncPeer) (bool, string) {
	if mode == SyncOff || key.Leader == "" {
		return true, ""
	}
	if mode == SyncOn {
		if !key.Lists(self) {
			return false, fmt.Sprintf("not a synchronous standby: the sync key lists leader %s and standbys (%s)",
				key.Leader, strings.Join(key.Standbys, ","))
		}
		return true, ""
	}
	voting := newNameSet(key.Leader).union(newNameSet(key.Standbys...))
	votes := -1
	if voting.has(self) {
		votes = 0
	}
	ahead := 0
	var voters []string
	for _, p := range peers {
		// Like Patroni, a member that may not promote neither votes nor
		// disqualifies: leaving out a vote only makes promotion harder.
		if strings.EqualFold(p.Name, self) || !p.Reachable || p.NoFailover {
			continue
		}
		if p.Primary {
			return false, p.Name + " still runs as a primary"
		}
		switch {
		case p.Position > selfPosition:
			ahead++
			if !strings.EqualFold(p.Name, key.Leader) {
				return false, fmt.Sprintf("%s is ahead (%d > %d)", p.Name, p.Position, selfPosition)
			}
		case p.Position > 0 && voting.has(p.Name):
			votes++
			voters = append(voters, p.Name)
		}
	}
	if votes >= key.Quorum || ahead == 0 && strings.EqualFold(key.Leader, self) {
		return true, ""
	}
	return false, fmt.Sprintf("sees %d of the quorum %d of (%s) (votes from %s)", max(votes, 0), key.Quorum,
		strings.Join(voting.sorted(), ","), strings.Join(voters, ","))
}

// SyncFailoverTarget says whether an operator's switchover (switchover:
// the leader steps down) or failover may go to member name. In mode on,
// with the sync key active, a switchover goes only to a synchronous
// standby, so nothing acknowledged is lost; a failover (no healthy
// leader) may go to an asynchronous standby, since the operator asked for
// it. Quorum mode accepts any member: the candidate's quorum is checked in
// SyncPromotable. It is pure and never blocks.
func SyncFailoverTarget(mode SyncMode, key SyncKey, name string, switchover bool) (bool, string) {
	if mode != SyncOn || key.Leader == "" || !switchover {
		return true, ""
	}
	if newNameSet(key.Standbys...).has(name) {
		return true, ""
	}
	return false, fmt.Sprintf("%s is not a synchronous standby (sync_standby: %s); a switchover in synchronous_mode goes to one",
		name, strings.Join(key.Standbys, ","))
}

// SyncSwitchoverCandidate picks the target of a switchover asked for
// without one: in mode on with the key active, the most advanced reachable
// standby the key lists that may be promoted; "" if none (the switchover
// must then be refused, or a target named). In other modes it returns ""
// and the usual choice applies. It is pure and never blocks.
func SyncSwitchoverCandidate(mode SyncMode, key SyncKey, peers []SyncPeer) string {
	if mode != SyncOn || key.Leader == "" {
		return ""
	}
	sync := newNameSet(key.Standbys...)
	best, bestPos := "", int64(-1)
	for _, p := range peers {
		if p.Reachable && !p.Primary && !p.NoFailover && sync.has(p.Name) && p.Position > bestPos {
			best, bestPos = p.Name, p.Position
		}
	}
	return best
}

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

// QuorumTransitionKind says what a QuorumTransition changes.
type QuorumTransitionKind int

const (
	// QuorumSetStandbyNames: set synchronous_standby_names to ANY Num (Names).
	QuorumSetStandbyNames QuorumTransitionKind = iota + 1
	// QuorumSetSyncKey: write the sync key with Leader, quorum Num and
	// sync_standby Names (guarded by the fencing token).
	QuorumSetSyncKey
	// QuorumRestart: stop applying transitions, re-read PostgreSQL's replication
	// state (standbys just added may become synchronous soon) and decide
	// again; Leader, Num and Names are the unchanged sync key.
	QuorumRestart
)

func (k QuorumTransitionKind) String() string {
	switch k {
	case QuorumSetStandbyNames:
		return "sync"
	case QuorumSetSyncKey:
		return "quorum"
	case QuorumRestart:
		return "restart"
	}
	return fmt.Sprintf("QuorumTransitionKind(%d)", int(k))
}

// QuorumTransition is one step towards the wanted state; its fields are the
// new state. Names are sorted.
type QuorumTransition struct {
	Kind   QuorumTransitionKind
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
// at a QuorumRestart. The caller applies them in order and stops at the first
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
		if t.Kind == QuorumRestart {
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

func (r *quorumResolver) emit(k QuorumTransitionKind, num int, names nameSet) {
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
		r.emit(QuorumRestart, r.quorum, r.voters)
	}
	r.quorum, r.voters = quorum, voters
	if err := r.checkInvariants(); err != nil {
		return err
	}
	r.emit(QuorumSetSyncKey, r.quorum, r.voters)
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
	r.emit(QuorumSetStandbyNames, r.numsync, r.sync)
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
		remove := firstNames(names, r.quorum)
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
			add = firstNames(toAdd.sorted(), increase)
			increase = len(add)
		}
		if err := r.syncUpdate(r.numsync+increase, r.sync.union(add)); err != nil {
			return err
		}
		// Patroni subtracts syncWanted here, which breaks the invariant
		// when fewer standbys could be added than the factor grew by (one
		// new standby while synchronous_node_count goes from 1 to 3): it
		// then fails every loop. numsync is what was actually reached; it
		// equals syncWanted in every other case.
		voters := r.voters.union(add)
		if err := r.quorumUpdate(len(voters)-r.numsync, voters, nil, true); err != nil {
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

// firstNames returns the set of the first n names of list.
func firstNames(list []string, n int) nameSet {
	return newNameSet(list[:min(n, len(list))]...)
}
