package tests

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

// Issue 9 §4: a stream writing into a pipe whose reader goes away must
// fail with EPIPE, whatever it was doing when that happened. It got EBADF:
// the Error event made the stream read its write-only end.

// writeOutcome is what the writing stream reported.
type writeOutcome struct {
	write, close, err error // Write's callback, the close callback, Err()
}

// writerAfterPeerCloses makes a stream on each end of a pair (a pipe:
// r is the read end), queues 1 MiB on the writing stream (more than any
// pipe or socket buffer, so the stream registers with the loop and waits),
// then closes the reading stream, and reports what the writer saw.
func writerAfterPeerCloses(t *testing.T, l *ioloop.IOLoop, r, w int) writeOutcome {
	t.Helper()
	rs := newStreamOnLoop(t, l, r)
	ws := newStreamOnLoop(t, l, w)
	wrote := make(chan error, 1)
	closed := make(chan error, 1)
	onLoop(t, l, func() {
		ws.SetCloseCallback(func(err error) { closed <- err })
		if err := ws.Write(make([]byte, 1<<20), func(err error) { wrote <- err }); err != nil {
			t.Errorf("Write: %v", err)
		}
		if ws.WriteQueueLen() == 0 {
			t.Error("1 MiB went out at once; the test needs a queued write")
		}
	})
	onLoop(t, l, rs.Close)
	var o writeOutcome
	o.write = recv(t, wrote, "write callback")
	o.close = recv(t, closed, "close callback")
	onLoop(t, l, func() { o.err = ws.Err() })
	return o
}

func rawPipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

func TestStreamPipeReaderClosesWhileWriteQueuedIsEPIPE(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	r, w := rawPipe(t)
	o := writerAfterPeerCloses(t, l, r, w)
	for _, e := range []struct {
		what string
		err  error
	}{{"write callback", o.write}, {"close callback", o.close}, {"Err()", o.err}} {
		if !errors.Is(e.err, syscall.EPIPE) {
			t.Errorf("%s: %v; want EPIPE", e.what, e.err)
		}
	}
	if !errors.Is(o.write, ioloop.ErrStreamClosed) {
		t.Errorf("write callback: %v; want ErrStreamClosed wrapping EPIPE", o.write)
	}
}

func TestStreamPipeReaderClosedBeforeWriteIsEPIPE(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	r, w := rawPipe(t)
	rs := newStreamOnLoop(t, l, r)
	ws := newStreamOnLoop(t, l, w)
	onLoop(t, l, rs.Close)
	var err, after error
	onLoop(t, l, func() {
		err = ws.Write(make([]byte, 1<<20), func(error) { t.Error("the callback of a failed Write ran") })
		after = ws.Err()
	})
	if !errors.Is(err, syscall.EPIPE) || !errors.Is(err, ioloop.ErrStreamClosed) || !errors.Is(after, syscall.EPIPE) {
		t.Fatalf("Write = %v, Err() = %v; want ErrStreamClosed wrapping EPIPE", err, after)
	}
	time.Sleep(10 * time.Millisecond) // the callback must not run late either
}

// A write-only stream with nothing to write and only a close callback
// still learns that its reader went away: from the Error event, as EPIPE.
func TestStreamPipeReaderGoneRunsWritersCloseCallback(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	r, w := rawPipe(t)
	rs := newStreamOnLoop(t, l, r)
	ws := newStreamOnLoop(t, l, w)
	closed := make(chan error, 1)
	onLoop(t, l, func() { ws.SetCloseCallback(func(err error) { closed <- err }) })
	onLoop(t, l, rs.Close)
	if err := recv(t, closed, "close callback"); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("close callback: %v; want EPIPE", err)
	}
}

// The access mode is respected in both directions: a write-only stream
// never reads and a read-only one never writes; the misuse is an error
// wrapping EBADF (what read(2) and write(2) would say), and the stream
// goes on working.
func TestStreamPipeEndsRefuseTheWrongDirection(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	r, w := rawPipe(t)
	rs := newStreamOnLoop(t, l, r)
	ws := newStreamOnLoop(t, l, w)
	got := make(chan streamResult, 1)
	var readErr, writeErr error
	onLoop(t, l, func() {
		readErr = ws.ReadSome(func([]byte, error) { t.Error("a read on the write-only end ran its callback") })
		writeErr = rs.Write([]byte("x"), func(error) { t.Error("a write on the read-only end ran its callback") })
		_ = rs.ReadBytes(5, capture(got))
		_ = ws.Write([]byte("hello"), nil)
	})
	if !errors.Is(readErr, syscall.EBADF) || !errors.Is(writeErr, syscall.EBADF) {
		t.Fatalf("read on the write end: %v; write on the read end: %v; want errors wrapping EBADF", readErr, writeErr)
	}
	if r := recv(t, got, "ReadBytes"); r.err != nil || string(r.data) != "hello" {
		t.Fatalf("ReadBytes = %q, %v; want hello", r.data, r.err)
	}
}

// The socket equivalent: the peer closes with data unread while a write
// is queued. On a unix socketpair Linux marks the writer's socket with
// ECONNRESET (the peer died with unread data, unix_release_sock), and a
// later send would get EPIPE; either is a dead peer, never EBADF.
func TestStreamSocketpairPeerClosesWhileWriteQueued(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	o := writerAfterPeerCloses(t, l, fds[1], fds[0])
	for _, e := range []struct {
		what string
		err  error
	}{{"write callback", o.write}, {"close callback", o.close}, {"Err()", o.err}} {
		if !errors.Is(e.err, syscall.ECONNRESET) && !errors.Is(e.err, syscall.EPIPE) {
			t.Errorf("%s: %v; want ECONNRESET or EPIPE", e.what, e.err)
		}
	}
	if !errors.Is(o.write, ioloop.ErrStreamClosed) {
		t.Errorf("write callback: %v; want ErrStreamClosed", o.write)
	}
	t.Logf("writer saw: %v", o.write)
}
