package clusterctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/cli"
)

func TestExitCodes(t *testing.T) {
	want := map[Reason]int{
		Unknown: 1, Usage: 2, NoSuchMember: 10, NotEligible: 11, NoLeader: 12, TimedOut: 13, NotFromLeader: 14,
		LeaderAlive: 15, Refused: 16, Pending: 18, Diverted: 19, RequestFailed: 20, Conflict: 21,
	}
	seen := map[int]Reason{}
	status := strings.Join(ExitStatus(), "\n")
	for r := Unknown; r <= Conflict; r++ {
		code := r.ExitCode()
		if code != want[r] {
			t.Errorf("%v: exit %d, want %d", r, code, want[r])
		}
		if other, dup := seen[code]; dup {
			t.Errorf("%v and %v share exit code %d", r, other, code)
		}
		seen[code] = r
		if r.String() == "" {
			t.Errorf("reason %d has no name", r)
		}
		if code >= 10 && !strings.Contains(status, "\n"+strconv.Itoa(code)+" ") && !strings.HasPrefix(status, strconv.Itoa(code)+" ") {
			t.Errorf("exit %d (%v) is not listed under EXIT STATUS", code, r)
		}
	}
	if len(ExitStatus()) != len(want)-2 {
		t.Errorf("EXIT STATUS lists %d codes, want %d", len(ExitStatus()), len(want)-2)
	}
}

func TestExitError(t *testing.T) {
	tests := []struct {
		err  error
		code int // 0: returned unchanged
	}{
		{fail(NotEligible, "node3 is not eligible"), 11},
		{fmt.Errorf("wrapped: %w", fail(TimedOut, "x")), 13},
		{fail(Usage, "--at"), cli.ExitConfig},
		{errors.New("etcd down"), 0},
		{context.Canceled, 0},
	}
	for _, tt := range tests {
		got := ExitError(tt.err)
		var ee *cli.ExitError
		switch {
		case tt.code == 0 && got != tt.err:
			t.Errorf("ExitError(%v) = %v, want it unchanged", tt.err, got)
		case tt.code != 0 && (!errors.As(got, &ee) || ee.Code != tt.code):
			t.Errorf("ExitError(%v) = %v, want exit %d", tt.err, got, tt.code)
		case tt.code != 0 && got.Error() != tt.err.Error():
			t.Errorf("message %q, want %q", got.Error(), tt.err.Error())
		}
	}
	if ExitError(nil) != nil {
		t.Error("ExitError(nil) != nil")
	}
}
