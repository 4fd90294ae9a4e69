package decide

import (
	"errors"
	"strings"
	"testing"
)

// letters spells a set of one-letter member names the way Patroni's tests
// do: "bcd" is {b, c, d}.
func letters(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "")
}

func joinTransitions(ts []QuorumTransition) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return strings.Join(out, "; ")
}

// TestQuorumTransitionsPatroni runs every state Patroni 4.1's
// tests/test_quorum.py resolves — its scenarios, each of them resumed after
// its first step (an interrupted transition), and the interrupted states its
// harness derives by letting standbys come and go — and expects Patroni's
// transitions ("kind leader num (names)", "; "-separated).
func TestQuorumTransitionsPatroni(t *testing.T) {
	tests := []struct {
		scenario         string
		leader           string
		quorum           int
		voters           string
		numsync          int
		sync             string
		numsyncConfirmed int
		active           string
		syncWanted       int
		leaderWanted     string
		want             string
	}{
		{"test_1111", "a", 0, "", 0, "", 0, "b", 2, "a", "sync a 1 (b); restart a 0 ()"},
		{"test_1111", "a", 0, "", 1, "b", 0, "b", 2, "a", "restart a 0 ()"},
		{"test_1111", "a", 0, "", 1, "b", 1, "b", 2, "a", "quorum a 0 (b)"},
		{"test_1111", "a", 0, "b", 1, "b", 1, "b", 2, "a", ""},
		{"test_1111", "a", 0, "", 0, "", 0, "bcde", 2, "a", "sync a 2 (b,c,d,e); restart a 0 ()"},
		{"test_1111", "a", 0, "", 2, "bcde", 0, "bcde", 2, "a", "restart a 0 ()"},
		{"test_1111", "a", 0, "", 2, "bcde", 1, "bcde", 2, "a", "quorum a 3 (b,c,d,e)"},
		{"test_1111", "a", 3, "bcde", 2, "bcde", 1, "bcde", 2, "a", ""},
		{"test_1222", "a", 0, "b", 1, "b", 1, "BC", 1, "a", "quorum a 1 (C,b); sync a 1 (C,b)"},
		{"test_1222", "a", 1, "Cb", 1, "b", 1, "BC", 1, "a", "sync a 1 (C,b)"},
		{"test_1222", "a", 1, "Cb", 1, "Cb", 1, "BC", 1, "a", ""},
		{"test_1222", "a", 0, "b", 1, "b", 1, "bc", 2, "a", "sync a 2 (b,c); quorum a 1 (b,c)"},
		{"test_1222", "a", 0, "b", 2, "bc", 1, "bc", 2, "a", "quorum a 1 (b,c)"},
		{"test_1222", "a", 1, "bc", 2, "bc", 1, "bc", 2, "a", ""},
		{"test_1222 interrupted", "a", 0, "b", 2, "bc", 0, "", 2, "a", "sync a 1 (b); quorum a 0 (); sync a 0 ()"},
		{"test_1222 interrupted", "a", 0, "", 2, "bc", 0, "", 2, "a", "sync a 0 ()"},
		{"test_1222 interrupted", "a", 0, "b", 2, "bc", 0, "b", 2, "a", "sync a 1 (b)"},
		{"test_1222 interrupted", "a", 0, "", 2, "bc", 0, "b", 2, "a", "sync a 1 (b); restart a 0 ()"},
		{"test_1222", "a", 0, "b", 2, "bc", 1, "b", 2, "a", "sync a 1 (b)"},
		{"test_1222 interrupted", "a", 0, "", 2, "bc", 1, "b", 2, "a", "sync a 1 (b); quorum a 0 (b)"},
		{"test_1222 interrupted", "a", 1, "bc", 2, "bc", 0, "", 2, "a", "quorum a 0 (); sync a 0 ()"},
		{"test_1222 interrupted", "a", 1, "bc", 2, "bc", 0, "b", 2, "a", "sync a 1 (b); quorum a 0 (b)"},
		{"test_1222 interrupted", "a", 1, "bc", 2, "bc", 1, "b", 2, "a", "sync a 1 (b); quorum a 0 (b)"},
		{"test_1222", "a", 1, "bc", 2, "bc", 2, "bc", 2, "a", "quorum a 0 (b,c)"},
		{"test_1222", "a", 0, "bc", 2, "bc", 2, "bc", 2, "a", ""},
		{"test_1222", "a", 0, "b", 1, "b", 1, "BCEd", 2, "a", "sync a 2 (C,b); quorum a 3 (C,E,b,d); sync a 2 (C,E,b,d)"},
		{"test_1222", "a", 0, "b", 2, "Cb", 1, "BCEd", 2, "a", "quorum a 3 (C,E,b,d); sync a 2 (C,E,b,d)"},
		{"test_1222", "a", 3, "CEbd", 2, "Cb", 1, "BCEd", 2, "a", "sync a 2 (C,E,b,d)"},
		{"test_1222", "a", 3, "CEbd", 2, "CEbd", 1, "BCEd", 2, "a", ""},
		{"test_1222", "a", 3, "bcde", 2, "bcde", 3, "bcde", 2, "a", "quorum a 2 (b,c,d,e)"},
		{"test_1222", "a", 2, "bcde", 2, "bcde", 3, "bcde", 2, "a", ""},
		{"test_1222", "a", 0, "b", 1, "b", 0, "", 1, "a", "quorum a 0 (); sync a 0 ()"},
		{"test_1222", "a", 0, "", 1, "b", 0, "", 1, "a", "sync a 0 ()"},
		{"test_1222", "a", 0, "", 0, "", 0, "", 1, "a", ""},
		{"test_1222", "a", 0, "b", 1, "b", 0, "c", 1, "a", "quorum a 0 (); sync a 1 (c); restart a 0 ()"},
		{"test_1222", "a", 0, "", 1, "b", 0, "c", 1, "a", "sync a 1 (c); restart a 0 ()"},
		{"test_1222", "a", 0, "", 1, "c", 0, "c", 1, "a", "restart a 0 ()"},
		{"test_1222", "a", 0, "", 1, "c", 1, "c", 1, "a", "quorum a 0 (c)"},
		{"test_1222", "a", 0, "c", 1, "c", 1, "c", 1, "a", ""},
		{"test_1233", "a", 0, "b", 2, "bc", 1, "bcd", 2, "a", "quorum a 2 (b,c,d); sync a 2 (b,c,d)"},
		{"test_1233", "a", 2, "bcd", 2, "bc", 1, "bcd", 2, "a", "sync a 2 (b,c,d)"},
		{"test_1233", "a", 2, "bcd", 2, "bcd", 1, "bcd", 2, "a", ""},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 0, "", 2, "a", "quorum a 0 (); sync a 0 ()"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 0, "b", 2, "a", "quorum a 0 (b); sync a 1 (b)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 1, "b", 2, "a", "quorum a 0 (b); sync a 1 (b)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 0, "c", 2, "a", "quorum a 0 (c); sync a 1 (c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bc", 0, "c", 2, "a", "sync a 1 (c); restart a 0 ()"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 1, "c", 2, "a", "quorum a 0 (c); sync a 1 (c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bc", 1, "c", 2, "a", "sync a 1 (c); quorum a 0 (c)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 0, "bc", 2, "a", "quorum a 1 (b,c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bc", 0, "bc", 2, "a", "restart a 0 ()"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 1, "bc", 2, "a", "quorum a 1 (b,c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bc", 1, "bc", 2, "a", "quorum a 1 (b,c)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bc", 2, "bc", 2, "a", "quorum a 0 (b,c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bc", 2, "bc", 2, "a", "quorum a 0 (b,c)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 0, "", 2, "a", "quorum a 0 (); sync a 0 ()"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 0, "", 2, "a", "sync a 0 ()"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 0, "b", 2, "a", "sync a 1 (b); quorum a 0 (b)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 0, "b", 2, "a", "sync a 1 (b); restart a 0 ()"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 1, "b", 2, "a", "sync a 1 (b); quorum a 0 (b)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 1, "b", 2, "a", "sync a 1 (b); quorum a 0 (b)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 0, "c", 2, "a", "sync a 1 (c); quorum a 0 (c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 0, "c", 2, "a", "sync a 1 (c); restart a 0 ()"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 1, "c", 2, "a", "sync a 1 (c); quorum a 0 (c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 1, "c", 2, "a", "sync a 1 (c); quorum a 0 (c)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 0, "bc", 2, "a", "sync a 2 (b,c); quorum a 1 (b,c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 0, "bc", 2, "a", "sync a 2 (b,c); restart a 0 ()"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 1, "bc", 2, "a", "sync a 2 (b,c); quorum a 1 (b,c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 1, "bc", 2, "a", "sync a 2 (b,c); quorum a 1 (b,c)"},
		{"test_1233 interrupted", "a", 2, "bcd", 2, "bcd", 2, "bc", 2, "a", "quorum a 1 (b,c,d); sync a 2 (b,c); quorum a 0 (b,c)"},
		{"test_1233 interrupted", "a", 0, "", 2, "bcd", 2, "bc", 2, "a", "sync a 2 (b,c); quorum a 0 (b,c)"},
		{"test_1233", "a", 2, "bcd", 2, "bcd", 3, "bcd", 2, "a", "quorum a 1 (b,c,d)"},
		{"test_1233", "a", 1, "bcd", 2, "bcd", 3, "bcd", 2, "a", ""},
		{"test_1233", "a", 0, "b", 2, "bc", 1, "bc", 1, "a", "quorum a 1 (b,c); sync a 1 (b,c)"},
		{"test_1233", "a", 1, "bc", 2, "bc", 1, "bc", 1, "a", "sync a 1 (b,c)"},
		{"test_1233", "a", 1, "bc", 1, "bc", 1, "bc", 1, "a", ""},
		{"test_2322", "a", 1, "bc", 1, "b", 1, "b", 1, "a", "quorum a 0 (b)"},
		{"test_2322", "a", 0, "b", 1, "b", 1, "b", 1, "a", ""},
		{"test_2322", "a", 1, "bc", 1, "b", 1, "bc", 1, "a", "sync a 1 (b,c)"},
		{"test_2322", "a", 1, "bc", 1, "b", 1, "bcd", 1, "a", "sync a 1 (b,c); quorum a 2 (b,c,d); sync a 1 (b,c,d)"},
		{"test_2322", "a", 1, "bc", 1, "bc", 1, "bcd", 1, "a", "quorum a 2 (b,c,d); sync a 1 (b,c,d)"},
		{"test_2322", "a", 2, "bcd", 1, "bc", 1, "bcd", 1, "a", "sync a 1 (b,c,d)"},
		{"test_2322", "a", 2, "bcd", 1, "bcd", 1, "bcd", 1, "a", ""},
		{"test_2322", "a", 1, "bc", 1, "b", 1, "bc", 2, "a", "sync a 2 (b,c)"},
		{"test_3535", "a", 2, "bcde", 2, "bcde", 2, "bc", 2, "a", "sync a 2 (b,c); quorum a 0 (b,c)"},
		{"test_3535", "a", 2, "bcde", 2, "bc", 2, "bc", 2, "a", "quorum a 0 (b,c)"},
		{"test_3535", "a", 2, "bcde", 2, "bcde", 3, "bcd", 2, "a", "sync a 2 (b,c,d); quorum a 1 (b,c,d)"},
		{"test_3535", "a", 2, "bcde", 2, "bcd", 3, "bcd", 2, "a", "quorum a 1 (b,c,d)"},
		{"test_3535", "a", 2, "bcde", 2, "bcde", 2, "bc", 1, "a", "sync a 2 (b,c); quorum a 1 (b,c); sync a 1 (b,c)"},
		{"test_3535", "a", 2, "bcde", 2, "bc", 2, "bc", 1, "a", "quorum a 1 (b,c); sync a 1 (b,c)"},
		{"test_3535", "a", 1, "bc", 2, "bc", 2, "bc", 1, "a", "sync a 1 (b,c)"},
		{"test_3535", "a", 1, "bc", 1, "bc", 2, "bc", 1, "a", ""},
		{"test_3535", "a", 1, "bcde", 3, "bcde", 2, "bc", 1, "a", "sync a 3 (b,c,d); quorum a 1 (b,c); sync a 1 (b,c)"},
		{"test_3535", "a", 1, "bcde", 3, "bcd", 2, "bc", 1, "a", "quorum a 1 (b,c); sync a 1 (b,c)"},
		{"test_3535", "a", 1, "bc", 3, "bcd", 2, "bc", 1, "a", "sync a 1 (b,c)"},
		{"test_3535", "a", 2, "bcde", 2, "bcde", 2, "bcde", 3, "a", "sync a 3 (b,c,d,e)"},
		{"test_3535", "a", 2, "bcde", 3, "bcde", 2, "bcde", 3, "a", ""},
		{"test_3535", "a", 2, "bcde", 3, "bcde", 3, "bcde", 3, "a", "quorum a 1 (b,c,d,e)"},
		{"test_3535", "a", 1, "bcde", 3, "bcde", 3, "bcde", 3, "a", ""},
		{"test_3535", "a", 2, "bcde", 2, "bcde", 2, "bcdef", 1, "a", "quorum a 4 (b,c,d,e,f); sync a 1 (b,c,d,e,f)"},
		{"test_3535", "a", 4, "bcdef", 2, "bcde", 2, "bcdef", 1, "a", "sync a 1 (b,c,d,e,f)"},
		{"test_3535", "a", 4, "bcdef", 1, "bcdef", 2, "bcdef", 1, "a", ""},
		{"test_3535", "a", 2, "bcde", 2, "bcde", 2, "bcd", 3, "a", "sync a 3 (b,c,d); quorum a 1 (b,c,d)"},
		{"test_3535", "a", 2, "bcde", 3, "bcd", 2, "bcd", 3, "a", "quorum a 1 (b,c,d)"},
		{"test_3535", "a", 1, "bcd", 3, "bcd", 2, "bcd", 3, "a", ""},
		{"test_empty_ssn", "a", 1, "bc", 1, "", 0, "", 1, "c", "sync a 1 (a,b); quorum c 1 (a,b)"},
		{"test_empty_ssn", "a", 1, "bc", 1, "ab", 0, "", 1, "c", "quorum c 1 (a,b)"},
		{"test_empty_ssn", "c", 1, "ab", 1, "ab", 0, "b", 1, "c", "sync c 1 (b); quorum c 0 (b)"},
		{"test_empty_ssn", "c", 1, "ab", 1, "b", 0, "b", 1, "c", "quorum c 0 (b)"},
		{"test_empty_ssn", "c", 0, "b", 1, "b", 0, "b", 1, "c", ""},
		{"test_empty_ssn interrupted", "a", 0, "bc", 1, "bc", 1, "bc", 1, "a", "quorum a 1 (b,c)"},
		{"test_empty_ssn interrupted", "a", 1, "bc", 2, "bd", 1, "bd", 1, "a", "quorum a 1 (b,d); sync a 1 (b,d)"},
		{"test_nonsync_promotion", "a", 1, "bc", 0, "", 0, "", 1, "d", "sync a 2 (a,b,c); quorum d 1 (a,b,c)"},
		{"test_nonsync_promotion", "a", 1, "bc", 2, "abc", 0, "", 1, "d", "quorum d 1 (a,b,c)"},
		{"test_nonsync_promotion", "d", 1, "abc", 2, "abc", 0, "bc", 1, "d", "sync d 2 (b,c); quorum d 1 (b,c); sync d 1 (b,c)"},
		{"test_nonsync_promotion", "d", 1, "abc", 2, "bc", 0, "bc", 1, "d", "quorum d 1 (b,c); sync d 1 (b,c)"},
		{"test_nonsync_promotion", "d", 1, "bc", 2, "bc", 0, "bc", 1, "d", "sync d 1 (b,c)"},
		{"test_nonsync_promotion", "d", 1, "bc", 1, "bc", 0, "bc", 1, "d", ""},
		{"test_nonsync_promotion", "d", 1, "abc", 2, "abc", 0, "", 1, "d", "quorum d 0 (); sync d 0 ()"},
		{"test_nonsync_promotion", "d", 0, "", 2, "abc", 0, "", 1, "d", "sync d 0 ()"},
		{"test_nonsync_promotion", "d", 0, "", 0, "", 0, "", 1, "d", ""},
		{"test_promotion", "a", 2, "bcd", 0, "", 0, "", 1, "c", "sync a 1 (a,b,d); quorum c 2 (a,b,d)"},
		{"test_promotion", "a", 2, "bcd", 1, "abd", 0, "", 1, "c", "quorum c 2 (a,b,d)"},
		{"test_promotion", "c", 2, "abd", 1, "abd", 0, "b", 1, "c", "sync c 1 (b); quorum c 0 (b)"},
		{"test_promotion", "c", 2, "abd", 1, "b", 0, "b", 1, "c", "quorum c 0 (b)"},
		{"test_promotion", "c", 2, "abd", 1, "abd", 0, "", 1, "c", "quorum c 0 (); sync c 0 ()"},
		{"test_promotion", "c", 0, "", 1, "abd", 0, "", 1, "c", "sync c 0 ()"},
		{"test_promotion", "c", 0, "", 0, "", 0, "", 1, "c", ""},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcdef", 4, "bcdef", 2, "bcd", 2, "a", "sync a 4 (b,c,d,e); quorum a 1 (b,c,d); sync a 2 (b,c,d)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcdef", 4, "bcde", 2, "bcd", 2, "a", "quorum a 1 (b,c,d); sync a 2 (b,c,d)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcd", 4, "bcde", 2, "bcd", 2, "a", "sync a 2 (b,c,d)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcd", 2, "bcd", 2, "bcd", 2, "a", ""},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcdef", 4, "bcde", 2, "bcdg", 2, "a", "quorum a 1 (b,c,d); sync a 3 (b,c,d); quorum a 2 (b,c,d,g); sync a 2 (b,c,d,g)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcd", 4, "bcde", 2, "bcdg", 2, "a", "sync a 3 (b,c,d); quorum a 2 (b,c,d,g); sync a 2 (b,c,d,g)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcd", 3, "bcd", 2, "bcdg", 2, "a", "quorum a 2 (b,c,d,g); sync a 2 (b,c,d,g)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 2, "bcdg", 3, "bcd", 2, "bcdg", 2, "a", "sync a 2 (b,c,d,g)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 2, "bcdg", 2, "bcdg", 2, "bcdg", 2, "a", ""},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcdef", 4, "bcde", 2, "bcdf", 2, "a", "sync a 4 (b,c,d,f); quorum a 2 (b,c,d,f); sync a 2 (b,c,d,f)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcdef", 4, "bcdf", 2, "bcdf", 2, "a", "quorum a 2 (b,c,d,f); sync a 2 (b,c,d,f)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 2, "bcdf", 4, "bcdf", 2, "bcdf", 2, "a", "sync a 2 (b,c,d,f)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 2, "bcdf", 2, "bcdf", 2, "bcdf", 2, "a", ""},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcdef", 4, "bcde", 2, "bcde", 2, "a", "quorum a 2 (b,c,d,e); sync a 2 (b,c,d,e)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 2, "bcde", 4, "bcde", 2, "bcde", 2, "a", "sync a 2 (b,c,d,e)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 2, "bcde", 2, "bcde", 2, "bcde", 2, "a", ""},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "bcdef", 4, "bcde", 2, "cd", 1, "a", "quorum a 1 (c,d); sync a 1 (c,d)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "cd", 4, "bcde", 2, "cd", 1, "a", "sync a 1 (c,d)"},
		{"test_remove_nodes_with_decreasing_sync", "a", 1, "cd", 1, "cd", 2, "cd", 1, "a", ""},
		{"test_remove_nosync_node", "a", 0, "bc", 2, "bc", 1, "b", 2, "a", "quorum a 0 (b); sync a 1 (b)"},
		{"test_swap_sync_node", "a", 0, "bc", 2, "bc", 1, "bd", 2, "a", "quorum a 0 (b); sync a 2 (b,d); quorum a 1 (b,d)"},
		{"test_swap_sync_node", "a", 0, "b", 2, "bc", 1, "bd", 2, "a", "sync a 2 (b,d); quorum a 1 (b,d)"},
		{"test_swap_sync_node", "a", 0, "b", 2, "bd", 1, "bd", 2, "a", "quorum a 1 (b,d)"},
		{"test_swap_sync_node", "a", 1, "bd", 2, "bd", 1, "bd", 2, "a", ""},
		{"test_sync_high_quorum_low_safety_margin_high", "a", 2, "bcdef", 4, "bcdef", 3, "bcdef", 2, "a", "quorum a 3 (b,c,d,e,f); sync a 2 (b,c,d,e,f)"},
		{"test_sync_high_quorum_low_safety_margin_high", "a", 3, "bcdef", 4, "bcdef", 3, "bcdef", 2, "a", "sync a 2 (b,c,d,e,f)"},
		{"test_sync_high_quorum_low_safety_margin_high", "a", 3, "bcdef", 2, "bcdef", 3, "bcdef", 2, "a", ""},
	}
	for _, tt := range tests {
		s := QuorumState{
			Leader: tt.leader, Quorum: tt.quorum, Voters: letters(tt.voters),
			NumSync: tt.numsync, Sync: letters(tt.sync), NumSyncConfirmed: tt.numsyncConfirmed,
			Active: letters(tt.active), SyncWanted: tt.syncWanted, LeaderWanted: tt.leaderWanted,
		}
		got, err := QuorumTransitions(s)
		if err != nil {
			t.Errorf("%s: %+v: %v", tt.scenario, s, err)
			continue
		}
		if g := joinTransitions(got); g != tt.want {
			t.Errorf("%s: %+v:\n got %s\nwant %s", tt.scenario, s, g, tt.want)
		}
	}
}

// TestQuorumTransitionsRepairBrokenState: a state that does not keep the
// invariant (an operator or another tool changed it) is repaired by raising
// the quorum first (Patroni's test_invalid_states).
func TestQuorumTransitionsRepairBrokenState(t *testing.T) {
	tests := []struct {
		name string
		s    QuorumState
		want string
	}{
		{"quorum too small for numsync", QuorumState{Leader: "a", Quorum: 0, Voters: letters("bc"), NumSync: 1, Sync: letters("bc"),
			NumSyncConfirmed: 1, Active: letters("bc"), SyncWanted: 1, LeaderWanted: "a"}, "quorum a 1 (b,c)"},
		{"voters and synchronous_standby_names differ", QuorumState{Leader: "a", Quorum: 1, Voters: letters("bc"), NumSync: 2, Sync: letters("bd"),
			NumSyncConfirmed: 1, Active: letters("bd"), SyncWanted: 1, LeaderWanted: "a"}, "quorum a 1 (b,d); sync a 1 (b,d)"},
	}
	for _, tt := range tests {
		r := &quorumResolver{leader: tt.s.Leader, quorum: tt.s.Quorum, voters: newNameSet(tt.s.Voters...), numsync: tt.s.NumSync,
			sync: newNameSet(tt.s.Sync...), numsyncConfirmd: tt.s.NumSyncConfirmed, active: newNameSet(tt.s.Active...),
			syncWanted: tt.s.SyncWanted, leaderWanted: tt.s.LeaderWanted}
		if err := r.checkInvariants(); !errors.Is(err, ErrQuorumState) {
			t.Errorf("%s: checkInvariants = %v, want ErrQuorumState", tt.name, err)
		}
		got, err := QuorumTransitions(tt.s)
		if err != nil || joinTransitions(got) != tt.want {
			t.Errorf("%s: got %s, %v; want %s", tt.name, joinTransitions(got), err, tt.want)
		}
	}
}

// TestQuorumUpdateRefusesImpossibleValues (Patroni's test_quorum_update and
// test_sync_update).
func TestQuorumUpdateRefusesImpossibleValues(t *testing.T) {
	newR := func() *quorumResolver {
		return &quorumResolver{leader: "a", quorum: 1, voters: newNameSet("b", "c"), numsync: 1, sync: newNameSet("b", "c"),
			numsyncConfirmd: 1, active: newNameSet("b", "c"), syncWanted: 1, leaderWanted: "a"}
	}
	for name, err := range map[string]error{
		"quorum -1":           newR().quorumUpdate(-1, nameSet{}, nil, true),
		"quorum 1 of nothing": newR().quorumUpdate(1, nameSet{}, nil, true),
		"numsync -1":          newR().syncUpdate(-1, nameSet{}),
		"numsync 1 of none":   newR().syncUpdate(1, nameSet{}),
	} {
		if !errors.Is(err, ErrQuorumState) {
			t.Errorf("%s: %v, want ErrQuorumState", name, err)
		}
	}
}
