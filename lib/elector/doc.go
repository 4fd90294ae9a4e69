// Package elector is pg-lockd's engine: it keeps this node's etcd lease on
// its own validity clock, publishes the member key, races for the leader key
// when it is free and this node is the best candidate (lib/decide), performs
// switchovers and planned stops, and writes the node's desired role, one
// complete line per loop, for pg-supervise (lib/rolepipe).
//
// A lead line always carries the lease validity minus config.FenceMargin as
// an absolute CLOCK_BOOTTIME deadline. The leader key is given up only after
// evidence that the local PostgreSQL no longer accepts writes.
package elector
