package tests

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// Issue 9 §3: a stream that has data waiting in the kernel but no read
// pending must let its loop sleep. The loop is level-triggered, so a
// stream that keeps Read interest without reading makes epoll_wait return
// at once, forever. These tests count loop iterations (one epoll_wait
// each) while the stream waits: a few at most, against tens of thousands
// per 200 ms when it spins.

// maxIdleIterations bounds the iterations of a loop whose only stream has
// nothing to do. Nothing else runs on these loops, so a sleeping loop
// iterates zero times; the margin absorbs a stray wakeup.
const maxIdleIterations = 20

// idleIterations returns how many iterations l runs in d while the test
// asks nothing of it.
func idleIterations(l *ioloop.IOLoop, d time.Duration) uint64 {
	before := l.Stats().Iterations
	time.Sleep(d)
	return l.Stats().Iterations - before
}

// feed writes p to peer on its own goroutine (the write blocks until the
// stream reads) and returns where its result arrives.
func feed(peer io.Writer, p []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := peer.Write(p)
		done <- err
	}()
	return done
}

func TestStreamPausedReaderLetsTheLoopSleep(t *testing.T) {
	for _, kind := range pairKinds {
		t.Run(kind, func(t *testing.T) {
			checkNoLeaks(t)
			l, _ := runningLoop(t)
			fd, peer := streamPair(t, kind)
			want := randomBytes(200<<10, 31)
			wrote := feed(peer, want)
			s := newStreamOnLoop(t, l, fd)

			first := make(chan streamResult, 1)
			onLoop(t, l, func() {
				if err := s.ReadBytes(10, capture(first)); err != nil {
					t.Errorf("ReadBytes(10): %v", err)
				}
			})
			if r := recv(t, first, "ReadBytes(10)"); r.err != nil || !bytes.Equal(r.data, want[:10]) {
				t.Fatalf("ReadBytes(10) = %q, %v; want %q", r.data, r.err, want[:10])
			}
			// No read pending, the peer's data waiting: the loop must sleep.
			n := idleIterations(l, 200*time.Millisecond)
			if n >= maxIdleIterations {
				t.Fatalf("the loop ran %d iterations in 200 ms with no read pending; want < %d (it spins on Read interest nobody acts on)", n, maxIdleIterations)
			}
			t.Logf("%d loop iterations in 200 ms with no read pending", n)

			rest := make(chan streamResult, 1)
			onLoop(t, l, func() {
				if err := s.ReadBytes(len(want)-10, capture(rest)); err != nil {
					t.Errorf("ReadBytes(rest): %v", err)
				}
			})
			if r := recv(t, rest, "the rest"); r.err != nil || !bytes.Equal(r.data, want[10:]) {
				t.Fatalf("the rest: %d bytes, %v; equal %v", len(r.data), r.err, bytes.Equal(r.data, want[10:]))
			}
			if err := recv(t, wrote, "the peer's write"); err != nil {
				t.Fatalf("peer write: %v", err)
			}
		})
	}
}

// A close callback alone (no read ever requested) makes the stream read
// ahead, which is how it notices the peer's close. More than a read
// buffer's worth arriving must not make it spin either, and the data must
// still be there, in order, when a read comes.
func TestStreamCloseCallbackWithUnreadDataLetsTheLoopSleep(t *testing.T) {
	for _, kind := range pairKinds {
		t.Run(kind, func(t *testing.T) {
			checkNoLeaks(t)
			l, _ := runningLoop(t)
			fd, peer := streamPair(t, kind)
			s := newStreamOnLoop(t, l, fd)
			closed := make(chan error, 2)
			onLoop(t, l, func() { s.SetCloseCallback(func(err error) { closed <- err }) })

			want := randomBytes(200<<10, 32) // far more than the 4 KiB read buffer
			wrote := feed(peer, want)
			waitFor(t, "the stream to read ahead", func() bool {
				var n int
				onLoop(t, l, func() { n = s.Buffered() })
				return n > 0
			})
			n := idleIterations(l, 200*time.Millisecond)
			if n >= maxIdleIterations {
				t.Fatalf("the loop ran %d iterations in 200 ms with only a close callback set; want < %d", n, maxIdleIterations)
			}
			t.Logf("%d loop iterations in 200 ms with only a close callback set", n)

			got := make(chan streamResult, 1)
			onLoop(t, l, func() {
				if err := s.ReadBytes(len(want), capture(got)); err != nil {
					t.Errorf("ReadBytes: %v", err)
				}
			})
			if r := recv(t, got, "the data"); r.err != nil || !bytes.Equal(r.data, want) {
				t.Fatalf("read %d bytes, %v; equal %v", len(r.data), r.err, bytes.Equal(r.data, want))
			}
			if err := recv(t, wrote, "the peer's write"); err != nil {
				t.Fatalf("peer write: %v", err)
			}
			// The peer's close is still noticed with no read pending.
			_ = peer.Close()
			if err := recv(t, closed, "close callback"); err != io.EOF {
				t.Fatalf("close callback: %v; want io.EOF", err)
			}
			select {
			case err := <-closed:
				t.Fatalf("close callback ran twice (second: %v)", err)
			case <-time.After(20 * time.Millisecond):
			}
		})
	}
}
