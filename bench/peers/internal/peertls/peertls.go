// Package peertls is the TLS setup of the suite's Go peers that use
// crypto/tls (gonet, nethttp, ioloop): the suite's certificate and Go's
// defaults for everything else, the same for each of them.
//
// Go's defaults are what the C/OpenSSL peer copies: TLS 1.2 and 1.3, the
// server picking the TLS 1.3 suite (AES-128-GCM first on AES-NI hardware,
// unless the client prefers ChaCha20-Poly1305), one session ticket per
// handshake, no server-side session cache.
package peertls

import (
	"crypto/tls"
	"errors"
)

// Config loads the certificate and key the suite passes with -tls-cert and
// -tls-key.
func Config(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
