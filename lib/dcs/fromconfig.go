package dcs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
)

// NewFromConfig connects to the etcd of a node's configuration: its
// endpoints, the cluster's prefix, and the etcd3 section's credentials and
// TLS files. requestTimeout 0 keeps the default. Like New, it does not wait
// for etcd to answer.
func NewFromConfig(ctx context.Context, cfg *config.Config, log zerolog.Logger, requestTimeout time.Duration) (*Client, error) {
	o := Options{Endpoints: cfg.Endpoints(), Prefix: cfg.Prefix(), RequestTimeout: requestTimeout, Log: log}
	if e := cfg.Etcd3; e != nil {
		o.Username, o.Password = e.Username, e.Password
		t, err := tlsConfig(e)
		if err != nil {
			return nil, err
		}
		o.TLS = t
	}
	return New(ctx, o)
}

func tlsConfig(e *config.Etcd) (*tls.Config, error) {
	if e.CACert == "" && e.Cert == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CACert != "" {
		pem, err := os.ReadFile(e.CACert)
		if err != nil {
			return nil, fmt.Errorf("etcd3.cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd3.cacert: %s holds no PEM certificate", e.CACert)
		}
		t.RootCAs = pool
	}
	if e.Cert != "" {
		key := e.Key
		if key == "" {
			key = e.Cert
		}
		c, err := tls.LoadX509KeyPair(e.Cert, key)
		if err != nil {
			return nil, fmt.Errorf("etcd3.cert/etcd3.key: %w", err)
		}
		t.Certificates = []tls.Certificate{c}
	}
	return t, nil
}
