package health

import (
	"bytes"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// Shared header values.
var (
	hdrJSON      = []byte("application/json")
	hdrAllow     = []byte("Allow")
	hdrAllowed   = []byte("GET, HEAD, OPTIONS")
	hdrAuthn     = []byte("Www-Authenticate")
	hdrRealm     = []byte(`Basic realm="Patroni"`)
	hdrNoSniff   = []byte("X-Content-Type-Options")
	hdrNoSniffV  = []byte("nosniff")
	hdrPlainText = []byte("text/plain; charset=utf-8")
	basicPrefix  = []byte("Basic ")
	http10       = []byte("HTTP/1.0")
)

// headerKV is one extra response header, its name in canonical form.
type headerKV struct{ k, v []byte }

// Handle answers one request from the latest published snapshot. It never
// waits for PostgreSQL or etcd.
//
// GET returns the code Decide gives and the body (Patroni's status JSON for
// the health checks, nothing for /liveness and /readiness). HEAD returns the
// same code and headers without the body. OPTIONS returns the same code, an
// Allow header and no body (HAProxy's "option httpchk OPTIONS /primary"
// reads only the status line). Every other method goes to Options.Writer,
// Patroni's write API (its own connection waits; no health check does);
// without a Writer it is 405 with an Allow header. With AuthReadEndpoints, /config, /cluster
// and /history need HTTP basic authentication (401 otherwise). A path with
// a malformed escape is 400, an HTTP version other than 1.x is 505, and
// "OPTIONS *" is 200, as net/http answered them.
func (s *Service) Handle(ctx *fasthttp.RequestCtx) {
	if !s.debug {
		s.handle(ctx)
		return
	}
	start := time.Now()
	code := s.handle(ctx)
	path, query := target(ctx)
	s.log.Debug().Bytes("method", ctx.Method()).Bytes("path", path).Bytes("query", query).
		Str("remote", ctx.RemoteAddr().String()).Int("status", code).Dur("latency", time.Since(start)).Msg("request")
}

func (s *Service) handle(ctx *fasthttp.RequestCtx) int {
	h := &ctx.Response.Header
	for _, kv := range s.extra {
		h.SetCanonical(kv.k, kv.v)
	}
	if rh := &ctx.Request.Header; !rh.IsHTTP11() {
		// fasthttp reads any HTTP/d.d; net/http serves 1.x only, and
		// answers 1.0 in kind.
		switch p := rh.Protocol(); {
		case bytes.Equal(p, http10):
			h.SetProtocol(http10)
		case len(p) < 6 || p[5] != '1':
			ctx.SetConnectionClose()
			return plainError(ctx, "unsupported protocol version", fasthttp.StatusHTTPVersionNotSupported)
		}
	}
	get, head, options := ctx.IsGet(), ctx.IsHead(), ctx.IsOptions()
	if !get && !head && !options && s.o.Writer != nil {
		return s.o.Writer.Serve(ctx)
	}
	if !get && !head && !options {
		h.SetCanonical(hdrAllow, hdrAllowed)
		return plainError(ctx, "method not allowed: pg-healthd answers GET, HEAD and OPTIONS", fasthttp.StatusMethodNotAllowed)
	}
	if options && string(ctx.Request.Header.RequestURI()) == "*" {
		ctx.SetStatusCode(fasthttp.StatusOK) // OPTIONS *: the server's options, as net/http answers
		return fasthttp.StatusOK
	}
	rawPath, rawQuery := target(ctx)
	var req Request
	if bytes.IndexByte(rawPath, '%') < 0 {
		req = ParseRequest(string(rawPath), string(rawQuery)) // a short path is not copied to the heap
	} else {
		path, err := url.PathUnescape(string(rawPath))
		if err != nil {
			ctx.SetConnectionClose()
			return plainError(ctx, "bad request: malformed escape in the path", fasthttp.StatusBadRequest)
		}
		req = ParseRequest(path, string(rawQuery))
	}
	if s.o.AuthReadEndpoints && (req.Route == RouteConfig || req.Route == RouteCluster || req.Route == RouteHistory) {
		if reason := s.checkAuth(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)); reason != "" {
			h.SetCanonical(hdrAuthn, hdrRealm)
			return plainError(ctx, reason, fasthttp.StatusUnauthorized)
		}
	}
	v := s.view.Load()
	code, body := Decide(v.snap, s.bounds, s.clock.Now(), req)
	if options {
		h.SetCanonical(hdrAllow, hdrAllowed)
		ctx.SetStatusCode(code) // and Content-Length: 0
		return code
	}
	if body == BodyMetrics {
		s.serveMetrics(ctx)
		return ctx.Response.StatusCode()
	}
	var b []byte
	switch body {
	case BodyStatus:
		b = v.r.Status
	case BodyCluster:
		b = v.r.Cluster
	case BodyHistory:
		b = v.r.History
	case BodyConfig:
		b = v.r.Config
	case BodyFailsafe:
		b = v.r.Failsafe
	}
	if body != BodyNone {
		h.SetContentTypeBytes(hdrJSON)
	}
	ctx.SetStatusCode(code)
	// The rendered bodies are never modified: no copy. A HEAD response gets
	// the same Content-Length and no body (fasthttp leaves out a
	// Content-Length of 0 unless it is set).
	ctx.Response.SetBodyRaw(b)
	if head {
		h.SetContentLength(len(b))
	}
	return code
}

// target is the request's path, not yet unescaped, and raw query, as
// net/http splits them: everything after the first '?' is the query.
func target(ctx *fasthttp.RequestCtx) (path, query []byte) {
	uri := ctx.Request.Header.RequestURI()
	if len(uri) > 0 && uri[0] == '/' {
		if i := bytes.IndexByte(uri, '?'); i >= 0 {
			return uri[:i], uri[i+1:]
		}
		return uri, nil
	}
	u := ctx.URI() // absolute form: http://host/path?query
	return u.PathOriginal(), u.QueryString()
}

// plainError answers code with msg as text, as net/http's http.Error does.
func plainError(ctx *fasthttp.RequestCtx, msg string, code int) int {
	h := &ctx.Response.Header
	h.SetContentTypeBytes(hdrPlainText)
	h.SetCanonical(hdrNoSniff, hdrNoSniffV)
	ctx.SetStatusCode(code)
	ctx.Response.SetBodyString(msg + "\n")
	return code
}

// checkAuth checks an Authorization header against the configured
// credentials (checkBasicAuth) and returns why it is refused ("" when
// accepted).
func (s *Service) checkAuth(header []byte) string { return checkBasicAuth(header, s.authKey) }
