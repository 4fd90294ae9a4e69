# pg-ha — high availability for PostgreSQL as small Unix tools.

GO      ?= go
PREFIX  ?= /usr
DESTDIR ?=
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/pg-ha/pg-ha/lib/cli.Version=$(VERSION)
# grpcnotrace: gRPC (under the etcd client) without golang.org/x/net/trace,
# whose HTML templates keep the linker from dropping unused methods.
TAGS    := grpcnotrace
BINS    := pg-lockd pg-supervise pg-healthd pg-bootstrap pg-failover

.PHONY: all build test unit e2e bench bench-partition bench-haproxy bench-etcd bench-fleet bench-rebuild bench-health demo demo-stop vet fmt clean install

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

# Every test: unit tests, integration tests against real etcd, PostgreSQL 15
# and HAProxy, and the end-to-end fault tests of the real binaries. Nothing
# may skip. Packages run one at a time so timing assertions are not starved;
# in e2e/ the four ten-failover tests (three synchronous modes, logical
# slots) and the archive-only replica's 40 s watch, which mostly wait, run
# together after all the others. systemd/boot, in the first command, boots
# the units under a real systemd in a container (about 45 s; 1.5 min when
# its Debian tree must be built first).
test: vet
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -parallel 5 -timeout 40m ./e2e/

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /e2e -e /systemd)

e2e:
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -parallel 5 -timeout 30m -v ./e2e/

# Benchmarks: failover and switchover gaps and the daemons' memory, each on
# fresh clusters (about 10 minutes). bench-health needs `make demo` running.
bench:
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -run '^$$' -bench 'NodeDeath|PostmasterCrash|Switchover|LockdHang|RSS' -benchtime 3x -timeout 60m ./e2e/

# Acknowledged writes lost when the primary is cut off from etcd and from its
# replicas while clients still reach it, for pg-ha and for Debian's Patroni
# on the same machine (about 5 minutes).
bench-partition:
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -run '^$$' -bench 'IsolatedPrimaryLoss' -benchtime 5x -timeout 60m ./e2e/

# The application's longest write gap at a switchover through HAProxy
# (examples/haproxy.cfg) and through a multi-host connection string, measured
# at once on the same fresh clusters (about 3 minutes).
bench-haproxy:
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -run '^$$' -bench 'HAProxyWriteGap' -benchtime 5x -timeout 30m ./e2e/

# etcd's own count of the requests, writes and CPU time of one quiet
# three-node cluster (no application writes): pg-ha with pg-healthd at its
# defaults and at ttl 30 / loop_wait 10, Debian's Patroni at a one-second
# loop and at its defaults, and etcd alone (about 7 minutes; set
# PGHA_BENCH_WINDOW=20s for a shorter window than 60s).
bench-etcd:
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -run '^$$' -bench 'EtcdLoad' -benchtime 1x -timeout 30m -v ./e2e/

# What a fleet costs one etcd: 10, 100 and 300 simulated clusters (three real
# pg-lockd each, PostgreSQL replaced by a stand-in that answers their status
# queries) against a single etcd member; etcd requests/s, writes/s and CPU,
# the pg-lockd processes' memory, and the leader-key takeover time after a
# primary host dies (about 6 minutes). Each pg-lockd takes about 0.5 % of a
# core and 7 MB (PSS): 300 clusters need about 6 cores besides etcd's and 7 GB;
# on a smaller machine the run says how far the start got and gives up.
bench-fleet:
	$(GO) run ./bench/fleet -n 10,100,300 -window 60s

# pg-bootstrap --rebuild of a replica of a ~2 GB database (pgbench scale
# 130; PGHA_BENCH_SCALE changes it) against a plain pg_basebackup of the same
# primary, alternating, three times each (about 10 minutes).
bench-rebuild:
	PGHA_TEST_DISALLOW_SKIP=1 $(GO) test -count=1 -p 1 -run '^$$' -bench 'Rebuild' -benchtime 3x -timeout 60m -v ./e2e/

bench-health:
	wrk -t2 -c16 -d10s --latency http://127.0.0.1:8011/primary

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

# A local three-node cluster with etcd and HAProxy on loopback.
demo: build
	demo/demo.sh start

demo-stop:
	demo/demo.sh stop

clean:
	rm -rf bin .demo

-include systemd/install.mk
