// Package decide holds pg-ha's decisions as pure functions over observed
// state: what pg-supervise does with PostgreSQL given the desired role, and
// whether pg-lockd may race for the leader key. Nothing here touches the
// network, the disk or a clock it was not handed; everything is
// table-tested.
package decide
