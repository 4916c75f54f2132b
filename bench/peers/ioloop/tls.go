//go:build linux

package main

import (
	"crypto/tls"

	"github.com/ioloop-go/ioloop"
)

// listenTLS serves handler over TLS on a loop: the https scenarios' ioloop
// peer. The handlers read and write the Stream as they do over TCP.
func listenTLS(loop *ioloop.IOLoop, addr string, cfg *tls.Config, handler ioloop.StreamHandler) (*ioloop.Server, error) {
	return ioloop.ListenTLS(loop, "tcp", addr, cfg, handler)
}
