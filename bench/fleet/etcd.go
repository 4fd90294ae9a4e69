package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// etcdServer is the one etcd member every simulated cluster uses.
type etcdServer struct {
	cmd    *exec.Cmd
	client string // http://127.0.0.1:port
	host   string // 127.0.0.1:port, for etcd3.hosts
	dir    string
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd starts etcd with its default timing (heartbeat 100 ms, election
// 1 s, no auto-compaction) and its data on dataParent, and waits until it
// is healthy.
func startEtcd(bin, dataParent, logPath string, extra []string) (*etcdServer, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(dataParent, "pgha-fleet-etcd-")
	if err != nil {
		return nil, err
	}
	e := &etcdServer{client: fmt.Sprintf("http://127.0.0.1:%d", cp), host: fmt.Sprintf("127.0.0.1:%d", cp), dir: dir}
	peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
	args := append([]string{
		"--name=fleet", "--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + e.client, "--advertise-client-urls=" + e.client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=fleet=" + peer, "--initial-cluster-state=new",
		"--logger=zap", "--log-outputs=stderr",
	}, extra...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	e.cmd = exec.Command(bin, args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(exited) }()
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("etcd exited during start-up; see %s", logPath)
		default:
		}
		resp, err := hc.Get(e.client + "/health")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"true"`) {
				return e, nil
			}
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, fmt.Errorf("etcd not healthy within 15s (last error: %v); see %s", err, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *etcdServer) stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGKILL)
		for range 100 {
			if syscall.Kill(e.cmd.Process.Pid, 0) != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	_ = os.RemoveAll(e.dir)
}

// metrics is one scrape of etcd's /metrics: every sample's value by its
// full name with labels, as printed.
type metrics map[string]float64

func (e *etcdServer) scrape() (metrics, error) {
	resp, err := http.Get(e.client + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// sum adds every sample of metric name whose labels contain all of match.
func (m metrics) sum(name string, match ...string) float64 {
	var s float64
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range match {
			if !strings.Contains(k, w) {
				ok = false
				break
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// label returns the value of label l in a sample's name, "" if absent.
func label(sample, l string) string {
	i := strings.Index(sample, l+`="`)
	if i < 0 {
		return ""
	}
	rest := sample[i+len(l)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}

// byMethod sums metric name per grpc_method.
func (m metrics) byMethod(name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, name+"{") {
			out[label(k, "grpc_method")] += v
		}
	}
	return out
}

// procStat returns the CPU time (user+system) and the RSS and PSS of pid,
// from /proc.
func procStat(pid int) (cpu time.Duration, rss, pss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after the command: state is f[0]; utime and stime are fields
	// 14 and 15 of stat, f[11] and f[12] here.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
	if r, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, line := range strings.Split(string(r), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			switch fs[0] {
			case "Rss:":
				rss = kb << 10
			case "Pss:":
				pss = kb << 10
			}
		}
	}
	return cpu, rss, pss, nil
}
