//go:build linux && cgo

package ioloop

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestAddHandlerTakesOverALeftoverWatch pins the case FuzzLoopOps found
// (seed "leftover-wedge"). epoll watches (file, fd number) pairs: when a
// registered fd is closed while a dup keeps its file open, the watch
// stays, and RemoveHandler cannot reach it (EPOLL_CTL_DEL on a closed
// number is EBADF, which the loop rightly treats as "already gone"). Once
// dup2 puts that file back under the number, the kernel answers
// EPOLL_CTL_ADD with EEXIST although the loop's table has no handler for
// it: AddHandler must take the watch over (libevent's ADD-to-MOD on
// EEXIST), not report ErrExists for a number that UpdateHandler and
// RemoveHandler call unregistered. Otherwise the number is wedged for as
// long as the file lives.
func TestAddHandlerTakesOverALeftoverWatch(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := p[0], p[1]
	defer unix.Close(w)
	if err := l.AddHandler(r, HandlerFunc(func(int, Events) { t.Error("the removed handler was called") }), Read); err != nil {
		t.Fatal(err)
	}
	dup, err := unix.FcntlInt(uintptr(r), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	if err := unix.Close(r); err != nil { // the watch outlives the number: dup holds the file
		t.Fatal(err)
	}
	if err := l.RemoveHandler(r); err != nil {
		t.Fatalf("RemoveHandler of a closed fd = %v, want nil", err)
	}
	if err := unix.Dup3(dup, r, unix.O_CLOEXEC); err != nil { // the file is back under the number
		t.Fatal(err)
	}
	defer unix.Close(r)

	got := 0
	if err := l.AddHandler(r, HandlerFunc(func(fd int, ev Events) {
		got++
		var buf [8]byte
		_, _ = unix.Read(fd, buf[:])
		l.Stop()
	}), Read); err != nil {
		t.Fatalf("AddHandler(fd %d) on a number with no handler = %v, want nil (the leftover watch "+
			"must be taken over, or the number stays wedged)", r, err)
	}
	if _, err := unix.Write(w, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if got != 1 {
		t.Fatalf("the new handler was called %d times, want 1", got)
	}
}
