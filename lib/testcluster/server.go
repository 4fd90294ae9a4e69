package testcluster

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"github.com/pg-ha/pg-ha/lib/postmaster"
)

// ServerPIDs returns the pids of every live server process of the node's
// data directory (the postmaster and all its children, found as pg-supervise
// finds them), nil if there is none or the process table cannot be read.
func (n *Node) ServerPIDs() []int {
	pids, _ := postmaster.ServerProcesses(n.DataDir, 0)
	return pids
}

// Alive returns those of pids that are still alive and not zombies.
func Alive(pids []int) []int {
	var out []int
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func isZombie(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || i+2 >= len(data) || data[i+2] == 'Z'
}
