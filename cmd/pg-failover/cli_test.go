package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/pg-ha/pg-ha/lib/cli"
)

// parse parses args as pg-failover does, without exiting.
func parse(t *testing.T, args ...string) (*CLI, string, error) {
	t.Helper()
	var c CLI
	var out bytes.Buffer
	p := cli.NewParser(&c, program, kong.Writers(&out, &out), kong.Exit(func(int) { panic("exit") }))
	ctx, err := cli.ParseArgs(p, patronictlArgs(args))
	if err != nil {
		return &c, "", err
	}
	return &c, ctx.Command(), nil
}

// A Patroni operator's patronictl habits parse to the same request as
// pg-failover's own flags.
func TestPatronictlAliases(t *testing.T) {
	type check func(*CLI) bool
	for _, tc := range []struct {
		args    string
		command string
		ok      check
	}{
		{"--to node2", "switchover", func(c *CLI) bool { return c.Switchover.To == "node2" }},
		{"switchover --candidate node2 --leader node1 --scheduled now --force", "switchover", func(c *CLI) bool {
			s := c.Switchover
			return s.To == "node2" && s.From == "node1" && s.At == "now" && s.Force && !s.Failover
		}},
		{"switchover demo --primary node1 --candidate node3", "switchover <cluster>", func(c *CLI) bool {
			s := c.Switchover
			return s.Cluster == "demo" && s.From == "node1" && s.To == "node3"
		}},
		{"failover --candidate node2 --force", "failover", func(c *CLI) bool {
			return c.Failover.Candidate == "node2" && c.Failover.Force
		}},
		{"failover demo --to node2", "failover <cluster>", func(c *CLI) bool {
			return c.Failover.Cluster == "demo" && c.Failover.Candidate == "node2"
		}},
		{"flush demo switchover", "cancel <target>", func(c *CLI) bool {
			return strings.Join(c.Cancel.Target, " ") == "demo switchover"
		}},
		{"list demo", "list <cluster>", func(c *CLI) bool { return c.List.Cluster == "demo" }},
		{"topology", "topology", func(c *CLI) bool { return true }},
		{"pause demo --wait", "pause <cluster>", func(c *CLI) bool { return c.Pause.Cluster == "demo" && c.Pause.Wait }},
		{"restart demo node2 --force", "restart <name>", func(c *CLI) bool {
			return strings.Join(c.Restart.Names, " ") == "demo node2"
		}},
		{"reinit node3", "reinit <name>", func(c *CLI) bool { return strings.Join(c.Reinit.Names, " ") == "node3" }},
		{"edit-config demo -s loop_wait=5 --set ttl=null -p work_mem=8MB --apply f.yml --force -q", "edit-config <cluster>", func(c *CLI) bool {
			e := c.EditConfig
			return e.Cluster == "demo" && strings.Join(e.Set, " ") == "loop_wait=5 ttl=null" &&
				strings.Join(e.PG, " ") == "work_mem=8MB" && e.Apply == "f.yml" && e.Force && e.Quiet
		}},
		// A value with a comma stays one value (kong splits slices on commas by default).
		{"edit-config --set postgresql.parameters.shared_preload_libraries=a,b --pg search_path=x,y", "edit-config", func(c *CLI) bool {
			e := c.EditConfig
			return len(e.Set) == 1 && e.Set[0] == "postgresql.parameters.shared_preload_libraries=a,b" &&
				len(e.PG) == 1 && e.PG[0] == "search_path=x,y"
		}},
		{"show-config demo", "show-config <cluster>", func(c *CLI) bool { return c.ShowConfig.Cluster == "demo" }},
		{"dsn node2", "dsn <member>", func(c *CLI) bool { return strings.Join(c.DSN.Names, " ") == "node2" }},
		{"dsn --member node2", "dsn", func(c *CLI) bool { return c.DSN.Member == "node2" }},
		{"version", "version", func(c *CLI) bool { return true }},
		{"restart demo --role replica --pending --scheduled 2026-12-01T03:00 --force", "restart <name>", func(c *CLI) bool {
			r := c.Restart
			return strings.Join(r.Names, " ") == "demo" && r.Role == "replica" && r.Pending && r.At == "2026-12-01T03:00" && r.Force
		}},
		{"restart -r leader", "restart", func(c *CLI) bool { return c.Restart.Role == "leader" }},
		{"flush demo node2 restart --role replica --force", "cancel <target>", func(c *CLI) bool {
			return strings.Join(c.Cancel.Target, " ") == "demo node2 restart" && c.Cancel.Role == "replica"
		}},
		// patronictl query: -c after the command is the SQL, before it the YAML.
		{"-c n.yml query demo -c SELECT -m node2 --format json -U app -d db", "query <cluster>", func(c *CLI) bool {
			q := c.Query
			return c.Config == "n.yml" && q.Cluster == "demo" && q.Command == "SELECT" && q.Member == "node2" &&
				q.Format == "json" && q.Username == "app" && q.DBName == "db"
		}},
		{"query -r replica -f q.sql --delimiter ,", "query", func(c *CLI) bool {
			return c.Query.Role == "replica" && c.Query.File == "q.sql" && c.Query.Delimiter == ","
		}},
		{"remove demo", "remove <cluster>", func(c *CLI) bool { return c.Remove.Cluster == "demo" && !c.Remove.Force }},
		{"remove demo --force", "remove <cluster>", func(c *CLI) bool { return c.Remove.Force }},
	} {
		c, cmd, err := parse(t, strings.Fields(tc.args)...)
		if err != nil {
			t.Errorf("%s: %v", tc.args, err)
			continue
		}
		if cmd != tc.command || !tc.ok(c) {
			t.Errorf("%s: command %q, parsed %+v", tc.args, cmd, c)
		}
	}
}

// Each usage mistake of the first hour gets one line that says what to do.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"lsit", "unknown command lsit; did you mean list?"},
		{"--config n.yml lsit", "unknown command lsit; did you mean list?"},
		{"swtichover --to node2", "unknown command swtichover; did you mean switchover?"},
		{"hist", "unknown command hist; did you mean history?"},
		{"show-conf", "unknown command show-conf; did you mean show-config?"},
		{"--to", "--to needs a member name, e.g. --to node2"},
		{"switchover --candidate", "--to needs a member name, e.g. --to node2"},
		{"--to --dry-run", "--to needs a member name, e.g. --to node2 (it was followed by --dry-run)"},
		{"failover --candidate", "--candidate needs a member name, e.g. --candidate node2"},
		{"edit-config --set", "--set needs a key=value pair, e.g. --set loop_wait=5"},
		{"restart --role", "--role needs a role, e.g. --role replica"},
		{"restart --at", "--at needs a time, e.g. --at 2026-01-02T03:04:05Z"},
		{"query -m", "--member needs a member name, e.g. --member node2"},
		{"query --format xml -c x", "--format must be one of \"tsv\",\"pretty\",\"json\",\"yaml\",\"yml\" but got \"xml\""},
		{"remove", "remove needs the cluster's name, e.g. pg-failover remove demo"},
		{"qeury", "unknown command qeury; did you mean query?"},
		{"--timeout", "--timeout needs a value, e.g. --timeout 60s"},
	} {
		_, _, err := parse(t, strings.Fields(tc.args)...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.args, err, tc.want)
		}
	}
	// A word near no command lists them all.
	_, _, err := parse(t, "node2")
	if err == nil || !strings.HasPrefix(err.Error(), "unknown command node2 (commands: switchover, failover, list,") {
		t.Errorf("node2: %v", err)
	}
}

// The README's first example uses --to: the top-level --help must show it.
func TestTopLevelHelpShowsSwitchoverFlags(t *testing.T) {
	var c CLI
	var out bytes.Buffer
	p := cli.NewParser(&c, program, kong.Writers(&out, &out), kong.Exit(func(int) { panic("exit") }))
	func() {
		defer func() { _ = recover() }()
		_, _ = cli.ParseArgs(p, []string{"--help"})
	}()
	h := out.String()
	for _, want := range []string{"--to=NAME", "Also --candidate", "--from=NAME", "--at=TIME", "--dry-run", "show-config", "edit-config", "topology", "EXIT STATUS"} {
		if !strings.Contains(h, want) {
			t.Errorf("top-level --help lacks %q", want)
		}
	}
}

// patronictl flush's arguments: [CLUSTER] switchover, [CLUSTER] [MEMBER...]
// restart, anything else refused.
func TestCheckFlush(t *testing.T) {
	for _, tc := range []struct {
		args    string
		members string
		restart bool
		bad     bool
	}{
		{"", "", false, false},
		{"switchover", "", false, false},
		{"demo switchover", "", false, false},
		{"restart", "", true, false},
		{"demo restart", "", true, false},
		{"demo node2 node3 restart", "node2 node3", true, false},
		{"node2 restart", "node2", true, false},
		{"demo node2 switchover", "", false, true},
		{"other", "", false, true},
	} {
		m, r, err := checkFlush("demo", strings.Fields(tc.args))
		if (err != nil) != tc.bad || strings.Join(m, " ") != tc.members || r != tc.restart {
			t.Errorf("flush %s: members %q restart %v err %v", tc.args, m, r, err)
		}
	}
}
