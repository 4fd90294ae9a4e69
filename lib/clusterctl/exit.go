package clusterctl

import (
	"errors"
	"fmt"

	"github.com/pg-ha/pg-ha/lib/cli"
)

// Reason classifies a failure; each has its own exit code.
type Reason int

// Reasons, in the order of their exit codes.
const (
	// Unknown is any other failure (etcd unreachable, …): exit 1.
	Unknown Reason = iota
	// Usage is a bad flag value, such as --at in the past: exit 2.
	Usage
	// NoSuchMember: the named member has no member key: exit 10.
	NoSuchMember
	// NotEligible: the candidate may not become the leader, or no member
	// may: exit 11.
	NotEligible
	// NoLeader: a switchover needs a leader and nobody holds the key: exit 12.
	NoLeader
	// TimedOut: the outcome was not reached within --timeout: exit 13.
	TimedOut
	// NotFromLeader: --from names a member that is not the leader: exit 14.
	NotFromLeader
	// LeaderAlive: --failover while a leader holds the key, without --force:
	// exit 15.
	LeaderAlive
	// Refused: the leader dropped the switchover request and kept leading:
	// exit 16.
	Refused
	// Pending: another switchover or failover request is in etcd: exit 18.
	Pending
	// Diverted: the switchover or failover ended with another member as the
	// leader: exit 19.
	Diverted
	// RequestFailed: the member reported that it could not carry out a
	// restart or reinit: exit 20.
	RequestFailed
	// Conflict: the config key changed between edit-config's read and its
	// write; nothing was written: exit 21.
	Conflict
)

var exitCodes = map[Reason]int{
	Unknown:       cli.ExitFailure,
	Usage:         cli.ExitConfig,
	NoSuchMember:  10,
	NotEligible:   11,
	NoLeader:      12,
	TimedOut:      13,
	NotFromLeader: 14,
	LeaderAlive:   15,
	Refused:       16,
	Pending:       18,
	Diverted:      19,
	RequestFailed: 20,
	Conflict:      21,
}

var reasonNames = map[Reason]string{
	Unknown:       "failed",
	Usage:         "usage",
	NoSuchMember:  "no_such_member",
	NotEligible:   "not_eligible",
	NoLeader:      "no_leader",
	TimedOut:      "timed_out",
	NotFromLeader: "not_from_leader",
	LeaderAlive:   "leader_alive",
	Refused:       "refused",
	Pending:       "pending",
	Diverted:      "diverted",
	RequestFailed: "request_failed",
	Conflict:      "conflict",
}

// ExitCode is the process exit code for r.
func (r Reason) ExitCode() int { return exitCodes[r] }

// String is r's name in --json output ("not_eligible", …).
func (r Reason) String() string { return reasonNames[r] }

// ExitStatus lists the exit codes above 2 as "code  meaning" lines for
// cli.Program.ExitStatus.
func ExitStatus() []string {
	return []string{
		"10   no such member (--to, --from, restart or reinit names a member without a member key)",
		"11   the candidate is not eligible (not running, not streaming, other timeline, tagged nofailover, " +
			"failover_priority 0, lags more than maximum_lag_on_failover), or no member is; reinit of the leader",
		"12   no leader: nobody holds the leader key (use --failover)",
		"13   timed out (--timeout) before the outcome was reached; what was still missing is on stderr",
		"14   refused: --from is not the current leader",
		"15   refused: --failover while a leader is alive (add --force to make it a switchover)",
		"16   the leader refused the switchover and keeps leading",
		"18   refused: another switchover, failover, or request for that member is pending",
		"19   the switchover or failover ended with another member as the leader",
		"20   the member could not carry out the restart or reinit (its reason on stderr)",
		"21   edit-config: someone changed the configuration meanwhile; nothing was written",
	}
}

// Failure is an outcome a script may branch on: Reason gives the exit
// code, Msg the one-line explanation.
type Failure struct {
	Reason Reason
	Msg    string
}

func (f *Failure) Error() string { return f.Msg }

// fail builds a *Failure with a formatted message.
func fail(r Reason, format string, a ...any) *Failure {
	return &Failure{Reason: r, Msg: fmt.Sprintf(format, a...)}
}

// UsageError is a Usage failure (exit 2) with a formatted message.
func UsageError(format string, a ...any) error { return fail(Usage, format, a...) }

// ReasonOf returns the Reason of err: the *Failure's in its chain, else
// Unknown. A nil err has no reason and returns Unknown too; check err first.
func ReasonOf(err error) Reason {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return Unknown
}

// ExitError wraps err for cli.Main with the exit code of its Reason; nil
// stays nil, and an error without a Failure is returned unchanged (exit 1,
// or 130 after SIGINT).
func ExitError(err error) error {
	var f *Failure
	if err == nil || !errors.As(err, &f) {
		return err
	}
	return cli.Exit(f.Reason.ExitCode(), err)
}
