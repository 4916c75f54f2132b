//go:build linux

package tests

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/ioloop-go/ioloop"
)

// A crypto/tls client talks to an ioloop TLS server: the handshake
// completes, the handler gets the stream with its session state, and echo
// works both ways, in both small and record-spanning messages.
func TestTLSGoClientIoloopServer(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	states := make(chan tls.ConnectionState, 1)
	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		st, ok := s.TLSConnectionState()
		if !ok {
			t.Error("TLSConnectionState not ok in the handler")
		}
		states <- st
		echo(s, nil)
	})
	c := dialTLS(t, sv.Addr().String(), p.clientConfig())
	st := recv(t, states, "the handler")
	if st.Version != tls.VersionTLS13 || !st.HandshakeComplete || st.ServerName != "" {
		t.Errorf("server state: version %x complete %v server name %q", st.Version, st.HandshakeComplete, st.ServerName)
	}
	for _, n := range []int{1, 100, 16 << 10, 100 << 10} {
		msg := randomBytes(n, int64(n))
		go c.Write(msg)
		got := make([]byte, n)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("echo of %d bytes: %v", n, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes differs", n)
		}
	}
}

// An ioloop client (ConnectTLS) talks to a crypto/tls server.
func TestTLSIoloopClientGoServer(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.serverConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	defer func() { recv(t, served, "the server to finish") }()
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	type result struct {
		data  []byte
		state tls.ConnectionState
		err   error
	}
	res := make(chan result, 1)
	ioloop.ConnectTLS(l, "tcp", ln.Addr().String(), testTimeout, p.clientConfig(), func(s *ioloop.Stream, err error) {
		if err != nil {
			res <- result{err: err}
			return
		}
		st, _ := s.TLSConnectionState()
		if err := s.Write([]byte("hello over tls"), nil); err != nil {
			res <- result{err: err}
			return
		}
		s.ReadBytes(14, func(b []byte, err error) {
			res <- result{append([]byte(nil), b...), st, err}
			s.Close()
		})
	})
	r := recv(t, res, "the echo")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if string(r.data) != "hello over tls" {
		t.Fatalf("got %q", r.data)
	}
	if r.state.Version != tls.VersionTLS13 || len(r.state.PeerCertificates) == 0 || len(r.state.VerifiedChains) == 0 {
		t.Fatalf("client state: version %x, %d peer certificates, %d verified chains", r.state.Version, len(r.state.PeerCertificates), len(r.state.VerifiedChains))
	}
}
