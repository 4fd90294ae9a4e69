package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// cluster is one simulated pg-ha cluster: three nodes under one scope.
type cluster struct {
	scope string
	sysid uint64
	nodes []*node
	mu    sync.Mutex // guards every node's simulated server state
}

// node is one simulated host: a real pg-lockd, the stand-in for its
// PostgreSQL, and the driver playing pg-supervise (it reads the role lines
// and makes the stand-in primary or standby as they say, and writes
// supervise.json).
type node struct {
	c       *cluster
	name    string
	dir     string // runtime directory, unix socket directory and YAML
	port    int    // postgresql.listen port (the socket's name; nothing listens on TCP)
	cmd     *exec.Cmd
	standin *standin
	started time.Time

	// Simulated server state, guarded by c.mu.
	primary   bool
	stopped   bool
	dead      bool
	timeline  int
	basePos   int64     // position when the state last changed
	baseAt    time.Time // and when
	leader    string    // followed, from the last follow line
	until     clock.Time
	token     int64
	promoteAt time.Time // a lead line asked for a promotion, carried out then
	desired   rolepipe.Verb
}

// nodeState is what the stand-in answers from.
type nodeState struct {
	primary   bool
	timeline  int
	position  int64
	sysid     uint64
	started   time.Time
	streaming bool
	sender    string
	receivers int      // standbys receiving from this primary
	replicas  []string // their names
}

// positionLocked is the node's WAL position at now: a primary writes at
// walRate; a standby has what it last received.
func (n *node) positionLocked(now time.Time) int64 {
	if n.primary && !n.dead && !n.stopped {
		return n.basePos + int64(now.Sub(n.baseAt).Seconds()*walRate)
	}
	return n.basePos
}

// streamingFromLocked returns the leader n streams from, or nil.
func (n *node) streamingFromLocked() *node {
	if n.primary || n.leader == "" {
		return nil
	}
	for _, o := range n.c.nodes {
		if o.name == n.leader && o.primary && !o.dead && !o.stopped && o.timeline >= n.timeline {
			return o
		}
	}
	return nil
}

// snapshot returns what the stand-in answers now. A streaming standby
// catches up with its leader as it is asked.
func (n *node) snapshot(now time.Time) nodeState {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n.applyLocked(now)
	st := nodeState{primary: n.primary, timeline: n.timeline, sysid: c.sysid, started: n.started}
	if l := n.streamingFromLocked(); l != nil {
		n.basePos, n.baseAt, n.timeline = l.positionLocked(now), now, l.timeline
		st.streaming, st.sender, st.timeline = true, "127.0.0.1:"+strconv.Itoa(l.port), l.timeline
	}
	st.position = n.positionLocked(now)
	if n.primary {
		for _, o := range c.nodes {
			if o != n && o.streamingFromLocked() == n {
				st.receivers++
				st.replicas = append(st.replicas, o.name)
			}
		}
	}
	return st
}

// applyLocked carries out what pg-supervise would have done by now: a
// promotion that is due, and the fence of a primary whose lead line ran
// out (it restarts as a standby).
func (n *node) applyLocked(now time.Time) {
	if !n.promoteAt.IsZero() && !now.Before(n.promoteAt) {
		n.promoteAt = time.Time{}
		if !n.primary && n.desired == rolepipe.Lead && clock.Now().Before(n.until) {
			n.basePos, n.baseAt = n.positionLocked(now), now
			top := 0
			for _, o := range n.c.nodes {
				top = max(top, o.timeline)
			}
			n.primary, n.timeline = true, top+1
		}
	}
	if n.primary && !clock.Now().Before(n.until) {
		n.basePos, n.baseAt = n.positionLocked(now), now
		n.primary = false
	}
}

// take acts on one role line, as pg-supervise would.
func (n *node) take(l rolepipe.Line, promoteDelay time.Duration) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	n.applyLocked(now)
	n.desired = l.Verb
	switch l.Verb {
	case rolepipe.Lead:
		if l.Until > n.until || l.Token != n.token {
			n.until, n.token = l.Until, l.Token
		}
		n.stopped = false
		if !n.primary && n.promoteAt.IsZero() {
			n.promoteAt = now.Add(promoteDelay)
		}
	case rolepipe.Follow, rolepipe.Standby:
		if n.primary {
			n.basePos, n.baseAt = n.positionLocked(now), now
			n.primary = false
		}
		n.stopped, n.leader, n.promoteAt = false, l.Leader, time.Time{}
	case rolepipe.Stop:
		n.basePos, n.baseAt = n.positionLocked(now), now
		n.primary, n.stopped, n.promoteAt = false, true, time.Time{}
	}
}

// superviseState is what pg-supervise would publish in supervise.json.
func (n *node) superviseState() state.Supervise {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n.applyLocked(time.Now())
	s := state.Supervise{State: state.Running, Role: "replica", Desired: string(n.desired), Leader: n.leader,
		Token: n.token, Updated: clock.Now(), Since: n.started}
	if n.primary {
		s.Role, s.Deadline = "primary", n.until
	}
	if n.stopped {
		s.State, s.Role = state.Stopped, ""
	}
	return s
}

// yaml is the node's configuration in Patroni's schema, with pg-ha's
// default timing (nothing in bootstrap.dcs).
func (n *node) yaml(etcdHost string) string {
	return fmt.Sprintf(`scope: %s
namespace: /service/
name: %s
restapi:
  listen: 127.0.0.1:%d
  connect_address: 127.0.0.1:%d
etcd3:
  hosts: %s
postgresql:
  listen: 127.0.0.1:%d
  connect_address: 127.0.0.1:%d
  data_dir: %s
  bin_dir: /usr/lib/postgresql/15/bin
  authentication:
    superuser: {username: postgres, password: fleet-superuser}
    replication: {username: replicator, password: fleet-replicator}
  parameters:
    unix_socket_directories: %s
`, n.c.scope, n.name, n.port+10000, n.port+10000, etcdHost, n.port, n.port, filepath.Join(n.dir, "data"), n.dir)
}

// start writes the YAML, opens the stand-in and starts pg-lockd with its
// stdout read as pg-supervise would read it.
func (n *node) start(bin, etcdHost string, promoteDelay time.Duration) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(n.dir, "node.yml")
	if err := os.WriteFile(cfg, []byte(n.yaml(etcdHost)), 0o600); err != nil {
		return err
	}
	n.standin = &standin{node: n}
	if err := n.standin.listen(n.dir, n.port); err != nil {
		return fmt.Errorf("%s/%s stand-in: %w", n.c.scope, n.name, err)
	}
	if err := state.Write(n.dir, state.SuperviseFile, n.superviseState()); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(n.dir, "pg-lockd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	n.cmd = exec.Command(bin, "--config", cfg, "--runtime-dir", n.dir)
	n.cmd.Stderr = logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := n.cmd.Start(); err != nil {
		return err
	}
	go n.readRoles(out, promoteDelay)
	go func() { _ = n.cmd.Wait() }()
	return nil
}

func (n *node) readRoles(out interface{ Read([]byte) (int, error) }, promoteDelay time.Duration) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		l, err := rolepipe.Parse(sc.Text(), clock.Now())
		if err != nil {
			continue
		}
		n.take(l, promoteDelay)
	}
}

// kill is the host's death: pg-lockd is killed with SIGKILL and the
// stand-in stops answering at once.
func (n *node) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
	}
	n.c.mu.Lock()
	n.basePos, n.baseAt = n.positionLocked(time.Now()), time.Now()
	n.dead, n.primary = true, false
	n.c.mu.Unlock()
	n.standin.kill()
}

func (n *node) pid() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}
