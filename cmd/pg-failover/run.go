package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/clusterctl"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// CLI is pg-failover's command line.
type CLI struct {
	cli.Common
	JSON bool `help:"Print the result as JSON on stdout, also on failure (fields are only ever added)."`

	Switchover SwitchoverCmd `cmd:"" default:"withargs" help:"Hand the leader role to --to (default command; without --to, to the best candidate)."`
	List       struct{}      `cmd:"" help:"Show the members like patronictl list: member, host, role, state, timeline, lag."`
	History    struct{}      `cmd:"" help:"Show the timeline switches: timeline, LSN, reason, time, new leader."`
	Pause      WaitFlags     `cmd:"" help:"Enter maintenance mode: no automatic failover, crashed PostgreSQL is not restarted."`
	Resume     WaitFlags     `cmd:"" help:"Leave maintenance mode."`
	Restart    MemberCmd     `cmd:"" help:"Ask member NAME's daemons to restart its PostgreSQL, and wait until it runs again."`
	Reinit     MemberCmd     `cmd:"" help:"Ask member NAME's daemons to re-create its data directory from the leader, and wait until it runs again."`
	Reload     ReloadCmd     `cmd:"" help:"Ask every member's daemons (or member NAME's) to read their YAML again and reload PostgreSQL's configuration, like patronictl reload. Changes to the config key need no reload: every member applies them within a loop."`
	Cancel     struct{}      `cmd:"" aliases:"flush" help:"Cancel a pending or scheduled switchover or failover (delete the failover key); exits 0 also when none is pending."`
}

// SwitchoverCmd are the flags of a switchover or failover.
type SwitchoverCmd struct {
	To       string        `placeholder:"NAME" help:"The candidate (default: the best eligible member)."`
	From     string        `placeholder:"NAME" help:"Refuse (exit 14) unless NAME is the current leader."`
	At       string        `placeholder:"TIME" help:"Schedule the switchover at TIME (RFC 3339, e.g. 2026-01-02T03:04:05Z); the wait then counts from TIME."`
	Failover bool          `help:"Promote the candidate when no leader holds the key (refused while one does, unless --force)."`
	Force    bool          `help:"With --failover: if a leader is alive, do a switchover instead of refusing; if none is, promote the candidate even if it lags more than maximum_lag_on_failover (the WAL it lacks is lost)."`
	DryRun   bool          `help:"Print the plan and every member's eligibility; change nothing. Exits as the real run would refuse, else 0."`
	Yes      bool          `short:"y" help:"Do not ask for confirmation on a terminal."`
	Timeout  time.Duration `default:"60s" help:"How long to wait for the outcome (exit 13 after it)."`
	NoWait   bool          `help:"Exit 0 once the request is in etcd, without waiting for the outcome."`
}

// WaitFlags bound the wait of pause and resume.
type WaitFlags struct {
	Timeout time.Duration `default:"30s" help:"How long to wait until every member reports the mode (exit 13 after it)."`
	NoWait  bool          `help:"Exit once the config key is written."`
}

// MemberCmd names the member of restart and reinit.
type MemberCmd struct {
	Name    string        `arg:"" help:"The member."`
	Timeout time.Duration `default:"120s" help:"How long to wait until the member has carried the request out and runs again (exit 13 after it)."`
	NoWait  bool          `help:"Exit once the request is in etcd."`
}

// ReloadCmd names the member of reload, none: every member.
type ReloadCmd struct {
	Name    string        `arg:"" optional:"" help:"The member (default: every member)."`
	Timeout time.Duration `default:"30s" help:"How long to wait for each member to carry the reload out (exit 13 after it)."`
	NoWait  bool          `help:"Exit once the requests are in etcd."`
}

func run(ctx context.Context, command string, c *CLI, began time.Time) error {
	log, cfg, err := c.Setup(program.Name, config.Need{Etcd: true})
	if err != nil || cfg == nil {
		return err
	}
	client, err := dcs.NewFromConfig(ctx, cfg, log.With().Str("component", "dcs").Logger(), 0)
	log = log.With().Str("component", "failover").Logger()
	if err != nil {
		return err
	}
	defer client.Close()
	ctl := &clusterctl.Ctl{DCS: client, Cfg: cfg, Log: log}
	out := os.Stdout

	switch command {
	case "list":
		cl, s, err := ctl.Read(ctx)
		if err != nil {
			return err
		}
		l := clusterctl.List(cfg.Scope, cl, s)
		if c.JSON {
			return writeJSON(out, l)
		}
		_, err = io.WriteString(out, clusterctl.RenderList(l))
		return err
	case "history":
		cl, _, err := ctl.Read(ctx)
		if err != nil {
			return err
		}
		h := clusterctl.History(cl.History)
		if c.JSON {
			return writeJSON(out, h)
		}
		_, err = io.WriteString(out, clusterctl.RenderHistory(h))
		return err
	case "pause", "resume":
		w := c.Pause
		if command == "resume" {
			w = c.Resume
		}
		return pause(ctx, ctl, command == "pause", w, c.JSON, began)
	case "cancel":
		r, err := ctl.Cancel(ctx)
		return finish(r, err, c.JSON)
	case "restart <name>":
		return request(ctx, ctl, dcs.ActionRestart, c.Restart, c.JSON, began)
	case "reinit <name>":
		return request(ctx, ctl, dcs.ActionReinit, c.Reinit, c.JSON, began)
	case "reload", "reload <name>":
		return reload(ctx, ctl, c.Reload, c.JSON, began)
	default:
		return switchover(ctx, ctl, &c.Switchover, c.JSON, began)
	}
}

func switchover(ctx context.Context, ctl *clusterctl.Ctl, s *SwitchoverCmd, asJSON bool, began time.Time) error {
	req := clusterctl.Request{Candidate: s.To, From: s.From, Failover: s.Failover, Force: s.Force}
	o := clusterctl.SwitchoverOptions{DryRun: s.DryRun, NoWait: s.NoWait, Timeout: s.Timeout, Began: began}
	if s.At != "" {
		at, err := clusterctl.ParseAt(s.At, time.Now())
		if err != nil {
			r := clusterctl.Result{Action: "switchover", Candidate: s.To}
			r.Failed(err)
			return finish(r, err, asJSON)
		}
		req.At = &at
	}
	if !s.Yes && !asJSON && !s.DryRun && term.IsTerminal(int(os.Stdin.Fd())) {
		o.Confirm = confirm
	}
	r, err := ctl.Switchover(ctx, req, o)
	if s.DryRun && !asJSON && len(r.Members) > 0 {
		fmt.Fprint(os.Stdout, clusterctl.RenderPlan(r.Members))
	}
	return finish(r, err, asJSON)
}

// confirm asks on the terminal; anything but y or yes declines.
func confirm(p clusterctl.Plan) bool {
	fmt.Fprintf(os.Stderr, "%s? [y/N] ", p.Describe())
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

func pause(ctx context.Context, ctl *clusterctl.Ctl, on bool, w WaitFlags, asJSON bool, began time.Time) error {
	timeout := w.Timeout
	if w.NoWait {
		timeout = 0
	}
	action, done, already := "resume", "resumed: automatic failover is on again", "not paused; nothing to do"
	if on {
		action, done, already = "pause", "paused: maintenance mode on, no automatic failover", "already paused; nothing to do"
	}
	changed, err := ctl.SetPaused(ctx, on, timeout)
	r := clusterctl.Result{Action: action, Result: "done", Message: done, Seconds: time.Since(began).Seconds()}
	if !changed {
		r.Result, r.Message = "noop", already
	}
	if err != nil {
		r.Failed(err)
	}
	return finish(r, err, asJSON)
}

func request(ctx context.Context, ctl *clusterctl.Ctl, action string, m MemberCmd, asJSON bool, began time.Time) error {
	timeout := m.Timeout
	if m.NoWait {
		timeout = 0
	}
	err := ctl.Request(ctx, m.Name, action, timeout)
	r := clusterctl.Result{Action: action, Candidate: m.Name, Result: "done", Seconds: time.Since(began).Seconds(),
		Message: fmt.Sprintf("%s of %s done in %.2fs", action, m.Name, time.Since(began).Seconds())}
	if m.NoWait {
		r.Result, r.Message = "requested", action+" of "+m.Name+" requested"
	}
	if err != nil {
		r.Failed(err)
	}
	return finish(r, err, asJSON)
}

// reload asks one member, or each in turn, to reload.
func reload(ctx context.Context, ctl *clusterctl.Ctl, m ReloadCmd, asJSON bool, began time.Time) error {
	names := []string{m.Name}
	if m.Name == "" {
		cl, err := ctl.DCS.Get(ctx)
		if err != nil {
			return err
		}
		names = names[:0]
		for _, mem := range cl.Members {
			names = append(names, mem.Name)
		}
	}
	for _, name := range names {
		if err := request(ctx, ctl, dcs.ActionReload, MemberCmd{Name: name, Timeout: m.Timeout, NoWait: m.NoWait}, asJSON, began); err != nil {
			return err
		}
	}
	return nil
}

// finish prints r: as JSON, or its message on success (cli.Main prints the
// error on stderr), and returns err with its exit code.
func finish(r clusterctl.Result, err error, asJSON bool) error {
	switch {
	case asJSON:
		if werr := writeJSON(os.Stdout, r); werr != nil && err == nil {
			err = werr
		}
	case err == nil:
		fmt.Fprintln(os.Stdout, r.Message)
	}
	return clusterctl.ExitError(err)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
