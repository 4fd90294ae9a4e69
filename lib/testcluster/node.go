package testcluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc names one of a node's processes.
type Proc int

// A node's processes. Postmaster is PostgreSQL's, which pg-supervise (or
// Patroni) runs; the others the harness starts. Patroni runs instead of
// the first four with Options.Patroni.
const (
	Bootstrap Proc = iota
	Lockd
	Supervise
	Healthd
	Postmaster
	Patroni
)

// String returns the program name, such as "pg-lockd".
func (p Proc) String() string {
	switch p {
	case Bootstrap:
		return "pg-bootstrap"
	case Lockd:
		return "pg-lockd"
	case Supervise:
		return "pg-supervise"
	case Healthd:
		return "pg-healthd"
	case Postmaster:
		return "postmaster"
	case Patroni:
		return "patroni"
	}
	return "proc(" + strconv.Itoa(int(p)) + ")"
}

// daemons are the long-running processes the harness starts on a node.
var daemons = []Proc{Lockd, Supervise, Healthd, Patroni}

// started are the programs the harness starts on a node, in either mode.
var started = []Proc{Bootstrap, Lockd, Supervise, Healthd, Patroni}

// process is one started program and its fate.
type process struct {
	proc  Proc
	pid   int
	done  chan struct{} // closed once reaped
	state *os.ProcessState
	err   error
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exitDesc describes how p ended; call only after done is closed.
func (p *process) exitDesc() string {
	if p.state != nil {
		return p.state.String()
	}
	if p.err != nil {
		return p.err.Error()
	}
	return "unknown exit"
}

// Node is one member of a Cluster: its configuration, directories, ports
// and the processes the harness runs for it. Its methods are safe for
// concurrent use.
type Node struct {
	// Name is the member name, "node1", "node2", … (Options.NamePrefix)
	Name string
	// Index is the node's position in Cluster.Nodes (0-based).
	Index int
	// PGPort and APIPort are PostgreSQL's and pg-healthd's ports on 127.0.0.1.
	PGPort, APIPort int
	// Dir holds everything of the node (owned by the postgres user): the
	// YAML, the logs (<program>.log), the runtime dir, the data dir, the
	// Unix socket and, in FIFO mode, the role FIFO.
	Dir string
	// DataDir is postgresql.data_dir; pg-bootstrap creates it.
	DataDir string
	// RuntimeDir is passed as --runtime-dir to every program.
	RuntimeDir string
	// ConfigPath is the node's YAML, passed as --config.
	ConfigPath string
	// FIFOPath is the role FIFO between pg-lockd and pg-supervise, in FIFO
	// mode only.
	FIFOPath string

	c       *Cluster
	proxies []*Proxy // with Options.EtcdProxy: between the node and etcd
	mu      sync.Mutex
	procs   map[Proc]*process
	patroni bool // runs Patroni instead of pg-ha's programs (Migrate switches)

	walMounted bool // Options.WALFilesystem's tmpfs is mounted
	external   bool // run by something else (Attach): taken to be managed
}

// PartitionFromEtcd cuts the node off from etcd, in both directions, as a
// network partition that drops packets would: its connections to etcd stay
// open but go silent, and new ones lead nowhere (see Proxy). Its PostgreSQL
// stays reachable. It needs Options.EtcdProxy and fails the test without
// it. The moment is noted in the node's pg-lockd and pg-supervise logs.
func (n *Node) PartitionFromEtcd() {
	n.c.t.Helper()
	n.needProxy("PartitionFromEtcd")
	for _, p := range n.proxies {
		p.Partition()
	}
	n.note("partitioned from etcd")
}

// HealEtcd ends PartitionFromEtcd: the connections it silenced are closed
// and new ones reach etcd again. It needs Options.EtcdProxy.
func (n *Node) HealEtcd() {
	n.c.t.Helper()
	n.needProxy("HealEtcd")
	for _, p := range n.proxies {
		p.Heal()
	}
	n.note("etcd partition healed")
}

// DelayEtcd makes the node's link to etcd slow: every chunk is passed on d
// later in each direction (Proxy.SetDelay), so each etcd request of the
// node takes 2·d longer; 0 ends it. It needs Options.EtcdProxy. The moment
// is noted in the node's pg-lockd and pg-supervise logs.
func (n *Node) DelayEtcd(d time.Duration) {
	n.c.t.Helper()
	n.needProxy("DelayEtcd")
	for _, p := range n.proxies {
		p.SetDelay(d)
	}
	n.note(fmt.Sprintf("etcd delay %s each way", d))
}

// EtcdPartitioned reports whether the node is cut off from etcd.
func (n *Node) EtcdPartitioned() bool {
	return len(n.proxies) > 0 && n.proxies[0].Partitioned()
}

func (n *Node) needProxy(what string) {
	n.c.t.Helper()
	if len(n.proxies) == 0 {
		n.c.t.Fatalf("%s.%s: the cluster has no etcd proxies (set Options.EtcdProxy)", n.Name, what)
	}
}

// note appends a line marking a test action to the node's pg-lockd and
// pg-supervise logs (Patroni's with Options.Patroni), so the daemons' logs
// show when it happened.
func (n *Node) note(what string) {
	for _, p := range []Proc{Lockd, Supervise, Patroni} {
		f, err := os.OpenFile(n.logPath(p), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			continue
		}
		fmt.Fprintf(f, "--- testcluster %s: %s\n", stamp(), what)
		f.Close()
	}
}

// Start runs the node the way DESIGN.md does without systemd:
// pg-bootstrap (waiting for it to exit 0), then pg-lockd piped into
// pg-supervise, and pg-healthd when Options.Healthd is set. It blocks until
// pg-bootstrap has exited and the daemons are started (not until they are
// ready), and fails t if pg-bootstrap fails or any program cannot start.
// With Options.Patroni it starts Patroni alone and does not wait for it.
// Call it for a node whose daemons are not running (after KillAll or Stop).
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatalf("start %s: %v", n.Name, err)
	}
}

// start is Start without t, for starting nodes concurrently.
func (n *Node) start() error {
	for _, p := range daemons {
		if n.Running(p) {
			return fmt.Errorf("%s is still running (pid %d)", p, n.PID(p))
		}
	}
	if n.RunsPatroni() {
		_, err := n.launch(Patroni, nil, nil, nil)
		return err
	}
	timeout := n.c.Options.StartTimeout
	b, err := n.launch(Bootstrap, []string{"--timeout", timeout.String()}, nil, nil)
	if err != nil {
		return err
	}
	select {
	case <-b.done:
	case <-time.After(timeout + 5*time.Second):
		syscall.Kill(-b.pid, syscall.SIGKILL)
		<-b.done
		return fmt.Errorf("pg-bootstrap did not exit within %s", timeout+5*time.Second)
	}
	if b.state == nil || !b.state.Success() {
		return fmt.Errorf("pg-bootstrap failed: %s", b.exitDesc())
	}
	if n.c.Options.FIFO {
		if err := n.startFIFO(Supervise); err != nil {
			return err
		}
		if err := n.startFIFO(Lockd); err != nil {
			return err
		}
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("pipe pg-lockd to pg-supervise: %w", err)
		}
		// Start the reader first, so pg-lockd never sees a pipe without one.
		_, err = n.launch(Supervise, nil, r, nil)
		r.Close()
		if err != nil {
			w.Close()
			return err
		}
		_, err = n.launch(Lockd, nil, nil, w)
		w.Close()
		if err != nil {
			return err
		}
	}
	// A node moved from Patroni serves the REST API on Patroni's port.
	if n.c.Options.Healthd || n.c.Options.Patroni {
		if _, err := n.launch(Healthd, nil, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// StartLockd starts pg-lockd alone again, as systemd's Restart=always
// would after it died. FIFO mode only; it fails t if pg-lockd is still
// running or cannot start. It does not wait for pg-lockd to be ready.
func (n *Node) StartLockd(t testing.TB) {
	t.Helper()
	if err := n.startAlone(Lockd); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

// StartSupervise starts pg-supervise alone again; see StartLockd.
func (n *Node) StartSupervise(t testing.TB) {
	t.Helper()
	if err := n.startAlone(Supervise); err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
}

func (n *Node) startAlone(p Proc) error {
	if !n.c.Options.FIFO {
		return fmt.Errorf("start %s alone: only in FIFO mode (Options.FIFO), a plain pipe cannot be rejoined", p)
	}
	if n.Running(p) {
		return fmt.Errorf("start %s: still running (pid %d)", p, n.PID(p))
	}
	return n.startFIFO(p)
}

func (n *Node) startFIFO(p Proc) error {
	var args []string
	switch p {
	case Lockd:
		args = []string{"--output", n.FIFOPath}
	case Supervise:
		args = []string{"--input", n.FIFOPath}
	}
	_, err := n.launch(p, args, nil, nil)
	return err
}

// logPath returns the log file of p.
func (n *Node) logPath(p Proc) string { return filepath.Join(n.Dir, p.String()+".log") }

// launch starts program p as the postgres user in its own process group,
// with the node's common flags plus extra (Patroni takes the YAML's path
// alone). stdin and stdout default to /dev/null and the log file; stderr
// always goes to the log file.
func (n *Node) launch(p Proc, extra []string, stdin, stdout *os.File) (*process, error) {
	id, err := postgresUser()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(n.logPath(p), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", p, err)
	}
	level := os.Getenv("PGHA_TEST_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	path := filepath.Join(n.c.bin, p.String())
	args := append([]string{"--config", n.ConfigPath, "--runtime-dir", n.RuntimeDir,
		"--log.format", "json", "--log.level", level}, extra...)
	if p == Supervise {
		args = append(args, n.c.Options.SuperviseArgs...)
	}
	if p == Patroni {
		path, args = PatroniBinary, []string{n.ConfigPath}
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = n.Dir
	cmd.Env = childEnv(n.Dir)
	cmd.Stdin = stdin
	if stdout == nil {
		stdout = logf
	}
	cmd.Stdout = stdout
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: id.uid, Gid: id.gid},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	fmt.Fprintf(logf, "--- testcluster %s: start %s %s\n", stamp(), p, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "--- testcluster %s: %s did not start: %v\n", stamp(), p, err)
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", p, err)
	}
	pr := &process{proc: p, pid: cmd.Process.Pid, done: make(chan struct{})}
	n.mu.Lock()
	n.procs[p] = pr
	n.mu.Unlock()
	go func() {
		pr.err = cmd.Wait()
		pr.state = cmd.ProcessState
		fmt.Fprintf(logf, "--- testcluster %s: %s (pid %d) exited: %s\n", stamp(), p, pr.pid, pr.exitDesc())
		logf.Close()
		close(pr.done)
	}()
	return pr, nil
}

func stamp() string { return time.Now().Format("15:04:05.000") }

// childEnv is the whole environment of a node program: nothing of the test
// process leaks in (no PATRONI_*, PG*, NOTIFY_SOCKET, …).
func childEnv(home string) []string {
	return []string{
		"PATH=" + pgBinDir() + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"USER=postgres",
		"LOGNAME=postgres",
		"LANG=C.UTF-8",
		"TZ=UTC",
		"GOTRACEBACK=all",
	}
}

func (n *Node) proc(p Proc) *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.procs[p]
}

// Running reports whether program p (not Postmaster) started by the harness
// is still running. It never blocks.
func (n *Node) Running(p Proc) bool {
	if p == Postmaster {
		return n.PID(Postmaster) != 0
	}
	pr := n.proc(p)
	return pr != nil && pr.running()
}

// managed reports whether the program that runs the node's PostgreSQL is
// running: pg-supervise, or Patroni with Options.Patroni.
func (n *Node) managed() bool {
	if n.external {
		return true
	}
	if n.RunsPatroni() {
		return n.Running(Patroni)
	}
	return n.Running(Supervise)
}

// Managed reports whether the program that runs the node's PostgreSQL
// (pg-supervise, or Patroni) is running.
func (n *Node) Managed() bool { return n.managed() }

// RunsPatroni reports whether the node is run by Patroni rather than by
// pg-ha's programs: with Options.Patroni until Migrate moves it.
func (n *Node) RunsPatroni() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.patroni
}

// Migrate moves the node between Patroni and pg-ha's programs in place, as
// an operator does: it stops the running daemons with SIGTERM (Patroni and
// pg-supervise each shut PostgreSQL down cleanly), waits up to 30s for
// every server process of the node to be gone, then starts the node with
// Patroni (toPatroni) or with pg-bootstrap, pg-lockd | pg-supervise and
// pg-healthd (on Patroni's REST API port) on the same YAML, data directory
// and etcd keys. It does not wait for the node to be ready. It needs a
// cluster started with Options.Patroni and fails t if a daemon or the
// server does not stop, or pg-bootstrap or a program fails to start.
func (n *Node) Migrate(t testing.TB, toPatroni bool) {
	t.Helper()
	if !n.c.Options.Patroni {
		t.Fatalf("%s.Migrate: the cluster was not started with Options.Patroni", n.Name)
	}
	to := "pg-ha"
	if toPatroni {
		to = "Patroni"
	}
	n.note("migrate to " + to)
	n.Stop(t, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for n.PID(Postmaster) != 0 || len(pidsUnder(n.DataDir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: PostgreSQL still runs 30s after its manager stopped (pids %v)", n.Name, pidsUnder(n.DataDir))
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.mu.Lock()
	n.patroni = toPatroni
	n.mu.Unlock()
	if err := n.start(); err != nil {
		t.Fatalf("start %s with %s: %v", n.Name, to, err)
	}
}

// Exited returns how program p last ended ("exit status 1", "signal:
// killed"), or "" if it runs or never ran.
func (n *Node) Exited(p Proc) string {
	pr := n.proc(p)
	if pr == nil || pr.running() {
		return ""
	}
	return pr.exitDesc()
}

// PID returns the process id of p, or 0 when it does not run. For
// Postmaster it is the first line of <data_dir>/postmaster.pid, and 0
// unless that process exists and works in the node's directory.
func (n *Node) PID(p Proc) int {
	if p == Postmaster {
		b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
		if err != nil {
			return 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || pid <= 1 || !n.owns(pid) {
			return 0
		}
		return pid
	}
	pr := n.proc(p)
	if pr == nil || !pr.running() {
		return 0
	}
	return pr.pid
}

// Signal sends sig to process p alone (not its group). It returns an error
// if p does not run.
func (n *Node) Signal(p Proc, sig syscall.Signal) error {
	pid := n.PID(p)
	if pid == 0 {
		return fmt.Errorf("%s %s: not running", n.Name, p)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("%s %s: kill -%d %d: %w", n.Name, p, sig, pid, err)
	}
	return nil
}

// Wait blocks until program p exits or timeout passes, and reports whether
// it has exited (true also if it never ran).
func (n *Node) Wait(p Proc, timeout time.Duration) bool {
	pr := n.proc(p)
	if pr == nil {
		return true
	}
	select {
	case <-pr.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// KillAll is node death: SIGKILL to pg-lockd, pg-supervise and pg-healthd
// (their process groups), or to Patroni's, and to every PostgreSQL process
// of the node (the postmaster's process group and any process working in
// the node's directory), all at once. It blocks until they are gone (at most about
// 10s) and never fails; a survivor is reported by the caller's later
// checks.
func (n *Node) KillAll() {
	pm := n.PID(Postmaster)
	own := syscall.Getpgrp()
	var groups []int
	for _, p := range started {
		if pr := n.proc(p); pr != nil && pr.running() {
			groups = append(groups, pr.pid)
		}
	}
	if pm > 0 {
		if g, err := syscall.Getpgid(pm); err == nil && g > 1 && g != own {
			groups = append(groups, g)
		}
	}
	for _, g := range groups {
		syscall.Kill(-g, syscall.SIGKILL)
	}
	if pm > 0 {
		syscall.Kill(pm, syscall.SIGKILL)
	}
	killUnder(n.Dir, 10*time.Second)
	for _, p := range started {
		n.Wait(p, 10*time.Second)
	}
}

// Stop sends sig to pg-lockd, pg-supervise and pg-healthd (or Patroni) at
// once and waits up to 30s for them to exit; it fails t if one does not.
func (n *Node) Stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	var running []Proc
	for _, p := range daemons {
		if n.Running(p) {
			running = append(running, p)
		}
	}
	for _, p := range running {
		n.Signal(p, sig)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range running {
		if !n.Wait(p, time.Until(deadline)) {
			t.Fatalf("%s: %s did not exit within 30s of signal %d", n.Name, p, sig)
		}
	}
}

// owns reports whether process pid works inside the node's directory (its
// cwd is there): the postmaster and every backend do.
func (n *Node) owns(pid int) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return err == nil && within(cwd, n.Dir)
}

func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// pidsUnder lists the processes whose working directory is dir or below.
func pidsUnder(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err == nil && within(cwd, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killUnder SIGKILLs every process working in dir until none is left or
// timeout passes.
func killUnder(dir string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		pids := pidsUnder(dir)
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs returns the last 200 lines of each of the node's log files
// (pg-bootstrap, pg-lockd, pg-supervise, pg-healthd, Patroni, and PostgreSQL's own
// log file in the data directory if any) and the state files in its runtime
// directory, for failure messages.
func (n *Node) Logs() string {
	var b strings.Builder
	fmt.Fprintf(&b, "===== %s (pg port %d, api port %d, dir %s)\n", n.Name, n.PGPort, n.APIPort, n.Dir)
	for _, p := range started {
		path := n.logPath(p)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		fmt.Fprintf(&b, "----- %s: %s\n%s", n.Name, filepath.Base(path), tail(path, 200))
	}
	states, _ := filepath.Glob(filepath.Join(n.RuntimeDir, "*.json"))
	for _, f := range states {
		if data, err := os.ReadFile(f); err == nil {
			fmt.Fprintf(&b, "----- %s: %s: %s\n", n.Name, filepath.Base(f), bytes.TrimSpace(data))
		}
	}
	for _, sub := range []string{"log", "pg_log"} {
		files, _ := filepath.Glob(filepath.Join(n.DataDir, sub, "*"))
		sort.Strings(files)
		if len(files) > 0 {
			last := files[len(files)-1]
			fmt.Fprintf(&b, "----- %s: %s\n%s", n.Name, last, tail(last, 200))
		}
	}
	return b.String()
}

// LogContains reports whether program p's log mentions s (case-insensitive).
func (n *Node) LogContains(p Proc, s string) bool {
	b, err := os.ReadFile(n.logPath(p))
	return err == nil && bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(s)))
}

// LogCount returns how many lines of program p's log mention s
// (case-insensitive).
func (n *Node) LogCount(p Proc, s string) int {
	b, err := os.ReadFile(n.logPath(p))
	if err != nil {
		return 0
	}
	return bytes.Count(bytes.ToLower(b), []byte(strings.ToLower(s)))
}

// tail returns the last max lines of the file at path.
func tail(path string, max int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error() + "\n"
	}
	defer f.Close()
	ring := make([]string, 0, max)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(ring) == max {
			ring = ring[1:]
		}
		ring = append(ring, sc.Text())
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		ring = append(ring, "(read error: "+err.Error()+")")
	}
	if len(ring) == 0 {
		return "(empty)\n"
	}
	return strings.Join(ring, "\n") + "\n"
}

// ensureOwned creates dir (mode 0700) owned by the postgres user.
func ensureOwned(dir string) error {
	id, err := postgresUser()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chown(dir, int(id.uid), int(id.gid))
}

// writeOwned writes a file owned by the postgres user.
func writeOwned(path string, data []byte, mode os.FileMode) error {
	id, err := postgresUser()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chown(path, int(id.uid), int(id.gid))
}

// mkfifoOwned creates a FIFO owned by the postgres user.
func mkfifoOwned(path string) error {
	id, err := postgresUser()
	if err != nil {
		return err
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("mkfifo %s: %w", path, err)
	}
	return os.Chown(path, int(id.uid), int(id.gid))
}
