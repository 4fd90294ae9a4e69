package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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

// CLI is pg-failover's command line. The commands and their flags take
// patronictl's names too (failover --candidate, switchover --leader,
// --scheduled, flush, an optional cluster name), so that a Patroni
// operator's habits work.
type CLI struct {
	cli.Common
	JSON bool `help:"Print the result as JSON on stdout, also on failure (fields are only ever added)."`

	Switchover SwitchoverCmd `cmd:"" default:"withargs" help:"Hand the leader role to --to (default command; without --to, to the best candidate)."`
	Failover   FailoverCmd   `cmd:"" help:"patronictl's failover: make --candidate the leader now; a live leader is demoted (a switchover from it), else only the candidate may take the key."`
	List       ClusterArg    `cmd:"" help:"Show the members like patronictl list: member, host, role, state, timeline, lag."`
	Topology   ClusterArg    `cmd:"" help:"Show the members as a replication tree like patronictl topology: the leader, then each replica under its upstream (replicatefrom tag)."`
	History    ClusterArg    `cmd:"" help:"Show the timeline switches: timeline, LSN, reason, time, new leader."`
	Pause      WaitFlags     `cmd:"" help:"Enter maintenance mode: no automatic failover, crashed PostgreSQL is not restarted."`
	Resume     WaitFlags     `cmd:"" help:"Leave maintenance mode."`
	Restart    RestartCmd    `cmd:"" help:"Ask member NAME's daemons (or those of every member --role and --pending select) to restart its PostgreSQL, and wait until it runs again; with --at, schedule the restart on the member's REST API."`
	Reinit     MemberCmd     `cmd:"" help:"Ask member NAME's daemons to re-create its data directory from the leader, and wait until it runs again."`
	Reload     ReloadCmd     `cmd:"" help:"Ask every member's daemons (or member NAME's) to read their YAML again and reload PostgreSQL's configuration, like patronictl reload. Changes to the config key need no reload: every member applies them within a loop."`
	Cancel     CancelCmd     `cmd:"" aliases:"flush" help:"Cancel a pending or scheduled switchover or failover (delete the failover key), or with the word restart every (or member NAME's) scheduled restart; exits 0 also when none is pending."`
	Query      QueryCmd      `cmd:"" help:"Run SQL on the leader (or --member NAME, or --role replica) like patronictl query, as the YAML's superuser; prints the last statement's rows."`
	Remove     RemoveCmd     `cmd:"" help:"Delete every key of CLUSTER from etcd like patronictl remove, after typed confirmations (the cluster's name, then \"Yes I am aware\"); refused while a leader is alive unless --force."`
	ShowConfig ClusterArg    `cmd:"" name:"show-config" help:"Print the dynamic configuration (the config key) as YAML, like patronictl show-config."`
	EditConfig EditConfigCmd `cmd:"" name:"edit-config" help:"Change the dynamic configuration: --set, --pg, --apply or --replace, else in $EDITOR; shows the diff and asks on a terminal unless --force."`
	DSN        DSNCmd        `cmd:"" name:"dsn" help:"Print the libpq connection string of the leader, or of MEMBER (from its conn_url, never with a password)."`
	VersionCmd ClusterArg    `cmd:"" name:"version" help:"Print pg-failover's version and, with --config, each member's pg-ha version."`
}

// ClusterArg is patronictl's optional cluster name, checked against the
// configuration's scope.
type ClusterArg struct {
	Cluster string `arg:"" optional:"" help:"The cluster's name, as patronictl takes it; if given, it must be the configuration's scope."`
}

// SwitchoverCmd are the flags of a switchover or failover.
type SwitchoverCmd struct {
	ClusterArg
	To       string        `placeholder:"NAME" aliases:"candidate" needs:"a member name" example:"node2" help:"The candidate (default: the best eligible member). Also --candidate."`
	From     string        `placeholder:"NAME" aliases:"leader,primary" needs:"a member name" example:"node1" help:"Refuse (exit 14) unless NAME is the current leader. Also --leader, --primary."`
	At       string        `placeholder:"TIME" aliases:"scheduled" needs:"a time" example:"2026-01-02T03:04:05Z" help:"Schedule the switchover at TIME (RFC 3339, e.g. 2026-01-02T03:04:05Z, or 2026-01-02T03:04 in local time; now: at once); the wait then counts from TIME. Also --scheduled."`
	Failover bool          `help:"Promote the candidate when no leader holds the key (refused while one does, unless --force)."`
	Force    bool          `help:"Do not ask for confirmation (as patronictl's --force). With --failover also: if a leader is alive, do a switchover instead of refusing; if none is, promote the candidate even if it lags more than maximum_lag_on_failover (the WAL it lacks is lost)."`
	DryRun   bool          `help:"Print the plan and every member's eligibility; change nothing. Exits as the real run would refuse, else 0."`
	Yes      bool          `short:"y" help:"Do not ask for confirmation on a terminal."`
	Timeout  time.Duration `default:"60s" help:"How long to wait for the outcome (exit 13 after it)."`
	NoWait   bool          `help:"Exit 0 once the request is in etcd, without waiting for the outcome."`
}

// FailoverCmd are the flags of patronictl's failover.
type FailoverCmd struct {
	ClusterArg
	Candidate string        `placeholder:"NAME" aliases:"to" needs:"a member name" example:"node2" help:"The member to make the leader (default: the best eligible member). Also --to."`
	Force     bool          `help:"Do not ask for confirmation (patronictl's --force). A lagging candidate is still refused: pg-failover switchover --failover --force promotes one."`
	DryRun    bool          `help:"Print the plan and every member's eligibility; change nothing."`
	Yes       bool          `short:"y" help:"Do not ask for confirmation on a terminal."`
	Timeout   time.Duration `default:"60s" help:"How long to wait for the outcome (exit 13 after it)."`
	NoWait    bool          `help:"Exit 0 once the request is in etcd, without waiting for the outcome."`
}

// WaitFlags bound the wait of pause and resume.
type WaitFlags struct {
	ClusterArg
	Timeout time.Duration `default:"30s" help:"How long to wait until every member reports the mode (exit 13 after it)."`
	NoWait  bool          `help:"Exit once the config key is written."`
	Wait    bool          `help:"Wait until every member reports the mode: the default; accepted for patronictl's --wait."`
}

// RestartCmd are restart's members and filters, as patronictl restart's.
type RestartCmd struct {
	Names   []string      `arg:"" optional:"" name:"name" help:"The member(s); none with --role or --pending: every member they select. patronictl's form CLUSTER [MEMBER...] works too."`
	Role    string        `short:"r" placeholder:"ROLE" needs:"a role" example:"replica" help:"Restart only members with this role: leader (also primary), replica or any."`
	Pending bool          `help:"Restart only members whose PostgreSQL has a pending restart (the * in list); with --at, checked at that time."`
	At      string        `placeholder:"TIME" aliases:"scheduled" needs:"a time" example:"2026-01-02T03:04:05Z" help:"Schedule the restart at TIME (RFC 3339, or 2026-01-02T03:04 in local time; now: at once) on each member's REST API (pg-healthd), as patronictl restart --scheduled; flush restart cancels it. Also --scheduled."`
	Timeout time.Duration `default:"120s" help:"How long to wait until each member has carried the request out and runs again (exit 13 after it)."`
	NoWait  bool          `help:"Exit once the request is in etcd."`
	Force   bool          `help:"Accepted for patronictl's --force; pg-failover does not ask before a restart."`
}

// QueryCmd are patronictl query's flags.
type QueryCmd struct {
	ClusterArg
	Command   string        `name:"command" placeholder:"SQL" needs:"SQL" example:"'SELECT 1'" help:"The SQL to run (also patronictl's -c after the command)."`
	File      string        `short:"f" placeholder:"FILE" needs:"a file" example:"q.sql" help:"Run the SQL in FILE (- for stdin)."`
	Member    string        `short:"m" placeholder:"NAME" needs:"a member name" example:"node2" help:"Run on this member."`
	Role      string        `short:"r" placeholder:"ROLE" needs:"a role" example:"replica" help:"Run on a member with this role: leader (default; also primary), replica or any."`
	Format    string        `default:"tsv" enum:"tsv,pretty,json,yaml,yml" help:"Output format: tsv (a header line, then one line per row), pretty (a table), json or yaml."`
	Delimiter string        `default:"\t" help:"The column delimiter of tsv."`
	Username  string        `short:"U" placeholder:"USER" needs:"a user name" example:"postgres" help:"Log in as USER (default: postgresql.authentication.superuser of the YAML)."`
	Password  bool          `help:"Ask for the password on the terminal."`
	DBName    string        `short:"d" name:"dbname" placeholder:"DB" needs:"a database name" example:"postgres" help:"The database (default: the member's conn_url's, else postgres)."`
	Timeout   time.Duration `default:"30s" help:"How long the connection and the statements may take."`
}

// RemoveCmd is patronictl remove's argument.
type RemoveCmd struct {
	Cluster string `arg:"" needs:"the cluster's name" example:"demo" help:"The cluster to remove; it must be the configuration's scope."`
	Force   bool   `help:"Remove even while a leader holds the leader key (then you are also asked for the leader's name). Its daemons keep running and write their keys again."`
}

// MemberCmd names the member of reinit.
type MemberCmd struct {
	Names   []string      `arg:"" name:"name" needs:"a member name" example:"node2" help:"The member; patronictl's form CLUSTER MEMBER works too."`
	Name    string        `kong:"-"`
	Timeout time.Duration `default:"120s" help:"How long to wait until the member has carried the request out and runs again (exit 13 after it)."`
	NoWait  bool          `help:"Exit once the request is in etcd."`
	Force   bool          `help:"Accepted for patronictl's --force; pg-failover does not ask before a restart or reinit."`
}

// CancelCmd takes patronictl flush's arguments: [CLUSTER] [MEMBER...]
// restart|switchover.
type CancelCmd struct {
	Target []string `arg:"" optional:"" help:"patronictl's form: [CLUSTER] switchover, or [CLUSTER] [MEMBER...] restart."`
	Role   string   `short:"r" placeholder:"ROLE" needs:"a role" example:"replica" help:"With restart: only members with this role (leader, replica, any)."`
	Force  bool     `help:"Accepted for patronictl's --force; pg-failover does not ask."`
}

// EditConfigCmd are the flags of edit-config.
type EditConfigCmd struct {
	ClusterArg
	Set     []string `short:"s" sep:"none" placeholder:"KEY=VALUE" needs:"a key=value pair" example:"loop_wait=5" help:"Set KEY (a dotted path, e.g. postgresql.parameters.work_mem) to VALUE, read as YAML (null deletes the key). Repeatable."`
	PG      []string `short:"p" name:"pg" sep:"none" placeholder:"NAME=VALUE" needs:"a name=value pair" example:"work_mem=8MB" help:"Set postgresql.parameters.NAME to VALUE. Repeatable."`
	Apply   string   `placeholder:"FILE" needs:"a YAML file" example:"changes.yml" help:"Merge the YAML document in FILE (- for stdin) into the configuration; null deletes a key."`
	Replace string   `placeholder:"FILE" needs:"a YAML file" example:"config.yml" help:"Replace the whole configuration with the YAML document in FILE (- for stdin)."`
	Force   bool     `help:"Do not ask for confirmation."`
	Quiet   bool     `short:"q" help:"Do not print the diff."`
	DryRun  bool     `help:"Print the diff; change nothing."`
}

// DSNCmd names the member of dsn.
type DSNCmd struct {
	Names  []string `arg:"" optional:"" name:"member" help:"The member (default: the leader); patronictl's form CLUSTER [MEMBER] works too."`
	Member string   `short:"m" placeholder:"NAME" needs:"a member name" example:"node2" help:"The member, as patronictl's --member."`
}

// ReloadCmd names the member of reload, none: every member.
type ReloadCmd struct {
	Names   []string      `arg:"" optional:"" name:"name" help:"The member (default: every member); patronictl's form CLUSTER [MEMBER] works too."`
	Timeout time.Duration `default:"30s" help:"How long to wait for each member to carry the reload out (exit 13 after it)."`
	NoWait  bool          `help:"Exit once the requests are in etcd."`
}

func run(ctx context.Context, command string, c *CLI, began time.Time) error {
	if command == "version" && c.Config == "" && !c.ValidateConfig {
		fmt.Fprintln(os.Stdout, program.Name+" "+cli.Version)
		return nil
	}
	log, cfg, err := c.Setup(program.Name, config.Need{Etcd: true})
	if err != nil || cfg == nil {
		return err
	}
	if err := checkCluster(cfg.Scope, clusterArg(command, c)); err != nil {
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
	case "list", "list <cluster>", "topology", "topology <cluster>":
		cl, s, err := ctl.Read(ctx)
		if err != nil {
			return err
		}
		l := clusterctl.List(cfg.Scope, cl, s)
		if strings.HasPrefix(command, "topology") {
			t := clusterctl.Topology(l)
			if c.JSON {
				return writeJSON(out, t)
			}
			_, err = io.WriteString(out, clusterctl.RenderTopology(t))
			return err
		}
		if c.JSON {
			return writeJSON(out, l)
		}
		_, err = io.WriteString(out, clusterctl.RenderList(l))
		return err
	case "history", "history <cluster>":
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
	case "pause", "pause <cluster>", "resume", "resume <cluster>":
		w := c.Pause
		if strings.HasPrefix(command, "resume") {
			w = c.Resume
		}
		return pause(ctx, ctl, strings.HasPrefix(command, "pause"), w, c.JSON, began)
	case "cancel", "cancel <target>":
		members, restart, err := checkFlush(cfg.Scope, c.Cancel.Target)
		if err != nil {
			r := clusterctl.Result{Action: "cancel"}
			r.Failed(err)
			return finish(r, err, c.JSON)
		}
		if restart {
			return flushRestart(ctx, ctl, clusterctl.RestartFilter{Names: members, Role: c.Cancel.Role}, c.JSON)
		}
		r, err := ctl.Cancel(ctx)
		return finish(r, err, c.JSON)
	case "restart", "restart <name>":
		return restart(ctx, ctl, cfg.Scope, c.Restart, c.JSON, began)
	case "query", "query <cluster>":
		return query(ctx, ctl, &c.Query, c.JSON)
	case "remove <cluster>":
		if cl, s, err := ctl.Read(ctx); err == nil {
			fmt.Fprint(os.Stderr, clusterctl.RenderList(clusterctl.List(cfg.Scope, cl, s)))
		}
		r, err := ctl.Remove(ctx, c.Remove.Force, prompt)
		return finish(r, err, c.JSON)
	case "reinit <name>":
		return request(ctx, ctl, dcs.ActionReinit, cfg.Scope, c.Reinit, c.JSON, began)
	case "show-config", "show-config <cluster>":
		dc, err := ctl.ShowConfig(ctx)
		if err != nil {
			return err
		}
		if c.JSON {
			return writeJSON(out, map[string]any(dc))
		}
		_, err = io.WriteString(out, dc.YAML())
		return err
	case "edit-config", "edit-config <cluster>":
		return editConfig(ctx, ctl, &c.EditConfig, c.JSON)
	case "dsn", "dsn <member>":
		return dsn(ctx, ctl, cfg.Scope, &c.DSN, c.JSON)
	case "version", "version <cluster>":
		return version(ctx, ctl, c.JSON)
	case "failover", "failover <cluster>":
		f := &c.Failover
		return switchover(ctx, ctl, &SwitchoverCmd{To: f.Candidate, Failover: true, Force: false, DryRun: f.DryRun,
			Yes: f.Yes || f.Force, Timeout: f.Timeout, NoWait: f.NoWait}, true, c.JSON, began)
	case "reload", "reload <name>":
		return reload(ctx, ctl, cfg.Scope, c.Reload, c.JSON, began)
	default:
		return switchover(ctx, ctl, &c.Switchover, false, c.JSON, began)
	}
}

// switchover runs a switchover, or a failover with --failover; demote is
// patronictl's failover (see clusterctl.Request.Demote).
func switchover(ctx context.Context, ctl *clusterctl.Ctl, s *SwitchoverCmd, demote, asJSON bool, began time.Time) error {
	req := clusterctl.Request{Candidate: s.To, From: s.From, Failover: s.Failover, Force: s.Force, Demote: demote}
	o := clusterctl.SwitchoverOptions{DryRun: s.DryRun, NoWait: s.NoWait, Timeout: s.Timeout, Began: began}
	at, err := clusterctl.ParseSchedule(s.At, time.Now(), time.Local)
	if err != nil {
		r := clusterctl.Result{Action: "switchover", Candidate: s.To}
		r.Failed(err)
		return finish(r, err, asJSON)
	}
	req.At = at
	// patronictl's --force means "do not ask"; without --failover it
	// changes nothing else.
	if !s.Yes && !(s.Force && !s.Failover) && !asJSON && !s.DryRun && term.IsTerminal(int(os.Stdin.Fd())) {
		o.Confirm = confirm
	}
	r, err := ctl.Switchover(ctx, req, o)
	if s.DryRun && !asJSON && len(r.Members) > 0 {
		fmt.Fprint(os.Stdout, clusterctl.RenderPlan(r.Members))
	}
	return finish(r, err, asJSON)
}

// confirm asks on the terminal; anything but y or yes declines.
func confirm(p clusterctl.Plan) bool { return ask(p.Describe() + "?") }

// ask asks question on the terminal; anything but y or yes declines.
func ask(question string) bool {
	fmt.Fprintf(os.Stderr, "%s [y/N] ", question)
	line, _ := stdin.ReadString('\n')
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

func request(ctx context.Context, ctl *clusterctl.Ctl, action, scope string, m MemberCmd, asJSON bool, began time.Time) error {
	switch {
	case len(m.Names) == 2 && m.Names[0] == scope:
		m.Name = m.Names[1]
	case len(m.Names) == 1:
		m.Name = m.Names[0]
	default:
		err := clusterctl.UsageError("%s takes one member: pg-failover %s NAME (or patronictl's %s %s NAME)", action, action, action, scope)
		r := clusterctl.Result{Action: action}
		r.Failed(err)
		return finish(r, err, asJSON)
	}
	if m.Name == scope {
		// patronictl's "restart CLUSTER" restarts every member; this
		// restarts one, so say so rather than "no such member".
		if cl, _, err := ctl.Read(ctx); err == nil && cl.Member(scope) == nil {
			err := clusterctl.UsageError("%s %s: %s is the cluster; name the member: pg-failover %s NAME (one member at a time)", action, scope, scope, action)
			r := clusterctl.Result{Action: action}
			r.Failed(err)
			return finish(r, err, asJSON)
		}
	}
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
func reload(ctx context.Context, ctl *clusterctl.Ctl, scope string, m ReloadCmd, asJSON bool, began time.Time) error {
	args := m.Names
	if len(args) > 0 && args[0] == scope {
		args = args[1:] // patronictl's reload CLUSTER [MEMBER]
	}
	if len(args) > 1 {
		err := clusterctl.UsageError("reload takes at most one member: pg-failover reload [NAME] (or patronictl's reload %s [NAME])", scope)
		r := clusterctl.Result{Action: dcs.ActionReload}
		r.Failed(err)
		return finish(r, err, asJSON)
	}
	name := ""
	if len(args) == 1 {
		name = args[0]
	}
	names := []string{name}
	if name == "" {
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
		if err := request(ctx, ctl, dcs.ActionReload, scope, MemberCmd{Names: []string{name}, Timeout: m.Timeout, NoWait: m.NoWait}, asJSON, began); err != nil {
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

// clusterArg is the cluster name given to command, if any.
func clusterArg(command string, c *CLI) string {
	name, _, _ := strings.Cut(command, " ")
	switch name {
	case "list":
		return c.List.Cluster
	case "topology":
		return c.Topology.Cluster
	case "history":
		return c.History.Cluster
	case "pause":
		return c.Pause.Cluster
	case "resume":
		return c.Resume.Cluster
	case "show-config":
		return c.ShowConfig.Cluster
	case "edit-config":
		return c.EditConfig.Cluster
	case "version":
		return c.VersionCmd.Cluster
	case "query":
		return c.Query.Cluster
	case "remove":
		return c.Remove.Cluster
	case "failover":
		return c.Failover.Cluster
	case "switchover":
		return c.Switchover.Cluster
	}
	return ""
}

// checkCluster refuses a cluster name other than the configuration's scope:
// a patronictl user may have meant another cluster.
func checkCluster(scope, name string) error {
	if name == "" || name == scope {
		return nil
	}
	return clusterctl.ExitError(clusterctl.UsageError("cluster %s: the configuration is for cluster %s (scope); "+
		"give that cluster's YAML with --config, or leave the name out", name, scope))
}

// checkFlush reads patronictl flush's [CLUSTER] switchover, or [CLUSTER]
// [MEMBER...] restart: restart says which, members are the names before
// restart. No word means switchover.
func checkFlush(scope string, args []string) (members []string, restart bool, err error) {
	if len(args) > 0 && args[0] == scope {
		args = args[1:]
	}
	switch {
	case len(args) == 0:
		return nil, false, nil
	case args[len(args)-1] == "restart":
		return args[:len(args)-1], true, nil
	case len(args) == 1 && args[0] == "switchover":
		return nil, false, nil
	}
	return nil, false, clusterctl.UsageError("cancel %s: takes patronictl's [CLUSTER] switchover or [CLUSTER] [MEMBER...] restart (the cluster is %s)",
		strings.Join(args, " "), scope)
}

// readInput reads FILE, or stdin for "-".
func readInput(flag, name string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, clusterctl.UsageError("%s %s: %v", flag, name, err)
	}
	return b, nil
}

// EditResult is edit-config's --json output.
type EditResult struct {
	clusterctl.Result
	Diff   string         `json:"diff"`
	Config map[string]any `json:"config,omitempty"`
}

func editConfig(ctx context.Context, ctl *clusterctl.Ctl, e *EditConfigCmd, asJSON bool) error {
	r := EditResult{Result: clusterctl.Result{Action: "edit-config"}}
	failed := func(err error) error {
		r.Failed(err)
		return finishEdit(r, err, asJSON)
	}
	edit := clusterctl.Edit{Set: e.Set, PG: e.PG}
	var err error
	if edit.Apply, err = readInput("--apply", e.Apply); err != nil {
		return failed(err)
	}
	if edit.Replace, err = readInput("--replace", e.Replace); err != nil {
		return failed(err)
	}
	var ce clusterctl.ConfigEdit
	if edit.Empty() {
		// As patronictl: no change on the command line opens an editor on
		// the current configuration, when there is someone to use it.
		if asJSON || !term.IsTerminal(int(os.Stdin.Fd())) {
			return failed(clusterctl.UsageError("edit-config: nothing to change; give --set KEY=VALUE, --pg NAME=VALUE, --apply FILE or --replace FILE " +
				"(without them it opens $EDITOR, which needs a terminal)"))
		}
		// The edit is checked against the revision read before the editor
		// opened: a change made meanwhile by someone else is a conflict.
		before, rev, err := ctl.ReadConfig(ctx)
		if err != nil {
			return failed(err)
		}
		if edit.Replace, err = editInEditor(before.YAML()); err != nil {
			return failed(err)
		}
		ce, err = clusterctl.NewConfigEdit(before, rev, edit)
		if err != nil {
			return failed(err)
		}
	} else if ce, err = ctl.PlanConfigEdit(ctx, edit); err != nil {
		return failed(err)
	}
	r.Diff, r.Config = ce.Diff, ce.After
	if ce.Diff == "" {
		r.Result.Result, r.Message = "noop", "not changed: the configuration already says so"
		return finishEdit(r, nil, asJSON)
	}
	if !e.Quiet && !asJSON {
		fmt.Fprint(os.Stdout, ce.Diff)
	}
	if e.DryRun {
		r.Result.Result, r.Message = "dry_run", "dry run: nothing was changed"
		return finishEdit(r, nil, asJSON)
	}
	if !e.Force && !asJSON && term.IsTerminal(int(os.Stdin.Fd())) && !ask("Apply these changes?") {
		return failed(errors.New("aborted: nothing was changed"))
	}
	if err := ctl.WriteConfigEdit(ctx, ce); err != nil {
		return failed(err)
	}
	r.Result.Result, r.Message = "done", "configuration changed"
	return finishEdit(r, nil, asJSON)
}

func finishEdit(r EditResult, err error, asJSON bool) error {
	if !asJSON {
		return finish(r.Result, err, false)
	}
	if werr := writeJSON(os.Stdout, r); werr != nil && err == nil {
		err = werr
	}
	return clusterctl.ExitError(err)
}

func dsn(ctx context.Context, ctl *clusterctl.Ctl, scope string, d *DSNCmd, asJSON bool) error {
	cl, _, err := ctl.Read(ctx)
	if err != nil {
		return err
	}
	member := d.Member
	switch {
	case len(d.Names) > 2, len(d.Names) == 2 && d.Names[0] != scope:
		return clusterctl.ExitError(clusterctl.UsageError("dsn takes one member: pg-failover dsn [MEMBER] (the cluster is %s)", scope))
	case len(d.Names) == 2:
		member = d.Names[1]
	case len(d.Names) == 1 && (d.Names[0] != scope || cl.Member(scope) != nil):
		member = d.Names[0]
	}
	res, err := clusterctl.MemberDSN(cl, member)
	if err != nil {
		return clusterctl.ExitError(err)
	}
	if asJSON {
		return writeJSON(os.Stdout, res)
	}
	_, err = fmt.Fprintln(os.Stdout, res.DSN)
	return err
}

func version(ctx context.Context, ctl *clusterctl.Ctl, asJSON bool) error {
	cl, _, err := ctl.Read(ctx)
	if err != nil {
		return err
	}
	v := clusterctl.Versions(program.Name, cli.Version, cl)
	if asJSON {
		return writeJSON(os.Stdout, v)
	}
	_, err = io.WriteString(os.Stdout, v.String())
	return err
}

// stdin is read by every prompt: one buffer, so that answers piped in
// line by line each reach their own question.
var stdin = bufio.NewReader(os.Stdin)

// prompt asks question on stderr and returns the line typed (or piped)
// without its line end; end of input without an answer is an error.
func prompt(question string) (string, error) {
	fmt.Fprintf(os.Stderr, "%s: ", question)
	line, err := stdin.ReadString('\n')
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprintln(os.Stderr) // a piped answer is not echoed
	}
	if err != nil && line == "" {
		return "", errors.New("no answer: end of input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// restart restarts the members rc names or selects, now or at --at.
func restart(ctx context.Context, ctl *clusterctl.Ctl, scope string, rc RestartCmd, asJSON bool, began time.Time) error {
	r := clusterctl.Result{Action: dcs.ActionRestart}
	failed := func(err error) error {
		r.Failed(err)
		return finish(r, err, asJSON)
	}
	at, err := clusterctl.ParseSchedule(rc.At, time.Now(), time.Local)
	if err != nil {
		return failed(err)
	}
	if at == nil && rc.Role == "" && !rc.Pending && len(rc.Names) > 0 {
		// One named member, now: the request key, as always.
		return request(ctx, ctl, dcs.ActionRestart, scope, MemberCmd{Names: rc.Names, Timeout: rc.Timeout, NoWait: rc.NoWait}, asJSON, began)
	}
	cl, err := ctl.DCS.Get(ctx)
	if err != nil {
		return failed(err)
	}
	names := rc.Names
	if len(names) > 0 && names[0] == scope && cl.Member(scope) == nil {
		names = names[1:] // patronictl's restart CLUSTER [MEMBER...]
	}
	f := clusterctl.RestartFilter{Names: names, Role: rc.Role, Pending: rc.Pending}
	if len(names) == 0 && rc.Role == "" && !rc.Pending {
		return failed(clusterctl.UsageError("restart needs a member name, e.g. pg-failover restart node2 " +
			"(or --role leader|replica|any, --pending to restart every member they select)"))
	}
	ms, err := clusterctl.SelectMembers(cl, f)
	if err != nil {
		return failed(err)
	}
	if len(ms) == 0 {
		r.Result, r.Message = "noop", "no member matches"+describeFilter(f)+"; nothing to restart"
		return finish(r, nil, asJSON)
	}
	list := memberList(ms)
	if at != nil {
		r.ScheduledAt = at
		if _, err := ctl.ScheduleRestart(ctx, ms, *at, f); err != nil {
			return failed(err)
		}
		r.Result, r.Message = "scheduled", fmt.Sprintf("restart of %s scheduled at %s", list, at.Format(time.RFC3339))
		return finish(r, nil, asJSON)
	}
	timeout := rc.Timeout
	if rc.NoWait {
		timeout = 0
	}
	if _, err := ctl.RestartMembers(ctx, ms, timeout); err != nil {
		return failed(err)
	}
	r.Result, r.Seconds = "done", time.Since(began).Seconds()
	r.Message = fmt.Sprintf("restart of %s done in %.2fs", list, r.Seconds)
	if rc.NoWait {
		r.Result, r.Message = "requested", "restart of "+list+" requested"
	}
	return finish(r, nil, asJSON)
}

// flushRestart cancels the scheduled restarts of the members f selects.
func flushRestart(ctx context.Context, ctl *clusterctl.Ctl, f clusterctl.RestartFilter, asJSON bool) error {
	r := clusterctl.Result{Action: "cancel"}
	failed := func(err error) error {
		r.Failed(err)
		return finish(r, err, asJSON)
	}
	cl, err := ctl.DCS.Get(ctx)
	if err != nil {
		return failed(err)
	}
	ms, err := clusterctl.SelectMembers(cl, f)
	if err != nil {
		return failed(err)
	}
	deleted, err := ctl.FlushRestart(ctx, ms)
	if err != nil {
		return failed(err)
	}
	if len(deleted) == 0 {
		r.Result, r.Message = "noop", "no restart is scheduled"+describeFilter(f)+"; nothing to cancel"
		return finish(r, nil, asJSON)
	}
	r.Result, r.Message = "cancelled", "cancelled the scheduled restart of "+strings.Join(deleted, ", ")
	return finish(r, nil, asJSON)
}

func memberList(ms []*dcs.Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Name
	}
	return strings.Join(s, ", ")
}

// describeFilter says what f selects, for a message: "" for everyone.
func describeFilter(f clusterctl.RestartFilter) string {
	var parts []string
	if len(f.Names) > 0 {
		parts = append(parts, strings.Join(f.Names, ", "))
	}
	if f.Role != "" && f.Role != "any" {
		parts = append(parts, "role "+f.Role)
	}
	if f.Pending {
		parts = append(parts, "with a pending restart")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// query runs patronictl query's SQL and prints the rows.
func query(ctx context.Context, ctl *clusterctl.Ctl, q *QueryCmd, asJSON bool) error {
	failed := func(err error) error {
		r := clusterctl.Result{Action: "query"}
		r.Failed(err)
		return finish(r, err, asJSON)
	}
	sql := q.Command
	switch {
	case q.File != "" && sql != "":
		return failed(clusterctl.UsageError("--file and --command are mutually exclusive options"))
	case q.File != "":
		b, err := readInput("--file", q.File)
		if err != nil {
			return failed(err)
		}
		sql = string(b)
	case sql == "":
		return failed(clusterctl.UsageError("query needs SQL: --command 'SELECT 1' (patronictl's -c) or --file FILE"))
	}
	o := clusterctl.QueryOptions{Member: q.Member, Role: q.Role, SQL: sql, User: q.Username, Database: q.DBName, Timeout: q.Timeout}
	if q.Password {
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return failed(clusterctl.UsageError("--password asks on a terminal; stdin is not one"))
		}
		fmt.Fprint(os.Stderr, "Password: ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return err
		}
		o.Password = string(b)
	}
	res, err := ctl.Query(ctx, o)
	if err != nil {
		return failed(err)
	}
	format := q.Format
	if asJSON {
		format = "json"
	}
	delim := q.Delimiter
	if delim == `\t` {
		delim = "\t"
	}
	out, err := clusterctl.RenderQuery(res, format, delim)
	if err != nil {
		return clusterctl.ExitError(err)
	}
	_, err = io.WriteString(os.Stdout, out)
	return err
}
