//go:build linux

package tests

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// StartTLS's contract: invalid calls return an error and change nothing
// (a valid StartTLS afterwards works), Write during the handshake is
// ErrHandshaking, a read requested then is served after it, and the
// session state appears only once it succeeded.
func TestStartTLSContract(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	cfg := p.serverConfig()
	type report struct {
		invalid                 []error
		writeDuring, second     error
		stateDuring, stateAfter bool
		read                    string
		cbInside                bool
	}
	out := make(chan report, 1)
	streams := make(chan *ioloop.Stream, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		streams <- s
		var r report
		cb := func(error) {}
		reneg := &tls.Config{Renegotiation: tls.RenegotiateOnceAsClient}
		r.invalid = append(r.invalid,
			s.StartTLS(ioloop.TLSServer, cfg, nil),
			s.StartTLS(ioloop.TLSServer, nil, cb),
			s.StartTLS(0, cfg, cb),
			s.StartTLS(ioloop.TLSClient, reneg, cb))
		s.ReadSome(func([]byte, error) {})
		r.invalid = append(r.invalid, s.StartTLS(ioloop.TLSServer, cfg, cb)) // a read is pending
		s.Close()
		out <- r
	})
	r := recv(t, out, "the invalid calls")
	for i, err := range r.invalid {
		if err == nil {
			t.Errorf("invalid StartTLS %d returned nil", i)
		}
	}
	c.Close()
	s := recv(t, streams, "the stream")
	if err := s.StartTLS(ioloop.TLSServer, cfg, func(error) {}); !errors.Is(err, ioloop.ErrNotOnLoop) {
		t.Errorf("StartTLS off the loop: %v", err)
	}

	// The valid case, after an invalid call that must have changed nothing.
	c = acceptOne(t, l, func(s *ioloop.Stream) {
		var r report
		if err := s.StartTLS(0, cfg, func(error) {}); err == nil {
			t.Error("StartTLS with no role returned nil")
		}
		returned := false
		err := s.StartTLS(ioloop.TLSServer, cfg, func(err error) {
			if err != nil {
				t.Errorf("handshake: %v", err)
				return
			}
			r.cbInside = !returned
			_, r.stateAfter = s.TLSConnectionState()
		})
		returned = true
		if err != nil {
			t.Errorf("StartTLS: %v", err)
		}
		r.writeDuring = s.Write([]byte("too early"), nil)
		r.second = s.StartTLS(ioloop.TLSServer, cfg, func(error) {})
		_, r.stateDuring = s.TLSConnectionState()
		// Requested during the handshake, served after it.
		s.ReadBytes(5, func(b []byte, err error) {
			r.read = string(b)
			s.Write([]byte("world"), func(error) { out <- r })
		})
	})
	tc := tls.Client(c, &tls.Config{RootCAs: p.roots, ServerName: "localhost"})
	tc.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(tc, got); err != nil || string(got) != "world" {
		t.Fatalf("answer %q, %v", got, err)
	}
	r = recv(t, out, "the TLS exchange")
	if !errors.Is(r.writeDuring, ioloop.ErrHandshaking) {
		t.Errorf("Write during the handshake: %v", r.writeDuring)
	}
	if r.second == nil {
		t.Error("a second StartTLS returned nil")
	}
	if r.stateDuring || !r.stateAfter {
		t.Errorf("TLSConnectionState ok: %v during the handshake, %v after", r.stateDuring, r.stateAfter)
	}
	if r.cbInside {
		t.Error("StartTLS's callback ran inside StartTLS")
	}
	if r.read != "hello" {
		t.Errorf("read %q", r.read)
	}
}

// StartTLS on a pipe: not a socket.
func TestStartTLSOnAPipe(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	fd, _ := streamPair(t, "pipe")
	s := newStreamOnLoop(t, l, fd)
	var err error
	onLoop(t, l, func() { err = s.StartTLS(ioloop.TLSClient, &tls.Config{}, func(error) {}) })
	if !errors.Is(err, syscall.ENOTSOCK) {
		t.Fatalf("StartTLS on a pipe: %v", err)
	}
}

// pipeliningConn is a STARTTLS client's socket: its first write goes out
// behind the plaintext command, in the same segment, and its first reads
// take the server's plaintext answer off the front.
type pipeliningConn struct {
	net.Conn
	command []byte // sent in front of the first write
	answer  int    // bytes of plaintext answer to read first
	got     []byte
}

func (c *pipeliningConn) Write(b []byte) (int, error) {
	if c.command != nil {
		k := len(c.command)
		b = append(c.command, b...)
		c.command = nil
		n, err := c.Conn.Write(b)
		return max(0, n-k), err
	}
	return c.Conn.Write(b)
}

func (c *pipeliningConn) Read(b []byte) (int, error) {
	for len(c.got) < c.answer {
		buf := make([]byte, c.answer-len(c.got))
		n, err := c.Conn.Read(buf)
		c.got = append(c.got, buf[:n]...)
		if err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// STARTTLS: a plaintext exchange, then TLS on the same stream, from the
// callback of the last plaintext Write. The client sends its ClientHello
// right behind its command, so the stream has it buffered when StartTLS
// comes: those bytes are the start of the handshake.
func TestStartTLSAfterAPlaintextExchange(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	errs := make(chan error, 1)
	buffered := make(chan int, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		s.ReadUntil([]byte("\r\n"), 100, func(b []byte, err error) {
			if string(b) != "STARTTLS\r\n" {
				errs <- errors.New("command " + string(b))
				return
			}
			s.Write([]byte("220 go ahead\r\n"), func(error) {
				buffered <- s.Buffered()
				err := s.StartTLS(ioloop.TLSServer, p.serverConfig(), func(err error) {
					if err != nil {
						errs <- err
						return
					}
					s.ReadUntil([]byte("\n"), 0, func(b []byte, err error) {
						s.Write(bytes.ToUpper(b), nil)
						errs <- err
					})
				})
				if err != nil {
					errs <- err
				}
			})
		})
	})
	pc := &pipeliningConn{Conn: c, command: []byte("STARTTLS\r\n"), answer: len("220 go ahead\r\n")}
	tc := tls.Client(pc, &tls.Config{RootCAs: p.roots, ServerName: "localhost"})
	if _, err := tc.Write([]byte("secret\n")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(tc, got); err != nil || string(got) != "SECRET\n" {
		t.Fatalf("answer %q, %v", got, err)
	}
	if err := recv(t, errs, "the server"); err != nil {
		t.Fatal(err)
	}
	if string(pc.got) != "220 go ahead\r\n" {
		t.Fatalf("plaintext answer %q", pc.got)
	}
	if n := recv(t, buffered, "Buffered"); n == 0 {
		t.Log("the ClientHello was not buffered at StartTLS this time (it came in a later segment)")
	}
}

// finishedHoldingConn holds a crypto/tls client's second write (its last
// handshake flight) and sends it in front of the third (its first
// record), so the server's handshake reads the client's first request
// together with its Finished.
type finishedHoldingConn struct {
	net.Conn
	writes int
	held   []byte
}

func (c *finishedHoldingConn) Write(b []byte) (int, error) {
	c.writes++
	switch c.writes {
	case 2:
		c.held = append([]byte(nil), b...)
		return len(b), nil
	case 3:
		if _, err := c.Conn.Write(append(c.held, b...)); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// Bytes the handshake read past its end (a request right behind the
// client's Finished) are in crypto/tls's buffer, where epoll cannot see
// them: the stream must look at once, not wait for readiness that never
// comes.
func TestTLSDataRightBehindTheHandshakeIsRead(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	sv := serveTLS(t, l, p.serverConfig(), echo)
	// TLS 1.3: the client's handshake ends with its Finished, which it
	// does not wait to have acknowledged.
	fc := &finishedHoldingConn{Conn: dial(t, "tcp", sv.Addr().String())}
	tc := tls.Client(fc, &tls.Config{RootCAs: p.roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if fc.writes != 2 {
		t.Fatalf("the client's handshake made %d writes; the test expects 2", fc.writes)
	}
	tc.Write([]byte("right behind"))
	got := make([]byte, 12)
	if _, err := io.ReadFull(tc, got); err != nil || string(got) != "right behind" {
		t.Fatalf("echo %q, %v", got, err)
	}
	tc.Close()
}

// Close during the handshake aborts it: StartTLS's callback gets an error
// matching ErrStreamClosed, the close callback runs after it, the peer
// sees the connection end, and the handshake goroutine is gone
// (checkNoLeaks).
func TestStartTLSCloseDuringHandshake(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	order := make(chan string, 2)
	streams := make(chan *ioloop.Stream, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		s.SetCloseCallback(func(err error) { order <- "close callback" })
		if err := s.StartTLS(ioloop.TLSServer, p.serverConfig(), func(err error) {
			if !errors.Is(err, ioloop.ErrStreamClosed) {
				t.Errorf("StartTLS callback: %v", err)
			}
			order <- "StartTLS callback"
		}); err != nil {
			t.Error(err)
		}
		streams <- s
	})
	s := recv(t, streams, "the stream")
	time.Sleep(20 * time.Millisecond) // the goroutine waits for a ClientHello
	s.Close()                         // from another goroutine: hops to the loop
	if got := recv(t, order, "a callback"); got != "StartTLS callback" {
		t.Fatalf("first %q", got)
	}
	if got := recv(t, order, "a callback"); got != "close callback" {
		t.Fatalf("then %q", got)
	}
	expectClosed(t, c)
}

// A loop closed during a handshake: StartTLS's callback runs on a
// goroutine of its own with an error wrapping ErrClosed, the stream's
// socket is closed, and the handshake goroutine is gone.
func TestStartTLSLoopClosedDuringHandshake(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	p := pki(t)
	started := make(chan struct{})
	result := make(chan error, 1)
	sv, err := ioloop.Listen(l, "tcp", "127.0.0.1:0", func(s *ioloop.Stream, _ net.Addr) {
		if err := s.StartTLS(ioloop.TLSServer, p.serverConfig(), func(err error) {
			if l.InLoop() {
				t.Error("the callback ran on the closed loop")
			}
			result <- err
		}); err != nil {
			t.Error(err)
		}
		close(started)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, "tcp", sv.Addr().String())
	recv(t, started, "the handshake to start")
	if err := l.Close(true); err != nil {
		t.Fatal(err)
	}
	err = recv(t, result, "StartTLS's callback")
	if !errors.Is(err, ioloop.ErrClosed) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("callback: %v", err)
	}
	expectClosed(t, c)
}

// A Write's callback runs once that write's records are in the kernel: not
// while 8 MiB wait for a peer that reads nothing, and in order once it
// reads.
func TestTLSWriteCallbacksAfterTheRecordsLeave(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	var ran atomic.Int32
	inside := make(chan bool, 2)
	order := make(chan int, 2)
	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		returned := false
		for i := 1; i <= 2; i++ {
			err := s.Write(bytes.Repeat([]byte{byte('a' + i)}, 4<<20), func(err error) {
				if err != nil {
					t.Errorf("write %d: %v", i, err)
				}
				ran.Add(1)
				inside <- !returned
				order <- i
			})
			if err != nil {
				t.Error(err)
			}
		}
		returned = true
	})
	c := dialTLS(t, sv.Addr().String(), p.clientConfig())
	time.Sleep(100 * time.Millisecond)
	if n := ran.Load(); n == 2 {
		t.Fatal("both callbacks ran while 8 MiB waited for a peer that reads nothing")
	}
	got := make([]byte, 8<<20)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if got[0] != 'b' || got[4<<20] != 'c' || got[len(got)-1] != 'c' {
		t.Fatal("data out of order")
	}
	for i := 1; i <= 2; i++ {
		if o := recv(t, order, "a write callback"); o != i {
			t.Fatalf("callback %d ran in position %d", o, i)
		}
		if recv(t, inside, "flag") {
			t.Fatal("a write callback ran inside Write")
		}
	}
}

// A read timeout on a TLS stream: the read fails with ErrTimeout, and the
// stream says close_notify as it closes.
func TestTLSReadTimeout(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	errs := make(chan error, 1)
	sv := serveTLS(t, l, p.serverConfig(), func(s *ioloop.Stream, _ net.Addr) {
		s.ReadUntil([]byte("\n"), 0, func(_ []byte, err error) { errs <- err })
	}, ioloop.WithStreamOptions(ioloop.WithReadTimeout(200*time.Millisecond)))
	c, ec := dialEOF(t, sv.Addr().String(), p.clientConfig())
	if err := recv(t, errs, "the read"); !errors.Is(err, ioloop.ErrTimeout) {
		t.Fatalf("read: %v", err)
	}
	readToEOF(t, c)
	if ec.sawEOF.Load() {
		t.Error("closed without close_notify")
	}
}

// A thousand ConnectTLS clients on one loop handshake at once with a
// ListenTLS server on another, exchange a message each, and close; no
// goroutine, fd or stream is left behind.
func TestTLSThousandConcurrentHandshakes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	checkNoLeaks(t)
	la, _ := runningLoop(t)
	lb, _ := runningLoop(t)
	p := pki(t)
	const n = 1000
	long := ioloop.WithHandshakeTimeout(2 * time.Minute) // -race on 2 shared cores
	sv := serveTLS(t, la, p.serverConfig(), echo, ioloop.WithStreamOptions(long))
	var wg sync.WaitGroup
	var failed atomic.Int32
	var firstErr atomic.Value
	wg.Add(n)
	for i := 0; i < n; i++ {
		ioloop.ConnectTLS(lb, "tcp", sv.Addr().String(), 0, p.clientConfig(), func(s *ioloop.Stream, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				wg.Done()
				return
			}
			s.Write([]byte("ping"), nil)
			s.ReadBytes(4, func(b []byte, err error) {
				if err != nil || string(b) != "ping" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, errors.New("echo: "+string(b)))
				}
				s.Close()
				wg.Done()
			})
		}, long)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("handshakes still running after 3 minutes; %d failed so far", failed.Load())
	}
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d failed; first: %v", f, n, firstErr.Load())
	}
	waitFor(t, "the server's streams to close", func() bool { return sv.NumStreams() == 0 })
	if f := sv.TLSHandshakeFailures(); f != 0 {
		t.Errorf("server counted %d failed handshakes", f)
	}
}

// CloseAfterFlush and CloseWrite called during the handshake take effect
// after it: the handshake completes, then the answer written from
// StartTLS's callback goes out, then close_notify.
func TestStartTLSCloseDuringHandshakeWaitsForIt(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	for _, how := range []string{"CloseAfterFlush", "CloseWrite"} {
		t.Run(how, func(t *testing.T) {
			sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) {
				if err := s.StartTLS(ioloop.TLSServer, p.serverConfig(), func(err error) {
					if err != nil {
						t.Errorf("handshake: %v", err)
					}
				}); err != nil {
					t.Error(err)
				}
				if how == "CloseAfterFlush" {
					s.CloseAfterFlush()
				} else if err := s.CloseWrite(); err != nil {
					t.Error(err)
				}
			})
			c, ec := dialEOF(t, sv.Addr().String(), p.clientConfig())
			if got := readToEOF(t, c); got != "" {
				t.Fatalf("read %q", got)
			}
			if ec.sawEOF.Load() {
				t.Fatal("EOF from the socket, not from close_notify")
			}
		})
	}
}

// Shutdown lets a handshake in progress finish, then closes the idle
// stream (close_notify) and returns nil: nothing was cut off.
func TestTLSShutdownLetsAHandshakeFinish(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	sv, err := ioloop.ListenTLS(l, "tcp", "127.0.0.1:0", p.serverConfig(), echo)
	if err != nil {
		t.Fatal(err)
	}
	raw := dial(t, "tcp", sv.Addr().String())
	waitFor(t, "the connection to be accepted", func() bool { return sv.NumStreams() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- sv.Shutdown(ctxTimeout(t, testTimeout)) }()
	time.Sleep(20 * time.Millisecond) // Shutdown has begun; the handshake has not
	ec := &eofConn{Conn: raw}
	c := tls.Client(ec, &tls.Config{RootCAs: p.roots, ServerName: "localhost"})
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake during Shutdown: %v", err)
	}
	readToEOF(t, c)
	if ec.sawEOF.Load() {
		t.Error("closed without close_notify")
	}
	if err := recv(t, shut, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Server.Close during handshakes closes those streams at once (the
// handshake goroutines wake up and go), Done follows, and a handshake cut
// short by Close is not counted as failed.
func TestTLSServerCloseDuringHandshakes(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	p := pki(t)
	sv, err := ioloop.ListenTLS(l, "tcp", "127.0.0.1:0", p.serverConfig(), echo)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		conns = append(conns, dial(t, "tcp", sv.Addr().String())) // silent: handshakes wait
	}
	waitFor(t, "the connections to be accepted", func() bool { return sv.NumStreams() == 5 })
	start := time.Now()
	if err := sv.Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, sv.Done(), "Done")
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Close took %v: it waited for the handshakes", el)
	}
	for _, c := range conns {
		expectClosed(t, c)
	}
	if n := sv.TLSHandshakeFailures(); n != 0 {
		t.Errorf("%d handshakes counted as failed", n)
	}
}
