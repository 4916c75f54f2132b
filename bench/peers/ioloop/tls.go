//go:build linux

package main

import (
	"crypto/tls"
	"errors"

	"github.com/ioloop-go/ioloop"
)

// exitUnsupported is the status with which a peer says it cannot serve
// what it was asked; the suite then skips its cell with the peer's last
// line as the reason, rather than failing it (bench/server.go,
// exitUnsupported: keep the two equal). 69 is sysexits.h's EX_UNAVAILABLE.
const exitUnsupported = 69

// errTLSUnsupported: this commit of the library has no ioloop.ListenTLS.
var errTLSUnsupported = errors.New("TLS not supported yet: no ioloop.ListenTLS in this commit (issue 12)")

// listenTLS serves handler over TLS on a loop: the https scenarios' slot
// for ioloop (issue 12).
//
// ================================================================
// SLOT: ioloop.ListenTLS is being written (issue 12) and is not in
// the library yet. Until it is, the peer exits with exitUnsupported
// and the suite skips the https cells of the ioloop row with the
// line above. When it lands, the body becomes
//
//	return ioloop.ListenTLS(loop, "tcp", addr, cfg, handler)
//
// (the handlers read and write the Stream as they do in TCP), and
// errTLSUnsupported and this comment go.
// ================================================================
func listenTLS(loop *ioloop.IOLoop, addr string, cfg *tls.Config, handler ioloop.StreamHandler) (*ioloop.Server, error) {
	return nil, errTLSUnsupported
}
