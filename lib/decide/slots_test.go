package decide

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

func slotName(m string) string { return strings.ReplaceAll(strings.ToLower(m), "-", "_") }

func TestMemberSlots(t *testing.T) {
	const now = clock.Time(1000 * time.Second)
	ago := func(d time.Duration) clock.Time { return now.Add(-d) }
	tests := []struct {
		name       string
		self       string
		present    []string
		seen       map[string]clock.Time
		ttl        time.Duration
		noSlots    bool
		keep, drop []string
	}{
		{name: "all present", present: []string{"n1", "n2", "n3"},
			seen: map[string]clock.Time{"n1": now, "n2": now, "n3": now}, ttl: time.Minute,
			keep: []string{"n2", "n3"}},
		{name: "gone within ttl keeps its slot", present: []string{"n1", "n2"},
			seen: map[string]clock.Time{"n1": now, "n2": now, "n3": ago(59 * time.Second)}, ttl: time.Minute,
			keep: []string{"n2", "n3"}},
		{name: "gone for ttl drops its slot", present: []string{"n1", "n2"},
			seen: map[string]clock.Time{"n1": now, "n2": now, "n3": ago(time.Minute)}, ttl: time.Minute,
			keep: []string{"n2"}, drop: []string{"n3"}},
		{name: "ttl 0 drops at once", present: []string{"n1", "n2"},
			seen: map[string]clock.Time{"n1": now, "n2": now, "n3": ago(time.Millisecond)}, ttl: 0,
			keep: []string{"n2"}, drop: []string{"n3"}},
		{name: "a member never seen is not dropped", present: []string{"n1"},
			seen: map[string]clock.Time{"n1": now}, ttl: 0},
		{name: "back before the ttl", present: []string{"n1", "n3"},
			seen: map[string]clock.Time{"n1": now, "n3": now}, ttl: time.Minute,
			keep: []string{"n3"}},
		{name: "own slot neither kept nor dropped", present: []string{"n2"},
			seen: map[string]clock.Time{"n1": ago(time.Hour), "n2": now}, ttl: time.Minute,
			keep: []string{"n2"}},
		{name: "a departed name sharing a kept slot name is not dropped", present: []string{"n1", "node-2"},
			seen: map[string]clock.Time{"n1": now, "node-2": now, "NODE-2": ago(time.Hour)}, ttl: time.Minute,
			keep: []string{"node_2"}},
		{name: "a departed name sharing the leader's slot name is not dropped", self: "n-1", present: []string{"n-1"},
			seen: map[string]clock.Time{"n-1": now, "N-1": ago(time.Hour)}, ttl: time.Minute},
		{name: "use_slots false keeps and drops nothing", present: []string{"n1", "n2"}, noSlots: true,
			seen: map[string]clock.Time{"n1": now, "n2": now, "n3": ago(time.Hour)}, ttl: 0},
		{name: "sorted", present: []string{"n1", "c", "b"},
			seen: map[string]clock.Time{"n1": now, "c": now, "b": now, "z": ago(time.Hour), "a": ago(2 * time.Hour), "y": ago(time.Second)}, ttl: time.Minute,
			keep: []string{"b", "c", "y"}, drop: []string{"a", "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self := cmp.Or(tt.self, "n1")
			keep, drop := MemberSlots{Self: self, Present: tt.present, LastSeen: tt.seen, Now: now,
				TTL: tt.ttl, UseSlots: !tt.noSlots, SlotName: slotName}.Decide()
			if !slices.Equal(keep, tt.keep) || !slices.Equal(drop, tt.drop) {
				t.Errorf("keep %q drop %q; want keep %q drop %q", keep, drop, tt.keep, tt.drop)
			}
		})
	}
}

func TestSeeMembers(t *testing.T) {
	seen := map[string]clock.Time{}
	SeeMembers(seen, []string{"a", "b"}, 10)
	SeeMembers(seen, []string{"a"}, 20)
	if seen["a"] != 20 || seen["b"] != 10 {
		t.Fatalf("seen = %v; want a at 20, b still at 10", seen)
	}
	// More departed members than remembered: the oldest are forgotten.
	for i := range MaxRemembered + 5 {
		SeeMembers(seen, []string{"a", fmt.Sprintf("m%02d", i)}, clock.Time(100+i))
	}
	SeeMembers(seen, []string{"a"}, 1000)
	if len(seen) != MaxRemembered+1 {
		t.Fatalf("remembered %d members, want %d departed and a", len(seen), MaxRemembered)
	}
	for _, gone := range []string{"b", "m00", "m04"} {
		if _, ok := seen[gone]; ok {
			t.Errorf("%s, among the longest gone, is still remembered", gone)
		}
	}
	if _, ok := seen[fmt.Sprintf("m%02d", MaxRemembered+4)]; !ok {
		t.Errorf("the most recently departed member was forgotten")
	}
}

func TestMemberSlotsPlan(t *testing.T) {
	const now = clock.Time(1000 * time.Second)
	seen := func(names ...string) map[string]clock.Time {
		out := map[string]clock.Time{}
		for _, n := range names {
			out[n] = now
		}
		return out
	}
	tests := []struct {
		name       string
		self       string
		leader     string
		noFailover bool
		permanent  []string
		members    map[string]Streamer
		keep, drop []string
		advance    map[string]int64
	}{
		{name: "leader: streamers kept, a cascaded member's copy advanced", self: "n1", leader: "n1",
			members: map[string]Streamer{"n1": {Running: true, Position: 900}, "n2": {Running: true, Position: 800}, "n3": {Running: true, ReplicateFrom: "n2", Position: 700}},
			keep:    []string{"n2", "n3"}, advance: map[string]int64{"n3": 700}},
		{name: "replica: its cascade kept, copies of the others advanced", self: "n2", leader: "n1",
			members: map[string]Streamer{"n1": {Running: true, Position: 900}, "n2": {Running: true, Position: 800}, "n3": {Running: true, ReplicateFrom: "n2", Position: 700}, "n4": {Running: true, Position: 600}},
			keep:    []string{"n1", "n3", "n4"}, advance: map[string]int64{"n1": 900, "n4": 600}},
		{name: "nofailover replica: only its cascade, the rest dropped", self: "n2", leader: "n1", noFailover: true,
			members: map[string]Streamer{"n1": {Running: true, Position: 900}, "n2": {Running: true}, "n3": {Running: true, ReplicateFrom: "n2"}, "n4": {Running: true}},
			keep:    []string{"n3"}, drop: []string{"n1", "n4"}},
		{name: "nostream member: no slot anywhere", self: "n1", leader: "n1",
			members: map[string]Streamer{"n1": {Running: true}, "n2": {Running: true}, "n5": {Running: true, NoStream: true, Position: 500}},
			keep:    []string{"n2"}, drop: []string{"n5"}},
		{name: "unknown position: kept, not advanced", self: "n2", leader: "n1",
			members: map[string]Streamer{"n1": {Running: true}, "n2": {Running: true}},
			keep:    []string{"n1"}},
		{name: "permanent slots: kept on the leader as they are", self: "n1", leader: "n1", permanent: []string{"backup", "n2"},
			members: map[string]Streamer{"n1": {Running: true}, "n2": {Running: true, Position: 800}},
			keep:    []string{"backup", "n2"}},
		{name: "permanent slots: copies advanced on a replica, not on a nofailover one", self: "n2", leader: "n1", permanent: []string{"backup", "gone"},
			members: map[string]Streamer{"n1": {Running: true, Position: 900}, "n2": {Running: true}},
			keep:    []string{"backup", "gone", "n1"}, advance: map[string]int64{"backup": 700, "n1": 900}},
		{name: "permanent slots: none on a replica that never leads", self: "n2", leader: "n1", noFailover: true, permanent: []string{"backup"},
			members: map[string]Streamer{"n1": {Running: true, Position: 900}, "n2": {Running: true}},
			drop:    []string{"n1"}},
		{name: "cascade upstream stopped: the member's slot moves to the leader", self: "n1", leader: "n1",
			members: map[string]Streamer{"n1": {Running: true}, "n2": {Position: 800}, "n3": {Running: true, ReplicateFrom: "n2", Position: 700}},
			keep:    []string{"n2", "n3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var present []string
			for n := range tt.members {
				present = append(present, n)
			}
			keep, advance, drop := MemberSlots{Self: tt.self, Leader: tt.leader, NoFailover: tt.noFailover, Members: tt.members,
				Permanent: tt.permanent, PermanentPos: map[string]int64{"backup": 700},
				Present: present, LastSeen: seen(present...), Now: now, TTL: time.Minute, UseSlots: true, SlotName: slotName}.Plan()
			if fmt.Sprint(keep) != fmt.Sprint(tt.keep) || fmt.Sprint(drop) != fmt.Sprint(tt.drop) || fmt.Sprint(advance) != fmt.Sprint(tt.advance) {
				t.Errorf("Plan() = keep %v advance %v drop %v, want keep %v advance %v drop %v", keep, advance, drop, tt.keep, tt.advance, tt.drop)
			}
		})
	}
}
