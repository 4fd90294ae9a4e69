package pg

import (
	"strings"
	"testing"
)

// The expected values follow Patroni's slot_name_from_member_name.
func TestSlotName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"node1", "node1"},
		{"Node1", "node1"},
		{"pg-node.example.com", "pg_node_example_com"},
		{"a_b", "a_b"},
		{"a b", "au0032b"},
		{"a/b", "au0047b"},
		{"a:b", "au0058b"},
		{"café", "cafu0233"},
		{"Ünïcode", "u0252nu0239code"},
		{"雪", "u38634"},
		{"", ""},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
		{strings.Repeat("a", 61) + " ", strings.Repeat("a", 61) + "u0"},
	}
	for _, tt := range tests {
		got := SlotName(tt.in)
		if got != tt.want {
			t.Errorf("SlotName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if len(got) > 63 {
			t.Errorf("SlotName(%q) is %d bytes, want at most 63", tt.in, len(got))
		}
		for _, r := range got {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_') {
				t.Errorf("SlotName(%q) = %q contains %q", tt.in, got, r)
			}
		}
	}
}
