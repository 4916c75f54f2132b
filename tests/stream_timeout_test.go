package tests

import (
	"errors"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// A read timeout shortened with SetReadTimeout applies to the next read,
// although a timer for the longer one is still armed (the stream re-arms
// its timer only when it fires, to keep busy streams cheap). Found while
// testing SetReadTimeout from another goroutine (issue 9 §5).
func TestStreamShorterReadTimeoutAppliesToTheNextRead(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	fd, peer := streamPair(t, "unix")
	s := newStreamOnLoop(t, l, fd)
	got := make(chan streamResult, 1)
	onLoop(t, l, func() {
		s.SetReadTimeout(time.Hour)
		_ = s.ReadBytes(1, capture(got))
	})
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, got, "first read"); r.err != nil {
		t.Fatal(r.err)
	}
	onLoop(t, l, func() {
		s.SetReadTimeout(30 * time.Millisecond)
		_ = s.ReadBytes(1, capture(got))
	})
	select {
	case r := <-got:
		if !errors.Is(r.err, ioloop.ErrTimeout) {
			t.Fatalf("second read: %v; want ErrTimeout", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a 30 ms read timeout set after a 1 h one did not fire within 5 s")
	}
}
