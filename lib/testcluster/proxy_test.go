package testcluster

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// silence is how long a test waits to conclude that nothing arrives.
const silence = 300 * time.Millisecond

// target is a TCP server whose accepted connections the test drives.
type target struct {
	l        net.Listener
	accepted chan net.Conn
}

func startTarget(t *testing.T) *target {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{l: l, accepted: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tg.accepted <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for {
			select {
			case c := <-tg.accepted:
				c.Close()
			default:
				return
			}
		}
	})
	return tg
}

// next returns the next connection the target accepted, or nil if none
// arrives within silence.
func (tg *target) next() net.Conn {
	select {
	case c := <-tg.accepted:
		return c
	case <-time.After(silence):
		return nil
	}
}

func startTestProxy(t *testing.T, tg *target) *Proxy {
	t.Helper()
	p, err := StartProxy(tg.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// dial connects to p and returns the client side and, if the proxy
// forwarded the connection, the target's side.
func dial(t *testing.T, p *Proxy, tg *target) (client, server net.Conn) {
	t.Helper()
	client, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	server = tg.next()
	if server != nil {
		t.Cleanup(func() { server.Close() })
	}
	return client, server
}

// expect reads len(want) bytes from c within a second.
func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %q: %v (got %q)", want, err, buf)
	}
	if string(buf) != want {
		t.Fatalf("read %q, want %q", buf, want)
	}
}

// expectSilence checks that c neither receives a byte nor sees the
// connection end (EOF or reset) within silence.
func expectSilence(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(silence))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	var ne net.Error
	if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: read %q, %v; want silence (a read timeout)", what, buf[:n], err)
	}
}

// expectClosed checks that c sees its connection end within a second.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err == nil && n > 0 {
			continue // data sent before the end
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: connection still open after a second", what)
		}
		return
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

func TestProxyForwards(t *testing.T) {
	tg := startTarget(t)
	p := startTestProxy(t, tg)
	client, server := dial(t, p, tg)
	if server == nil {
		t.Fatal("the proxy did not connect to the target")
	}
	write(t, client, "ping")
	expect(t, server, "ping")
	write(t, server, "pong")
	expect(t, client, "pong")

	// A half close travels through, and the other direction still works.
	if err := client.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("target read after the client's half close: %d, %v; want EOF", n, err)
	}
	write(t, server, "bye")
	expect(t, client, "bye")
	server.Close()
	expectClosed(t, client, "client after the target closed")
	waitConns(t, p, 0)
}

func TestProxyPartitionIsABlackHole(t *testing.T) {
	tg := startTarget(t)
	p := startTestProxy(t, tg)
	client, server := dial(t, p, tg)
	write(t, client, "before")
	expect(t, server, "before")

	p.Partition()
	if !p.Partitioned() {
		t.Fatal("Partitioned() false after Partition")
	}
	write(t, client, "lost-up")
	write(t, server, "lost-down")
	expectSilence(t, server, "target during the partition")
	expectSilence(t, client, "client during the partition")

	// An end of either side is not passed on either.
	client.(*net.TCPConn).CloseWrite()
	expectSilence(t, server, "target after the client's half close during the partition")

	// New connections are accepted but lead nowhere.
	c2, s2 := dial(t, p, tg)
	if s2 != nil {
		t.Fatal("the proxy connected to the target during the partition")
	}
	write(t, c2, "hello?")
	expectSilence(t, c2, "new client during the partition")
	if got := p.Conns(); got != 2 {
		t.Errorf("%d connections held during the partition, want 2", got)
	}
}

func TestProxyHeal(t *testing.T) {
	tg := startTarget(t)
	p := startTestProxy(t, tg)
	client, server := dial(t, p, tg)
	p.Partition()
	c2, _ := dial(t, p, tg)

	p.Heal()
	if p.Partitioned() {
		t.Fatal("Partitioned() true after Heal")
	}
	expectClosed(t, client, "client silenced by the partition, after Heal")
	expectClosed(t, server, "target side silenced by the partition, after Heal")
	expectClosed(t, c2, "client accepted during the partition, after Heal")

	c3, s3 := dial(t, p, tg)
	if s3 == nil {
		t.Fatal("the proxy did not connect to the target after Heal")
	}
	write(t, c3, "again")
	expect(t, s3, "again")
	write(t, s3, "yes")
	expect(t, c3, "yes")
	waitConns(t, p, 1)
}

func TestProxyClose(t *testing.T) {
	tg := startTarget(t)
	p := startTestProxy(t, tg)
	client, server := dial(t, p, tg)
	p.Partition()
	c2, _ := dial(t, p, tg)
	p.Close()
	expectClosed(t, client, "client after Close")
	expectClosed(t, server, "target side after Close")
	expectClosed(t, c2, "silenced client after Close")
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the proxy still accepts connections after Close")
	}
	p.Close() // a second Close is harmless
}

// TestProxyTargetDown: a connection the target refuses is closed.
func TestProxyTargetDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p, err := StartProxy(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosed(t, c, "client of a proxy whose target is down")
}

// TestProxyDelay: with a delay, every chunk arrives that much after it was
// sent, in each direction and in order, even when more is sent meanwhile;
// without one, at once again.
func TestProxyDelay(t *testing.T) {
	const d = 200 * time.Millisecond
	tg := startTarget(t)
	p := startTestProxy(t, tg)
	client, server := dial(t, p, tg)
	p.SetDelay(d)

	sent := time.Now()
	write(t, client, "one,")
	time.Sleep(d / 2)
	write(t, client, "two")
	server.SetReadDeadline(time.Now().Add(d / 4))
	if n, err := server.Read(make([]byte, 16)); n > 0 || err == nil {
		t.Fatalf("target read %d bytes %s after the write, want none before the delay", n, time.Since(sent))
	}
	expect(t, server, "one,")
	if got := time.Since(sent); got < d {
		t.Errorf("first chunk arrived %s after it was sent, want at least %s", got, d)
	}
	expect(t, server, "two")
	if got := time.Since(sent); got < d+d/2 {
		t.Errorf("second chunk arrived %s after the first was sent, want at least %s", got, d+d/2)
	}

	sent = time.Now()
	write(t, server, "back")
	expect(t, client, "back")
	if got := time.Since(sent); got < d {
		t.Errorf("answer arrived %s after it was sent, want at least %s", got, d)
	}

	p.SetDelay(0)
	sent = time.Now()
	write(t, client, "fast")
	expect(t, server, "fast")
	if got := time.Since(sent); got > d/2 {
		t.Errorf("without a delay a chunk took %s", got)
	}

	// A half close waits behind the data sent before it.
	p.SetDelay(d)
	write(t, client, "last")
	client.(*net.TCPConn).CloseWrite()
	expect(t, server, "last")
	server.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("target read after the client's delayed half close: %d, %v; want EOF", n, err)
	}
}

// TestProxyDelayThenPartition: what was read before a partition still
// arrives after its delay; what is sent after it does not.
func TestProxyDelayThenPartition(t *testing.T) {
	const d = 200 * time.Millisecond
	tg := startTarget(t)
	p := startTestProxy(t, tg)
	client, server := dial(t, p, tg)
	p.SetDelay(d)
	write(t, client, "on the wire")
	time.Sleep(d / 4)
	p.Partition()
	write(t, client, "lost")
	expect(t, server, "on the wire")
	expectSilence(t, server, "target after the partition")
}

func waitConns(t *testing.T, p *Proxy, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for p.Conns() != want {
		if time.Now().After(deadline) {
			t.Fatalf("proxy holds %d connections, want %d", p.Conns(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
