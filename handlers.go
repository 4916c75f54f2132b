package ioloop

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Events is a set of I/O conditions. The values are exactly the epoll
// bits, as in Tornado, so they can be passed to and from C unchanged.
type Events uint32

const (
	// None asks for no events; Error conditions are still reported.
	None Events = 0
	// Read is EPOLLIN: data can be read, a connection can be accepted, or
	// the peer closed its side (a read then returns 0).
	Read Events = 0x1
	// Write is EPOLLOUT: a write will not block.
	Write Events = 0x4
	// Error is EPOLLERR|EPOLLHUP. The kernel reports these whether or not
	// they were asked for, so every handler must be ready to receive them.
	Error Events = 0x8 | 0x10

	validEvents = Read | Write | Error
)

// String returns the set as "Read|Write|Error", "None", or with any bits
// outside the known ones in hex ("Read|0x2000").
func (e Events) String() string {
	if e == None {
		return "None"
	}
	var parts []string
	if e&Read != 0 {
		parts = append(parts, "Read")
	}
	if e&Write != 0 {
		parts = append(parts, "Write")
	}
	switch e & Error {
	case Error:
		parts = append(parts, "Error")
	case 0x8:
		parts = append(parts, "Error(ERR)")
	case 0x10:
		parts = append(parts, "Error(HUP)")
	}
	if rest := e &^ validEvents; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	return strings.Join(parts, "|")
}

// Handler receives the I/O events of one file descriptor. HandleEvents
// runs on the loop goroutine, one call at a time, and gets only the events
// it registered for that are ready, plus any Error conditions.
type Handler interface {
	HandleEvents(fd int, events Events)
}

// HandlerFunc adapts an ordinary function to Handler, like http.HandlerFunc.
type HandlerFunc func(fd int, events Events)

// HandleEvents calls f(fd, events).
func (f HandlerFunc) HandleEvents(fd int, events Events) { f(fd, events) }

// event is one ready event as the C core hands it over. Its layout must
// match ioloop_event in csrc/ioloop.h (loop_cgo.go checks this at compile
// time).
type event struct {
	fd     int32
	gen    uint32
	events uint32
}

// handlerSlot is one entry of the fd-indexed table: 24 bytes per fd number,
// the same idea as libuv's watchers[fd].
type handlerSlot struct {
	handler Handler // nil when the fd is not registered
	events  Events  // what the handler asked for (without Error)
	gen     uint32  // bumped on every registration of this fd number; never 0
}

// handlerTable maps fd numbers to handlers. It is guarded by IOLoop.regMu:
// registrations may come from any goroutine while the loop dispatches.
type handlerTable struct {
	slots []handlerSlot
	count int // registered fds
}

// slot returns the slot of fd, growing the table when grow is set.
func (t *handlerTable) slot(fd int, grow bool) *handlerSlot {
	if fd < len(t.slots) {
		return &t.slots[fd]
	}
	if !grow {
		return nil
	}
	n := max(2*len(t.slots), fd+1, 64)
	slots := make([]handlerSlot, n)
	copy(slots, t.slots)
	t.slots = slots
	return &t.slots[fd]
}

// nextGen returns the generation for the next registration of s, without
// taking it. Zero is the waker's tag, so it is skipped when the counter
// wraps.
func (s *handlerSlot) nextGen() uint32 {
	if s.gen == ^uint32(0) {
		return 1
	}
	return s.gen + 1
}

// checkRegistration validates AddHandler/UpdateHandler arguments before any
// syscall, so bad input never reaches the kernel.
func checkRegistration(op string, fd int, events Events) error {
	if fd < 0 {
		return fmt.Errorf("ioloop: %s: negative fd %d: %w", op, fd, syscall.EBADF)
	}
	if events&^validEvents != 0 {
		return fmt.Errorf("ioloop: %s(fd %d): unknown event bits %#x (want Read, Write, Error): %w",
			op, fd, uint32(events&^validEvents), syscall.EINVAL)
	}
	return nil
}

// dispatchBatch runs the handlers of one epoll_wait batch. It is called
// once per batch, from the C core through the exported trampoline in
// loop_cgo.go (or directly by a test poller).
//
// Each event is checked against the table under regMu just before its
// handler runs, so a handler removed (or replaced) by an earlier handler
// of the same batch, or from another goroutine, never sees it: the
// generation in the event must match the slot's (golang/go#59545 is the
// runtime's version of this bug).
func (l *IOLoop) dispatchBatch(evs []event) {
	// The batch runs inside Poll, but the loop is awake now: producers need
	// not write the eventfd, since the loop looks at its queues before it
	// sleeps again.
	if l.sleeping.Load() {
		l.sleeping.Store(false)
	}
	l.batchTimed = false
	dispatched, stale := 0, 0
	for i := range evs {
		ev := &evs[i]
		fd := int(ev.fd)
		l.regMu.Lock()
		s := l.table.slot(fd, false)
		if s == nil || s.handler == nil || s.gen != ev.gen {
			l.regMu.Unlock()
			stale++
			continue
		}
		h := s.handler
		ready := Events(ev.events) & (s.events | Error)
		l.regMu.Unlock()
		if ready == None {
			continue
		}
		dispatched++
		l.runHandler(h, fd, ready)
	}
	l.stats.events.Add(uint64(dispatched))
	if stale > 0 {
		l.stats.stale.Add(uint64(stale))
	}
}

// AddHandler registers h for events on fd. events is a combination of Read
// and Write (Error is always reported and may be included or not).
//
// Errors: ErrExists if fd already has a handler; an error wrapping EBADF
// for a negative or closed fd, EINVAL for a nil handler or unknown event
// bits, EPERM for an fd epoll cannot watch (a regular file or directory);
// ErrClosed after Close. The loop is unaffected by any of these.
//
// An fd that was closed without RemoveHandler does not wedge its number:
// when the number is reused, AddHandler for the new file succeeds, and
// events still queued for the old file are dropped.
//
// Call RemoveHandler before closing an fd. epoll watches a file, not a
// number: if a dup keeps the file open after its registered number is
// closed, the kernel keeps reporting it under the old number, to the
// handler while it is registered and, after RemoveHandler, as stale events
// that the loop drops but cannot silence (Stats.StaleEvents grows, and a
// readable file keeps the loop awake) until the file is closed. No
// level-triggered loop (Tornado, libevent, libuv) can do better.
func (l *IOLoop) AddHandler(fd int, h Handler, events Events) error {
	if err := checkRegistration("AddHandler", fd, events); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("ioloop: AddHandler(fd %d): nil handler: %w", fd, syscall.EINVAL)
	}
	interest := events &^ Error
	l.regMu.Lock()
	defer l.regMu.Unlock()
	if l.regClosed {
		return fmt.Errorf("ioloop: AddHandler(fd %d): %w", fd, l.errClosed())
	}
	s := l.table.slot(fd, true)
	gen := s.nextGen()
	// The kernel, not the table, decides whether fd is already watched: a
	// slot can be stale when its fd was closed without RemoveHandler, and
	// then EPOLL_CTL_ADD for the file now behind that number succeeds.
	if err := l.poller.Control(ctlAdd, fd, interest, gen); err != nil {
		if !errors.Is(err, syscall.EEXIST) {
			return ctlError("AddHandler", fd, err)
		}
		if s.handler != nil {
			return fmt.Errorf("ioloop: AddHandler(fd %d): %w", fd, ErrExists)
		}
		// The kernel still watches this file under this number, but no
		// handler owns the watch: the number was closed while a dup kept
		// the file open (so RemoveHandler could not reach the watch), and
		// the file came back to the number (dup2). Take the watch over
		// under the new generation (libevent's ADD-to-MOD fallback).
		if err := l.poller.Control(ctlMod, fd, interest, gen); err != nil {
			return ctlError("AddHandler", fd, err)
		}
	}
	if s.handler == nil {
		l.table.count++
	}
	s.handler, s.events, s.gen = h, interest, gen
	return nil
}

// UpdateHandler changes the events fd's handler receives. Asking for the
// events it already has costs no system call. Errors: ErrNotRegistered for
// an unknown fd, and those of AddHandler.
func (l *IOLoop) UpdateHandler(fd int, events Events) error {
	if err := checkRegistration("UpdateHandler", fd, events); err != nil {
		return err
	}
	interest := events &^ Error
	l.regMu.Lock()
	defer l.regMu.Unlock()
	if l.regClosed {
		return fmt.Errorf("ioloop: UpdateHandler(fd %d): %w", fd, l.errClosed())
	}
	s := l.table.slot(fd, false)
	if s == nil || s.handler == nil {
		return fmt.Errorf("ioloop: UpdateHandler(fd %d): %w", fd, ErrNotRegistered)
	}
	if s.events == interest {
		return nil
	}
	err := l.poller.Control(ctlMod, fd, interest, s.gen)
	if errors.Is(err, syscall.ENOENT) {
		// The registered file is gone (closed, or replaced by dup2) and
		// another one holds the number: watch that one, under a new
		// generation so nothing queued for the old file leaks through
		// (libevent's MOD-to-ADD fallback).
		s.gen = s.nextGen()
		if err = l.poller.Control(ctlAdd, fd, interest, s.gen); err == nil {
			s.events = interest
			return nil
		}
	}
	if err != nil {
		return ctlError("UpdateHandler", fd, err)
	}
	s.events = interest
	return nil
}

// RemoveHandler stops watching fd. Once it returns, the handler is not
// called again, even for an event of the batch being dispatched. It does
// not close fd. An fd that was closed before being removed is removed
// without error (the kernel forgot it already). ErrNotRegistered for an fd
// without handler.
func (l *IOLoop) RemoveHandler(fd int) error {
	if fd < 0 {
		return fmt.Errorf("ioloop: RemoveHandler: negative fd %d: %w", fd, syscall.EBADF)
	}
	l.regMu.Lock()
	defer l.regMu.Unlock()
	if l.regClosed {
		return fmt.Errorf("ioloop: RemoveHandler(fd %d): %w", fd, l.errClosed())
	}
	s := l.table.slot(fd, false)
	if s == nil || s.handler == nil {
		return fmt.Errorf("ioloop: RemoveHandler(fd %d): %w", fd, ErrNotRegistered)
	}
	s.handler, s.events = nil, None
	l.table.count--
	err := l.poller.Control(ctlDel, fd, 0, 0)
	switch {
	case err == nil,
		// Already gone: fd was closed (EBADF), or its number now belongs to
		// a file we never registered (ENOENT); EPERM cannot have been
		// registered at all. libevent treats these the same way.
		errors.Is(err, syscall.EBADF), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.EPERM):
		return nil
	}
	return ctlError("RemoveHandler", fd, err)
}

// ctlError wraps an epoll_ctl failure with the operation and the fd.
func ctlError(op string, fd int, err error) error {
	sysErr := os.NewSyscallError("epoll_ctl", err)
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("ioloop: %s(fd %d): fd cannot be polled (epoll does not watch regular files "+
			"or directories, which are always ready: read them directly): %w", op, fd, sysErr)
	}
	return fmt.Errorf("ioloop: %s(fd %d): %w", op, fd, sysErr)
}
