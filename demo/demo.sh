#!/usr/bin/env bash
# A local pg-ha cluster on loopback: etcd, three nodes run exactly as a node
# runs without systemd (pg-bootstrap && pg-lockd | pg-supervise, plus
# pg-healthd), and HAProxy routing :5000 to the primary, :5001 to replicas.
#
#   demo/demo.sh start          build first with `make build` (make demo does both)
#   demo/demo.sh stop           stop everything and delete .demo: data, logs, etcd
#   demo/demo.sh stop-node N    stop node N's daemons (SIGTERM), keeping its data
#   demo/demo.sh start-node N   start node N again on its data
set -euo pipefail
trap 'echo "demo: a step failed (line $LINENO); logs are in .demo/node*/*.log" >&2' ERR
cd "$(dirname "$0")/.."
top=$(pwd)
dir=$top/.demo
# The node processes run as postgres, which must reach the demo directory
# (and the programs copied into it). A clone under /root, for one, is not
# reachable: then the demo lives in /tmp.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$top"; then
	dir=/tmp/pg-ha-demo
fi
bin=$dir/bin
scope=demo
password=demo-superuser
etcd_port=23790

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_missing() {
	local pkgs=()
	command -v etcd >/dev/null || pkgs+=(etcd-server)
	command -v haproxy >/dev/null || pkgs+=(haproxy)
	command -v psql >/dev/null || pkgs+=(postgresql-client)
	[ -x /usr/lib/postgresql/15/bin/postgres ] || pkgs+=(postgresql-15)
	[ ${#pkgs[@]} -eq 0 ] && return
	echo "installing ${pkgs[*]}"
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null ||
		{ $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null; }
}

node_config() {
	local i=$1
	cat <<YAML
scope: $scope
name: node$i
restapi:
  listen: 127.0.0.1:801$i
  connect_address: 127.0.0.1:801$i
etcd3:
  hosts: 127.0.0.1:$etcd_port
bootstrap:
  dcs:
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
  initdb:
  - encoding: UTF8
  - data-checksums
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:544$i
  connect_address: 127.0.0.1:544$i
  data_dir: $dir/node$i/data
  pgpass: $dir/node$i/pgpass
  authentication:
    superuser: {username: postgres, password: $password}
    replication: {username: replicator, password: demo-replicator}
    rewind: {username: rewind_user, password: demo-rewind}
  parameters:
    unix_socket_directories: $dir/node$i
YAML
}

# The checks' timings are examples/haproxy.cfg's, which explains them.
haproxy_config() {
	cat <<CFG
global
    maxconn 200
defaults
    mode tcp
    timeout client 30m
    timeout server 30m
    timeout connect 2s
    timeout check 1s
listen stats
    mode http
    bind 127.0.0.1:7000
    stats enable
    stats uri /
listen primary
    bind 127.0.0.1:5000
    retries 0
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 200ms fastinter 100ms downinter 100ms rise 1 fall 1 on-marked-down shutdown-sessions
    server node1 127.0.0.1:5441 maxconn 100 check port 8011
    server node2 127.0.0.1:5442 maxconn 100 check port 8012
    server node3 127.0.0.1:5443 maxconn 100 check port 8013
listen replicas
    bind 127.0.0.1:5001
    balance roundrobin
    option httpchk OPTIONS /replica
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
    server node1 127.0.0.1:5441 maxconn 100 check port 8011
    server node2 127.0.0.1:5442 maxconn 100 check port 8012
    server node3 127.0.0.1:5443 maxconn 100 check port 8013
CFG
}

start_node() {
	local i=$1
	local d=$dir/node$i
	as_pg sh -c "exec '$bin/pg-bootstrap' --config '$d/node.yml' --runtime-dir '$d/run' >>'$d/bootstrap.log' 2>&1"
	as_pg sh -c "'$bin/pg-lockd' --config '$d/node.yml' --runtime-dir '$d/run' 2>>'$d/lockd.log' |
		'$bin/pg-supervise' --config '$d/node.yml' --runtime-dir '$d/run' 2>>'$d/supervise.log'" </dev/null &
	as_pg sh -c "exec '$bin/pg-healthd' --config '$d/node.yml' --runtime-dir '$d/run' 2>>'$d/healthd.log'" </dev/null &
}

start() {
	install_missing
	[ -x "$top/bin/pg-lockd" ] || { echo "build first: make build"; exit 1; }
	if [ -e "$dir/etcd.pid" ]; then echo "a demo runs already (demo/demo.sh stop)"; exit 1; fi
	mkdir -p "$dir/bin"
	cp "$top"/bin/pg-* "$dir/bin/"
	for i in 1 2 3; do mkdir -p "$dir/node$i/run"; node_config "$i" >"$dir/node$i/node.yml"; done
	haproxy_config >"$dir/haproxy.cfg"
	[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir" && chmod 755 "$dir"
	etcd --name demo --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
		--initial-cluster demo=http://127.0.0.1:23800 >"$dir/etcd.log" 2>&1 &
	echo $! >"$dir/etcd.pid"
	for _ in $(seq 50); do etcdctl_ok && break; sleep 0.1; done
	start_node 1
	wait_primary
	start_node 2
	start_node 3
	haproxy -f "$dir/haproxy.cfg" -D -p "$dir/haproxy.pid"
	sleep 2
	cat <<MSG

pg-ha demo is running: etcd on 127.0.0.1:$etcd_port, three nodes on ports 5441-5443,
health APIs on 8011-8013, HAProxy on 127.0.0.1:5000 (primary) and :5001 (replicas).

  connect to the primary:   psql "host=127.0.0.1 port=5000 user=postgres password=$password"
  a replica:                psql "host=127.0.0.1 port=5001 user=postgres password=$password"
  the cluster:              bin/pg-failover --config $dir/node1/node.yml list
  a switchover:             bin/pg-failover --config $dir/node1/node.yml --to node2
  health:                   curl -s http://127.0.0.1:8011/patroni
  logs:                     $dir/node*/*.log
  stop node2, start it:     demo/demo.sh stop-node 2; demo/demo.sh start-node 2
  stop everything:          make demo-stop (deletes the demo's data and logs)
MSG
}

etcdctl_ok() {
	(exec 3<>/dev/tcp/127.0.0.1/$etcd_port) 2>/dev/null
}

wait_primary() {
	for _ in $(seq 100); do
		if grep -q '"role":"primary"' "$dir/node1/run/supervise.json" 2>/dev/null &&
			grep -q '"state":"running"' "$dir/node1/run/supervise.json"; then return; fi
		sleep 0.2
	done
	echo "node1 did not become primary; see $dir/node1/*.log"
	exit 1
}

stop() {
	[ -d "$dir" ] || { echo "no demo running"; return; }
	[ -e "$dir/haproxy.pid" ] && kill "$(cat "$dir/haproxy.pid")" 2>/dev/null || true
	pkill -TERM -f "$bin/pg-(lockd|supervise|healthd) --config $dir/" 2>/dev/null || true
	for _ in $(seq 100); do pgrep -f "$bin/pg-(lockd|supervise|healthd) --config $dir/" >/dev/null || break; sleep 0.1; done
	pkill -KILL -f "$bin/pg-(lockd|supervise|healthd) --config $dir/" 2>/dev/null || true
	[ -e "$dir/etcd.pid" ] && kill -9 "$(cat "$dir/etcd.pid")" 2>/dev/null || true
	rm -rf "$dir"
	echo "demo stopped"
}

# node_pattern matches the daemons of node $1 (by their --config argument).
node_pattern() { echo "$bin/pg-(lockd|supervise|healthd) --config $dir/node$1/"; }

stop_node() {
	local i=${1:?usage: $0 stop-node 1|2|3}
	[ -f "$dir/node$i/node.yml" ] || { echo "no demo node $i"; exit 1; }
	pkill -TERM -f "$(node_pattern "$i")" 2>/dev/null || { echo "node$i is not running"; return; }
	for _ in $(seq 100); do pgrep -f "$(node_pattern "$i")" >/dev/null || break; sleep 0.1; done
	echo "node$i stopped (its data is kept: demo/demo.sh start-node $i)"
}

start_one() {
	local i=${1:?usage: $0 start-node 1|2|3}
	[ -f "$dir/node$i/node.yml" ] || { echo "no demo node $i"; exit 1; }
	if pgrep -f "$(node_pattern "$i")" >/dev/null; then echo "node$i runs already"; exit 1; fi
	start_node "$i"
	echo "node$i started; logs in $dir/node$i/*.log"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
stop-node) stop_node "${2:-}" ;;
start-node) start_one "${2:-}" ;;
*) echo "usage: $0 start|stop|stop-node N|start-node N"; exit 2 ;;
esac
