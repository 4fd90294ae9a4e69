package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
)

// newTestService returns a Service publishing snap, read at the fixed time
// now. Nothing refreshes it.
func newTestService(t testing.TB, snap *Snapshot, mod func(*Options)) *Service {
	t.Helper()
	o := Options{Name: snap.Name, Scope: snap.Scope, Standalone: true, Clock: clock.NewFake(now), Log: zerolog.Nop()}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	s.update(func(n *Snapshot) { *n = *snap })
	return s
}

// serve runs svc behind the production server (NewServer, Serve) on a
// loopback port until the test ends and returns its base URL; with tlsCfg
// it serves HTTPS.
func serve(t testing.TB, svc *Service, tlsCfg ...*tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var cfg *tls.Config
	scheme := "http"
	if len(tlsCfg) > 0 {
		cfg, scheme = tlsCfg[0], "https"
	}
	srv := NewServer(svc.Handle, cfg, zerolog.Nop())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, []net.Listener{l}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return scheme + "://" + l.Addr().String()
}

// client never keeps connections, so no goroutine outlives a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

type response struct {
	code   int
	header http.Header
	body   string
}

func do(t testing.TB, method, url string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestHTTPMethods(t *testing.T) {
	t.Parallel()
	snaps := map[string]*Snapshot{"primary": primary(), "replica": replica(), "lagging replica": laggingReplica(),
		"stopped postgres": stoppedPG(), "etcd unreachable": etcdDown(), "standalone": standalone(primary())}
	for name, snap := range snaps {
		svc := newTestService(t, snap, nil)
		url := serve(t, svc)
		for _, p := range paths {
			if p == "/metrics" {
				continue
			}
			path, query, _ := strings.Cut(p, "?")
			wantCode, body := Decide(snap, bounds, now, ParseRequest(path, query))
			get := do(t, "GET", url+p)
			if get.code != wantCode {
				t.Errorf("%s: GET %s: %d, want %d", name, p, get.code, wantCode)
			}
			if (body == BodyNone) != (get.body == "") {
				t.Errorf("%s: GET %s: body %q for %v", name, p, get.body, body)
			}
			if body == BodyStatus && get.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: GET %s: Content-Type %q", name, p, get.header.Get("Content-Type"))
			}
			head := do(t, "HEAD", url+p)
			if head.code != wantCode || head.body != "" || head.header.Get("Content-Length") != fmt.Sprint(len(get.body)) {
				t.Errorf("%s: HEAD %s: %d, body %q, Content-Length %q; want %d, none, %d",
					name, p, head.code, head.body, head.header.Get("Content-Length"), wantCode, len(get.body))
			}
			opt := do(t, "OPTIONS", url+p)
			if opt.code != wantCode || opt.body != "" || opt.header.Get("Allow") != "GET, HEAD, OPTIONS" {
				t.Errorf("%s: OPTIONS %s: %d, body %q, Allow %q; want %d", name, p, opt.code, opt.body, opt.header.Get("Allow"), wantCode)
			}
		}
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "TRACE"} {
			r := do(t, m, url+"/primary")
			if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD, OPTIONS" {
				t.Errorf("%s /primary: %d Allow %q, want 405", m, r.code, r.header.Get("Allow"))
			}
		}
	}
}

func TestHTTPBodies(t *testing.T) {
	t.Parallel()
	url := serve(t, newTestService(t, primary(), func(o *Options) {
		o.ExtraHeaders = map[string]string{"x-frame-options": "DENY"}
	}))
	r := do(t, "GET", url+"/patroni")
	if r.code != 200 || !strings.Contains(r.body, `"role":"master"`) || !strings.Contains(r.body, `"xlog":{"location":83886176}`) {
		t.Errorf("/patroni: %d %s", r.code, r.body)
	}
	if r.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("extra header missing: %v", r.header)
	}
	if r := do(t, "GET", url+"/config"); r.body != `{"ttl":8,"loop_wait":1}` {
		t.Errorf("/config %s", r.body)
	}
	if r := do(t, "GET", url+"/cluster"); !strings.Contains(r.body, `"name":"node2","role":"replica"`) {
		t.Errorf("/cluster %s", r.body)
	}
	r = do(t, "GET", url+"/metrics")
	for _, want := range []string{
		`patroni_primary{scope="demo"} 1`, `patroni_xlog_location{scope="demo"} 8.3886176e+07`,
		`patroni_postgres_timeline{scope="demo"} 3`, `pgha_primary_check{scope="demo"} 1`,
		`pgha_lease_valid_seconds{scope="demo"} 7`, `pgha_supervise_state{scope="demo",state="running"} 1`,
		`pgha_supervise_state{scope="demo",state="fenced"} 0`, `patroni_version{scope="demo"} 100`,
		"go_goroutines",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	rl := serve(t, newTestService(t, laggingReplica(), nil))
	if r := do(t, "GET", rl+"/metrics"); !strings.Contains(r.body, `pgha_replication_lag_bytes{scope="demo"} 1.048576e+08`) {
		t.Errorf("lagging replica /metrics lacks the lag:\n%s", r.body)
	}
}

func TestHTTPAuth(t *testing.T) {
	t.Parallel()
	auth := &config.BasicAuth{Username: "admin", Password: "s3cret"}
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:s3cret"))
	bad := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:wrong"))
	url := serve(t, newTestService(t, primary(), func(o *Options) { o.Authentication, o.AuthReadEndpoints = auth, true }))
	for _, p := range []string{"/config", "/cluster", "/history"} {
		r := do(t, "GET", url+p)
		if r.code != 401 || r.header.Get("WWW-Authenticate") != `Basic realm="Patroni"` || !strings.Contains(r.body, "no auth header") {
			t.Errorf("%s without credentials: %d %q %q", p, r.code, r.header.Get("WWW-Authenticate"), r.body)
		}
		for _, h := range []string{bad, "Bearer x", strings.ToLower(good), good + "x"} {
			if r := do(t, "GET", url+p, "Authorization", h); r.code != 401 || !strings.Contains(r.body, "not authenticated") {
				t.Errorf("%s with %q: %d %q", p, h, r.code, r.body)
			}
		}
		if r := do(t, "GET", url+p, "Authorization", good); r.code != 200 {
			t.Errorf("%s with good credentials: %d", p, r.code)
		}
		if r := do(t, "HEAD", url+p); r.code != 401 {
			t.Errorf("HEAD %s without credentials: %d", p, r.code)
		}
	}
	for _, p := range []string{"/primary", "/replica", "/patroni", "/health", "/metrics", "/liveness"} {
		if r := do(t, "GET", url+p); r.code == 401 {
			t.Errorf("%s asks for credentials; only configuration-revealing endpoints should", p)
		}
	}
	// Without auth_read_endpoints the read endpoints are open, as in Patroni.
	open := serve(t, newTestService(t, primary(), func(o *Options) { o.Authentication = auth }))
	if r := do(t, "GET", open+"/config"); r.code != 200 {
		t.Errorf("/config without auth_read_endpoints: %d", r.code)
	}
	if _, err := New(Options{Name: "n", Scope: "s", Standalone: true, AuthReadEndpoints: true}); err == nil ||
		!strings.Contains(err.Error(), "restapi.authentication") {
		t.Errorf("auth_read_endpoints without credentials: %v", err)
	}
}

// raw sends req on a new connection and returns the status line, or the
// read error, and how long the answer took.
func raw(t *testing.T, addr, req string) (string, time.Duration, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, req)
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), time.Since(start), err
}

func TestHTTPBadInput(t *testing.T) {
	t.Parallel()
	addr := strings.TrimPrefix(serve(t, newTestService(t, replica(), nil)), "http://")
	tests := []struct {
		name, req, status string
	}{
		{"bad escape in the path", "GET /repl%zzica HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad escapes in the query", "GET /replica?lag=%zz&tag_%=1&=&&lag=1 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"unparsable lag", "GET /replica?lag=16XB HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"not HTTP", "HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad version", "GET /replica HTTP/9.9\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
		{"no host", "GET /replica HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"absolute URL", "GET http://x/replica HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"HTTP/1.0", "GET /replica HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK"},
		{"binary", "\x00\x01\x02\xff\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"1 MB header", "GET /replica HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n",
			"HTTP/1.1 431 Request Header Fields Too Large"},
		{"many headers", "GET /replica HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 20000) + "\r\n",
			"HTTP/1.1 431 Request Header Fields Too Large"},
		{"100 kB URL", "GET /replica?" + strings.Repeat("tag_a=b&", 12800) + " HTTP/1.1\r\nHost: x\r\n\r\n",
			"HTTP/1.1 431 Request Header Fields Too Large"},
		{"HTTP/2.0 in HTTP/1 syntax", "GET /replica HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
		{"HTTP/0.9", "GET /replica HTTP/0.9\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
		{"escaped path", "GET /rep%6Cica HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"control byte in the path", "GET /repl\x01ica HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"no leading slash", "GET replica HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"malformed Content-Length", "GET /replica HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"small body", "GET /replica HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 200 OK"},
		{"chunked body", "POST /replica HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			"HTTP/1.1 405 Method Not Allowed"},
		{"100 kB body", "POST /replica HTTP/1.1\r\nHost: x\r\nContent-Length: 102400\r\n\r\n" + strings.Repeat("a", 100<<10),
			"HTTP/1.1 413 Request Entity Too Large"},
	}
	for _, tt := range tests {
		got, took, err := raw(t, addr, tt.req)
		if !strings.HasPrefix(got, tt.status) {
			t.Errorf("%s: %q (%v), want %q", tt.name, got, err, tt.status)
		}
		if took > time.Second {
			t.Errorf("%s: answered after %v", tt.name, took)
		}
	}
}

// TestHTTPEndlessHeader streams a header that never ends: the server must
// stop reading at MaxHeaderBytes and answer 431, not buffer without bound.
func TestHTTPEndlessHeader(t *testing.T) {
	t.Parallel()
	addr := strings.TrimPrefix(serve(t, newTestService(t, replica(), nil)), "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sent int64
	var mu sync.Mutex
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		io.WriteString(c, "GET /replica HTTP/1.1\r\nHost: x\r\nX-Endless: ")
		chunk := []byte(strings.Repeat("a", 4096))
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := c.Write(chunk)
			mu.Lock()
			sent += int64(n)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	close(stop)
	<-writerDone
	if !strings.HasPrefix(line, "HTTP/1.1 431") {
		t.Fatalf("endless header: %q, %v; want 431", line, err)
	}
	mu.Lock()
	t.Logf("431 after the client sent %d bytes (limit %d)", sent, MaxHeaderBytes)
	mu.Unlock()
}

// TestHTTPSlowloris opens connections that send half a header and never
// finish: each is closed within ReadHeaderTimeout (plus slack), and while
// they hang, health checks are still answered at once.
func TestHTTPSlowloris(t *testing.T) {
	t.Parallel()
	addr := strings.TrimPrefix(serve(t, newTestService(t, primary(), nil)), "http://")
	const n = 200
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /primary HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	start := time.Now()
	var lat latencies
	for range 100 {
		t0 := time.Now()
		r := do(t, "GET", "http://"+addr+"/primary")
		lat.add(time.Since(t0))
		if r.code != 200 {
			t.Errorf("/primary during slowloris: %d", r.code)
		}
	}
	lat.check(t, "/primary while 200 clients hang")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(start.Add(ReadHeaderTimeout + 2*time.Second))
			b, err := io.ReadAll(c)
			if err != nil {
				errs <- fmt.Errorf("connection not closed by the server: %v (read %q)", err, b)
				return
			}
			if took := time.Since(start); took > ReadHeaderTimeout+time.Second {
				errs <- fmt.Errorf("closed after %v, want within %v", took, ReadHeaderTimeout+time.Second)
			}
		}()
	}
	wg.Wait()
	close(errs)
	count := 0
	for err := range errs {
		if count++; count <= 3 {
			t.Error(err)
		}
	}
	if count > 0 {
		t.Errorf("%d of %d slow connections misbehaved", count, n)
	}
}

// TestHTTPSlowBody announces a body and never sends it: the connection is
// answered and closed within ReadTimeout, not held open.
func TestHTTPSlowBody(t *testing.T) {
	t.Parallel()
	addr := strings.TrimPrefix(serve(t, newTestService(t, replica(), nil)), "http://")
	got, took, err := raw(t, addr, "GET /replica HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	if min := ReadTimeout - ReadHeaderTimeout; !strings.HasPrefix(got, "HTTP/1.1 408") || took < min || took > ReadTimeout+time.Second {
		t.Errorf("body never finished: %q (%v) after %v, want 408 after %v to %v", got, err, took, min, ReadTimeout)
	}
}

// TestHTTPKeepAlive sends several requests, pipelined, on one connection.
func TestHTTPKeepAlive(t *testing.T) {
	t.Parallel()
	addr := strings.TrimPrefix(serve(t, newTestService(t, primary(), nil)), "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for round := range 3 {
		io.WriteString(c, "GET /primary HTTP/1.1\r\nHost: x\r\n\r\nHEAD /replica HTTP/1.1\r\nHost: x\r\n\r\n")
		for _, want := range []int{200, 503} {
			req, _ := http.NewRequest("GET", "/", nil)
			if want == 503 {
				req.Method = "HEAD"
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want || resp.Close {
				t.Errorf("round %d: %d close=%v, want %d on a kept-alive connection", round, resp.StatusCode, resp.Close, want)
			}
		}
	}
}

// TestHTTPAccessLog checks the access log at debug level.
func TestHTTPAccessLog(t *testing.T) {
	t.Parallel()
	var buf logxtest.Buffer
	url := serve(t, newTestService(t, primary(), func(o *Options) { o.Log = zerolog.New(&buf).Level(zerolog.DebugLevel) }))
	do(t, "GET", url+"/replica?lag=1MB")
	do(t, "DELETE", url+"/primary")
	logs := buf.String()
	for _, want := range []string{`"method":"GET","path":"/replica","query":"lag=1MB"`, `"status":503`,
		`"method":"DELETE","path":"/primary","query":"","remote":"127.0.0.1:`, `"status":405`, `"message":"request"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %s:\n%s", want, logs)
		}
	}
	quiet := &logxtest.Buffer{}
	url = serve(t, newTestService(t, primary(), func(o *Options) { o.Log = zerolog.New(quiet).Level(zerolog.InfoLevel) }))
	do(t, "GET", url+"/primary")
	if strings.Contains(quiet.String(), `"request"`) {
		t.Errorf("access log at info level:\n%s", quiet.String())
	}
}

// TestServeShutdown cancels Serve while one connection idles between
// requests and another is in the middle of its headers: Serve returns
// without waiting for either beyond ReadHeaderTimeout, and both are closed.
func TestServeShutdown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := newTestService(t, primary(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewServer(svc.Handle, nil, zerolog.Nop()), []net.Listener{l}) }()

	idle, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(idle, "GET /primary HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	half, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(half, "GET /primary HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancellation: %v", err)
		}
		if took := time.Since(start); took > ReadHeaderTimeout+time.Second {
			t.Errorf("Serve returned %v after cancellation", took)
		}
	case <-time.After(ShutdownTimeout + 2*time.Second):
		t.Fatal("Serve did not return after cancellation")
	}
	for name, r := range map[string]io.Reader{"idle": br, "half-sent": half} {
		if _, err := io.ReadAll(r); err != nil {
			t.Errorf("%s connection not closed by the server: %v", name, err)
		}
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("listener still open after Serve returned")
	}
}

// TestServeListenerFails: a listener closed under Serve ends it with an
// error instead of leaving it serving nothing.
func TestServeListenerFails(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), NewServer(newTestService(t, primary(), nil).Handle, nil, zerolog.Nop()), []net.Listener{l})
	}()
	time.Sleep(100 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve with its listener closed: %v", err)
		}
	case <-time.After(ShutdownTimeout + 2*time.Second):
		t.Fatal("Serve did not return after its listener closed")
	}
	if err := Serve(context.Background(), nil, nil); err == nil {
		t.Error("Serve without listeners: no error")
	}
}

func TestLimitListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	defer l.Close()
	var dialed []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		dialed = append(dialed, c)
		defer c.Close()
	}
	a, _ := l.Accept()
	b, _ := l.Accept()
	third := make(chan net.Conn)
	go func() {
		c, _ := l.Accept()
		third <- c
	}()
	select {
	case <-third:
		t.Fatal("third connection accepted beyond the limit of 2")
	case <-time.After(100 * time.Millisecond):
	}
	a.Close()
	a.Close() // a second Close must not release twice
	select {
	case c := <-third:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("third connection not accepted after one closed")
	}
	// closeConns closes what is still open, which releases its slot.
	l.closeConns()
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after closeConns: %v", err)
	}
	if len(l.sem) != 0 || len(l.conns) != 0 {
		t.Errorf("after closeConns: %d slots taken, %d connections kept", len(l.sem), len(l.conns))
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}

func TestListenAddress(t *testing.T) {
	tests := []struct{ flag, cfg, want string }{
		{"", "", "127.0.0.1:8008"},
		{"", "0.0.0.0:8009", "0.0.0.0:8009"},
		{"", "*:8009", ":8009"},
		{"127.0.0.2:1", "0.0.0.0:8009", "127.0.0.2:1"},
	}
	for _, tt := range tests {
		if got := ListenAddress(tt.flag, tt.cfg); got != tt.want {
			t.Errorf("ListenAddress(%q, %q) = %q, want %q", tt.flag, tt.cfg, got, tt.want)
		}
	}
}

// BenchmarkHandle measures the handler alone on a request fasthttp has
// read, as the server calls it.
func BenchmarkHandle(b *testing.B) {
	svc := newTestService(b, primary(), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/primary")
		ctx.Request.Header.SetHost("x")
		for pb.Next() {
			ctx.Response.Reset()
			svc.Handle(&ctx)
		}
		if ctx.Response.StatusCode() != 200 {
			b.Errorf("status %d", ctx.Response.StatusCode())
		}
	})
}

// BenchmarkServe measures a kept-alive GET /primary through the production
// server (NewServer, Serve) over an in-memory listener.
func BenchmarkServe(b *testing.B) {
	svc := newTestService(b, primary(), nil)
	ln := fasthttputil.NewInmemoryListener()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewServer(svc.Handle, nil, zerolog.Nop()), []net.Listener{ln}) }()
	defer func() {
		cancel()
		<-done
	}()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := ln.Dial()
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		req := []byte("GET /primary HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		body := make([]byte, 4096)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			n := 0
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					b.Error(err)
					return
				}
				if len(line) <= 2 {
					break
				}
				if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
					n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
				}
			}
			if _, err := io.ReadFull(br, body[:n]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
