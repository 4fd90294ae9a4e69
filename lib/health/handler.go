package health

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// Shared header values; net/http never appends to them.
var (
	hdrJSON  = []string{"application/json"}
	hdrAllow = []string{"GET, HEAD, OPTIONS"}
	hdrZero  = []string{"0"}
	hdrRealm = []string{`Basic realm="Patroni"`}
)

// ServeHTTP answers one request from the latest published snapshot. It never
// waits for PostgreSQL or etcd.
//
// GET returns the code Decide gives and the body (Patroni's status JSON for
// the health checks, nothing for /liveness and /readiness). HEAD returns the
// same code and headers without the body. OPTIONS returns the same code, an
// Allow header and no body (HAProxy's "option httpchk OPTIONS /primary"
// reads only the status line). Every other method is 405 with an Allow
// header: pg-healthd changes nothing (Patroni 3.0.2 answers 501 to methods
// it has no handler for, and serves POST /switchover, PATCH /config … which
// pg-ha leaves to pg-failover). With AuthReadEndpoints, /config, /cluster
// and /history need HTTP basic authentication (401 otherwise).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.debug {
		s.serve(w, r)
		return
	}
	start := time.Now()
	code := s.serve(w, r)
	s.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("query", r.URL.RawQuery).
		Str("remote", r.RemoteAddr).Int("status", code).Dur("latency", time.Since(start)).Msg("request")
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) int {
	h := w.Header()
	for k, v := range s.extra {
		h[k] = v
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		h["Allow"] = hdrAllow
		http.Error(w, "method not allowed: pg-healthd answers GET, HEAD and OPTIONS", http.StatusMethodNotAllowed)
		return http.StatusMethodNotAllowed
	}
	req := ParseRequest(r.URL.Path, r.URL.RawQuery)
	if s.o.AuthReadEndpoints && (req.Route == RouteConfig || req.Route == RouteCluster || req.Route == RouteHistory) {
		if reason := s.checkAuth(r.Header.Get("Authorization")); reason != "" {
			h["Www-Authenticate"] = hdrRealm
			http.Error(w, reason, http.StatusUnauthorized)
			return http.StatusUnauthorized
		}
	}
	v := s.view.Load()
	code, body := Decide(v.snap, s.bounds, s.clock.Now(), req)
	if r.Method == http.MethodOptions {
		h["Allow"] = hdrAllow
		h["Content-Length"] = hdrZero
		w.WriteHeader(code)
		return code
	}
	if body == BodyMetrics {
		s.metricH.ServeHTTP(w, r)
		return http.StatusOK
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
	}
	if body != BodyNone {
		h["Content-Type"] = hdrJSON
	}
	h["Content-Length"] = v.lengths[body]
	w.WriteHeader(code)
	if r.Method != http.MethodHead && len(b) > 0 {
		_, _ = w.Write(b)
	}
	return code
}

// checkAuth compares an Authorization header with the configured
// credentials in constant time, as Patroni does, and returns why it is
// refused ("" when accepted).
func (s *Service) checkAuth(header string) string {
	switch {
	case header == "":
		return "no auth header received"
	case !strings.HasPrefix(header, "Basic ") || subtle.ConstantTimeCompare([]byte(header[len("Basic "):]), s.authKey) != 1:
		return "not authenticated"
	}
	return ""
}
