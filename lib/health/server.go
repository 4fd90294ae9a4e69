package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"github.com/pg-ha/pg-ha/lib/config"
)

// HTTP server limits. A client gets a bounded answer in bounded time and
// memory whatever it sends: headers (request line included) larger than
// MaxHeaderBytes are refused with 431, a client that does not finish its
// headers within ReadHeaderTimeout is disconnected, a body (pg-healthd reads
// none) larger than MaxBodyBytes is refused with 413 and must arrive within
// ReadTimeout, and at most MaxConns connections are open at once (more wait
// in the kernel's accept queue).
const (
	ReadHeaderTimeout = 2 * time.Second
	ReadTimeout       = 5 * time.Second
	WriteTimeout      = 5 * time.Second
	IdleTimeout       = 30 * time.Second
	MaxHeaderBytes    = 16 << 10
	MaxBodyBytes      = 16 << 10
	MaxConns          = 1024
	// ShutdownTimeout bounds how long Serve waits for requests in flight.
	ShutdownTimeout = 5 * time.Second
	// DefaultListen is used when neither --listen nor restapi.listen is set.
	DefaultListen = "127.0.0.1:8008"
)

// NewServer returns the HTTP server (fasthttp) for h with the limits above;
// with tlsConfig Serve serves HTTPS. The server's own messages (TLS
// handshake failures, accept and connection errors) go to log at debug
// level.
//
// fasthttp has one read deadline per request where net/http has two: the
// server's ReadTimeout is ReadHeaderTimeout, from the connection's opening
// (or, on a kept-alive connection, from the request's first byte) to the
// end of the headers; a request that announces a body then has
// ReadTimeout-ReadHeaderTimeout more to send it, so none takes longer than
// ReadTimeout to read. The read buffer, which also bounds the headers, is
// MaxHeaderBytes: longer headers get 431.
func NewServer(h fasthttp.RequestHandler, tlsConfig *tls.Config, log zerolog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:        h,
		TLSConfig:      tlsConfig,
		ErrorHandler:   errorHandler,
		HeaderReceived: bodyDeadline,
		// Serve caps the connections at the listener, so they queue instead
		// of being refused; the worker limit is only a backstop above it
		// (a worker is busy a moment longer than its connection is open).
		Concurrency:                  2 * MaxConns,
		ReadBufferSize:               MaxHeaderBytes,
		ReadTimeout:                  ReadHeaderTimeout,
		WriteTimeout:                 WriteTimeout,
		IdleTimeout:                  IdleTimeout,
		MaxRequestBodySize:           MaxBodyBytes,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		Logger:                       debugLogger{log},
	}
}

// bodyDeadline gives a request that announces a body the rest of
// ReadTimeout to send it, as net/http's ReadTimeout did; a request without
// one keeps the header deadline.
func bodyDeadline(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() == 0 {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{ReadTimeout: ReadTimeout - ReadHeaderTimeout}
}

// errorHandler answers a request that could not be read: 431 for headers
// over MaxHeaderBytes, 413 for a body over MaxBodyBytes, 408 when the
// client was too slow, else 400. The connection is closed after it.
func errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		plainError(ctx, "request header fields too large", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		plainError(ctx, "request body too large", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		plainError(ctx, "request timeout", fasthttp.StatusRequestTimeout)
	default:
		plainError(ctx, "bad request", fasthttp.StatusBadRequest)
	}
}

type debugLogger struct{ log zerolog.Logger }

func (d debugLogger) Printf(format string, args ...any) {
	d.log.Debug().Msg(strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// Serve serves srv on every listener (HTTPS when srv.TLSConfig is set), at
// most MaxConns connections at once per listener, until ctx is cancelled or
// a listener fails; then it shuts the server down, waiting up to
// ShutdownTimeout for requests in flight before closing the connections
// left, and closes the listeners. It returns nil after a cancellation, else
// the listener's error.
func Serve(ctx context.Context, srv *fasthttp.Server, listeners []net.Listener) error {
	if len(listeners) == 0 {
		return errors.New("serve: no listener")
	}
	g, gctx := errgroup.WithContext(ctx)
	limited := make([]*limitListener, len(listeners))
	for i, l := range listeners {
		ll := newLimitListener(l, MaxConns)
		limited[i] = ll
		var served net.Listener = ll
		if srv.TLSConfig != nil {
			served = tls.NewListener(ll, srv.TLSConfig)
		}
		g.Go(func() error {
			err := srv.Serve(served)
			switch {
			case gctx.Err() != nil: // shut down
				return nil
			case err == nil: // fasthttp says nil for a listener closed under it
				return fmt.Errorf("serve %s: %w", l.Addr(), net.ErrClosed)
			}
			return fmt.Errorf("serve %s: %w", l.Addr(), err)
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		err := srv.ShutdownWithContext(sctx)
		// Closed here too: a Serve that had not yet registered its listener
		// when Shutdown ran returns once it is closed.
		for _, l := range limited {
			l.Close()
			if err != nil {
				l.closeConns()
			}
		}
		return nil
	})
	return g.Wait()
}

// ListenAddress picks where to listen: the --listen flag, else
// restapi.listen, else DefaultListen. A host of "*" means every address, as
// in Patroni.
func ListenAddress(flag, restapi string) string {
	addr := flag
	if addr == "" {
		addr = restapi
	}
	if addr == "" {
		return DefaultListen
	}
	if rest, ok := strings.CutPrefix(addr, "*:"); ok {
		return ":" + rest
	}
	return addr
}

// Listeners returns the sockets systemd passed (socket activation), or
// else one TCP listener on addr. activated tells which. The activation
// variables (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) are removed from the
// environment.
func Listeners(addr string) (ls []net.Listener, activated bool, err error) {
	passed, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("socket activation: %w", err)
	}
	for _, l := range passed {
		if l != nil {
			ls = append(ls, l)
		}
	}
	if len(ls) > 0 {
		return ls, true, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("listen on %s (restapi.listen or --listen): %w", addr, err)
	}
	return []net.Listener{l}, false, nil
}

// limitListener accepts at most n connections at once and keeps the open
// ones, so they can be closed when a graceful shutdown times out.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	conns map[*limitConn]struct{}
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{}),
		conns: map[*limitConn]struct{}{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// closeConns closes every connection still open.
func (l *limitListener) closeConns() {
	l.mu.Lock()
	conns := make([]*limitConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}

// TLSConfig builds the HTTPS configuration from the restapi section:
// certfile (and keyfile, else the key is in certfile, optionally encrypted
// with keyfile_password as a legacy PEM block), cafile and verify_client
// (none, optional, required). Certificate and key are re-read when their
// files change, checked at most once a second, so a renewed certificate is
// served without a restart. It returns nil without certfile. ciphers is an
// OpenSSL cipher list Go cannot apply: it is reported in warning and Go's
// TLS 1.2+ defaults are used.
func TLSConfig(r config.RestAPI) (cfg *tls.Config, warning string, err error) {
	if r.CertFile == "" {
		return nil, "", nil
	}
	kl := &keyLoader{cert: r.CertFile, key: r.KeyFile, password: r.KeyFilePassword}
	if kl.key == "" {
		kl.key = kl.cert
	}
	if _, err := kl.get(nil); err != nil {
		return nil, "", err
	}
	// HTTP/1.1 only: the server speaks no HTTP/2.
	cfg = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kl.get, NextProtos: []string{"http/1.1"}}
	if r.CAFile != "" {
		pemData, err := os.ReadFile(r.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("restapi.cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, "", fmt.Errorf("restapi.cafile: %s holds no PEM certificate", r.CAFile)
		}
		cfg.ClientCAs = pool
	}
	switch strings.ToLower(r.VerifyClient) {
	case "", "none":
	case "optional":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, "", fmt.Errorf("restapi.verify_client: %q is not one of none, optional, required", r.VerifyClient)
	}
	if r.Ciphers != "" {
		warning = "restapi.ciphers is an OpenSSL cipher list and is ignored; Go's TLS 1.2+ cipher suites are used"
	}
	return cfg, warning, nil
}

// keyLoader serves the certificate and reloads it when a file changes.
type keyLoader struct {
	cert, key, password string

	mu      sync.Mutex
	current *tls.Certificate
	checked time.Time
	mtimes  [2]time.Time
}

func (k *keyLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current != nil && time.Since(k.checked) < time.Second {
		return k.current, nil
	}
	k.checked = time.Now()
	var mt [2]time.Time
	for i, p := range []string{k.cert, k.key} {
		if fi, err := os.Stat(p); err == nil {
			mt[i] = fi.ModTime()
		}
	}
	if k.current != nil && mt == k.mtimes {
		return k.current, nil
	}
	c, err := k.load()
	if err != nil {
		if k.current != nil {
			return k.current, nil // keep serving the last good pair
		}
		return nil, err
	}
	k.current, k.mtimes = c, mt
	return c, nil
}

func (k *keyLoader) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(k.cert)
	if err != nil {
		return nil, fmt.Errorf("restapi.certfile: %w", err)
	}
	keyPEM, err := os.ReadFile(k.key)
	if err != nil {
		return nil, fmt.Errorf("restapi.keyfile: %w", err)
	}
	if k.password != "" {
		if keyPEM, err = decryptKey(keyPEM, k.password); err != nil {
			return nil, err
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("restapi.certfile/keyfile %s, %s: %w", k.cert, k.key, err)
	}
	return &c, nil
}

// decryptKey decrypts a legacy encrypted PEM private key ("Proc-Type:
// 4,ENCRYPTED"), the format openssl's -des3/-aes256 options write.
func decryptKey(data []byte, password string) ([]byte, error) {
	var out []byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		//lint:ignore SA1019 legacy PEM encryption is what keyfile_password protects.
		if x509.IsEncryptedPEMBlock(b) { //nolint:staticcheck
			der, err := x509.DecryptPEMBlock(b, []byte(password)) //nolint:staticcheck
			if err != nil {
				return nil, fmt.Errorf("restapi.keyfile_password: cannot decrypt the key: %w", err)
			}
			b = &pem.Block{Type: b.Type, Bytes: der}
		} else if b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("restapi.keyfile: PKCS#8-encrypted keys are not supported; convert it with `openssl rsa -aes256` or remove the password")
		}
		out = append(out, pem.EncodeToMemory(b)...)
	}
	if out == nil {
		return nil, errors.New("restapi.keyfile: no private key found")
	}
	return out, nil
}
