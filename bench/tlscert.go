package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// tlsFiles is the certificate and key every TLS peer serves (-tls-cert,
// -tls-key); the certificate is also the load generator's only root.
type tlsFiles struct {
	Cert, Key string
}

// writeTLSCert generates an ECDSA P-256 key and a self-signed certificate
// for 127.0.0.1, ::1 and localhost, valid for a day, and writes them as PEM
// into dir (cert.pem, key.pem; the key readable by its owner only). A
// fresh pair per suite: nothing secret is kept in the tree, and every peer
// signs with the same key type, the one a TLS 1.3 deployment picks today.
func writeTLSCert(dir string) (tlsFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tlsFiles{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tlsFiles{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ioloop bench"},
		NotBefore:             now.Add(-time.Hour), // a peer's clock read a moment earlier still accepts it
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own root: the check's client verifies against it
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tlsFiles{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tlsFiles{}, err
	}
	f := tlsFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tlsFiles{}, err
	}
	if err := os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tlsFiles{}, err
	}
	return f, nil
}

// newTLSDir makes a private directory with a fresh certificate and key for
// one suite; the caller removes it.
func newTLSDir() (string, tlsFiles, error) {
	dir, err := os.MkdirTemp("", "ioloop-bench-tls-")
	if err != nil {
		return "", tlsFiles{}, err
	}
	f, err := writeTLSCert(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", tlsFiles{}, fmt.Errorf("TLS certificate: %w", err)
	}
	return dir, f, nil
}
