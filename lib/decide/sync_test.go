package decide

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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

func planString(p SyncPlan) string {
	out := make([]string, len(p.Actions))
	for i, a := range p.Actions {
		out[i] = a.String()
	}
	s := strings.Join(out, "; ")
	for _, f := range []struct {
		on   bool
		name string
	}{{p.Recheck, "recheck"}, {p.Blocking, "blocking"}, {p.Async, "async"}} {
		if f.on {
			s += " +" + f.name
		}
	}
	return s
}

func first1(names ...string) StandbyNamesSetting {
	return StandbyNamesSetting{Num: len(names), Names: names}
}

// TestSyncStep covers synchronous_mode: on, after Patroni's
// test__process_multisync_replication, test_enable_synchronous_mode and
// test_inconsistent_synchronous_state, plus the orders that make a
// promotion of a listed standby safe.
func TestSyncStep(t *testing.T) {
	key := func(leader string, standbys ...string) SyncKey { return SyncKey{Leader: leader, Standbys: standbys} }
	tests := []struct {
		name string
		s    SyncOnState
		want string
	}{
		{"steady: the same standby picked, listed and published",
			SyncOnState{Self: "leader", Key: key("leader", "other"), Current: first1("other"), Active: ns("other"), Confirmed: ns("other"), NodeCount: 1},
			""},
		{"enabling: the key names this primary before anything else; no standby yet",
			SyncOnState{Self: "leader", NodeCount: 1},
			"sync key leader () quorum 0 +async"},
		{"enabling with a standby streaming: list it, publish it once confirmed",
			SyncOnState{Self: "leader", Active: ns("a"), NodeCount: 1},
			"sync key leader () quorum 0; synchronous_standby_names FIRST 1 (a) +recheck"},
		{"just listed, not yet confirmed: wait before publishing",
			SyncOnState{Self: "leader", Key: key("leader"), Current: first1("a"), Active: ns("a"), NodeCount: 1},
			" +recheck"},
		{"listed and confirmed: publish",
			SyncOnState{Self: "leader", Key: key("leader"), Current: first1("a"), Active: ns("a"), Confirmed: ns("a"), NodeCount: 1},
			"sync key leader (a) quorum 0"},
		{"switching standbys: the old one leaves the key before synchronous_standby_names",
			SyncOnState{Self: "leader", Key: key("leader", "other"), Current: first1("other"), Active: ns("other2"), NodeCount: 1},
			"sync key leader () quorum 0; synchronous_standby_names FIRST 1 (other2) +recheck"},
		{"a second standby joins (node count 2): listed, the first stays published",
			SyncOnState{Self: "leader", Key: key("leader", "other2"), Current: first1("other2"), Active: ns("other2", "other3"),
				Confirmed: ns("other2"), NodeCount: 2},
			"synchronous_standby_names FIRST 2 (other2,other3) +recheck"},
		{"the second standby confirmed: published with the first",
			SyncOnState{Self: "leader", Key: key("leader", "other2"), Current: first1("other2", "other3"), Active: ns("other3", "other2"),
				Confirmed: ns("other2", "other3"), NodeCount: 2},
			"sync key leader (other2,other3) quorum 0"},
		{"node count caps the picked standbys",
			SyncOnState{Self: "leader", Key: key("leader", "a"), Current: first1("a"), Active: ns("a", "b", "c"), Confirmed: ns("a", "b"), NodeCount: 1},
			""},
		{"one of two standbys gone: it leaves the key first, then synchronous_standby_names",
			SyncOnState{Self: "leader", Key: key("leader", "a", "b"), Current: first1("a", "b"), Active: ns("a"), Confirmed: ns("a"), NodeCount: 2},
			"sync key leader (a) quorum 0; synchronous_standby_names FIRST 1 (a)"},
		{"the key lists a standby that is picked but not synchronous: unpublish it",
			SyncOnState{Self: "leader", Key: key("leader", "a"), Current: first1("a"), Active: ns("a"), NodeCount: 1},
			"sync key leader () quorum 0 +recheck"},
		{"the key names another leader (after a failover): take it over empty",
			SyncOnState{Self: "leader", Key: key("other", "leader"), Active: ns("a"), NodeCount: 1},
			"sync key leader () quorum 0; synchronous_standby_names FIRST 1 (a) +recheck"},
		{"the key names another leader and this primary's standby: it is not vouched for",
			SyncOnState{Self: "leader", Key: key("other", "a"), Current: first1("a"), Active: ns("a"), Confirmed: ns("a"), NodeCount: 1},
			"sync key leader () quorum 0; sync key leader (a) quorum 0"},
		{"ANY 1 (foo) becomes FIRST 1 (foo); the key is not touched",
			SyncOnState{Self: "leader", Key: key("leader", "foo"), Current: StandbyNamesSetting{Quorum: true, Num: 1, Names: ns("foo")},
				Active: ns("foo"), Confirmed: ns("foo"), NodeCount: 1},
			"synchronous_standby_names FIRST 1 (foo)"},
		{"not strict, the last standby gone: unpublished, then unlisted; commits go on alone",
			SyncOnState{Self: "leader", Key: key("leader", "a"), Current: first1("a"), NodeCount: 1},
			"sync key leader () quorum 0; synchronous_standby_names off +async"},
		{"not strict, the placeholder left from strict mode is removed",
			SyncOnState{Self: "leader", Key: key("leader"), Current: StandbyNamesSetting{Num: 1}, NodeCount: 1},
			"synchronous_standby_names off +async"},
		{"not strict, nothing to do without standbys",
			SyncOnState{Self: "leader", Key: key("leader"), NodeCount: 1},
			" +async"},
		{"strict, the standby gone: it stays listed and published, commits wait",
			SyncOnState{Self: "leader", Key: key("leader", "other"), Current: first1("other"), NodeCount: 1, Strict: true},
			" +blocking"},
		{"strict, no standby ever: the placeholder blocks commits",
			SyncOnState{Self: "leader", Key: key("leader"), NodeCount: 1, Strict: true},
			"synchronous_standby_names FIRST 1 () +blocking"},
		{"strict, placeholder already set: nothing to do",
			SyncOnState{Self: "leader", Key: key("leader"), Current: StandbyNamesSetting{Num: 1}, NodeCount: 1, Strict: true},
			" +blocking"},
		{"strict, after a restart with synchronous_standby_names empty: list the published standby again",
			SyncOnState{Self: "leader", Key: key("leader", "other"), NodeCount: 1, Strict: true},
			"synchronous_standby_names FIRST 1 (other) +blocking"},
		{"strict, two published standbys gone: both stay required",
			SyncOnState{Self: "leader", Key: key("leader", "a", "b"), Current: StandbyNamesSetting{Quorum: true, Num: 1, Names: ns("a", "b")}, NodeCount: 2, Strict: true},
			"synchronous_standby_names FIRST 2 (a,b) +blocking"},
		{"strict, a standby comes back: listed, commits resume",
			SyncOnState{Self: "leader", Key: key("leader"), Current: StandbyNamesSetting{Num: 1}, Active: ns("a"), NodeCount: 1, Strict: true},
			"synchronous_standby_names FIRST 1 (a) +recheck"},
		{"names compare case-insensitively",
			SyncOnState{Self: "leader", Key: key("leader", "Node2"), Current: first1("NODE2"), Active: ns("node2"), Confirmed: ns("node2"), NodeCount: 1},
			""},
	}
	for _, tt := range tests {
		if got := planString(SyncStep(tt.s)); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func ns(names ...string) []string { return names }

// TestSyncStepConverges drives SyncStep against a model of PostgreSQL and
// etcd, checking at every applied action that every standby in the sync key
// is listed in synchronous_standby_names and was confirmed synchronous
// while listed — the condition for promoting it without loss.
func TestSyncStepConverges(t *testing.T) {
	type world struct {
		key     SyncKey
		current StandbyNamesSetting
		up      []string // standbys streaming, best first
	}
	for _, tt := range []struct {
		name   string
		start  world
		count  int
		strict bool
		want   SyncKey
	}{
		{"from nothing to two standbys", world{up: []string{"b", "c", "d"}}, 2, false, SyncKey{Leader: "a", Standbys: []string{"b", "c"}}},
		{"after a failover", world{key: SyncKey{Leader: "x", Standbys: []string{"a"}}, up: []string{"x", "c"}}, 1, false, SyncKey{Leader: "a", Standbys: []string{"x"}}},
		{"replace a dead standby", world{key: SyncKey{Leader: "a", Standbys: []string{"b"}}, current: first1("b"), up: []string{"c"}}, 1, true,
			SyncKey{Leader: "a", Standbys: []string{"c"}}},
	} {
		w := tt.start
		confirmed := map[string]bool{} // listed long enough to be synchronous
		var steps int
		for steps = 0; steps < 10; steps++ {
			listed := newNameSet(w.current.Names...)
			var conf []string
			for _, n := range firstN(w.up, tt.count) {
				if listed.has(n) && confirmed[n] {
					conf = append(conf, n)
				}
			}
			p := SyncStep(SyncOnState{Self: "a", Key: w.key, Current: w.current, Active: w.up, Confirmed: conf, NodeCount: tt.count, Strict: tt.strict})
			for _, a := range p.Actions {
				switch a.Kind {
				case SyncPutKey:
					w.key = a.Key
				case SyncSetStandbyNames:
					w.current = a.Names
					now := newNameSet(a.Names.Names...)
					for n := range confirmed {
						if !now.has(n) {
							delete(confirmed, n)
						}
					}
				}
				for _, n := range w.key.Standbys {
					if !newNameSet(w.current.Names...).has(n) || !confirmed[strings.ToLower(n)] && !confirmed[n] {
						t.Fatalf("%s: after %s the key lists %s, which is not a confirmed synchronous standby (%+v)", tt.name, a, n, w)
					}
				}
			}
			if len(p.Actions) == 0 && !p.Recheck {
				break
			}
			// Time passes: listed standbys catch up.
			for _, n := range w.current.Names {
				confirmed[n] = true
			}
		}
		if w.key.Leader != tt.want.Leader || !newNameSet(w.key.Standbys...).equal(newNameSet(tt.want.Standbys...)) {
			t.Errorf("%s: ended with key %+v after %d steps, want %+v", tt.name, w.key, steps, tt.want)
		}
	}
}

func firstN(list []string, n int) []string { return list[:min(n, len(list))] }

func actionsString(as []SyncAction) string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return strings.Join(out, "; ")
}

// TestSyncPrepromote after Patroni's test__process_multisync_prepromote and
// test__process_quorum_prepromote.
func TestSyncPrepromote(t *testing.T) {
	old := SyncKey{Leader: "other", Standbys: []string{"postgresql0", "foo"}}
	tests := []struct {
		name   string
		mode   SyncMode
		self   string
		key    SyncKey
		strict bool
		want   string
	}{
		{"on: the key names the new primary alone, synchronous replication off until standbys connect",
			SyncOn, "postgresql0", old, false, "sync key postgresql0 () quorum 0; synchronous_standby_names off"},
		{"on, strict: the old leader and the other standbys stay required",
			SyncOn, "postgresql0", old, true, "sync key postgresql0 (foo,other) quorum 0; synchronous_standby_names FIRST 2 (foo,other)"},
		{"on, strict: a non-synchronous node promoted by an operator requires all of them",
			SyncOn, "nonsync", old, true, "sync key nonsync (foo,other,postgresql0) quorum 0; synchronous_standby_names FIRST 3 (foo,other,postgresql0)"},
		{"on, strict, no old key: the placeholder blocks commits",
			SyncOn, "n1", SyncKey{}, true, "sync key n1 () quorum 0; synchronous_standby_names FIRST 1 ()"},
		{"quorum: only synchronous_standby_names, so that every commit reaches a quorum",
			SyncQuorum, "postgresql0", old, true, "synchronous_standby_names ANY 2 (foo,other)"},
		{"quorum: a node from outside the voters needs one more",
			SyncQuorum, "nonsync", old, true, "synchronous_standby_names ANY 3 (foo,other,postgresql0)"},
		{"quorum with quorum 1 of three voters",
			SyncQuorum, "b", SyncKey{Leader: "a", Standbys: []string{"b", "c", "d"}, Quorum: 1}, false, "synchronous_standby_names ANY 2 (a,c,d)"},
		{"quorum, not strict, nothing known",
			SyncQuorum, "b", SyncKey{}, false, "synchronous_standby_names off"},
		{"quorum, strict, nothing known: placeholder",
			SyncQuorum, "b", SyncKey{}, true, "synchronous_standby_names ANY 1 ()"},
		{"off: nothing", SyncOff, "b", old, true, ""},
	}
	for _, tt := range tests {
		if got := actionsString(SyncPrepromote(tt.mode, tt.self, tt.key, tt.strict)); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestSyncPromotable(t *testing.T) {
	peer := func(name string, pos int64) SyncPeer { return SyncPeer{Name: name, Reachable: true, Position: pos} }
	on := SyncKey{Leader: "a", Standbys: []string{"b"}}
	// Quorum 1 of (a, b, c, d): any two of them hold every commit.
	q := SyncKey{Leader: "a", Standbys: []string{"b", "c", "d"}, Quorum: 1}
	tests := []struct {
		name  string
		mode  SyncMode
		self  string
		pos   int64
		key   SyncKey
		peers []SyncPeer
		want  bool
	}{
		{"off: anyone", SyncOff, "c", 1, on, nil, true},
		{"on, key empty (not active yet): anyone", SyncOn, "c", 1, SyncKey{}, nil, true},
		{"on: the synchronous standby", SyncOn, "b", 1, on, nil, true},
		{"on: case-insensitive", SyncOn, "B", 1, on, nil, true},
		{"on: the former leader itself", SyncOn, "a", 1, on, nil, true},
		{"on: an asynchronous standby never, even ahead", SyncOn, "c", 9, on, []SyncPeer{peer("b", 1)}, false},
		{"quorum: a voter seeing another voter not ahead", SyncQuorum, "b", 5, q, []SyncPeer{peer("c", 5)}, true},
		{"quorum: a voter seeing nobody", SyncQuorum, "b", 5, q, nil, false},
		{"quorum: a voter seeing only unreachable voters", SyncQuorum, "b", 5, q,
			[]SyncPeer{{Name: "c", Position: 1}, {Name: "d", Position: 1}}, false},
		{"quorum: a voter seeing a voter ahead", SyncQuorum, "b", 5, q, []SyncPeer{peer("c", 6), peer("d", 1)}, false},
		{"quorum: a non-voter ahead also disqualifies", SyncQuorum, "b", 5, q, []SyncPeer{peer("c", 5), peer("e", 6)}, false},
		{"quorum: the former leader ahead does not disqualify", SyncQuorum, "b", 5, q, []SyncPeer{peer("c", 5), peer("a", 7)}, true},
		{"quorum: a non-voter needs quorum+1 votes", SyncQuorum, "e", 5, q, []SyncPeer{peer("c", 5)}, false},
		{"quorum: a non-voter with quorum+1 votes", SyncQuorum, "e", 5, q, []SyncPeer{peer("c", 5), peer("d", 4)}, true},
		{"quorum: a non-voter's votes count only from voters", SyncQuorum, "e", 5, q, []SyncPeer{peer("c", 5), peer("f", 4)}, false},
		{"quorum: a peer with PostgreSQL down does not vote", SyncQuorum, "b", 5, q, []SyncPeer{peer("c", 0)}, false},
		{"quorum: nofailover voters neither vote nor disqualify", SyncQuorum, "b", 5, q,
			[]SyncPeer{{Name: "c", Reachable: true, Position: 5, NoFailover: true}, {Name: "d", Reachable: true, Position: 9, NoFailover: true}}, false},
		{"quorum: a primary still running", SyncQuorum, "b", 5, q, []SyncPeer{peer("c", 5), {Name: "d", Reachable: true, Primary: true, Position: 1}}, false},
		{"quorum: the former leader comes back alone", SyncQuorum, "a", 5, q, nil, true},
		{"quorum: the former leader with someone ahead", SyncQuorum, "a", 5, q, []SyncPeer{peer("b", 6)}, false},
		{"quorum 0 (one voter): the voter alone", SyncQuorum, "b", 5, SyncKey{Leader: "a", Standbys: []string{"b"}}, nil, true},
		{"quorum, key not active: anyone", SyncQuorum, "z", 1, SyncKey{}, nil, true},
		{"quorum 2 of 5: two votes needed", SyncQuorum, "b", 5, SyncKey{Leader: "a", Standbys: []string{"b", "c", "d", "e"}, Quorum: 2},
			[]SyncPeer{peer("c", 5), peer("self", 9)}, false},
		{"quorum 2 of 5: two votes", SyncQuorum, "b", 5, SyncKey{Leader: "a", Standbys: []string{"b", "c", "d", "e"}, Quorum: 2},
			[]SyncPeer{peer("c", 5), peer("e", 3)}, true},
	}
	for _, tt := range tests {
		got, why := SyncPromotable(tt.mode, tt.self, tt.pos, tt.key, tt.peers)
		if got != tt.want || got && why != "" || !got && why == "" {
			t.Errorf("%s: got %v (%q), want %v", tt.name, got, why, tt.want)
		}
	}
}

func TestSyncFailoverTarget(t *testing.T) {
	key := SyncKey{Leader: "a", Standbys: []string{"b"}}
	tests := []struct {
		mode       SyncMode
		key        SyncKey
		to         string
		switchover bool
		want       bool
	}{
		{SyncOn, key, "b", true, true},
		{SyncOn, key, "c", true, false},
		{SyncOn, key, "c", false, true},
		{SyncOn, SyncKey{}, "c", true, true},
		{SyncQuorum, key, "c", true, true},
		{SyncOff, key, "c", true, true},
	}
	for _, tt := range tests {
		if got, why := SyncFailoverTarget(tt.mode, tt.key, tt.to, tt.switchover); got != tt.want || !got && !strings.Contains(why, tt.to) {
			t.Errorf("SyncFailoverTarget(%v, %+v, %s, %v) = %v (%q)", tt.mode, tt.key, tt.to, tt.switchover, got, why)
		}
	}
	peers := []SyncPeer{
		{Name: "c", Reachable: true, Position: 9},
		{Name: "b", Reachable: true, Position: 5},
		{Name: "d", Reachable: true, Position: 7},
		{Name: "e", Reachable: false, Position: 8},
		{Name: "f", Reachable: true, Position: 8, NoFailover: true},
	}
	k := SyncKey{Leader: "a", Standbys: []string{"b", "d", "e", "f"}}
	if got := SyncSwitchoverCandidate(SyncOn, k, peers); got != "d" {
		t.Errorf("switchover candidate %q, want d (the most advanced reachable promotable synchronous standby)", got)
	}
	if got := SyncSwitchoverCandidate(SyncOn, SyncKey{Leader: "a"}, peers); got != "" {
		t.Errorf("switchover candidate %q with no synchronous standby", got)
	}
	if got := SyncSwitchoverCandidate(SyncQuorum, k, peers); got != "" {
		t.Errorf("switchover candidate %q in quorum mode", got)
	}
}

// TestQuorumTransitionsConverge moves a steady cluster to a new set of
// streaming standbys and replication factor, applying the transitions loop
// after loop — sometimes only a prefix of them, as when a write fails — and
// checks, after every applied step, that any set of standbys able to
// acknowledge a commit overlaps any quorum able to elect a new leader, and
// at the end that the state is the optimal one.
func TestQuorumTransitionsConverge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	universe := []string{"b", "c", "d", "e", "f"}
	subset := func() []string {
		var out []string
		for _, n := range universe {
			if rng.IntN(2) == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	for i := range 2000 {
		a0, w0 := subset(), 1+rng.IntN(3)
		n0 := min(w0, len(a0))
		s := QuorumState{Leader: "a", Quorum: len(a0) - n0, Voters: a0, NumSync: n0, Sync: a0, LeaderWanted: "a"}
		if len(a0) == 0 {
			s.Voters, s.Quorum = nil, 0
		}
		active, wanted := subset(), 1+rng.IntN(3)
		start := s
		safe := func(step string) {
			voters := newNameSet(s.Voters...).union(newNameSet("a"))
			sync := newNameSet(s.Sync...).union(newNameSet("a"))
			numsync := min(s.NumSync, len(s.Sync))
			if len(s.Voters) > 0 && len(voters.union(sync)) > s.Quorum+numsync+1 {
				t.Fatalf("case %d from %+v to active %v wanted %d: after %s, %d members but quorum %d + numsync %d + 1",
					i, start, active, wanted, step, len(voters.union(sync)), s.Quorum, numsync)
			}
		}
		for loop := 0; ; loop++ {
			if loop == 30 {
				t.Fatalf("case %d from %+v to active %v wanted %d: no convergence, at %+v", i, start, active, wanted, s)
			}
			s.Active, s.SyncWanted = active, wanted
			s.NumSyncConfirmed = len(newNameSet(s.Sync...).and(newNameSet(active...)))
			ts, err := QuorumTransitions(s)
			if err != nil {
				t.Fatalf("case %d from %+v to active %v wanted %d: at %+v: %v", i, start, active, wanted, s, err)
			}
			if len(ts) == 0 {
				break
			}
			n := len(ts)
			if rng.IntN(4) == 0 {
				n = rng.IntN(len(ts) + 1) // a write failed part way
			}
			for _, tr := range ts[:n] {
				switch tr.Kind {
				case QuorumSetStandbyNames:
					s.NumSync, s.Sync = tr.Num, tr.Names
				case QuorumSetSyncKey:
					s.Leader, s.Quorum, s.Voters = tr.Leader, tr.Num, tr.Names
				}
				safe(tr.String())
			}
		}
		want := min(wanted, len(active))
		if !newNameSet(s.Sync...).equal(newNameSet(active...)) || !newNameSet(s.Voters...).equal(newNameSet(active...)) ||
			min(s.NumSync, len(s.Sync)) != want || s.Quorum != len(active)-want {
			t.Errorf("case %d from %+v to active %v wanted %d: ended at %+v", i, start, active, wanted, s)
		}
	}
}

// TestQuorumTransitionsFewerStandbysThanTheFactorGrew: one standby joins
// while synchronous_node_count grows by two. Patroni 4.1.4 fails this state
// every loop ("quorum and sync not guaranteed to overlap"); pg-ha reaches
// ANY 3 of 4 with quorum 1 through safe steps.
func TestQuorumTransitionsFewerStandbysThanTheFactorGrew(t *testing.T) {
	got, err := QuorumTransitions(QuorumState{Leader: "a", Quorum: 2, Voters: letters("bcf"), NumSync: 1, Sync: letters("bcf"),
		NumSyncConfirmed: 3, Active: letters("bcdf"), SyncWanted: 3, LeaderWanted: "a"})
	want := "sync a 2 (b,c,d,f); quorum a 2 (b,c,d,f); sync a 3 (b,c,d,f); quorum a 1 (b,c,d,f)"
	if err != nil || joinTransitions(got) != want {
		t.Fatalf("got %s, %v; want %s", joinTransitions(got), err, want)
	}
}

// TestSyncStepConvergesRandom: from random consistent states, with
// standbys coming and going, SyncStep never publishes a standby that is not
// listed and confirmed, and ends with the picked standbys published (or,
// strict with none streaming, commits blocked).
func TestSyncStepConvergesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	universe := []string{"b", "c", "d", "e"}
	pick := func() []string {
		var out []string
		for _, i := range rng.Perm(len(universe)) {
			if rng.IntN(2) == 0 {
				out = append(out, universe[i])
			}
		}
		return out
	}
	for i := range 2000 {
		count, strict := 1+rng.IntN(3), rng.IntN(2) == 0
		listed := pick()
		confirmed := map[string]bool{}
		var published []string
		for _, n := range listed {
			if rng.IntN(2) == 0 {
				confirmed[n] = true
				if rng.IntN(2) == 0 {
					published = append(published, n)
				}
			}
		}
		key := SyncKey{Leader: "a", Standbys: published}
		switch rng.IntN(4) {
		case 0:
			key = SyncKey{}
		case 1:
			key.Leader = "x" // another primary's key, after a failover
		}
		current := StandbyNamesSetting{Num: len(listed), Names: listed, Quorum: rng.IntN(4) == 0}
		up := pick()
		start := fmt.Sprintf("key %+v, listed %v, up %v, count %d, strict %v", key, listed, up, count, strict)
		var p SyncPlan
		for loop := 0; ; loop++ {
			if loop == 10 {
				t.Fatalf("case %d (%s): no convergence", i, start)
			}
			on := newNameSet(current.Names...)
			var conf []string
			for _, n := range firstN(up, count) {
				if on.has(n) && confirmed[n] {
					conf = append(conf, n)
				}
			}
			p = SyncStep(SyncOnState{Self: "a", Key: key, Current: current, Active: up, Confirmed: conf, NodeCount: count, Strict: strict})
			for _, a := range p.Actions {
				switch a.Kind {
				case SyncPutKey:
					key = a.Key
				case SyncSetStandbyNames:
					current = a.Names
					now := newNameSet(a.Names.Names...)
					for n := range confirmed {
						if !now.has(n) {
							delete(confirmed, n)
						}
					}
					if strict && current.Off() {
						t.Fatalf("case %d (%s): strict mode turned synchronous replication off", i, start)
					}
				}
				if key.Leader == "a" {
					for _, n := range key.Standbys {
						if !newNameSet(current.Names...).has(n) || !confirmed[n] {
							t.Fatalf("case %d (%s): after %s the key publishes %s, not a confirmed synchronous standby", i, start, a, n)
						}
					}
				}
			}
			if len(p.Actions) == 0 && !p.Recheck {
				break
			}
			for _, n := range current.Names {
				if slices.Contains(up, n) {
					confirmed[n] = true
				}
			}
		}
		if key.Leader != "a" {
			t.Errorf("case %d (%s): the key names %q", i, start, key.Leader)
		}
		if len(up) == 0 && strict {
			if !p.Blocking || current.Off() {
				t.Errorf("case %d (%s): strict with no standby, not blocking: %+v", i, start, current)
			}
			continue
		}
		if want := newNameSet(firstN(up, count)...); !newNameSet(key.Standbys...).equal(want) || !newNameSet(current.Names...).equal(want) ||
			current.Quorum || len(up) > 0 && current.Num != len(want) {
			t.Errorf("case %d (%s): ended with key %+v, synchronous_standby_names %+v", i, start, key, current)
		}
	}
}
