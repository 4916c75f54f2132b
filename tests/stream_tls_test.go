//go:build linux

package tests

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

// An ioloop client and an ioloop server, on two loops, with client
// certificates both ways verified and ALPN: each side sees the other's
// certificate and the protocol, and lines go both ways.
func TestTLSIoloopToIoloop(t *testing.T) {
	checkNoLeaks(t)
	la, _ := runningLoop(t)
	lb, _ := runningLoop(t)
	p := pki(t)
	scfg := p.serverConfig()
	scfg.ClientAuth = tls.RequireAndVerifyClientCert
	scfg.ClientCAs = p.roots
	scfg.NextProtos = []string{"h2", "myproto/1"}
	serverState := make(chan tls.ConnectionState, 1)
	sv := serveTLS(t, la, scfg, func(s *ioloop.Stream, _ net.Addr) {
		st, _ := s.TLSConnectionState()
		serverState <- st
		var line func([]byte, error)
		line = func(b []byte, err error) {
			if err != nil {
				return
			}
			s.Write(append([]byte("echo: "), b...), nil)
			s.ReadUntil([]byte("\n"), 0, line)
		}
		s.ReadUntil([]byte("\n"), 0, line)
	})
	ccfg := p.clientConfig()
	ccfg.Certificates = []tls.Certificate{p.client}
	ccfg.NextProtos = []string{"myproto/1"}
	type result struct {
		lines []string
		state tls.ConnectionState
		err   error
	}
	res := make(chan result, 1)
	ioloop.ConnectTLS(lb, "tcp", sv.Addr().String(), testTimeout, ccfg, func(s *ioloop.Stream, err error) {
		if err != nil {
			res <- result{err: err}
			return
		}
		var r result
		r.state, _ = s.TLSConnectionState()
		s.Write([]byte("one\ntwo\n"), nil)
		s.ReadUntil([]byte("\n"), 0, func(b []byte, err error) {
			r.lines = append(r.lines, string(b))
			s.ReadUntil([]byte("\n"), 0, func(b []byte, err error) {
				r.lines = append(r.lines, string(b))
				r.err = err
				s.Close()
				res <- r
			})
		})
	})
	r := recv(t, res, "the client")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.lines) != 2 || r.lines[0] != "echo: one\n" || r.lines[1] != "echo: two\n" {
		t.Fatalf("lines %q", r.lines)
	}
	ss := recv(t, serverState, "the server's state")
	if ss.NegotiatedProtocol != "myproto/1" || r.state.NegotiatedProtocol != "myproto/1" {
		t.Errorf("ALPN: server %q, client %q; want myproto/1", ss.NegotiatedProtocol, r.state.NegotiatedProtocol)
	}
	if len(ss.PeerCertificates) == 0 || ss.PeerCertificates[0].Subject.CommonName != "ioloop test client" || len(ss.VerifiedChains) == 0 {
		t.Errorf("the server did not see the client's verified certificate: %d certificates", len(ss.PeerCertificates))
	}
	if len(r.state.PeerCertificates) == 0 || r.state.PeerCertificates[0].Subject.CommonName != "ioloop test" {
		t.Errorf("the client did not see the server's certificate")
	}
}

// ALPN with crypto/tls on the other side, both ways, and a client that
// offers only protocols the server does not speak: the server refuses
// (no_application_protocol) and both ends say so.
func TestTLSALPN(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	p := pki(t)
	scfg := p.serverConfig()
	scfg.NextProtos = []string{"h2", "http/1.1"}
	protos := make(chan string, 1)
	sv := serveTLS(t, l, scfg, func(s *ioloop.Stream, _ net.Addr) {
		st, _ := s.TLSConnectionState()
		protos <- st.NegotiatedProtocol
		s.Close()
	}, ioloop.WithServerLogger(debugLogger(logs)))

	// A crypto/tls client picks http/1.1 from the ioloop server's list.
	ccfg := p.clientConfig()
	ccfg.NextProtos = []string{"http/1.1"}
	c := dialTLS(t, sv.Addr().String(), ccfg)
	if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("client negotiated %q", got)
	}
	if got := recv(t, protos, "the handler"); got != "http/1.1" {
		t.Errorf("server negotiated %q", got)
	}

	// No common protocol: the handshake fails on both sides.
	ccfg.NextProtos = []string{"spdy/3"}
	_, err := tls.Dial("tcp", sv.Addr().String(), ccfg)
	if err == nil || !strings.Contains(err.Error(), "no application protocol") {
		t.Errorf("client with no common protocol: %v", err)
	}
	waitFor(t, "the failed handshake to be counted", func() bool { return sv.TLSHandshakeFailures() == 1 })
	waitFor(t, "the debug log line", func() bool { return strings.Contains(logs.String(), "TLS handshake failed") })
	if !strings.Contains(logs.String(), "unsupported application protocols") {
		t.Errorf("log: %s", logs)
	}

	// An ioloop client against a crypto/tls server choosing h2.
	gcfg := p.serverConfig()
	gcfg.NextProtos = []string{"h2"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", gcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	defer func() { recv(t, served, "the Go server") }()
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	ccfg.NextProtos = []string{"http/1.1", "h2"}
	got := make(chan string, 1)
	ioloop.ConnectTLS(l, "tcp", ln.Addr().String(), testTimeout, ccfg, func(s *ioloop.Stream, err error) {
		if err != nil {
			got <- err.Error()
			return
		}
		st, _ := s.TLSConnectionState()
		got <- st.NegotiatedProtocol
		s.Close()
	})
	if g := recv(t, got, "ConnectTLS"); g != "h2" {
		t.Errorf("ioloop client negotiated %q", g)
	}
}

// 16 MiB each way between an ioloop client and an ioloop echo server:
// the client writes until ErrWriteQueueFull and resumes in OnDrain (its
// queue capped at 256 KiB, counted in records), the server pauses reading
// while its answer is queued, and the client starts reading late, so both
// sides' flow control is exercised. Every byte comes back in order.
func TestTLS16MiBEachWayWithBackpressure(t *testing.T) {
	checkNoLeaks(t)
	la, _ := runningLoop(t)
	lb, _ := runningLoop(t)
	p := pki(t)
	sv := serveTLS(t, la, p.serverConfig(), echo)
	const total = 16 << 20
	const maxQueue = 256 << 10
	data := randomBytes(total, 12)
	type result struct {
		fulls, maxQueued int
		err              error
	}
	res := make(chan result, 1)
	ioloop.ConnectTLS(lb, "tcp", sv.Addr().String(), testTimeout, p.clientConfig(), func(s *ioloop.Stream, err error) {
		if err != nil {
			res <- result{err: err}
			return
		}
		var r result
		sent, got := 0, 0
		var write func()
		write = func() {
			s.OnDrain(nil)
			for sent < total {
				n := min(total-sent, 32<<10)
				err := s.Write(data[sent:sent+n], nil)
				if errors.Is(err, ioloop.ErrWriteQueueFull) {
					r.fulls++
					s.OnDrain(write)
					return
				}
				if err != nil {
					r.err = err
					s.Close()
					res <- r
					return
				}
				sent += n
				r.maxQueued = max(r.maxQueued, s.WriteQueueLen())
			}
		}
		var read func([]byte, error)
		read = func(b []byte, err error) {
			if err != nil {
				r.err = err
				res <- r
				return
			}
			if !bytes.Equal(b, data[got:got+len(b)]) {
				r.err = fmt.Errorf("echo differs at byte %d", got)
				s.Close()
				res <- r
				return
			}
			if got += len(b); got == total {
				s.Close()
				res <- r
				return
			}
			s.ReadBytes(min(total-got, 64<<10), read)
		}
		write()
		// Read late: the server's answers back up meanwhile.
		lb.CallLater(50*time.Millisecond, func() { s.ReadBytes(64<<10, read) })
	}, ioloop.WithMaxWriteQueue(maxQueue))
	r := recv(t, res, "16 MiB back")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.fulls == 0 {
		t.Error("the client's queue never filled: no backpressure")
	}
	// The cap counts records: a Write is refused when the queue plus its
	// plaintext would pass the cap, so the queue passes it by at most a
	// write's framing (two records of 22 bytes here).
	if r.maxQueued > maxQueue+64 {
		t.Errorf("queue reached %d bytes, cap %d", r.maxQueued, maxQueue)
	}
}

// eofConn notes whether its Read ever returned io.EOF: a crypto/tls
// client that returns io.EOF before its socket did had a close_notify.
type eofConn struct {
	net.Conn
	sawEOF atomic.Bool
}

func (c *eofConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err == io.EOF {
		c.sawEOF.Store(true)
	}
	return n, err
}

// dialEOF is dialTLS over an eofConn.
func dialEOF(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *eofConn) {
	t.Helper()
	raw := dial(t, "tcp", addr)
	ec := &eofConn{Conn: raw}
	cfg = cfg.Clone()
	cfg.ServerName = "127.0.0.1"
	c := tls.Client(ec, cfg)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return c, ec
}

// readToEOF reads until an error; it must be io.EOF.
func readToEOF(t *testing.T, c *tls.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read until EOF: %v (got %d bytes)", err, len(b))
	}
	return string(b)
}

// Each way a stream ends its side sends close_notify first: CloseWrite
// (the stream reads on: half-close), CloseAfterFlush after a 1 MiB
// answer, and Close with nothing queued. A crypto/tls client sees io.EOF
// from the alert, before its socket's EOF; TLS 1.2 too. A close without
// close_notify (the control case) shows as the socket's EOF, so the check
// can fail.
func TestTLSCloseNotify(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	big := randomBytes(1<<20, 3)
	halfClosed := make(chan string, 4)
	handlers := map[string]func(s *ioloop.Stream){
		"CloseWrite": func(s *ioloop.Stream) {
			s.Write([]byte("bye"), nil)
			if err := s.CloseWrite(); err != nil {
				t.Errorf("CloseWrite: %v", err)
			}
			// Half-close: the client's data still arrives, up to its
			// close_notify (io.EOF: a nil error for ReadUntilClose).
			s.ReadUntilClose(func(b []byte, err error) {
				if err != nil {
					halfClosed <- "error: " + err.Error()
					return
				}
				halfClosed <- string(b)
			})
		},
		"CloseAfterFlush": func(s *ioloop.Stream) {
			s.Write(big, nil)
			s.CloseAfterFlush()
		},
		"Close": func(s *ioloop.Stream) {
			s.Write([]byte("bye"), func(error) { s.Close() })
		},
		"no close_notify": func(s *ioloop.Stream) {
			s.Write([]byte("bye"), func(error) {
				// The control: shut the socket down under TLS's feet.
				syscall.Shutdown(s.Fd(), syscall.SHUT_WR)
			})
		},
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for name, h := range handlers {
			t.Run(fmt.Sprintf("%s/%x", name, version), func(t *testing.T) {
				sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) { h(s) })
				ccfg := p.clientConfig()
				ccfg.MaxVersion = version
				c, ec := dialEOF(t, sv.Addr().String(), ccfg)
				got := readToEOF(t, c)
				want := "bye"
				if name == "CloseAfterFlush" {
					want = string(big)
				}
				if got != want {
					t.Fatalf("read %d bytes before EOF, want %d", len(got), len(want))
				}
				if name == "no close_notify" {
					if !ec.sawEOF.Load() {
						t.Fatal("control: a bare shutdown was not seen as the socket's EOF")
					}
					return
				}
				if ec.sawEOF.Load() {
					t.Fatal("io.EOF came from the socket, not from a close_notify")
				}
				if name == "CloseWrite" {
					c.Write([]byte("after your close_notify"))
					c.CloseWrite() // ours: the server's ReadUntilClose ends
					if got := recv(t, halfClosed, "the server's read"); got != "after your close_notify" {
						t.Fatalf("server read %q after its CloseWrite", got)
					}
				}
			})
		}
	}
}

// A peer's close_notify is io.EOF on the stream: ReadUntilClose ends with
// nil, and with WithHalfOpen the stream answers after it.
func TestTLSPeerCloseNotifyIsEOF(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	errs := make(chan error, 1)
	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		s.ReadUntilClose(func(b []byte, err error) {
			errs <- err
			if err == nil {
				s.Write(append([]byte("you said: "), b...), nil)
				s.CloseAfterFlush()
			}
		})
	}, ioloop.WithStreamOptions(ioloop.WithHalfOpen()))
	c, _ := dialEOF(t, sv.Addr().String(), p.clientConfig())
	c.Write([]byte("half"))
	if err := c.CloseWrite(); err != nil { // close_notify; the socket stays open
		t.Fatal(err)
	}
	if err := recv(t, errs, "ReadUntilClose"); err != nil {
		t.Fatalf("ReadUntilClose after close_notify: %v", err)
	}
	if got := readToEOF(t, c); got != "you said: half" {
		t.Fatalf("answer after our close_notify: %q", got)
	}
}

// Reads of every size against records of every size: a small read buffer
// (reading ahead 1000 bytes, at most 5000 held) makes crypto/tls keep the
// rest of a record while the stream waits for the next read, sometimes
// issued from a timer, with pipelined records behind it in crypto/tls's
// buffer and the kernel drained. Every byte arrives, in order, without
// waiting for readiness that never comes.
func TestTLSReadsOfEverySizeAcrossRecords(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	const total = 300 << 10
	data := randomBytes(total, 9)
	done := make(chan error, 1)
	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		rng := rand.New(rand.NewSource(2))
		got := 0
		var next func()
		onData := func(b []byte, err error) {
			if err != nil {
				done <- fmt.Errorf("after %d bytes: %w", got, err)
				return
			}
			if !bytes.Equal(b, data[got:got+len(b)]) {
				done <- fmt.Errorf("bytes %d..%d differ", got, got+len(b))
				return
			}
			if got += len(b); got == total {
				done <- nil
				return
			}
			if rng.Intn(4) == 0 {
				l.CallLater(time.Millisecond, next) // the stream reads ahead meanwhile
				return
			}
			next()
		}
		next = func() {
			switch rng.Intn(3) {
			case 0:
				s.ReadSome(onData)
			default:
				s.ReadBytes(min(total-got, 1+rng.Intn(5000)), onData)
			}
		}
		next()
	}, ioloop.WithStreamOptions(ioloop.WithReadBufferSize(1000), ioloop.WithMaxReadBuffer(5000)))
	c := dialTLS(t, sv.Addr().String(), p.clientConfig())
	// Writes of assorted sizes: records from a few bytes to 16 KiB, often
	// several in one segment.
	rng := rand.New(rand.NewSource(3))
	for off := 0; off < total; {
		n := min(total-off, 1+rng.Intn(40000))
		if _, err := c.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if err := recv(t, done, "every byte"); err != nil {
		t.Fatal(err)
	}
}

// pairingConn, once armed, holds each write and sends it with the next,
// so that two records leave in one segment.
type pairingConn struct {
	net.Conn
	armed bool
	held  []byte
}

func (c *pairingConn) Write(b []byte) (int, error) {
	if !c.armed {
		return c.Conn.Write(b)
	}
	if c.held == nil {
		c.held = append([]byte{}, b...)
		return len(b), nil
	}
	_, err := c.Conn.Write(append(c.held, b...))
	c.held = nil
	return len(b), err
}

// Two records in one segment, each a whole message: the stream reads
// both from the socket at once, and the second message, left in
// crypto/tls's buffer, is served to the read issued from the first one's
// callback, with nothing more coming from the kernel.
func TestTLSTwoRecordsInOneSegment(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		var line func([]byte, error)
		line = func(b []byte, err error) {
			if err != nil {
				return
			}
			s.Write(bytes.ToUpper(b), nil)
			s.ReadUntil([]byte("\n"), 0, line)
		}
		s.ReadUntil([]byte("\n"), 0, line)
	})
	pc := &pairingConn{Conn: dial(t, "tcp", sv.Addr().String())}
	c := tls.Client(pc, &tls.Config{RootCAs: p.roots, ServerName: "localhost"})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	pc.armed = true
	for round := 0; round < 3; round++ {
		c.Write([]byte("first\n"))
		c.Write([]byte("second\n"))
		got := make([]byte, 13)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "FIRST\nSECOND\n" {
			t.Fatalf("round %d: %q, %v", round, got, err)
		}
	}
}

// Read limits over TLS: a line longer than ReadUntil's maximum fails the
// read with ErrDelimiterNotFound, the stream can still answer, and it
// closes once the answer is out, with close_notify.
func TestTLSReadLimit(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	errs := make(chan error, 1)
	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		s.ReadUntil([]byte("\n"), 100, func(_ []byte, err error) {
			errs <- err
			s.Write([]byte("line too long\n"), nil)
		})
	})
	c, ec := dialEOF(t, sv.Addr().String(), p.clientConfig())
	c.Write(bytes.Repeat([]byte("x"), 200))
	if err := recv(t, errs, "the read"); !errors.Is(err, ioloop.ErrDelimiterNotFound) {
		t.Fatalf("read: %v", err)
	}
	if got := readToEOF(t, c); got != "line too long\n" {
		t.Fatalf("answer %q", got)
	}
	if ec.sawEOF.Load() {
		t.Error("closed without close_notify")
	}
}
