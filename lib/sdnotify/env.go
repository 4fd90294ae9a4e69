package sdnotify

import "strings"

// inherited lists the variables systemd sets for the main process only.
var inherited = []string{
	"NOTIFY_SOCKET",
	"WATCHDOG_USEC",
	"WATCHDOG_PID",
	"LISTEN_FDS",
	"LISTEN_PID",
	"LISTEN_FDNAMES",
}

// CleanEnv returns a copy of env ("KEY=value" entries, as os.Environ
// returns) without NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, LISTEN_FDS,
// LISTEN_PID and LISTEN_FDNAMES, for the environment of a child process.
// env itself is not modified.
func CleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		if !isInherited(key) {
			out = append(out, kv)
		}
	}
	return out
}

func isInherited(key string) bool {
	for _, k := range inherited {
		if key == k {
			return true
		}
	}
	return false
}
