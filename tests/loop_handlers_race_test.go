package tests

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

// raceHandler is one registration's handler in the off-loop registration
// stress test. It reads what its socket delivers and records every call
// that breaks a promise of AddHandler, UpdateHandler or RemoveHandler.
type raceHandler struct {
	seen     chan byte // the byte this registration's peer sent
	wrote    chan struct{}
	narrowed atomic.Bool // UpdateHandler(fd, Read) has returned
	removed  atomic.Bool // RemoveHandler(fd) has returned
	bad      atomic.Pointer[string]
}

func (h *raceHandler) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.bad.CompareAndSwap(nil, &msg)
}

func (h *raceHandler) HandleEvents(fd int, ev ioloop.Events) {
	switch {
	case h.removed.Load():
		// The fd number may belong to another goroutine's socketpair by
		// now: reading here would steal its byte.
		h.fail("handler of fd %d called with %v after its RemoveHandler returned", fd, ev)
		return
	case ev&ioloop.Write != 0 && h.narrowed.Load():
		h.fail("handler of fd %d got %v after UpdateHandler(Read) returned", fd, ev)
	}
	if ev&ioloop.Write != 0 {
		select {
		case h.wrote <- struct{}{}:
		default:
		}
	}
	if ev&ioloop.Read != 0 {
		var b [1]byte
		if n, err := unix.Read(fd, b[:]); n == 1 && err == nil {
			h.seen <- b[0]
		}
	}
}

// Eight goroutines register, update and remove handlers from outside the
// loop while it dispatches, closing their fds at once so numbers are
// reused by the others (issue 9 §1). Every byte must reach the handler of
// the socketpair it was written to, no handler may run after its
// RemoveHandler returned, and none may get an event its UpdateHandler had
// narrowed away.
func TestOffLoopRegistrationsNeverRaceTheDispatch(t *testing.T) {
	checkNoLeaks(t)
	l, logs := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()

	const goroutines, rounds = 8, 200
	deadline := time.Now().Add(2 * testTimeout)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := registrationRound(l, byte(g*rounds+i), deadline); err != nil {
					errs <- fmt.Errorf("goroutine %d round %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := l.Stats(); st.Handlers != 0 || st.Panics != 0 {
		t.Errorf("after the storm: %d handlers registered, %d panics (want 0, 0)\n%s", st.Handlers, st.Panics, logs)
	}
}

func registrationRound(l *ioloop.IOLoop, payload byte, deadline time.Time) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fds[1])
	defer unix.Close(fds[0]) // closed first: its number is reused at once
	h := &raceHandler{seen: make(chan byte, 1), wrote: make(chan struct{}, 1)}
	wait := func(what string, ch <-chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("fd %d: timed out waiting for %s", fds[0], what)
		}
	}
	if err := l.AddHandler(fds[0], h, ioloop.Read); err != nil {
		return err
	}
	if _, err := unix.Write(fds[1], []byte{payload}); err != nil {
		return err
	}
	select {
	case b := <-h.seen:
		if b != payload {
			return fmt.Errorf("fd %d: handler read %d, its peer wrote %d", fds[0], b, payload)
		}
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("fd %d: byte %d never delivered (lost to another handler?)", fds[0], payload)
	}
	if err := l.UpdateHandler(fds[0], ioloop.Read|ioloop.Write); err != nil {
		return err
	}
	if err := wait("a Write event", h.wrote); err != nil {
		return err
	}
	if err := l.UpdateHandler(fds[0], ioloop.Read); err != nil {
		return err
	}
	h.narrowed.Store(true)
	if err := l.RemoveHandler(fds[0]); err != nil {
		return err
	}
	h.removed.Store(true)
	if msg := h.bad.Load(); msg != nil {
		return errors.New(*msg)
	}
	return nil
}

// A handler removes its own registration while another goroutine removes
// it too: nobody deadlocks, exactly one RemoveHandler succeeds (the other
// reports ErrNotRegistered), and the off-loop one does not return while
// the handler still runs.
func TestRemoveHandlerFromHandlerAndOtherGoroutineAtOnce(t *testing.T) {
	checkNoLeaks(t)
	l, _ := newTestLoop(t)
	stop := startLoop(t, l)
	defer stop()
	for range 200 {
		a, _ := socketpair(t)
		var removedOK atomic.Int32
		var after atomic.Bool
		running := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		h := ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
			if after.Load() {
				t.Errorf("handler of fd %d ran after a RemoveHandler returned", fd)
			}
			once.Do(func() { close(running) })
			<-release // hold the dispatch while the other goroutine removes
			if after.Load() {
				t.Errorf("RemoveHandler(%d) returned on another goroutine while the handler still ran", fd)
			}
			if err := l.RemoveHandler(fd); err == nil {
				removedOK.Add(1)
			} else if !errors.Is(err, ioloop.ErrNotRegistered) {
				t.Errorf("RemoveHandler from the handler: %v", err)
			}
		})
		if err := l.AddHandler(a, h, ioloop.Write); err != nil {
			t.Fatal(err)
		}
		recv(t, running, "the handler to run")
		done := make(chan error, 1)
		go func() {
			err := l.RemoveHandler(a)
			if err == nil {
				removedOK.Add(1)
				after.Store(true)
			}
			done <- err
		}()
		time.Sleep(50 * time.Microsecond) // let it reach the wait, usually
		close(release)
		if err := recv(t, done, "the off-loop RemoveHandler"); err != nil && !errors.Is(err, ioloop.ErrNotRegistered) {
			t.Fatalf("off-loop RemoveHandler: %v", err)
		}
		onLoop(t, l, func() {}) // one more iteration: nothing may run now
		if n := removedOK.Load(); n != 1 {
			t.Fatalf("%d RemoveHandler calls succeeded, want exactly 1", n)
		}
	}
}
