//go:build linux && cgo

package ioloop

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// White-box checks of what a stream holds between its visits to the loop:
// no read buffer when nothing is buffered, a buffer of its own sized to
// the leftover when a callback leaves bytes unconsumed, nothing of the
// shared buffer, and no write chunk once the queue is empty. The
// behaviour on real fds is tested in tests/stream_shared_buffer_test.go.

// bufferTestLoop starts a loop and returns a function that runs fn on it
// and waits.
func bufferTestLoop(t *testing.T) (l *IOLoop, on func(fn func())) {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	t.Cleanup(func() {
		l.Stop()
		<-done
		_ = l.Close(false)
	})
	return l, func(fn func()) {
		t.Helper()
		ran := make(chan struct{})
		if err := l.AddCallback(func() { defer close(ran); fn() }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatal("loop callback did not run")
		}
	}
}

func TestStreamHoldsNoBufferWhenIdle(t *testing.T) {
	l, on := bufferTestLoop(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	var s *Stream
	on(func() {
		if s, err = NewStream(l, fds[1]); err != nil {
			t.Error(err)
		}
	})
	defer on(func() { s.Close() })
	got := make(chan []byte, 1)
	read := func(start func(cb func([]byte, error)) error) []byte {
		t.Helper()
		on(func() {
			if err := start(func(p []byte, err error) {
				if err != nil {
					t.Error(err)
				}
				got <- append([]byte(nil), p...)
			}); err != nil {
				t.Error(err)
			}
		})
		select {
		case p := <-got:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("read did not complete")
			return nil
		}
	}
	// holds checks, on the loop, what the stream keeps between runs.
	holds := func(what string, buffered, minLen, maxLen int) {
		t.Helper()
		on(func() {
			r := &s.read
			switch {
			case r.shared || l.streams.holder != nil:
				t.Errorf("%s: the shared buffer is still held (shared %v, holder %p)", what, r.shared, l.streams.holder)
			case r.end-r.start != buffered:
				t.Errorf("%s: %d bytes buffered; want %d", what, r.end-r.start, buffered)
			case len(r.buf) < minLen || len(r.buf) > maxLen:
				t.Errorf("%s: read buffer of %d bytes; want %d to %d", what, len(r.buf), minLen, maxLen)
			case len(r.buf) > 0 && &r.buf[0] == &l.streams.rbuf[0]:
				t.Errorf("%s: the stream's buffer is the shared one", what)
			}
		})
	}

	msg := bytes.Repeat([]byte("0123456789"), 10)
	if _, err := unix.Write(fds[0], msg); err != nil {
		t.Fatal(err)
	}
	if p := read(s.ReadSome); !bytes.Equal(p, msg) {
		t.Fatalf("ReadSome got %q", p)
	}
	holds("after a ReadSome that took everything", 0, 0, 0)

	// A callback that leaves 90 bytes: they move to a buffer of the
	// stream's own, of the smallest class that holds them.
	if _, err := unix.Write(fds[0], msg); err != nil {
		t.Fatal(err)
	}
	waitReadable := func() { // let the bytes arrive before asking for a few
		t.Helper()
		pfd := []unix.PollFd{{Fd: int32(fds[1]), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 10000); err != nil {
			t.Fatal(err)
		}
	}
	waitReadable()
	if p := read(func(cb func([]byte, error)) error { return s.ReadBytes(10, cb) }); !bytes.Equal(p, msg[:10]) {
		t.Fatalf("ReadBytes(10) got %q", p)
	}
	holds("after a ReadBytes that left 90 bytes", 90, 1<<minBufShift, 1<<minBufShift)
	if p := read(func(cb func([]byte, error)) error { return s.ReadBytes(90, cb) }); !bytes.Equal(p, msg[10:]) {
		t.Fatalf("ReadBytes(90) got %q", p)
	}
	holds("after the leftover was read", 0, 0, 0)

	// A read that needs more than the shared buffer holds grows a buffer
	// of its own, and gives it back once it is consumed.
	big := bytes.Repeat([]byte("abcdefgh"), (3*sharedReadSize)/8)
	go func() { _, _ = unix.Write(fds[0], big) }()
	if p := read(func(cb func([]byte, error)) error { return s.ReadBytes(len(big), cb) }); !bytes.Equal(p, big) {
		t.Fatalf("ReadBytes(%d) got %d bytes, not what was sent", len(big), len(p))
	}
	holds("after a read larger than the shared buffer", 0, 0, 0)

	// The write queue gives its chunks back once flushed.
	var queuedOnce bool
	payload := bytes.Repeat([]byte{'w'}, 1<<20) // more than the socket takes at once
	drained := make(chan struct{})
	on(func() {
		s.OnDrain(func() { close(drained) })
		if err := s.Write(payload, nil); err != nil {
			t.Error(err)
		}
		queuedOnce = s.WriteQueueLen() > 0
	})
	go func() {
		buf := make([]byte, 64<<10)
		for n := 0; n < len(payload); {
			k, err := unix.Read(fds[0], buf)
			if err != nil || k == 0 {
				return
			}
			n += k
		}
	}()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the write queue did not drain")
	}
	on(func() {
		if !queuedOnce {
			t.Error("the write did not queue: the test checks nothing")
		}
		if w := s.wq; w == nil || len(w.chunks) != 0 || w.queued != 0 {
			t.Errorf("an empty write queue holds %d chunks", len(w.chunks))
		}
	})
}
