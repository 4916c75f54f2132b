package tests

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

var crlf = []byte("\r\n")

func TestStreamReadUntilDelimiterSplitAcrossReads(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	got := make(chan streamResult, 8)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		var next func([]byte, error)
		next = func(p []byte, err error) {
			capture(got)(p, err)
			if err == nil {
				_ = s.ReadUntil(crlf, 0, next)
			}
		}
		_ = s.ReadUntil(crlf, 0, next)
	})
	// The delimiter itself is split between writes, and the pauses make the
	// server see the pieces in separate reads.
	for _, piece := range []string{"hel", "lo\r", "\nwor", "ld\r", "\n", "x\r\ny\r\n"} {
		if _, err := c.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, want := range []string{"hello\r\n", "world\r\n", "x\r\n", "y\r\n"} {
		r := recv(t, got, "ReadUntil result")
		if r.err != nil || string(r.data) != want {
			t.Fatalf("ReadUntil = %q, %v; want %q", r.data, r.err, want)
		}
	}
}

func TestStreamReadBytesAcrossManySmallWrites(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	const total = 200 << 10
	want := make([]byte, total)
	rand.New(rand.NewSource(1)).Read(want)
	got := make(chan streamResult, 1)
	sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) {
		if err := s.ReadBytes(total, capture(got)); err != nil {
			t.Errorf("ReadBytes: %v", err)
		}
	}, ioloop.WithStreamOptions(ioloop.WithReadBufferSize(512)))
	c := dial(t, "tcp", sv.Addr().String())
	rng := rand.New(rand.NewSource(2))
	for off := 0; off < total; {
		n := min(1+rng.Intn(97), total-off)
		if _, err := c.Write(want[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	r := recv(t, got, "ReadBytes result")
	if r.err != nil || !bytes.Equal(r.data, want) {
		t.Fatalf("ReadBytes: err %v, %d bytes, equal %v", r.err, len(r.data), bytes.Equal(r.data, want))
	}
}

func TestStreamReadUntilLimitFailsThenClosesAfterReply(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	readErr := make(chan error, 1)
	closeErr := make(chan error, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		s.SetCloseCallback(func(err error) { closeErr <- err })
		_ = s.ReadUntil([]byte("\r\n\r\n"), 64, func(p []byte, err error) {
			readErr <- err
			if werr := s.Write([]byte("431 too large"), nil); werr != nil {
				t.Errorf("Write after a failed read: %v", werr)
			}
		})
	})
	if _, err := c.Write(bytes.Repeat([]byte("a"), 100)); err != nil {
		t.Fatal(err)
	}
	err := recv(t, readErr, "read error")
	if !errors.Is(err, ioloop.ErrDelimiterNotFound) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("read error = %v; want ErrDelimiterNotFound and ErrStreamClosed", err)
	}
	reply, err := readAll(c)
	if err != nil || string(reply) != "431 too large" {
		t.Fatalf("client got %q, %v; want the reply then EOF", reply, err)
	}
	if err := recv(t, closeErr, "close callback"); !errors.Is(err, ioloop.ErrDelimiterNotFound) {
		t.Fatalf("close callback error = %v; want ErrDelimiterNotFound", err)
	}
}

func TestStreamDelimiterBeyondMaxIsNotFound(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	got := make(chan streamResult, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) { _ = s.ReadUntil(crlf, 8, capture(got)) })
	// All in one write: the delimiter is there, but ends at byte 12 > 8.
	if _, err := c.Write([]byte("0123456789\r\n")); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "read"); !errors.Is(r.err, ioloop.ErrDelimiterNotFound) || r.data != nil {
		t.Fatalf("ReadUntil = %q, %v; want ErrDelimiterNotFound", r.data, r.err)
	}
}

func TestStreamInvalidReadsReturnErrorsAtOnce(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	errs := make(chan []error, 1)
	acceptOne(t, l, func(s *ioloop.Stream) {
		noop := func([]byte, error) {}
		var e []error
		e = append(e, s.ReadBytes(1<<10+1, noop))       // over the cap
		e = append(e, s.ReadUntil(crlf, 1<<10+1, noop)) // max over the cap
		e = append(e, s.ReadBytes(0, noop))             // not positive
		e = append(e, s.ReadUntil(nil, 0, noop))        // empty delimiter
		e = append(e, s.ReadSome(nil))                  // nil callback
		e = append(e, s.ReadSome(noop))                 // fine
		e = append(e, s.ReadBytes(1, noop))             // one already pending
		errs <- e
		s.Close()
	}, ioloop.WithStreamOptions(ioloop.WithMaxReadBuffer(1<<10)))
	e := recv(t, errs, "errors")
	checks := []struct {
		err  error
		want error
	}{
		{e[0], ioloop.ErrBufferFull}, {e[1], ioloop.ErrBufferFull},
		{e[2], syscall.EINVAL}, {e[3], syscall.EINVAL},
	}
	for i, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("call %d: error %v; want %v", i, c.err, c.want)
		}
	}
	if e[4] == nil || e[5] != nil || !errors.Is(e[6], ioloop.ErrReadPending) {
		t.Errorf("nil cb: %v; first ReadSome: %v; second read: %v", e[4], e[5], e[6])
	}
}

func TestStreamHalfCloseGetsItsAnswer(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	got := make(chan streamResult, 1)
	closed := make(chan error, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		s.SetCloseCallback(func(err error) { closed <- err })
		_ = s.ReadUntilClose(func(p []byte, err error) {
			capture(got)(p, err)
			_ = s.Write(append([]byte("got "), p...), nil)
		})
	})
	for _, piece := range []string{"one ", "two ", "three"} {
		if _, err := c.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "ReadUntilClose"); r.err != nil || string(r.data) != "one two three" {
		t.Fatalf("ReadUntilClose = %q, %v", r.data, r.err)
	}
	reply, err := readAll(c)
	if err != nil || string(reply) != "got one two three" {
		t.Fatalf("reply %q, %v; want the answer, then EOF", reply, err)
	}
	if err := recv(t, closed, "close callback"); err != io.EOF {
		t.Fatalf("close callback error = %v; want io.EOF", err)
	}
}

func TestStreamHalfOpenKeepsWriting(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	readErr := make(chan error, 1)
	sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) {
		_ = s.ReadSome(func(p []byte, err error) {
			_ = s.ReadSome(func(p []byte, err error) {
				readErr <- err
				if s.Closed() {
					t.Error("half-open stream closed at EOF")
				}
				// Keep answering for a while after the peer's EOF.
				n := 0
				var tick func()
				tick = func() {
					n++
					_ = s.Write([]byte{'0' + byte(n)}, nil)
					if n < 5 {
						s.Loop().CallLater(time.Millisecond, tick)
						return
					}
					_ = s.CloseWrite()
				}
				tick()
			})
		})
	}, ioloop.WithStreamOptions(ioloop.WithHalfOpen()))
	c := dial(t, "tcp", sv.Addr().String())
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	_ = c.(*net.TCPConn).CloseWrite()
	if err := recv(t, readErr, "read at EOF"); !errors.Is(err, io.EOF) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("read at EOF = %v; want ErrStreamClosed wrapping io.EOF", err)
	}
	if reply, err := readAll(c); err != nil || string(reply) != "12345" {
		t.Fatalf("client got %q, %v; want 12345 then EOF", reply, err)
	}
}

func TestStreamEOFFailsShortReadBytes(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	got := make(chan streamResult, 1)
	closed := make(chan error, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		s.SetCloseCallback(func(err error) { closed <- err })
		_ = s.ReadBytes(10, capture(got))
	})
	_, _ = c.Write([]byte("12345"))
	_ = c.Close()
	r := recv(t, got, "ReadBytes")
	if !errors.Is(r.err, ioloop.ErrStreamClosed) || !errors.Is(r.err, io.EOF) || r.data != nil {
		t.Fatalf("ReadBytes = %q, %v; want ErrStreamClosed wrapping io.EOF", r.data, r.err)
	}
	if err := recv(t, closed, "close callback"); err != io.EOF {
		t.Fatalf("close callback: %v", err)
	}
}

// resetConn makes c's Close send RST instead of FIN.
func resetConn(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

func TestStreamPeerResetFailsPendingRead(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	got := make(chan streamResult, 1)
	closed := make(chan error, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		s.SetCloseCallback(func(err error) { closed <- err })
		_ = s.ReadBytes(10, capture(got))
	})
	_, _ = c.Write([]byte("123"))
	time.Sleep(5 * time.Millisecond)
	resetConn(t, c)
	r := recv(t, got, "ReadBytes")
	if !errors.Is(r.err, ioloop.ErrStreamClosed) || !errors.Is(r.err, syscall.ECONNRESET) {
		t.Fatalf("ReadBytes error = %v; want ErrStreamClosed wrapping ECONNRESET", r.err)
	}
	if err := recv(t, closed, "close callback"); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("close callback: %v", err)
	}
}

func TestStreamPeerResetMidWrite(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	writeErr := make(chan error, 1)
	closed := make(chan error, 1)
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		s.SetCloseCallback(func(err error) { closed <- err })
		// Keep the pipe full: write whenever the queue drains.
		pump := func() {
			for s.WriteQueueLen() == 0 {
				if err := s.Write(chunk, func(err error) {
					if err != nil {
						select {
						case writeErr <- err:
						default:
						}
					}
				}); err != nil {
					select {
					case writeErr <- err:
					default:
					}
					return
				}
			}
		}
		s.OnDrain(pump)
		pump()
	})
	readN(t, c, 100<<10) // the server is busy writing
	resetConn(t, c)
	err := recv(t, writeErr, "write error")
	if !errors.Is(err, ioloop.ErrStreamClosed) || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Fatalf("write error = %v; want ErrStreamClosed wrapping ECONNRESET or EPIPE", err)
	}
	if err := recv(t, closed, "close callback"); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("close callback: %v", err)
	}
}

func TestStreamBackpressure(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	const limit = 256 << 10
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = byte(i % 251)
	}
	type full struct {
		accepted, queued int
		err              error
	}
	fullCh := make(chan full, 1)
	drained := make(chan int, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		accepted := 0
		for {
			if err := s.Write(chunk, nil); err != nil {
				fullCh <- full{accepted, s.WriteQueueLen(), err}
				break
			}
			accepted += len(chunk)
		}
		s.OnDrain(func() {
			s.OnDrain(nil)
			// Room again: this write is accepted.
			if err := s.Write([]byte("end"), nil); err != nil {
				t.Errorf("Write after drain: %v", err)
			}
			drained <- s.WriteQueueLen()
		})
	}, ioloop.WithStreamOptions(ioloop.WithMaxWriteQueue(limit)))
	f := recv(t, fullCh, "a full queue")
	if !errors.Is(f.err, ioloop.ErrWriteQueueFull) || f.queued <= limit-len(chunk) || f.queued > limit {
		t.Fatalf("Write error %v with %d queued; want ErrWriteQueueFull with the queue within a chunk of %d", f.err, f.queued, limit)
	}
	data := readN(t, c, f.accepted)
	for i, b := range data {
		if b != byte((i%len(chunk))%251) {
			t.Fatalf("byte %d = %d: data lost or reordered", i, b)
		}
	}
	recv(t, drained, "OnDrain")
	if got := readN(t, c, 3); string(got) != "end" {
		t.Fatalf("after drain got %q", got)
	}
}

func TestStreamWriteCallbacksRunInOrderAfterTheBytesLeave(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	order := make(chan int, 3)
	inside := make(chan bool, 3)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		returned := false
		for i := 1; i <= 3; i++ {
			_ = s.Write(bytes.Repeat([]byte{'a' + byte(i)}, i<<20), func(err error) {
				if err != nil {
					t.Errorf("write %d: %v", i, err)
				}
				inside <- !returned
				order <- i
			})
		}
		returned = true
	})
	data := readN(t, c, 6<<20)
	if data[0] != 'b' || data[1<<20] != 'c' || data[3<<20] != 'd' {
		t.Fatal("data out of order")
	}
	for i := 1; i <= 3; i++ {
		if got := recv(t, order, "write callback"); got != i {
			t.Fatalf("callback %d ran in position %d", got, i)
		}
		if recv(t, inside, "flag") {
			t.Fatal("a write callback ran inside Write")
		}
	}
}

func TestStreamCloseFailsPendingWork(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	type outcome struct {
		read, write, close, after error
		closed                    bool
		fd                        int
	}
	out := make(chan outcome, 1)
	c := acceptOne(t, l, func(s *ioloop.Stream) {
		var o outcome
		pending := 2
		report := func() {
			if pending--; pending == 0 {
				o.after = s.Write([]byte("x"), nil)
				o.closed = s.Closed()
				out <- o
			}
		}
		_ = s.ReadBytes(10, func(p []byte, err error) { o.read = err })
		// More than a socket buffer, so some of it is queued at Close.
		_ = s.Write(make([]byte, 8<<20), func(err error) { o.write = err; report() })
		s.SetCloseCallback(func(err error) { o.close = err; report() })
		o.fd = s.Fd()
		s.Close()
	})
	o := recv(t, out, "outcome")
	if !errors.Is(o.read, ioloop.ErrStreamClosed) || !errors.Is(o.write, ioloop.ErrStreamClosed) ||
		o.close != nil || !errors.Is(o.after, ioloop.ErrStreamClosed) || !o.closed {
		t.Fatalf("after Close: read %v, write %v, close cb %v, later Write %v, Closed %v", o.read, o.write, o.close, o.after, o.closed)
	}
	_ = c
}

func TestStreamReadTimeout(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	got := make(chan streamResult, 1)
	sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) {
		_ = s.ReadUntil(crlf, 0, capture(got))
	}, ioloop.WithStreamOptions(ioloop.WithReadTimeout(30*time.Millisecond)))
	c := dial(t, "tcp", sv.Addr().String())
	_, _ = c.Write([]byte("no end of line"))
	r := recv(t, got, "timed-out read")
	if !errors.Is(r.err, ioloop.ErrTimeout) || !errors.Is(r.err, os.ErrDeadlineExceeded) || !errors.Is(r.err, ioloop.ErrStreamClosed) {
		t.Fatalf("read error = %v; want ErrStreamClosed wrapping ErrTimeout", r.err)
	}
	if _, err := readAll(c); err != nil {
		t.Fatalf("client: %v; want EOF", err)
	}
}

func TestStreamOverPipes(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1<<20)
	rand.New(rand.NewSource(3)).Read(want)
	got := make(chan streamResult, 1)
	wrote := make(chan error, 1)
	onLoop(t, l, func() {
		r, err := ioloop.NewStream(l, p[0])
		if err != nil {
			t.Fatal(err)
		}
		w, err := ioloop.NewStream(l, p[1])
		if err != nil {
			t.Fatal(err)
		}
		_ = r.ReadUntilClose(func(b []byte, err error) { capture(got)(b, err); r.Close() })
		_ = w.Write(want, func(err error) { wrote <- err; w.Close() })
	})
	if err := recv(t, wrote, "write"); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "ReadUntilClose"); r.err != nil || !bytes.Equal(r.data, want) {
		t.Fatalf("read %d bytes, %v", len(r.data), r.err)
	}
}

func TestStreamWriteToClosedPipeIsEPIPENotSIGPIPE(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(p[0])
	errc := make(chan error, 1)
	onLoop(t, l, func() {
		w, err := ioloop.NewStream(l, p[1])
		if err != nil {
			t.Fatal(err)
		}
		errc <- w.Write([]byte("nobody listens"), nil)
	})
	if err := recv(t, errc, "write"); !errors.Is(err, syscall.EPIPE) || !errors.Is(err, ioloop.ErrStreamClosed) {
		t.Fatalf("Write = %v; want ErrStreamClosed wrapping EPIPE", err)
	}
}

func TestConnectAndTalk(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	sv := serve(t, l, echo)
	got := make(chan streamResult, 1)
	for _, addr := range []string{sv.Addr().String(), "localhost:" + portOf(sv.Addr())} {
		ioloop.Connect(l, "tcp", addr, testTimeout, func(s *ioloop.Stream, err error) {
			if err != nil {
				got <- streamResult{nil, err}
				return
			}
			_ = s.Write([]byte("ping"), nil)
			_ = s.ReadBytes(4, func(p []byte, err error) { capture(got)(p, err); s.Close() })
		})
		if r := recv(t, got, "echo"); r.err != nil || string(r.data) != "ping" {
			t.Fatalf("Connect %s: echo %q, %v", addr, r.data, r.err)
		}
	}
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

func TestConnectRefused(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	errc := make(chan error, 1)
	ioloop.Connect(l, "tcp", addr, testTimeout, func(s *ioloop.Stream, err error) {
		if s != nil {
			s.Close()
		}
		errc <- err
	})
	if err := recv(t, errc, "connect"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Connect to a closed port: %v; want ECONNREFUSED", err)
	}
}

func TestConnectTimeout(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	addr := stalledListener(t)
	const n = 8
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		ioloop.Connect(l, "tcp", addr, 200*time.Millisecond, func(s *ioloop.Stream, err error) {
			if s != nil {
				s.Close()
			}
			errc <- err
		})
	}
	timeouts := 0
	for i := 0; i < n; i++ {
		if err := recv(t, errc, "connect"); errors.Is(err, ioloop.ErrTimeout) {
			timeouts++
		}
	}
	if timeouts == 0 {
		t.Fatal("no Connect to a full listener timed out")
	}
}
