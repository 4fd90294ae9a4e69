// Command pg-supervise runs the postmaster as its child and makes it the
// role pg-lockd asks for, fencing a primary whose validity ran out.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
)

var program = cli.Program{
	Name: "pg-supervise",
	Description: "Run PostgreSQL's postmaster as a child process and make it the role read from stdin (or --input), " +
		"one desired state per line from pg-lockd: promote on lead, stream from the named leader on follow " +
		"(pg_rewind first when the timelines diverged), restart it after a crash. When the validity of the last " +
		"lead line runs out, whatever pg-lockd is doing, the primary is fenced: every server process of the data " +
		"directory (the postmaster and each backend, whatever its process group) is killed at once. The state (starting, running, promoting, demoting, fenced, rewinding, …) is published atomically " +
		"in supervise.json in the runtime directory. SIGTERM stops PostgreSQL (fast shutdown) and exits.",
}

// CLI is pg-supervise's command line.
type CLI struct {
	cli.Common
	cli.Runtime
	Input           string        `placeholder:"PATH" help:"Read role lines from this FIFO (kept open, so pg-lockd may restart) instead of stdin."`
	CallbackTimeout time.Duration `default:"60s" help:"Kill a callback (postgresql.callbacks) or before_stop still running after this long."`
}

// Validate checks the flags.
func (c *CLI) Validate() error {
	if c.CallbackTimeout <= 0 {
		return fmt.Errorf("--callback-timeout=%s: must be positive, like 60s", c.CallbackTimeout)
	}
	return nil
}

func main() {
	var c CLI
	cli.Parse(&c, program, os.Args[1:])
	os.Exit(cli.Main(program.Name, os.Stderr, func(ctx context.Context) error {
		log, cfg, err := c.Setup(program.Name, config.NeedAll)
		if err != nil || cfg == nil {
			return err
		}
		return run(ctx, log, cfg, &c)
	}))
}
