// Package postmaster runs PostgreSQL's postmaster as a child process and
// makes it the role pg-lockd asks for: it is pg-supervise's engine.
//
// Four parts: Proc (one running postmaster, killed by the kernel if this
// process dies), the server processes of a data directory (ServerProcesses
// and KillServer in procs.go: the postmaster and every child, found by
// executable and working directory, because PostgreSQL puts its children in
// process groups of their own and a backend outlives its postmaster long
// enough to commit the statement it runs — the one place that kills a
// server, used by the fence, the crash restart and the start-up sweep),
// Fencer (kills every server process of the primary when the validity it
// was last given runs out, on its own goroutine, whatever the rest of the
// program is doing), and Supervisor (the loop that applies lib/decide's
// actions).
package postmaster
