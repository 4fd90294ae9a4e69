package clusterctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// apiTimeout bounds one request to a member's REST API when ctx has no
// earlier deadline.
const apiTimeout = 10 * time.Second

// MemberURL is the URL of path on m's REST API: its api_url (published
// in the member key, e.g. http://10.0.0.1:8008/patroni) with the path
// replaced, as patronictl builds it. It is pure.
func MemberURL(m *dcs.Member, path string) (string, error) {
	u, err := url.Parse(m.Data.APIURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fail(Unknown, "%s has no usable api_url in its member key (%q)", m.Name, m.Data.APIURL)
	}
	u.Path, u.RawQuery = "/"+strings.TrimPrefix(path, "/"), ""
	return u.String(), nil
}

// httpClient is the client for members' REST APIs, set up like
// patronictl's from the YAML: the ctl section's cacert, certfile and
// keyfile (else restapi's cafile, certfile and keyfile) and insecure.
func (c *Ctl) httpClient() (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.Cfg.Ctl.Insecure} //nolint:gosec // the operator's choice (ctl.insecure)
	ca, cert, key := c.Cfg.Ctl.CACert, c.Cfg.Ctl.CertFile, c.Cfg.Ctl.KeyFile
	if ca == "" {
		ca = c.Cfg.RestAPI.CAFile
	}
	if cert == "" {
		cert, key = c.Cfg.RestAPI.CertFile, c.Cfg.RestAPI.KeyFile
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("read the REST API's CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AppendCertsFromPEM(pem)
	}
	if cert != "" && key != "" && c.Cfg.RestAPI.VerifyClient != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("load the REST API client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	t.TLSClientConfig = tc
	return &http.Client{Transport: t}, nil
}

// APIAnswer is a member's answer to a REST request.
type APIAnswer struct {
	Member string `json:"member"`
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// CallMember sends method path with body (JSON, or none when nil) to m's
// REST API with the YAML's credentials (ctl.authentication, else
// restapi.authentication) and returns the status and the body's text. It
// blocks for the request, at most apiTimeout.
func (c *Ctl) CallMember(ctx context.Context, m *dcs.Member, method, path string, body any) (APIAnswer, error) {
	a := APIAnswer{Member: m.Name}
	u, err := MemberURL(m, path)
	if err != nil {
		return a, err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return a, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return a, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	auth := c.Cfg.Ctl.Authentication
	if auth == nil || auth.Username == "" {
		auth = c.Cfg.RestAPI.Authentication
	}
	if auth != nil && auth.Username != "" {
		req.SetBasicAuth(auth.Username, auth.Password)
	}
	hc, err := c.httpClient()
	if err != nil {
		return a, err
	}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return a, fmt.Errorf("%s %s on %s: %w", method, path, m.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	a.Status, a.Body = resp.StatusCode, strings.TrimSpace(string(b))
	if err != nil {
		return a, fmt.Errorf("%s %s on %s: read the answer: %w", method, path, m.Name, err)
	}
	return a, nil
}
