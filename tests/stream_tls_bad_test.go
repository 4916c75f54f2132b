//go:build linux

package tests

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// Bad input on a TLS stream: each case must end in a clean close of the
// stream with a cause errors.Is or errors.As can tell, the peer must see
// the connection end, and nothing may be left behind (checkNoLeaks: fds
// and goroutines, the handshake's included).

// startTLSServer listens in plain TCP and starts TLS in the handler, so
// that the test sees why a stream ended: the handshake's error, or, after
// a good handshake, the error that ended reading.
func startTLSServer(t *testing.T, l *ioloop.IOLoop, cfg *tls.Config, opts ...ioloop.ServerOption) (addr string, ended <-chan error) {
	t.Helper()
	out := make(chan error, 1)
	sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) {
		err := s.StartTLS(ioloop.TLSServer, cfg, func(err error) {
			if err != nil {
				if s.Err() == nil || !s.Closed() {
					t.Errorf("handshake failed (%v) but the stream is not closed with a cause: closed %v, Err %v", err, s.Closed(), s.Err())
				}
				out <- err
				return
			}
			var discard func([]byte, error)
			discard = func(_ []byte, err error) {
				if err != nil {
					out <- err
					return
				}
				s.ReadSome(discard)
			}
			s.ReadSome(discard)
		})
		if err != nil {
			t.Errorf("StartTLS: %v", err)
		}
	}, opts...)
	return sv.Addr().String(), out
}

// expectClosed reads from c until it ends, which must be soon: EOF or a
// reset.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	_, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the connection did not end: %v", err)
	}
}

// A client that speaks plaintext HTTP to a TLS server: the handshake
// fails with a *tls.RecordHeaderError, the connection is closed, and a
// ListenTLS server counts it and logs it at debug level.
func TestTLSPlaintextClient(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	p := pki(t)
	addr, ended := startTLSServer(t, l, p.serverConfig())
	c := dial(t, "tcp", addr)
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	err := recv(t, ended, "the handshake")
	var rhe tls.RecordHeaderError
	if !errors.As(err, &rhe) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("handshake error %v (%T): want a *StreamClosedError wrapping a tls.RecordHeaderError", err, err)
	}
	if string(rhe.RecordHeader[:]) != "GET /" {
		t.Errorf("record header %q", rhe.RecordHeader[:])
	}
	expectClosed(t, c)

	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		t.Error("the handler got a stream whose handshake failed")
	}, ioloop.WithServerLogger(debugLogger(logs)))
	c = dial(t, "tcp", sv.Addr().String())
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	expectClosed(t, c)
	waitFor(t, "the failure to be counted", func() bool { return sv.TLSHandshakeFailures() == 1 })
	waitFor(t, "the stream to go", func() bool { return sv.NumStreams() == 0 })
	if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "does not look like a TLS handshake") {
		t.Errorf("log: %s", logs)
	}
}

// A certificate the client does not trust, and a name the certificate
// does not cover: the client's error is the x509 one, and the server
// sees the client's alert.
func TestTLSUntrustedCertificateAndWrongName(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	for _, tc := range []struct {
		name       string
		cert       tls.Certificate
		serverName string
		check      func(error) bool
	}{
		{"untrusted", p.untrusted, "", func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e)
		}},
		{"wrong name", p.server, "wrong.example", func(err error) bool {
			var e x509.HostnameError
			return errors.As(err, &e)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, ended := startTLSServer(t, l, &tls.Config{Certificates: []tls.Certificate{tc.cert}})
			ccfg := p.clientConfig()
			ccfg.ServerName = tc.serverName
			res := make(chan error, 1)
			ioloop.ConnectTLS(l, "tcp", addr, testTimeout, ccfg, func(s *ioloop.Stream, err error) {
				if s != nil {
					s.Close()
				}
				res <- err
			})
			err := recv(t, res, "ConnectTLS")
			if err == nil || !tc.check(err) {
				t.Fatalf("client: %v (%T)", err, err)
			}
			serr := recv(t, ended, "the server's handshake")
			var oe *net.OpError
			if !errors.As(serr, &oe) || oe.Op != "remote error" || !strings.Contains(serr.Error(), "bad certificate") {
				t.Fatalf("server: %v; want the client's bad_certificate alert", serr)
			}
		})
	}
}

// recordConn passes writes through until capture is set, then keeps
// them: the records a crypto/tls client would have sent, to be sent (or
// cut) by the test.
type recordConn struct {
	net.Conn
	mu      sync.Mutex
	capture bool
	buf     []byte
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capture {
		c.buf = append(c.buf, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// handshakenClient connects a crypto/tls client to addr whose writes are
// captured from now on; it returns the client and its TCP connection.
func handshakenClient(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *recordConn) {
	t.Helper()
	rc := &recordConn{Conn: dial(t, "tcp", addr)}
	c := tls.Client(rc, cfg)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.capture = true
	rc.mu.Unlock()
	return c, rc
}

// A connection that ends inside a record, without close_notify: the
// stream's read fails with an error wrapping io.ErrUnexpectedEOF.
func TestTLSTruncatedRecord(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	addr, ended := startTLSServer(t, l, p.serverConfig())
	ccfg := p.clientConfig()
	ccfg.ServerName = "127.0.0.1"
	c, rc := handshakenClient(t, addr, ccfg)
	c.Write([]byte("this record will not arrive whole"))
	rec := rc.buf
	rc.Conn.Write(rec[:len(rec)-5])
	rc.Conn.(*net.TCPConn).CloseWrite()
	err := recv(t, ended, "the read to fail")
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("read error %v: want ErrStreamClosed wrapping io.ErrUnexpectedEOF", err)
	}
	expectClosed(t, rc.Conn)
}

// A peer that resets the connection while a record is half sent: the
// stream's read fails with ECONNRESET.
func TestTLSPeerResetMidRecord(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	addr, ended := startTLSServer(t, l, p.serverConfig())
	ccfg := p.clientConfig()
	ccfg.ServerName = "127.0.0.1"
	c, rc := handshakenClient(t, addr, ccfg)
	c.Write(make([]byte, 10000))
	rc.Conn.Write(rc.buf[:6000])
	time.Sleep(50 * time.Millisecond) // the stream holds a partial record now
	rc.Conn.(*net.TCPConn).SetLinger(0)
	rc.Conn.Close() // RST
	err := recv(t, ended, "the read to fail")
	if !errors.Is(err, syscall.ECONNRESET) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("read error %v: want ErrStreamClosed wrapping ECONNRESET", err)
	}
}

// A handshake that never finishes: a client that sends nothing, one that
// stops in the middle of its ClientHello, and a server that never
// answers. Each times out (WithHandshakeTimeout), the error matching
// ErrTimeout and os.ErrDeadlineExceeded, the connection closed.
func TestTLSHandshakeTimeout(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	p := pki(t)
	const timeout = 300 * time.Millisecond
	opt := ioloop.WithStreamOptions(ioloop.WithHandshakeTimeout(timeout))

	// Half a ClientHello, then nothing.
	addr, ended := startTLSServer(t, l, p.serverConfig(), opt)
	c := dial(t, "tcp", addr)
	c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc})
	start := time.Now()
	err := recv(t, ended, "the handshake to time out")
	if !errors.Is(err, ioloop.ErrTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("handshake error %v: want a timeout", err)
	}
	if el := time.Since(start); el < timeout/2 {
		t.Errorf("timed out after %v, before the %v timeout", el, timeout)
	}
	expectClosed(t, c)

	// Silence, on a ListenTLS server: closed, counted, logged.
	sv := serveTLS(t, l, p.serverConfig(), func(*ioloop.Stream, net.Addr) {
		t.Error("handler called")
	}, opt, ioloop.WithServerLogger(debugLogger(logs)))
	c = dial(t, "tcp", sv.Addr().String())
	expectClosed(t, c)
	waitFor(t, "the failure to be counted", func() bool { return sv.TLSHandshakeFailures() == 1 })
	if !strings.Contains(logs.String(), "not finished within 300ms") {
		t.Errorf("log: %s", logs)
	}

	// A server that accepts and never answers: ConnectTLS's timeout covers
	// the handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c
		}
	}()
	res := make(chan error, 1)
	ioloop.ConnectTLS(l, "tcp", ln.Addr().String(), timeout, p.clientConfig(), func(s *ioloop.Stream, err error) {
		res <- err
	})
	err = recv(t, res, "ConnectTLS to time out")
	if !errors.Is(err, ioloop.ErrTimeout) {
		t.Fatalf("ConnectTLS: %v; want ErrTimeout", err)
	}
	sc := recv(t, held, "the accepted connection")
	defer sc.Close()
	expectClosed(t, sc)
}

// A panic in a tls.Config callback, on the handshake goroutine, does not
// take the process down: it is logged with its stack and counted, as the
// loop does for its callbacks, and the connection closes.
func TestTLSHandshakeCallbackPanicIsRecovered(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	p := pki(t)
	cfg := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		panic("certificate store on fire")
	}}
	addr, ended := startTLSServer(t, l, cfg)
	_, err := tls.Dial("tcp", addr, p.clientConfig())
	if err == nil {
		t.Fatal("the handshake succeeded")
	}
	serr := recv(t, ended, "the server's handshake")
	if !errors.Is(serr, ioloop.ErrStreamClosed) || !strings.Contains(serr.Error(), "panicked") {
		t.Fatalf("server: %v", serr)
	}
	if !strings.Contains(logs.String(), "panic in TLS handshake") || !strings.Contains(logs.String(), "certificate store on fire") {
		t.Errorf("log: %s", logs)
	}
	if n := l.Stats().Panics; n != 1 {
		t.Errorf("Stats().Panics = %d", n)
	}
}
