// Command pg-failover is the operator's tool: switchover, failover, list,
// history, pause and resume, for scripts and for people.
package main

import (
	"os"

	"github.com/pg-ha/pg-ha/lib/cli"
)

var program = cli.Program{
	Name: "pg-failover",
	Description: "Control a pg-ha cluster through etcd. Without a command, perform a planned switchover: " +
		"pg-failover --config node1.yml --to node2 waits until node2 is the primary and accepts writes, then exits 0.",
}

// CLI is pg-failover's command line.
type CLI struct {
	cli.Common
}

func main() {
	var c CLI
	cli.Parse(&c, program, os.Args[1:])
	os.Exit(cli.ExitFailure)
}
