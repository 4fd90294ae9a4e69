package systemd

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pg-ha/pg-ha/lib/sdnotify/sdnotifytest"
)

// The role-pipe test runs the ExecStart= lines of pg-ha-supervise@ and
// pg-ha-lockd@ the way systemd connects them through pg-ha-role@.socket:
// the FIFO is made and held open read-write by the test, as systemd does,
// with the socket unit's owner and mode; each program runs with the
// service's User=, its RuntimeDirectory= in $RUNTIME_DIRECTORY, a
// NOTIFY_SOCKET, WATCHDOG_USEC from WatchdogSec=, and is started only once
// the one it is ordered after has sent READY=1. Paths are moved under a
// temporary root: /usr/bin/ → root/bin/, /run/ → root/run/, /etc/ →
// root/etc/.

// pipeEnds are the programs at the two ends of the role pipe and how to
// tell what the reader received. standInEnds uses the stand-ins of
// standin_test.go (TestRolePipe: fast, checks the FIFO's mechanics line by
// line). The real programs (TestRolePipeRealPrograms, realpipe_test.go)
// come as a directory holding them and pg-bootstrap, with a configuration
// that reaches a test etcd, and no received: that test reads what
// pg-supervise acted on from its state file in the runtime directory.
type pipeEnds struct {
	// dir holds executables named pg-lockd and pg-supervise, and
	// pg-bootstrap for the real programs.
	dir string
	// config is written to /etc/pg-ha/<instance>.yml.
	config []byte
	// received returns what each reader received, oldest first; nil for
	// the real programs.
	received func(runtimeDir string) ([]pipeRecord, error)
}

// pipeRecord is one line as a reader received it.
type pipeRecord struct {
	reader int   // pid of the reader process
	eof    bool  // the reader saw end of input
	writer int   // pid of the writer process
	seq    int   // the writer's line number
	sent   int64 // when the writer sent it, Unix ns
}

// standInEnds installs the stand-ins: this test binary under the programs'
// names, in a directory the daemons' user can reach.
func standInEnds(t *testing.T) pipeEnds {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := sharedTempDir(t)
	bin := filepath.Join(dir, "pgha-standin")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pg-lockd", "pg-supervise"} {
		if err := os.Symlink(bin, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	return pipeEnds{
		dir:      dir,
		config:   []byte("# the stand-ins only check that they can read it\nscope: pg-ha\nname: node1\n"),
		received: readStandInRecords,
	}
}

// readStandInRecords parses the stand-in reader's $RUNTIME_DIRECTORY/received.
func readStandInRecords(runtimeDir string) ([]pipeRecord, error) {
	f, err := os.Open(filepath.Join(runtimeDir, "received"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []pipeRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r pipeRecord
		for _, field := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(field, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "reader":
				r.reader = int(n)
			case "writer":
				r.writer = int(n)
			case "seq":
				r.seq = int(n)
			case "t":
				r.sent = n
			case "EOF":
				r.eof = true
			}
		}
		if r.reader == 0 || (!r.eof && (r.writer == 0 || r.seq == 0 || r.sent == 0)) {
			// The reader may be in the middle of appending this line.
			continue
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

// pipeHarness plays systemd for the role-pipe test.
type pipeHarness struct {
	t          *testing.T
	root       string
	units      map[string]*unit
	ends       pipeEnds
	fifo       string
	held       *os.File // the FIFO as systemd holds it
	runtimeDir string
	started    int // for log file names
}

func newPipeHarness(t *testing.T, ends pipeEnds) *pipeHarness {
	h := &pipeHarness{t: t, root: sharedTempDir(t), units: loadUnits(t), ends: ends}
	if err := os.MkdirAll(filepath.Join(h.root, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /usr/bin/pg-* as the units name them.
	if err := os.MkdirAll(filepath.Join(h.root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pg-bootstrap", "pg-lockd", "pg-supervise"} {
		src := filepath.Join(ends.dir, p)
		if _, err := os.Stat(src); err != nil && p == "pg-bootstrap" {
			continue // the stand-ins have no pg-bootstrap
		}
		if err := os.Symlink(src, filepath.Join(h.root, "bin", p)); err != nil {
			t.Fatal(err)
		}
	}
	// /etc/pg-ha/<instance>.yml, root:postgres 0640 as the README says.
	cfg := h.path(mustExpand(t, "/etc/pg-ha/%i.yml"))
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, ends.config, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, gid, _, ok := h.account("postgres", "postgres"); ok {
		if err := os.Chown(cfg, 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// path moves an absolute path of the units under the harness's root.
func (h *pipeHarness) path(p string) string {
	for _, prefix := range []string{"/usr/bin/", "/run/", "/etc/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			dir := strings.TrimPrefix(strings.TrimSuffix(prefix, "/"), "/usr")
			return filepath.Join(h.root, dir, rest)
		}
	}
	h.t.Fatalf("path %s: not under a directory the harness maps", p)
	return ""
}

// account resolves a unit's User= and Group=. ok is false when the test
// does not run as root: then the programs run as the test's own user.
func (h *pipeHarness) account(userName, groupName string) (uid, gid int, groups []uint32, ok bool) {
	if os.Geteuid() != 0 {
		return os.Getuid(), os.Getgid(), nil, false
	}
	u, err := user.Lookup(userName)
	if err != nil {
		h.t.Fatalf("User=%s: %v", userName, err)
	}
	g, err := user.LookupGroup(groupName)
	if err != nil {
		h.t.Fatalf("Group=%s: %v", groupName, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	ids, _ := u.GroupIds()
	for _, s := range ids {
		n, _ := strconv.Atoi(s)
		groups = append(groups, uint32(n))
	}
	return uid, gid, groups, true
}

// makeFIFO creates the FIFO of pg-ha-role@.socket as systemd does: parent
// directories with DirectoryMode=, the FIFO with SocketMode=, owned by
// SocketUser=:SocketGroup=. With hold, it is opened read-write and kept
// open until the test ends, as systemd keeps it while the socket unit is
// active.
func (h *pipeHarness) makeFIFO(hold bool) {
	t := h.t
	sock := h.units["pg-ha-role@.socket"]
	h.fifo = h.path(mustExpand(t, sock.must(t, "Socket", "ListenFIFO")))
	dirMode, _ := strconv.ParseUint(sock.must(t, "Socket", "DirectoryMode"), 8, 32)
	sockMode, _ := strconv.ParseUint(sock.must(t, "Socket", "SocketMode"), 8, 32)
	if err := os.MkdirAll(filepath.Dir(h.fifo), os.FileMode(dirMode)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(h.fifo, uint32(sockMode)); err != nil {
		t.Fatalf("mkfifo %s: %v", h.fifo, err)
	}
	if err := os.Chmod(h.fifo, os.FileMode(sockMode)); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if uid, gid, _, ok := h.account(sock.must(t, "Socket", "SocketUser"), sock.must(t, "Socket", "SocketGroup")); ok {
		if err := os.Chown(h.fifo, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if !hold {
		return
	}
	held, err := os.OpenFile(h.fifo, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("hold %s: %v", h.fifo, err)
	}
	h.held = held
	t.Cleanup(func() { held.Close() })
}

// buffered returns how many bytes wait in the held FIFO.
func (h *pipeHarness) buffered() int {
	n, err := unix.IoctlGetInt(int(h.held.Fd()), unix.TIOCINQ) // FIONREAD
	if err != nil {
		h.t.Fatalf("FIONREAD on %s: %v", h.fifo, err)
	}
	return n
}

// daemon is one running ExecStart= of a service.
type daemon struct {
	unit string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error

	notify <-chan string // its NOTIFY_SOCKET's datagrams; nil unless Type=notify
	notes  []string      // assignments received so far ("READY=1", "STATUS=…")
}

// notifications returns every assignment the daemon sent to its
// NOTIFY_SOCKET so far, oldest first. It never blocks.
func (d *daemon) notifications() []string {
	for d.notify != nil {
		select {
		case m, ok := <-d.notify:
			if !ok {
				d.notify = nil
				break
			}
			d.notes = append(d.notes, strings.Split(strings.TrimSpace(m), "\n")...)
		default:
			return d.notes
		}
	}
	return d.notes
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// kill ends the daemon the way a crash would: SIGKILL to its process group.
func (d *daemon) kill() {
	syscall.Kill(-d.pid(), syscall.SIGKILL)
	<-d.done
}

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.log)
	return strings.TrimSpace(string(b))
}

// start runs a service's ExecStart= as systemd would and waits for its
// READY=1 (Type=notify). It returns an error if the program exits first.
func (h *pipeHarness) start(template string) (*daemon, error) {
	t := h.t
	t.Helper()
	u := h.units[template]
	args := execStart(t, u)
	for i, a := range args {
		a = mustExpand(t, a)
		if strings.HasPrefix(a, "/") {
			a = h.path(a)
		}
		args[i] = a
	}

	uid, gid, groups, asUser := h.account(u.must(t, "Service", "User"), u.must(t, "Service", "Group"))
	home := "/"
	if pw, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		home = pw.HomeDir
	}

	// RuntimeDirectory=: created (or taken over) with its mode and owner.
	rd := h.path("/run/" + mustExpand(t, u.must(t, "Service", "RuntimeDirectory")))
	rdMode := uint64(0o755)
	if m, ok := u.get("Service", "RuntimeDirectoryMode"); ok {
		rdMode, _ = strconv.ParseUint(m, 8, 32)
	}
	if err := os.MkdirAll(rd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rd, os.FileMode(rdMode)); err != nil {
		t.Fatal(err)
	}
	if asUser {
		if err := os.Chown(rd, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	h.runtimeDir = rd

	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"RUNTIME_DIRECTORY=" + rd,
	}
	if pw, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		env = append(env, "USER="+pw.Username, "LOGNAME="+pw.Username)
	}
	var notify <-chan string
	if typ, _ := u.get("Service", "Type"); typ == "notify" {
		var sock string
		sock, notify = sdnotifytest.Listen(t)
		env = append(env, "NOTIFY_SOCKET="+sock)
	}
	if wd, ok := u.get("Service", "WatchdogSec"); ok {
		sec, err := strconv.Atoi(wd)
		if err != nil {
			t.Fatalf("%s: WatchdogSec=%s: the harness understands whole seconds", template, wd)
		}
		env = append(env, fmt.Sprintf("WATCHDOG_USEC=%d", sec*1_000_000))
	}

	h.started++
	logPath := filepath.Join(h.root, "logs", fmt.Sprintf("%02d-%s.log", h.started, instanceName(template)))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := &exec.Cmd{
		Path:   args[0],
		Args:   args,
		Env:    env,
		Dir:    "/",
		Stdout: logf,
		Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if asUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", instanceName(template), err)
	}
	d := &daemon{unit: instanceName(template), cmd: cmd, log: logPath, done: make(chan struct{}), notify: notify}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if d.running() {
			d.kill()
		}
	})

	if notify == nil {
		return d, nil
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case <-time.After(5 * time.Millisecond):
			if slices.Contains(d.notifications(), "READY=1") {
				return d, nil
			}
		case <-d.done:
			return nil, fmt.Errorf("%s exited before READY=1 (%v): %s", d.unit, d.err, d.logText())
		case <-timeout:
			d.kill()
			return nil, fmt.Errorf("%s: no READY=1 within 10s: %s", d.unit, d.logText())
		}
	}
}

func (h *pipeHarness) mustStart(template string) *daemon {
	h.t.Helper()
	d, err := h.start(template)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// waitFor polls what the readers received until one record satisfies ok.
func (h *pipeHarness) waitFor(what string, ok func(pipeRecord) bool) pipeRecord {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs, err := h.ends.received(h.runtimeDir)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, r := range recs {
			if ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("within 5s: no %s (%d lines received so far)", what, len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	supervise = "pg-ha-supervise@.service"
	lockd     = "pg-ha-lockd@.service"
)

// TestRolePipe checks that lines flow from pg-lockd to pg-supervise
// through the FIFO of pg-ha-role@.socket, and that either side restarts
// alone.
func TestRolePipe(t *testing.T) {
	h := newPipeHarness(t, standInEnds(t))
	h.makeFIFO(true)
	begin := time.Now()

	// Start order as the units have it: pg-lockd is After= pg-supervise.
	r1 := h.mustStart(supervise)
	w1 := h.mustStart(lockd)
	h.waitFor("line from the first pg-lockd", func(r pipeRecord) bool {
		return r.reader == r1.pid() && r.writer == w1.pid()
	})
	t.Logf("%v: lines flow", time.Since(begin).Round(time.Millisecond))

	// pg-lockd restarts alone: the same pg-supervise reads the new one.
	w1.kill()
	w2 := h.mustStart(lockd)
	h.waitFor("line from the restarted pg-lockd at the same pg-supervise", func(r pipeRecord) bool {
		return r.reader == r1.pid() && r.writer == w2.pid()
	})
	if !r1.running() {
		t.Fatalf("pg-supervise exited when pg-lockd restarted: %v\n%s", r1.err, r1.logText())
	}
	t.Logf("%v: pg-lockd restarted alone", time.Since(begin).Round(time.Millisecond))

	// pg-supervise restarts alone, after long enough for the pipe to fill:
	// the new one receives lines pg-lockd sent after it started.
	r1.kill()
	// Full: nothing more fits for 10 of pg-lockd's line periods.
	for prev, deadline := -1, time.Now().Add(5*time.Second); ; {
		time.Sleep(10 * standInLinePeriod)
		n := h.buffered()
		if n > 0 && n == prev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pipe did not fill within 5s (%d bytes)", n)
		}
		prev = n
	}
	if !w2.running() {
		t.Fatalf("pg-lockd exited while pg-supervise was down: %v\n%s", w2.err, w2.logText())
	}
	t.Logf("%v: pipe full (%d bytes)", time.Since(begin).Round(time.Millisecond), h.buffered())
	restarted := time.Now()
	r2 := h.mustStart(supervise)
	h.waitFor("line sent after pg-supervise restarted", func(r pipeRecord) bool {
		return r.reader == r2.pid() && r.writer == w2.pid() && r.sent > restarted.UnixNano()
	})
	t.Logf("%v: pg-supervise restarted alone", time.Since(begin).Round(time.Millisecond))

	// pg-lockd starts while no pg-supervise runs: systemd's read end lets
	// it open the FIFO; a pg-supervise started later reads it.
	w2.kill()
	r2.kill()
	w3 := h.mustStart(lockd)
	time.Sleep(20 * time.Millisecond)
	readerStart := time.Now()
	r3 := h.mustStart(supervise)
	h.waitFor("line from a pg-lockd started before pg-supervise", func(r pipeRecord) bool {
		return r.reader == r3.pid() && r.writer == w3.pid() && r.sent > readerStart.UnixNano()
	})
	t.Logf("%v: pg-lockd started before pg-supervise", time.Since(begin).Round(time.Millisecond))

	// The programs ran as the services' User=.
	if uid, _, _, ok := h.account(h.units[supervise].must(t, "Service", "User"), "postgres"); ok {
		fi, err := os.Stat(filepath.Join(h.runtimeDir, "received"))
		if err == nil && int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
			t.Errorf("pg-supervise did not run as uid %d: it wrote %s as uid %d", uid, fi.Name(), fi.Sys().(*syscall.Stat_t).Uid)
		}
	}

	// No reader ever saw end of input, and each reader got each writer's
	// lines in order, without duplicates.
	recs, err := h.ends.received(h.runtimeDir)
	if err != nil {
		t.Fatal(err)
	}
	type pair struct{ reader, writer int }
	last := map[pair]int{}
	readers, writers := map[int]bool{}, map[int]bool{}
	for _, r := range recs {
		readers[r.reader], writers[r.writer] = true, true
		if r.eof {
			t.Errorf("pg-supervise %d saw end of input", r.reader)
			continue
		}
		p := pair{r.reader, r.writer}
		if r.seq <= last[p] {
			t.Errorf("pg-supervise %d got line %d of pg-lockd %d after line %d", r.reader, r.seq, r.writer, last[p])
		}
		last[p] = r.seq
	}
	t.Logf("%d lines received by %d readers from %d writers", len(recs), len(readers), len(writers))
}

// TestRolePipeNeedsHeldFIFO shows what TestRolePipe's last step depends
// on: without systemd holding the FIFO open, a pg-lockd started while no
// pg-supervise runs cannot open it (ENXIO) and exits.
func TestRolePipeNeedsHeldFIFO(t *testing.T) {
	h := newPipeHarness(t, standInEnds(t))
	h.makeFIFO(false)
	d, err := h.start(lockd)
	if err == nil {
		t.Fatalf("pg-lockd opened a FIFO nobody reads (pid %d)", d.pid())
	}
	if !strings.Contains(err.Error(), "no such device or address") {
		t.Fatalf("want ENXIO, got: %v", err)
	}
	t.Logf("as expected: %v", err)
}
