package health

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/pg-ha/pg-ha/lib/clusterctl"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// Write limits.
const (
	// MaxWritesInFlight is how many write requests are carried out at
	// once; more get 503 at once. A write holds its connection's worker
	// while it waits for etcd or for the cluster, never anything a health
	// check needs.
	MaxWritesInFlight = 4
	// DefaultRestartTimeout bounds the wait for a restart when the request
	// names no timeout.
	DefaultRestartTimeout = 60 * time.Second
	// minFailoverWait is the least time a switchover or failover is
	// followed: Patroni polls for max(10 s, loop_wait) twice over.
	minFailoverWait = 10 * time.Second
	// resolveTimeout bounds the name lookups of restapi.allowlist.
	resolveTimeout = 2 * time.Second
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Cfg is the node's configuration: the member name, the dynamic
	// settings the config key overrides, and restapi's access settings
	// (authentication, allowlist, allowlist_include_members, verify_client
	// with certfile).
	Cfg *config.Config
	// DCS is the etcd client; nil when pg-healthd runs standalone, and
	// then every request that needs etcd is 503.
	DCS *dcs.Client
	// PG reaches the local PostgreSQL as a superuser (POST /reload).
	PG pg.ConnParams
	// RuntimeDir holds lockd.json, supervise.json and the failsafe
	// promise POST /failsafe writes ("": POST /failsafe is refused).
	RuntimeDir string
	// Log receives one line per write request and its outcome.
	Log zerolog.Logger
	// FailoverTimeout bounds how long POST /switchover and /failover
	// follow the outcome (default: twice max(10 s, loop_wait), as Patroni).
	FailoverTimeout time.Duration
	// RestartTimeout bounds POST /restart without a "timeout" (default
	// DefaultRestartTimeout).
	RestartTimeout time.Duration
	// Now is the wall clock (default time.Now).
	Now func() time.Time
}

// Writer serves Patroni's REST write API: POST /switchover, /failover,
// /restart (also scheduled), /reinitialize, /reload, /failsafe; DELETE /switchover,
// /restart; PATCH and PUT /config. It carries them out with lib/clusterctl through etcd, as
// pg-failover does, so the decisions are pg-lockd's and pg-failover's.
type Writer struct {
	o       WriterOptions
	ctl     *clusterctl.Ctl
	name    string
	authKey []byte
	// certForWrites: under TLS with verify_client optional or required, a
	// write needs a client certificate, as in Patroni.
	certForWrites bool
	allowlist     []string
	allowMembers  bool
	sem           chan struct{}

	schedMu sync.Mutex
	sched   *scheduledRestart // the restart POST /restart scheduled, nil if none
}

// NewWriter returns a Writer for o. It does no I/O.
func NewWriter(o WriterOptions) (*Writer, error) {
	if o.Cfg == nil || o.Cfg.Name == "" {
		return nil, fmt.Errorf("health: the writer needs the node's configuration with its name")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = 2 * max(minFailoverWait, o.Cfg.Dynamic().LoopWait)
	}
	if o.RestartTimeout <= 0 {
		o.RestartTimeout = DefaultRestartTimeout
	}
	w := &Writer{o: o, name: o.Cfg.Name, sem: make(chan struct{}, MaxWritesInFlight)}
	w.o.Log = o.Log.With().Str("component", "restapi").Logger()
	r := o.Cfg.RestAPI
	if a := r.Authentication; a != nil && a.Username != "" {
		w.authKey = []byte(base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password)))
	}
	switch strings.ToLower(r.VerifyClient) {
	case "optional", "required":
		w.certForWrites = r.CertFile != ""
	}
	w.allowlist, w.allowMembers = r.Allowlist, r.AllowlistIncludeMembers
	if o.DCS != nil {
		w.ctl = &clusterctl.Ctl{DCS: o.DCS, Cfg: o.Cfg, Log: w.o.Log, Now: o.Now}
	}
	return w, nil
}

// writeOp is one write endpoint.
type writeOp uint8

const (
	opNone writeOp = iota
	opSwitchover
	opFailover
	opCancelSwitchover
	opRestart
	opCancelRestart
	opReinit
	opReload
	opPatchConfig
	opPutConfig
	opFailsafe
)

// writeOpNeedsEtcd tells the operations that standalone cannot serve.
var writeOpNeedsEtcd = map[writeOp]bool{
	opSwitchover: true, opFailover: true, opCancelSwitchover: true, opRestart: true,
	opReinit: true, opPatchConfig: true, opPutConfig: true,
}

// writeRoute maps a method and path to the operation, opNone for any other.
// The path is matched exactly, with or without a trailing slash.
func writeRoute(method, path string) writeOp {
	path = strings.TrimSuffix(path, "/")
	switch method + " " + path {
	case "POST /switchover":
		return opSwitchover
	case "POST /failover":
		return opFailover
	case "DELETE /switchover":
		return opCancelSwitchover
	case "POST /restart":
		return opRestart
	case "DELETE /restart":
		return opCancelRestart
	case "POST /reinitialize":
		return opReinit
	case "POST /reload":
		return opReload
	case "PATCH /config":
		return opPatchConfig
	case "PUT /config":
		return opPutConfig
	case "POST /failsafe":
		return opFailsafe
	}
	return opNone
}

var hdrAllowedWrite = []byte("GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE")

// Serve answers one request whose method is not GET, HEAD or OPTIONS. In
// Patroni's order it refuses a client outside restapi.allowlist (403), one
// without a client certificate when verify_client asks for one (403), and
// one without the configured basic credentials (401); then it carries out
// the operation. It blocks while the operation runs (bounded by etcd's
// request timeout and the operation's own bound) and ends early when the
// server shuts down; it never touches the health snapshot.
func (w *Writer) Serve(ctx *fasthttp.RequestCtx) int {
	rawPath, _ := target(ctx)
	path, err := url.PathUnescape(string(rawPath))
	if err != nil {
		ctx.SetConnectionClose()
		return plainError(ctx, "bad request: malformed escape in the path", fasthttp.StatusBadRequest)
	}
	op := writeRoute(string(ctx.Method()), path)
	if op == opNone {
		ctx.Response.Header.SetCanonical(hdrAllow, hdrAllowedWrite)
		return plainError(ctx, "method not allowed: "+string(ctx.Method())+" "+path, fasthttp.StatusMethodNotAllowed)
	}
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	default:
		return textAnswer(ctx, fasthttp.StatusServiceUnavailable, "too many write requests in progress; try again")
	}
	opCtx, cancel := serverContext(ctx)
	defer cancel()
	if code, msg := w.access(opCtx, ctx); code != 0 {
		if code == fasthttp.StatusUnauthorized {
			ctx.Response.Header.SetCanonical(hdrAuthn, hdrRealm)
		}
		w.o.Log.Warn().Bytes("method", ctx.Method()).Str("path", path).Str("remote", ctx.RemoteAddr().String()).
			Int("status", code).Str("answer", msg).Msg("write request refused")
		return textAnswer(ctx, code, msg)
	}
	if writeOpNeedsEtcd[op] && w.ctl == nil {
		return textAnswer(ctx, fasthttp.StatusServiceUnavailable,
			fmt.Sprintf("pg-healthd runs without etcd (standalone): %s %s needs it", ctx.Method(), path))
	}
	body := ctx.PostBody()
	// Patroni answers 411 to a body it must read without a Content-Length;
	// a chunked body counts as announced.
	hasLength := len(ctx.Request.Header.Peek(fasthttp.HeaderContentLength)) > 0 || ctx.Request.Header.ContentLength() == -1
	start := w.o.Now()
	var a answer
	switch op {
	case opSwitchover:
		a = w.failover(opCtx, "switchover", body, hasLength)
	case opFailover:
		a = w.failover(opCtx, "failover", body, hasLength)
	case opCancelSwitchover:
		a = w.cancelSwitchover(opCtx)
	case opRestart:
		a = w.restart(opCtx, body)
	case opCancelRestart:
		a = w.cancelRestart()
	case opReinit:
		a = w.reinit(opCtx, body)
	case opReload:
		a = w.reload(opCtx)
	case opPatchConfig:
		a = w.patchConfig(opCtx, body, hasLength)
	case opPutConfig:
		a = w.putConfig(opCtx, body, hasLength)
	case opFailsafe:
		a = w.failsafe(body)
	}
	w.o.Log.Info().Bytes("method", ctx.Method()).Str("path", path).Str("remote", ctx.RemoteAddr().String()).
		Int("status", a.code).Str("answer", firstLine(a.body)).Dur("took", w.o.Now().Sub(start)).Msg("write request")
	if a.json {
		ctx.Response.Header.SetContentTypeBytes(hdrJSON)
		ctx.SetStatusCode(a.code)
		ctx.Response.SetBodyString(a.body)
		return a.code
	}
	return textAnswer(ctx, a.code, a.body)
}

// answer is a write request's response: Patroni's plain text, or JSON.
type answer struct {
	code int
	body string
	json bool
}

// textAnswer answers code with msg as text, without a trailing newline:
// patronictl matches the end of some messages (" already in progress").
func textAnswer(ctx *fasthttp.RequestCtx, code int, msg string) int {
	h := &ctx.Response.Header
	h.SetContentTypeBytes(hdrPlainText)
	h.SetCanonical(hdrNoSniff, hdrNoSniffV)
	ctx.SetStatusCode(code)
	ctx.Response.SetBodyString(msg)
	return code
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// serverContext is a context cancelled when the server shuts down (the
// request context's Done), and by the returned cancel. The request context
// itself is recycled after the handler returns, so it is not handed on.
func serverContext(rc *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	if done := rc.Done(); done != nil {
		go func() {
			select {
			case <-done:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

// access checks the client as Patroni's check_access does, and returns the
// refusal's code and message (0 when allowed).
func (w *Writer) access(ctx context.Context, rc *fasthttp.RequestCtx) (int, string) {
	if len(w.allowlist) > 0 || w.allowMembers {
		ip, ok := netip.AddrFromSlice(rc.RemoteIP())
		if !ok || !w.allowed(ctx, ip.Unmap()) {
			return fasthttp.StatusForbidden, "Access is denied"
		}
	}
	if w.certForWrites {
		if st := rc.TLSConnectionState(); st == nil || len(st.PeerCertificates) == 0 {
			return fasthttp.StatusForbidden, "client certificate required"
		}
	}
	if w.authKey != nil {
		if reason := checkBasicAuth(rc.Request.Header.Peek(fasthttp.HeaderAuthorization), w.authKey); reason != "" {
			return fasthttp.StatusUnauthorized, reason
		}
	}
	return 0, ""
}

// allowed says whether ip is in restapi.allowlist (addresses, CIDR ranges,
// or host names, looked up now) or, with allowlist_include_members, is an
// address of a member's api_url host.
func (w *Writer) allowed(ctx context.Context, ip netip.Addr) bool {
	entries := w.allowlist
	if w.allowMembers && w.o.DCS != nil {
		if cl, err := w.o.DCS.Get(ctx); err == nil {
			for _, m := range cl.Members {
				if u, err := url.Parse(m.Data.APIURL); err == nil && u.Hostname() != "" {
					entries = append(entries[:len(entries):len(entries)], u.Hostname())
				}
			}
		}
	}
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			if p.Contains(ip) {
				return true
			}
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			if a.Unmap() == ip {
				return true
			}
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", e)
		cancel()
		if err != nil {
			w.o.Log.Warn().Err(err).Str("host", e).Msg("restapi.allowlist: cannot resolve")
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// checkBasicAuth compares an Authorization header with the base64 of
// "user:password" in constant time, as Patroni does, and returns why it is
// refused ("" when accepted).
func checkBasicAuth(header, key []byte) string {
	switch {
	case len(header) == 0:
		return "no auth header received"
	case !bytes.HasPrefix(header, basicPrefix) || subtle.ConstantTimeCompare(header[len(basicPrefix):], key) != 1:
		return "not authenticated"
	}
	return ""
}

// etcdFailure is the 503 answer for an etcd error.
func etcdFailure(what string, err error) answer {
	return answer{fasthttp.StatusServiceUnavailable, what + ": " + oneLine(err.Error()), false}
}
