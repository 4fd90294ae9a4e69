// Command pg-lockd holds this node's etcd lease and, when elected, the
// leader key, and writes the node's desired role to pg-supervise.
package main

import (
	"context"
	"os"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
)

var program = cli.Program{
	Name: "pg-lockd",
	Description: "Hold this node's etcd lease and, when elected, the cluster's leader key; publish this member's " +
		"status under /<namespace>/<scope>/members/<name>; decide the node's role and write it, one desired state " +
		"per line, to stdout (or --output) for pg-supervise. Every lead line carries an absolute deadline on " +
		"CLOCK_BOOTTIME: the lease validity minus a fence margin. On SIGTERM a leader first has PostgreSQL stop " +
		"taking writes, then releases the key, so a planned stop fails over in about a second.",
}

// CLI is pg-lockd's command line.
type CLI struct {
	cli.Common
	cli.Runtime
	Output string `placeholder:"PATH" help:"Write role lines to this FIFO (opened without ever blocking) instead of stdout."`
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
