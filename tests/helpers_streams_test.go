package tests

import (
	"context"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

// Helpers for the stream, server and example tests. They build on the
// loop helpers in loop_helpers_test.go (newTestLoop, startLoop, onLoop,
// waitFor, recv, checkNoLeaks).

// runningLoop returns a started loop that is stopped and closed when the
// test ends, and its log.
func runningLoop(t *testing.T) (*ioloop.IOLoop, *logBuffer) {
	t.Helper()
	l, logs := newTestLoop(t)
	stop := startLoop(t, l)
	t.Cleanup(func() { _ = stop() })
	return l, logs
}

// serve listens on 127.0.0.1:0 with handler on l; the server is closed,
// and every stream with it, when the test ends.
func serve(t *testing.T, l *ioloop.IOLoop, handler ioloop.StreamHandler, opts ...ioloop.ServerOption) *ioloop.Server {
	t.Helper()
	return serveOn(t, l, "tcp", "127.0.0.1:0", handler, opts...)
}

func serveOn(t *testing.T, l *ioloop.IOLoop, network, addr string, handler ioloop.StreamHandler, opts ...ioloop.ServerOption) *ioloop.Server {
	t.Helper()
	sv, err := ioloop.Listen(l, network, addr, handler, opts...)
	if err != nil {
		t.Fatalf("Listen(%s, %s): %v", network, addr, err)
	}
	t.Cleanup(func() {
		if err := sv.Close(); err == nil {
			select {
			case <-sv.Done():
			case <-time.After(testTimeout):
				t.Error("server did not finish closing")
			}
		}
	})
	return sv
}

// echo is the echo protocol with flow control: whatever arrives goes
// straight back, and reading pauses while the write queue is not empty.
func echo(s *ioloop.Stream, _ net.Addr) {
	var onData func([]byte, error)
	resume := func() {
		s.OnDrain(nil)
		_ = s.ReadSome(onData)
	}
	onData = func(p []byte, err error) {
		if err != nil {
			s.Close()
			return
		}
		if err := s.Write(p, nil); err != nil {
			s.Close()
			return
		}
		if s.WriteQueueLen() > 0 {
			s.OnDrain(resume)
			return
		}
		_ = s.ReadSome(onData)
	}
	_ = s.ReadSome(onData)
}

// dial connects a blocking client, closed when the test ends.
func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, testTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

// readN reads exactly n bytes from c.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return buf
}

// readAll reads until EOF (or an error, returned).
func readAll(c net.Conn) ([]byte, error) {
	return io.ReadAll(c)
}

// streamResult carries what a read callback saw to the test goroutine.
type streamResult struct {
	data []byte
	err  error
}

// capture returns a read callback that copies its result into ch.
func capture(ch chan<- streamResult) func([]byte, error) {
	return func(p []byte, err error) {
		ch <- streamResult{append([]byte(nil), p...), err}
	}
}

// acceptOne serves the first connection with fn, called on the loop.
func acceptOne(t *testing.T, l *ioloop.IOLoop, fn func(s *ioloop.Stream), opts ...ioloop.ServerOption) net.Conn {
	t.Helper()
	sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) { fn(s) }, opts...)
	return dial(t, "tcp", sv.Addr().String())
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pairKinds are the kinds of connected descriptors the stream tests run
// on: a TCP connection on 127.0.0.1, a unix socketpair and a pipe.
var pairKinds = []string{"tcp", "unix", "pipe"}

// streamPair makes a connected pair of the given kind. fd is the end to
// wrap in a Stream (for a pipe, the read end); the stream owns it from
// then on and the test must close the stream. peer is the other end,
// driven through Go's own poller (blocking calls on the test's goroutines,
// costing the loop under test nothing) and closed when the test ends.
func streamPair(t *testing.T, kind string) (fd int, peer io.ReadWriteCloser) {
	t.Helper()
	cloexecDup := func(rc syscall.RawConn) int {
		nfd := -1
		var derr error
		if err := rc.Control(func(f uintptr) { nfd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
			t.Fatal(err)
		}
		if derr != nil {
			t.Fatal(derr)
		}
		return nfd
	}
	switch kind {
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c := dial(t, "tcp", ln.Addr().String())
		ac, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer ac.Close()
		rc, err := ac.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		return cloexecDup(rc), c
	case "unix":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fds[1]), "socketpair peer")
		t.Cleanup(func() { _ = f.Close() })
		_ = f.SetDeadline(time.Now().Add(testTimeout))
		return fds[0], f
	case "pipe":
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(p[1]), "pipe write end")
		t.Cleanup(func() { _ = f.Close() })
		_ = f.SetDeadline(time.Now().Add(testTimeout))
		return p[0], f
	}
	t.Fatalf("unknown pair kind %q", kind)
	return -1, nil
}

// newStreamOnLoop wraps fd in a Stream on l's goroutine and closes it there
// when the test ends.
func newStreamOnLoop(t *testing.T, l *ioloop.IOLoop, fd int, opts ...ioloop.StreamOption) *ioloop.Stream {
	t.Helper()
	var s *ioloop.Stream
	onLoop(t, l, func() {
		var err error
		if s, err = ioloop.NewStream(l, fd, opts...); err != nil {
			t.Errorf("NewStream: %v", err)
		}
	})
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { onLoop(t, l, s.Close) })
	return s
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed int64) []byte {
	p := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(p)
	return p
}

// stalledListener returns the address of a TCP listener on 127.0.0.1 that
// never accepts, with a backlog of 0: once its accept queue is full the
// kernel drops further SYNs, so connects to it stay in progress. Closed at
// the end of the test.
func stalledListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
}
