//go:build linux

package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// The TLS tests' certificates, made once per test binary: a CA, a server
// certificate it signs for 127.0.0.1, ::1 and "localhost", the same from
// a CA nobody trusts, and a client certificate. ECDSA P-256 keeps
// handshakes cheap under -race.
type testPKI struct {
	roots     *x509.CertPool  // trusts ca only
	server    tls.Certificate // 127.0.0.1, ::1, localhost; signed by ca
	untrusted tls.Certificate // the same names, signed by another CA
	client    tls.Certificate // a client certificate signed by ca
	caPEM     []byte          // ca's certificate, PEM
	serverPEM [2][]byte       // server's certificate and key, PEM
	caCert    *x509.Certificate
}

var pkiOnce struct {
	sync.Once
	pki *testPKI
	err error
}

func pki(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiOnce.pki, pkiOnce.err = newTestPKI() })
	if pkiOnce.err != nil {
		t.Fatal(pkiOnce.err)
	}
	return pkiOnce.pki
}

func newTestPKI() (*testPKI, error) {
	p := &testPKI{roots: x509.NewCertPool()}
	ca, caKey, caDER, err := makeCA("ioloop test CA")
	if err != nil {
		return nil, err
	}
	p.caCert = ca
	p.roots.AddCert(ca)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	other, otherKey, _, err := makeCA("a CA nobody trusts")
	if err != nil {
		return nil, err
	}
	leaf := func(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, client bool) (tls.Certificate, []byte, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:      pkix.Name{CommonName: "ioloop test"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		if client {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			tmpl.Subject.CommonName = "ioloop test client"
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		return c, certPEM, keyPEM, err
	}
	if p.server, p.serverPEM[0], p.serverPEM[1], err = leaf(ca, caKey, false); err != nil {
		return nil, err
	}
	if p.untrusted, _, _, err = leaf(other, otherKey, false); err != nil {
		return nil, err
	}
	if p.client, _, _, err = leaf(ca, caKey, true); err != nil {
		return nil, err
	}
	return p, nil
}

func makeCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, der, err
}

// serverConfig is a TLS server config with the trusted certificate.
func (p *testPKI) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}}
}

// clientConfig trusts the test CA.
func (p *testPKI) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.roots}
}

// writeFiles writes the CA and the server's certificate and key as PEM
// files in dir, for the examples and curl.
func (p *testPKI) writeFiles(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, b := range map[string][]byte{ca: p.caPEM, cert: p.serverPEM[0], key: p.serverPEM[1]} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// serveTLS is serve with TLS.
func serveTLS(t *testing.T, l *ioloop.IOLoop, cfg *tls.Config, handler ioloop.StreamHandler, opts ...ioloop.ServerOption) *ioloop.Server {
	t.Helper()
	return serve(t, l, handler, append(opts, ioloop.WithTLS(cfg))...)
}

// dialTLS connects a crypto/tls client, closed when the test ends.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: testTimeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

// debugLogger logs at debug level into logs.
func debugLogger(logs *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
