package tests

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

func TestReadHandlerGetsReadWhenDataArrives(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	r, w := pipe(t)
	got := make(chan ioloop.Events, 1)
	err := l.AddHandler(r, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		buf := make([]byte, 16)
		n, _ := unix.Read(fd, buf)
		if string(buf[:n]) != "ping" {
			t.Errorf("read %q", buf[:n])
		}
		got <- ev
	}), ioloop.Read)
	if err != nil {
		t.Fatal(err)
	}
	stop := startLoop(t, l)
	defer stop()
	mustWrite(t, w, []byte("ping"))
	if ev := recv(t, got, "a Read event"); ev != ioloop.Read {
		t.Fatalf("events = %v, want Read", ev)
	}
}

func TestReadOnlyHandlerOnWritableSocketNeverSeesWrite(t *testing.T) {
	l, _ := newTestLoop(t)
	a, b := socketpair(t) // a is writable from the start
	var mu sync.Mutex
	var seen []ioloop.Events
	_ = l.AddHandler(a, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		buf := make([]byte, 64)
		_, _ = unix.Read(fd, buf)
		mu.Lock()
		seen = append(seen, ev)
		mu.Unlock()
	}), ioloop.Read)
	stop := startLoop(t, l)
	mustWrite(t, b, []byte("x"))
	waitFor(t, "the read", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) > 0 })
	onLoop(t, l, func() {}) // one more iteration with a writable, unreadable socket
	_ = stop()
	for _, ev := range seen {
		if ev&ioloop.Write != 0 {
			t.Fatalf("Read-only handler saw %v", ev)
		}
	}
}

func TestWriteInterestAndUpdateHandler(t *testing.T) {
	l, _ := newTestLoop(t)
	a, _ := socketpair(t)
	writes := make(chan ioloop.Events, 100)
	_ = l.AddHandler(a, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		writes <- ev
		// Level-triggered: turn Write off once seen, as a stream does when
		// its queue drains.
		if err := l.UpdateHandler(fd, ioloop.Read); err != nil {
			t.Errorf("UpdateHandler: %v", err)
		}
	}), ioloop.Read|ioloop.Write)
	stop := startLoop(t, l)
	defer stop()
	if ev := recv(t, writes, "a Write event"); ev != ioloop.Write {
		t.Fatalf("events = %v, want Write", ev)
	}
	onLoop(t, l, func() {})
	onLoop(t, l, func() {})
	if n := len(writes); n != 0 {
		t.Fatalf("%d more Write events after UpdateHandler(Read)", n)
	}
	onLoop(t, l, func() {
		if err := l.UpdateHandler(a, ioloop.Write); err != nil {
			t.Errorf("UpdateHandler(Write): %v", err)
		}
	})
	recv(t, writes, "Write after re-enabling it")
}

func TestHangupIsReportedAsError(t *testing.T) {
	l, _ := newTestLoop(t)
	r, w := pipe(t)
	got := make(chan ioloop.Events, 1)
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		_ = l.RemoveHandler(fd)
		got <- ev
	}), ioloop.Read)
	stop := startLoop(t, l)
	defer stop()
	_ = unix.Close(w) // the writer goes away: EPOLLHUP on the read end
	ev := recv(t, got, "the hangup")
	if ev&ioloop.Error == 0 {
		t.Fatalf("events = %v, want Error (HUP) set", ev)
	}
}

func TestUnreadDataFiresAgain(t *testing.T) {
	l, _ := newTestLoop(t)
	r, w := pipe(t)
	var calls atomic.Int32
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		if calls.Add(1) == 3 {
			_ = l.RemoveHandler(fd)
		}
	}), ioloop.Read) // never reads: level-triggered keeps reporting
	stop := startLoop(t, l)
	defer stop()
	mustWrite(t, w, []byte("x"))
	waitFor(t, "three level-triggered reports", func() bool { return calls.Load() == 3 })
}

func TestRemoveHandlerDuringBatchSuppressesPendingEvent(t *testing.T) {
	for range 20 { // the batch order varies; either handler may run first
		l, _ := newTestLoop(t)
		r1, w1 := pipe(t)
		r2, w2 := pipe(t)
		mustWrite(t, w1, []byte("a"))
		mustWrite(t, w2, []byte("b"))
		var calls atomic.Int32
		other := map[int]int{r1: r2, r2: r1}
		h := ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
			calls.Add(1)
			// Both fds are in this batch; removing the other one must
			// suppress its pending event.
			if err := l.RemoveHandler(other[fd]); err != nil {
				t.Errorf("RemoveHandler(%d): %v", other[fd], err)
			}
			_ = l.RemoveHandler(fd)
			l.Stop()
		})
		_ = l.AddHandler(r1, h, ioloop.Read)
		_ = l.AddHandler(r2, h, ioloop.Read)
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("handlers called %d times, want 1", n)
		}
		if s := l.Stats(); s.StaleEvents != 1 {
			t.Fatalf("StaleEvents = %d, want the suppressed event counted", s.StaleEvents)
		}
	}
}

func TestClosedFDNumberCanBeRegisteredAgain(t *testing.T) {
	l, _ := newTestLoop(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	oldR, oldW := p[0], p[1]
	stale := ioloop.HandlerFunc(func(int, ioloop.Events) { t.Error("the closed fd's handler was called") })
	if err := l.AddHandler(oldR, stale, ioloop.Read); err != nil {
		t.Fatal(err)
	}
	// Close without RemoveHandler, then reuse the number for a new file.
	_ = unix.Close(oldR)
	_ = unix.Close(oldW)
	efd := reuseNumber(t, oldR)
	got := make(chan ioloop.Events, 1)
	if err := l.AddHandler(efd, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		var buf [8]byte
		_, _ = unix.Read(fd, buf[:])
		got <- ev
	}), ioloop.Read); err != nil {
		t.Fatalf("AddHandler on the reused number: %v", err)
	}
	stop := startLoop(t, l)
	defer stop()
	mustWrite(t, efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	recv(t, got, "the new file's event")
}

func TestEventsForPreviousOwnerOfNumberAreDropped(t *testing.T) {
	l, _ := newTestLoop(t)
	oldR, oldW := pipe(t)
	old := ioloop.HandlerFunc(func(int, ioloop.Events) { t.Error("previous owner's handler called") })
	if err := l.AddHandler(oldR, old, ioloop.Read); err != nil {
		t.Fatal(err)
	}
	// A dup keeps the old file alive, so its epoll registration (keyed by
	// file and number) outlives the close: events keep arriving tagged
	// with the old number and generation.
	dup, err := unix.Dup(oldR)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(oldR)
	newR := reuseNumber(t, oldR)
	var newCalls atomic.Int32
	if err := l.AddHandler(newR, ioloop.HandlerFunc(func(int, ioloop.Events) { newCalls.Add(1) }), ioloop.Read); err != nil {
		t.Fatalf("AddHandler for the new owner: %v", err)
	}
	mustWrite(t, oldW, []byte("for the old file")) // the zombie registration fires
	stop := startLoop(t, l)
	waitFor(t, "the stale event to be dropped", func() bool { return l.Stats().StaleEvents > 0 })
	_ = stop()
	_ = unix.Close(dup) // last reference: the kernel drops the old registration
	if n := newCalls.Load(); n != 0 {
		t.Fatalf("new owner got %d events meant for the old file", n)
	}
}

func TestCloseTrueClosesRegisteredFDs(t *testing.T) {
	checkNoLeaks(t)
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	var p [2]int
	_ = unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC)
	defer unix.Close(p[1])
	efd, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
	h := ioloop.HandlerFunc(func(int, ioloop.Events) {})
	_ = l.AddHandler(p[0], h, ioloop.Read)
	_ = l.AddHandler(efd, h, ioloop.Read)
	if err := l.Close(true); err != nil {
		t.Fatalf("Close(true): %v", err)
	}
	if fdIsOpen(p[0]) || fdIsOpen(efd) {
		t.Fatal("Close(true) left a registered fd open")
	}
	if !fdIsOpen(p[1]) {
		t.Fatal("Close(true) closed an fd it did not register")
	}
}

func TestCloseFalseLeavesFDsOpen(t *testing.T) {
	checkNoLeaks(t)
	l, _ := ioloop.New()
	r, _ := pipe(t)
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(int, ioloop.Events) {}), ioloop.Read)
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	if !fdIsOpen(r) {
		t.Fatal("Close(false) closed a registered fd")
	}
}

func TestCloseTrueDoesNotCloseAReusedNumber(t *testing.T) {
	l, _ := ioloop.New()
	var p [2]int
	_ = unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC)
	_ = l.AddHandler(p[0], ioloop.HandlerFunc(func(int, ioloop.Events) {}), ioloop.Read)
	_ = unix.Close(p[0])
	_ = unix.Close(p[1])
	other := reuseNumber(t, p[0])
	if err := l.Close(true); err != nil {
		t.Fatalf("Close(true): %v", err)
	}
	if !fdIsOpen(other) {
		t.Fatal("Close(true) closed a file it never registered that reused a number")
	}
}

func TestRegistrationErrors(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	h := ioloop.HandlerFunc(func(int, ioloop.Events) {})
	r, w := pipe(t)

	if err := l.AddHandler(r, h, ioloop.Read); err != nil {
		t.Fatal(err)
	}
	if err := l.AddHandler(r, h, ioloop.Read); !errors.Is(err, ioloop.ErrExists) {
		t.Errorf("second AddHandler = %v, want ErrExists", err)
	}
	if err := l.UpdateHandler(w, ioloop.Write); !errors.Is(err, ioloop.ErrNotRegistered) {
		t.Errorf("UpdateHandler(unregistered) = %v, want ErrNotRegistered", err)
	}
	if err := l.RemoveHandler(w); !errors.Is(err, ioloop.ErrNotRegistered) {
		t.Errorf("RemoveHandler(unregistered) = %v, want ErrNotRegistered", err)
	}
	if err := l.AddHandler(-3, h, ioloop.Read); !errors.Is(err, syscall.EBADF) {
		t.Errorf("AddHandler(-3) = %v, want EBADF", err)
	}
	if err := l.AddHandler(w, nil, ioloop.Write); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("AddHandler(nil) = %v, want EINVAL", err)
	}
	if err := l.AddHandler(w, h, ioloop.Events(1<<20)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("AddHandler(unknown bits) = %v, want EINVAL", err)
	}

	closed, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
	_ = unix.Close(closed)
	err := l.AddHandler(closed, h, ioloop.Read)
	var sysErr *os.SyscallError
	if !errors.Is(err, syscall.EBADF) || !errors.As(err, &sysErr) || sysErr.Syscall != "epoll_ctl" {
		t.Errorf("AddHandler(closed fd) = %v, want epoll_ctl error wrapping EBADF", err)
	}

	f, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = l.AddHandler(int(f.Fd()), h, ioloop.Read)
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "cannot be polled") {
		t.Errorf("AddHandler(regular file) = %v, want EPERM saying it cannot be polled", err)
	}

	// After all that, the loop still works.
	got := make(chan struct{}, 1)
	_ = l.RemoveHandler(r)
	_ = l.AddHandler(r, ioloop.HandlerFunc(func(fd int, _ ioloop.Events) {
		buf := make([]byte, 8)
		_, _ = unix.Read(fd, buf)
		got <- struct{}{}
	}), ioloop.Read)
	stop := startLoop(t, l)
	defer stop()
	mustWrite(t, w, []byte("ok"))
	recv(t, got, "an event after the errors")
}

func TestRemoveHandlerOfClosedFDSucceeds(t *testing.T) {
	l, _ := newTestLoop(t)
	efd, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
	_ = l.AddHandler(efd, ioloop.HandlerFunc(func(int, ioloop.Events) {}), ioloop.Read)
	_ = unix.Close(efd)
	if err := l.RemoveHandler(efd); err != nil {
		t.Fatalf("RemoveHandler(closed fd) = %v, want nil: the kernel forgot it already", err)
	}
	if n := l.Stats().Handlers; n != 0 {
		t.Fatalf("Handlers = %d after removal", n)
	}
}

func TestBurstLargerThanEventBufferIsFullyServed(t *testing.T) {
	// More ready fds than the core's initial batch (64): every one is
	// served, within a few iterations, as the buffer grows.
	const n = 300
	l, _ := newTestLoop(t)
	served := make(map[int]bool)
	var mu sync.Mutex
	h := ioloop.HandlerFunc(func(fd int, _ ioloop.Events) {
		var buf [8]byte
		_, _ = unix.Read(fd, buf[:])
		mu.Lock()
		served[fd] = true
		mu.Unlock()
	})
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for range n {
		fd := eventfd(t)
		if err := l.AddHandler(fd, h, ioloop.Read); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, fd, one)
	}
	stop := startLoop(t, l)
	defer stop()
	waitFor(t, "every fd of the burst", func() bool { mu.Lock(); defer mu.Unlock(); return len(served) == n })
	if it := l.Stats().Iterations; it > 20 {
		t.Errorf("a burst of %d fds took %d iterations", n, it)
	}
}

func TestHandlersFromOtherGoroutinesWhileRunning(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				fd, err := unix.Eventfd(1, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC) // readable at once
				if err != nil {
					t.Error(err)
					return
				}
				got := make(chan struct{})
				var once sync.Once
				err = l.AddHandler(fd, ioloop.HandlerFunc(func(int, ioloop.Events) {
					once.Do(func() { close(got) })
				}), ioloop.Read)
				if err != nil {
					t.Errorf("goroutine %d iteration %d: AddHandler: %v", g, i, err)
				}
				<-got
				if err := l.RemoveHandler(fd); err != nil {
					t.Errorf("RemoveHandler: %v", err)
				}
				_ = unix.Close(fd)
			}
		}()
	}
	wg.Wait()
	if n := l.Stats().Handlers; n != 0 {
		t.Fatalf("%d handlers left", n)
	}
}

// reuseNumber puts a new eventfd at fd number n (which must be closed), as
// the kernel would when it hands out the lowest free number, and closes it
// at the end of the test.
func reuseNumber(t *testing.T, n int) int {
	t.Helper()
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if efd != n {
		if err := unix.Dup3(efd, n, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		_ = unix.Close(efd)
	}
	t.Cleanup(func() { _ = unix.Close(n) })
	return n
}
