package tests

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// Issue 9 §5: a Stream belongs to its loop. Off the loop goroutine, while
// the loop runs, the methods that return an error return ErrNotOnLoop and
// touch nothing; Close, CloseAfterFlush and the setters hop to the loop.
// Before, Write from another goroutine raced the loop and panicked inside
// the library ("a stream callback panicked"). These tests run under -race:
// an off-loop call that touched the stream would be reported.

func TestStreamOffLoopCallsReturnErrNotOnLoopAndChangeNothing(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	fd, peer := streamPair(t, "tcp")
	s := newStreamOnLoop(t, l, fd)
	onLoop(t, l, func() { echo(s, nil) })

	var callbacks atomic.Int64 // callbacks of off-loop calls that ran: must stay 0
	readCb := func([]byte, error) { callbacks.Add(1) }
	writeCb := func(error) { callbacks.Add(1) }
	calls := []struct {
		name string
		call func() error
	}{
		{"Write", func() error { return s.Write([]byte("must never be sent"), writeCb) }},
		{"ReadSome", func() error { return s.ReadSome(readCb) }},
		{"ReadBytes", func() error { return s.ReadBytes(1, readCb) }},
		{"ReadUntil", func() error { return s.ReadUntil([]byte("\n"), 0, readCb) }},
		{"ReadUntilClose", func() error { return s.ReadUntilClose(readCb) }},
		{"CloseWrite", s.CloseWrite},
		{"SetNoDelay", func() error { return s.SetNoDelay(false) }},
		{"SetKeepAlive", func() error { return s.SetKeepAlive(true, time.Second) }},
	}

	// Off-loop callers hammer the stream while the loop echoes 1 MiB.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var made atomic.Int64
	errc := make(chan error, 1)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				for _, c := range calls {
					select {
					case <-stop:
						return
					default:
					}
					err := c.call()
					made.Add(1)
					if !errors.Is(err, ioloop.ErrNotOnLoop) || !strings.Contains(err.Error(), "AddCallback") {
						select {
						case errc <- errors.New(c.name + " off the loop returned " + errString(err) + "; want ErrNotOnLoop naming the fix"):
						default:
						}
						return
					}
				}
			}
		}()
	}
	want := randomBytes(1<<20, 51)
	wrote := feed(peer, want)
	got := make([]byte, len(want))
	_, rerr := io.ReadFull(peer, got)
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if rerr != nil || !bytes.Equal(got, want) {
		t.Fatalf("echo: %v; data intact %v", rerr, bytes.Equal(got, want))
	}
	if err := recv(t, wrote, "peer write"); err != nil {
		t.Fatal(err)
	}
	if made.Load() < int64(len(calls)) {
		t.Fatalf("only %d off-loop calls were made during the echo", made.Load())
	}
	// The stream is intact: still open, and a round trip still works.
	var closed bool
	onLoop(t, l, func() { closed = s.Closed() })
	if closed {
		t.Fatal("the stream closed")
	}
	if _, err := peer.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	pong := make([]byte, 4)
	if _, err := io.ReadFull(peer, pong); err != nil || string(pong) != "ping" {
		t.Fatalf("round trip after the off-loop calls: %q, %v", pong, err)
	}
	if n := callbacks.Load(); n != 0 {
		t.Fatalf("%d callbacks of off-loop calls ran", n)
	}
	if p := l.Stats().Panics; p != 0 || strings.Contains(logs.String(), "panic") {
		t.Fatalf("%d panics recovered; log:\n%s", p, logs)
	}
	t.Logf("%d off-loop calls refused during a 1 MiB echo", made.Load())
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// closeCall is one run of a close callback.
type closeCall struct {
	err    error
	inLoop bool
}

func TestStreamCloseFromOtherGoroutinesClosesOnTheLoopOnce(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	fd, peer := streamPair(t, "unix")
	s := newStreamOnLoop(t, l, fd)
	closes := make(chan closeCall, 4)
	read := make(chan streamResult, 1)
	onLoop(t, l, func() {
		s.SetCloseCallback(func(err error) { closes <- closeCall{err, l.InLoop()} })
		_ = s.ReadBytes(10, capture(read))
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
	if c := recv(t, closes, "close callback"); c.err != nil || !c.inLoop {
		t.Fatalf("close callback: err %v, on the loop %v; want nil on the loop", c.err, c.inLoop)
	}
	if r := recv(t, read, "pending read"); !errors.Is(r.err, ioloop.ErrStreamClosed) {
		t.Fatalf("pending read: %v; want ErrStreamClosed", r.err)
	}
	if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("peer read after Close: %d, %v; want EOF", n, err)
	}
	select {
	case c := <-closes:
		t.Fatalf("close callback ran again (%v)", c.err)
	case <-time.After(20 * time.Millisecond):
	}
	if p := l.Stats().Panics; p != 0 {
		t.Fatalf("%d panics; log:\n%s", p, logs)
	}
}

// CloseAfterFlush and SetCloseCallback from another goroutine, while the
// loop is busy flushing, hop to the loop in order: the queued data all
// goes out, then the stream closes and the callback set off the loop runs
// there.
func TestStreamCloseAfterFlushFromAnotherGoroutine(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	fd, peer := streamPair(t, "unix")
	s := newStreamOnLoop(t, l, fd)
	want := randomBytes(4<<20, 52)
	onLoop(t, l, func() {
		if err := s.Write(want, nil); err != nil {
			t.Errorf("Write: %v", err)
		}
	})
	type readResult struct {
		data []byte
		err  error
	}
	// Take some, so that the loop has been flushing since it last
	// synchronised with this goroutine, and go on reading while the calls
	// below are made.
	head := make([]byte, 256<<10)
	if _, err := io.ReadFull(peer, head); err != nil {
		t.Fatal(err)
	}
	read := make(chan readResult, 1)
	go func() {
		p, err := io.ReadAll(peer)
		read <- readResult{append(head, p...), err}
	}()
	closes := make(chan closeCall, 2)
	s.SetCloseCallback(func(err error) { closes <- closeCall{err, l.InLoop()} })
	s.CloseAfterFlush()
	r := recv(t, read, "the peer's read")
	if r.err != nil || !bytes.Equal(r.data, want) {
		t.Fatalf("peer read %d bytes, %v; want the 4 MiB queued before CloseAfterFlush, then EOF", len(r.data), r.err)
	}
	_ = peer.Close() // ends the lingering close
	if c := recv(t, closes, "close callback"); c.err != nil || !c.inLoop {
		t.Fatalf("close callback: err %v, on the loop %v", c.err, c.inLoop)
	}
}

// The setters, called from another goroutine while the loop echoes, hop
// to the loop: they race nothing, and they take effect there. The last
// ones set a read timeout and a close callback, so the next read on the
// loop times out and the close callback set off the loop reports it.
func TestStreamSettersFromAnotherGoroutineHopToTheLoop(t *testing.T) {
	checkNoLeaks(t)
	l, logs := runningLoop(t)
	fd, peer := streamPair(t, "unix")
	s := newStreamOnLoop(t, l, fd)
	onLoop(t, l, func() { echo(s, nil) })
	closes := make(chan closeCall, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.SetReadTimeout(time.Hour)
			s.SetCloseCallback(func(err error) { t.Errorf("a replaced close callback ran: %v", err) })
		}
	}()
	want := randomBytes(1<<20, 53)
	wrote := feed(peer, want)
	got := make([]byte, len(want))
	_, err := io.ReadFull(peer, got)
	close(stop)
	<-done
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("echo: %v; data intact %v", err, bytes.Equal(got, want))
	}
	if err := recv(t, wrote, "peer write"); err != nil {
		t.Fatal(err)
	}
	s.SetReadTimeout(30 * time.Millisecond)
	s.SetCloseCallback(func(err error) { closes <- closeCall{err, l.InLoop()} })
	onLoop(t, l, func() {}) // the hops above have run
	// The echo's next read starts now, with the new timeout.
	if _, err := peer.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if c := recv(t, closes, "close callback"); !errors.Is(c.err, ioloop.ErrTimeout) || !c.inLoop {
		t.Fatalf("close callback: err %v, on the loop %v; want ErrTimeout on the loop", c.err, c.inLoop)
	}
	if p := l.Stats().Panics; p != 0 {
		t.Fatalf("%d panics; log:\n%s", p, logs)
	}
}

// Before Start, the goroutine setting the loop up may use the stream.
func TestStreamSetUpBeforeStart(t *testing.T) {
	checkNoLeaks(t)
	l, logs := newTestLoop(t)
	fd, peer := streamPair(t, "unix")
	s, err := ioloop.NewStream(l, fd)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan streamResult, 1)
	wrote := make(chan error, 1)
	if err := s.ReadBytes(5, capture(got)); err != nil {
		t.Fatalf("ReadBytes before Start: %v", err)
	}
	if err := s.Write([]byte("hello"), func(err error) { wrote <- err }); err != nil {
		t.Fatalf("Write before Start: %v", err)
	}
	stop := startLoop(t, l)
	t.Cleanup(func() { _ = stop() })
	t.Cleanup(func() { onLoop(t, l, s.Close) })
	if _, err := peer.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "ReadBytes"); r.err != nil || string(r.data) != "world" {
		t.Fatalf("ReadBytes = %q, %v", r.data, r.err)
	}
	if err := recv(t, wrote, "write callback"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("peer got %q, %v", buf, err)
	}
	// Now that the loop runs, the same goroutine is refused.
	if err := s.Write([]byte("x"), nil); !errors.Is(err, ioloop.ErrNotOnLoop) {
		t.Fatalf("Write from the test goroutine while the loop runs: %v; want ErrNotOnLoop", err)
	}
	if p := l.Stats().Panics; p != 0 {
		t.Fatalf("%d panics; log:\n%s", p, logs)
	}
}

// NumStreams is safe from any goroutine (the README says every method of
// the package outside Stream is).
func TestServerNumStreamsFromAnotherGoroutine(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	sv := serve(t, l, echo)
	var conns []net.Conn
	for range 3 {
		conns = append(conns, dial(t, "tcp", sv.Addr().String()))
	}
	waitFor(t, "3 streams", func() bool { return sv.NumStreams() == 3 })
	for _, c := range conns {
		_ = c.Close()
	}
	waitFor(t, "0 streams", func() bool { return sv.NumStreams() == 0 })
}
