package health

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and its key in PEM.
func (ca *testCA) issue(t *testing.T, cn string, serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func write(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func tlsClient(ca *testCA, cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "node1", 2, x509.ExtKeyUsageServerAuth)
	r := config.RestAPI{
		CertFile: write(t, filepath.Join(dir, "server.crt"), certPEM),
		KeyFile:  write(t, filepath.Join(dir, "server.key"), keyPEM),
	}
	cfg, warning, err := TLSConfig(r)
	if err != nil || warning != "" {
		t.Fatalf("TLSConfig: %v %q", err, warning)
	}
	url := serve(t, newTestService(t, primary(), nil), cfg)
	resp, err := tlsClient(ca, nil).Get(url + "/primary")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != "node1" {
		t.Fatalf("GET over TLS: %d %+v", resp.StatusCode, resp.TLS)
	}

	// A renewed certificate is served without a restart.
	certPEM2, keyPEM2 := ca.issue(t, "node1-renewed", 3, x509.ExtKeyUsageServerAuth)
	write(t, r.CertFile, certPEM2)
	write(t, r.KeyFile, keyPEM2)
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(r.CertFile, future, future)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := tlsClient(ca, nil).Get(url + "/primary")
		if err == nil {
			resp.Body.Close()
			if resp.TLS.PeerCertificates[0].Subject.CommonName == "node1-renewed" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("renewed certificate not served within 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// verify_client: required refuses a client without a certificate.
	clientCert, clientKey := ca.issue(t, "haproxy", 4, x509.ExtKeyUsageClientAuth)
	r.CAFile = write(t, filepath.Join(dir, "ca.crt"), ca.pem)
	r.VerifyClient = "required"
	r.Ciphers = "HIGH:!aNULL"
	cfg, warning, err = TLSConfig(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warning, "restapi.ciphers") {
		t.Errorf("ciphers warning %q", warning)
	}
	url = serve(t, newTestService(t, primary(), nil), cfg)
	if resp, err := tlsClient(ca, nil).Get(url + "/primary"); err == nil {
		resp.Body.Close()
		t.Error("verify_client required: a client without a certificate was served")
	}
	pair, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = tlsClient(ca, &pair).Get(url + "/primary")
	if err != nil {
		t.Fatalf("verify_client required, client certificate given: %v", err)
	}
	resp.Body.Close()
}

func TestTLSConfigFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "node1", 2, x509.ExtKeyUsageServerAuth)

	// Key in the certificate file, as Patroni allows without keyfile.
	both := write(t, filepath.Join(dir, "both.pem"), append(append([]byte{}, certPEM...), keyPEM...))
	if _, _, err := TLSConfig(config.RestAPI{CertFile: both}); err != nil {
		t.Errorf("certfile with the key inside: %v", err)
	}

	// A legacy encrypted key with keyfile_password.
	block, _ := pem.Decode(keyPEM)
	enc, err := x509.EncryptPEMBlock(rand.Reader, block.Type, block.Bytes, []byte("pw"), x509.PEMCipherAES256) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	crt := write(t, filepath.Join(dir, "c.crt"), certPEM)
	encKey := write(t, filepath.Join(dir, "enc.key"), pem.EncodeToMemory(enc))
	if _, _, err := TLSConfig(config.RestAPI{CertFile: crt, KeyFile: encKey, KeyFilePassword: "pw"}); err != nil {
		t.Errorf("encrypted key with the right password: %v", err)
	}
	errs := map[string]config.RestAPI{
		"keyfile_password":  {CertFile: crt, KeyFile: encKey, KeyFilePassword: "wrong"},
		"restapi.certfile":  {CertFile: filepath.Join(dir, "missing.crt")},
		"restapi.keyfile":   {CertFile: crt, KeyFile: filepath.Join(dir, "missing.key")},
		"verify_client":     {CertFile: both, VerifyClient: "sometimes"},
		"restapi.cafile":    {CertFile: both, CAFile: crt + "x"},
		"certfile/keyfile ": {CertFile: crt, KeyFile: crt},
	}
	for want, r := range errs {
		if _, _, err := TLSConfig(r); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("%+v: error %v, want one naming %s", r, err, want)
		}
	}
	if cfg, _, err := TLSConfig(config.RestAPI{}); cfg != nil || err != nil {
		t.Errorf("no certfile: %v %v, want plain HTTP", cfg, err)
	}
}

// TestWriteClientCertificate: with verify_client optional, a client
// without a certificate is served GET but refused writes with 403, as in
// Patroni; with a certificate the write is carried out (here: standalone,
// so 503).
func TestWriteClientCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "node1", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, "operator", 3, x509.ExtKeyUsageClientAuth)
	r := config.RestAPI{
		CertFile: write(t, filepath.Join(dir, "server.crt"), certPEM),
		KeyFile:  write(t, filepath.Join(dir, "server.key"), keyPEM),
		CAFile:   write(t, filepath.Join(dir, "ca.crt"), ca.pem), VerifyClient: "optional",
	}
	tlsCfg, _, err := TLSConfig(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Name: "node1", Scope: "demo", RestAPI: r}
	w, err := NewWriter(WriterOptions{Cfg: cfg, Log: logxtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{Name: "node1", Scope: "demo", Standalone: true, RuntimeDir: dir, Writer: w, Log: logxtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, svc, tlsCfg)
	pair, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		client *http.Client
		method string
		path   string
		code   int
		body   string
	}{
		{"GET without certificate", tlsClient(ca, nil), "GET", "/liveness", 200, ""},
		{"POST without certificate", tlsClient(ca, nil), "POST", "/switchover", 403, "client certificate required"},
		{"POST with certificate", tlsClient(ca, &pair), "POST", "/switchover", 503, "pg-healthd runs without etcd (standalone): POST /switchover needs it"},
	} {
		req, _ := http.NewRequest(tt.method, url+tt.path, strings.NewReader(`{"leader":"node1"}`))
		resp, err := tt.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || string(b) != tt.body {
			t.Errorf("%s: %d %q, want %d %q", tt.name, resp.StatusCode, b, tt.code, tt.body)
		}
	}
}
