// Package postmaster runs PostgreSQL's postmaster as a child process and
// makes it the role pg-lockd asks for: it is pg-supervise's engine.
//
// Three parts: Proc (one running postmaster, in its own process group,
// killed by the kernel if this process dies), Fencer (kills the primary's
// whole process group when the validity it was last given runs out, on its
// own goroutine, whatever the rest of the program is doing), and Supervisor
// (the loop that applies lib/decide's actions).
package postmaster
