package testcluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP forwarder on 127.0.0.1 that can be cut off like a network
// partition. Options.EtcdProxy puts one between every node and etcd.
//
// Partition turns it into a black hole: nothing more is forwarded in either
// direction, yet no connection is closed or reset — both peers see silence,
// as if every packet were dropped — and new connections are accepted but
// connected to nothing. Heal closes those silenced connections (a real
// network would have timed them out) and forwards new connections again.
//
// SetDelay makes it a slow link instead: every chunk it reads is passed on
// that much later, in each direction, in order.
type Proxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu          sync.Mutex
	conns       map[*proxyConn]struct{}
	partitioned bool
	closed      bool
	delay       time.Duration
}

// proxyConn is one accepted connection and, unless it was accepted during a
// partition, its connection to the target.
type proxyConn struct {
	client net.Conn
	frozen bool // guarded by Proxy.mu
	done   chan struct{}

	mu     sync.Mutex
	server net.Conn // nil until dialled
	closed bool
}

func (c *proxyConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	close(c.done)
	c.client.Close()
	if c.server != nil {
		c.server.Close()
	}
}

// setServer records the connection to the target; false if c is closed.
func (c *proxyConn) setServer(s net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.server = s
	return true
}

// StartProxy listens on a free port of 127.0.0.1 and forwards every
// connection to target (host:port) until Close.
func StartProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	}
	p := &Proxy{l: l, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Partition stops all forwarding; see Proxy. Bytes the proxy had already
// read when it is called may still be delivered, like packets already on
// the wire; nothing read later is.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partitioned = true
	for c := range p.conns {
		c.frozen = true
	}
}

// SetDelay delays every chunk read from now on by d before it is passed
// on, in both directions of every connection, keeping the order of each
// direction: a link with d of latency each way, so a request and its answer
// take 2·d more. Chunks already read keep the delay they were read with; 0
// ends the delay. A partition still drops what is read after it.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = max(d, 0)
}

func (p *Proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

// Heal closes every connection silenced by Partition and forwards new
// connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.partitioned = false
	var frozen []*proxyConn
	for c := range p.conns {
		if c.frozen {
			frozen = append(frozen, c)
			delete(p.conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range frozen {
		c.close()
	}
}

// Partitioned reports whether the proxy is partitioned.
func (p *Proxy) Partitioned() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.partitioned
}

// Conns returns the number of connections the proxy holds open, forwarded
// or silenced.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines to end. It may be called more than once.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = map[*proxyConn]struct{}{}
	p.mu.Unlock()
	p.l.Close()
	for c := range conns {
		c.close()
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve connects client to the target, or holds it silent during a
// partition, until the pair ends or is closed.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	c := &proxyConn{client: client, done: make(chan struct{})}
	if !p.track(c) {
		c.close()
		return
	}
	if p.isFrozen(c) {
		<-c.done // read nothing, answer nothing, until Heal or Close
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		p.drop(c)
		return
	}
	if !c.setServer(server) { // closed meanwhile
		server.Close()
		return
	}
	back := make(chan struct{})
	p.wg.Go(func() {
		defer close(back)
		p.pipe(c, server, client)
	})
	p.pipe(c, client, server)
	<-back
	p.drop(c)
}

// track registers c, frozen if the proxy is partitioned; false once the
// proxy is closed.
func (p *Proxy) track(c *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	c.frozen = p.partitioned
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) isFrozen(c *proxyConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.frozen
}

// drop forgets and closes c.
func (p *Proxy) drop(c *proxyConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.close()
}

// chunk is what pipe read at once, due to be passed on at due; eof marks
// the end of the source (passed on as a half close).
type chunk struct {
	data []byte
	due  time.Time
	eof  bool
}

// pipe copies src to dst until src ends (passed on as a half close) or
// either fails (then both are closed). Each chunk read is passed on once
// the proxy's delay has passed since it was read, by a goroutine of its own
// so that reading goes on meanwhile. Once c is frozen it drops what it read
// and, reading nothing more, waits until c is closed; chunks read before
// are still passed on, like packets already on the wire.
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn) {
	queue := make(chan chunk, 1024)
	delivered := make(chan struct{})
	p.wg.Go(func() {
		defer close(delivered)
		p.deliver(c, queue, dst)
	})
	defer func() { <-delivered }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.isFrozen(c) {
			<-c.done
			return
		}
		due := time.Now().Add(p.currentDelay())
		if n > 0 {
			select {
			case queue <- chunk{data: append([]byte(nil), buf[:n]...), due: due}:
			case <-c.done:
				return
			}
		}
		if err != nil {
			if _, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				select {
				case queue <- chunk{eof: true, due: due}:
				case <-c.done:
				}
			} else {
				p.drop(c)
			}
			return
		}
	}
}

// deliver writes the chunks of queue to dst, each at its due time, until
// the end of the source or until c is closed.
func (p *Proxy) deliver(c *proxyConn, queue <-chan chunk, dst net.Conn) {
	for {
		var ch chunk
		select {
		case ch = <-queue:
		case <-c.done:
			return
		}
		if wait := time.Until(ch.due); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-c.done:
				timer.Stop()
				return
			}
		}
		if ch.eof {
			dst.(*net.TCPConn).CloseWrite()
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			p.drop(c)
			return
		}
	}
}
