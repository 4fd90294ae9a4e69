package testcluster

import (
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HAProxyBinary returns the path of haproxy (PGHA_HAPROXY_BIN, else
// /usr/sbin/haproxy). Without it the test skips, or fails when
// PGHA_TEST_DISALLOW_SKIP=1.
func HAProxyBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PGHA_HAPROXY_BIN")
	if bin == "" {
		bin = "/usr/sbin/haproxy"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv(DisallowSkipEnv) == "1" {
			t.Fatalf("haproxy is not installed (%s=1): %v (apt-get install haproxy)", DisallowSkipEnv, err)
		}
		t.Skipf("haproxy is not installed: %v", err)
	}
	return bin
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// HAProxyServer is one PostgreSQL server of a rewritten HAProxy
// configuration, with the port its health check goes to.
type HAProxyServer struct {
	Name      string
	PGPort    int
	CheckPort int
}

// RewriteHAProxyConfig points an HAProxy configuration at loopback: each
// "bind *:<port>" at 127.0.0.1:<binds[port]>, each "server <name> …" line at
// the server of that name (lines naming no given server are dropped). It
// writes the result into a temporary file and returns its path.
func RewriteHAProxyConfig(t testing.TB, example string, binds map[string]int, servers []HAProxyServer) string {
	t.Helper()
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]HAProxyServer{}
	for _, s := range servers {
		byName[s.Name] = s
	}
	var out strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "bind":
			_, port, _ := net.SplitHostPort(f[1])
			p, ok := binds[port]
			if !ok {
				t.Fatalf("%s binds %s, which the test does not map", example, f[1])
			}
			line = fmt.Sprintf("    bind 127.0.0.1:%d", p)
		case len(f) > 2 && f[0] == "server":
			s, ok := byName[f[1]]
			if !ok {
				continue
			}
			f[2] = fmt.Sprintf("127.0.0.1:%d", s.PGPort)
			for i := range f {
				if f[i] == "port" && i+1 < len(f) {
					f[i+1] = strconv.Itoa(s.CheckPort)
				}
			}
			line = "    " + strings.Join(f, " ")
		}
		out.WriteString(line + "\n")
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartHAProxy runs haproxy in the foreground with cfg until the test ends;
// its log is printed if the test failed.
func StartHAProxy(t testing.TB, bin, cfg string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("haproxy log:\n%s", b)
		}
	})
}

var statsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}

// HAProxyStatus reads HAProxy's stats CSV at statsURL: "proxy/server" →
// status (UP, DOWN, …).
func HAProxyStatus(statsURL string) (map[string]string, error) {
	resp, err := statsClient.Get(statsURL + "/;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("stats CSV: %v", err)
	}
	col := -1
	for i, h := range rows[0] {
		if strings.TrimPrefix(h, "# ") == "status" {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("stats CSV has no status column: %v", rows[0])
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > col {
			out[row[0]+"/"+row[1]] = strings.Fields(row[col] + " ")[0]
		}
	}
	return out, nil
}

// WaitHAProxyStatus polls the stats until every server in want has its
// status (HAProxy 2.6 starts every server UP until its first check fails).
func WaitHAProxyStatus(t testing.TB, statsURL string, within time.Duration, want map[string]string) {
	t.Helper()
	var got map[string]string
	var err error
	deadline := time.Now().Add(within)
	for {
		got, err = HAProxyStatus(statsURL)
		ok := err == nil
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy servers %v (%v) after %s, want %v", got, err, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
