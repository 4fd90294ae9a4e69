package testcluster

import (
	"os"
	"strconv"
	"strings"
)

// ServerTitle returns the process title ("postgres: checkpointer", …) of
// server process pid, "" if it is gone.
func ServerTitle(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// ServerProcess returns the pid of a live server process of the node's data
// directory whose title contains part ("checkpointer", "walwriter",
// "walsender", "autovacuum launcher", "idle in transaction"), 0 if there is
// none. The postmaster itself is never returned.
func (n *Node) ServerProcess(part string) int {
	pm := n.PID(Postmaster)
	for _, pid := range n.ServerPIDs() {
		if pid != pm && strings.Contains(ServerTitle(pid), part) {
			return pid
		}
	}
	return 0
}
